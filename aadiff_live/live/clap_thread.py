"""CLAP thread: every few seconds, rank the prompt's words on the last few seconds of audio.

The choice switches only when the new best beats the current words by a margin (hysteresis),
so the weighted word does not flip back and forth between two close scores. The renderer takes
the newest choice when it has one and never waits for CLAP.

A ranking that raises (CLAP out of memory, a broken checkpoint, a driver error) does not stop the
show: the current words stay, the failure is logged and shown (:attr:`ClapThread.alert`), and the
ranking is tried again after a back-off that doubles from ``every_s`` up to ``retry_max_s``.
"""

from __future__ import annotations

import copy
import logging
import threading
import time
from collections.abc import Mapping, Sequence

from aadiff_live.analysis.routes import assign_words, band_audio
from aadiff_live.live.messages import WordChoice
from aadiff_live.live.ring import RingBuffer
from aadiff_live.live.supervisor import Supervisor
from aadiff_live.mailbox import Mailbox
from aadiff_live.tokens.choose import Hysteresis
from aadiff_live.tokens.words import content_words, reachable_scores

log = logging.getLogger(__name__)
MIN_AUDIO_S = 1.0  # rank only once this much audio has arrived


class ClapThread(threading.Thread):
    def __init__(self, ring: RingBuffer, ranker, prompt: str, *, top_k: int, every_s: float, window_s: float,
                 margin: float, template: str, out: Mailbox[WordChoice], stop: threading.Event,
                 tokenizer=None, retry_max_s: float, restarts: int,
                 bands: Mapping[str, tuple[float, float]] | None = None, words: Sequence[str] = ()) -> None:
        """``every_s``, ``window_s``, ``margin``, ``retry_max_s``, ``restarts``: ``Config.live``'s ``clap_*`` and
        ``thread_restarts``.

        ``bands`` (``--route auto``): rank the words on each band's own sound instead and give each band
        a different word (the largest total), starting from ``words``; it switches when the new assignment
        beats the current one, scored on the same sound, by ``margin`` in total."""
        super().__init__(name="clap", daemon=False)
        self.ring = ring
        self.ranker = ranker
        self.every_s = every_s
        self.window_s = window_s
        self.template = template
        self.out = out
        self.stop_event = stop
        self.hysteresis = Hysteresis(top_k, margin)
        self._prompts: Mailbox[str] = Mailbox()
        self._wake = threading.Event()
        self.prompt = prompt
        self.latest: WordChoice | None = None  # NB: read by the HUD
        self.retry_max_s = float(retry_max_s)
        self.failures = 0  # rankings failed in a row
        self.total_failures = 0  # NB: read by the main thread (exit code)
        self.last_error: BaseException | None = None
        self.alert: str | None = None  # NB: read by the HUD while rankings fail
        self.supervisor = Supervisor("clap", stop, restarts=restarts)
        # this thread's own copy of the diffusion tokenizer (tokenizers are not shared across threads):
        # CLAP's choice is limited to words that have token positions
        self.tokenizer = copy.deepcopy(tokenizer)
        self._warned: set[str] = set()
        self.bands = dict(bands) if bands else None
        self.assigned = list(words)  # --route auto: each band's word, in the bands' order
        self.margin = float(margin)

    def set_prompt(self, prompt: str) -> None:
        """From the display thread: rank the new prompt's words as soon as possible."""
        self._prompts.put(prompt)
        self._wake.set()

    def rank_once(self) -> WordChoice | None:
        candidates = content_words(self.prompt)
        n = int(self.window_s * self.ring.samplerate)
        audio = self.ring.latest(n)
        if audio.shape[0] < MIN_AUDIO_S * self.ring.samplerate or not candidates:
            return None
        if self.bands is not None:
            return self._assign(audio.mean(axis=1), candidates)
        ranking = self.ranker.rank(audio.mean(axis=1), self.ring.samplerate, candidates, self.template)
        scores = ranking.scores
        if self.tokenizer is not None:
            scores = reachable_scores(self.tokenizer, self.prompt, scores, self.hysteresis.top_k, log=log,
                                      warned=self._warned)
            if not scores:
                return None
        words, changed = self.hysteresis.update(scores)
        if changed:
            log.info("CLAP: weighting %s (%s)", ", ".join(words), ranking.table())
        return WordChoice(self.prompt, words, ranking.scores, time.monotonic())

    def _assign(self, mono, candidates: list[str]) -> WordChoice | None:
        """``--route auto``: each band's own sound ranked, each band a different word (docs/design.md §1.6)."""
        assert self.bands is not None
        if self.tokenizer is not None:
            candidates = list(reachable_scores(self.tokenizer, self.prompt, dict.fromkeys(candidates, 0.0), 0))
        sr = self.ring.samplerate
        names = list(self.bands)[:len(self.assigned)]
        if len(candidates) < len(names):
            return None
        scores = {b: self.ranker.rank(band_audio(mono, sr, *self.bands[b]), sr, candidates, self.template).scores
                  for b in names}
        new = [w for _, w in assign_words(scores, candidates)]
        total = lambda ws: sum(scores[b].get(w, -1.0) for b, w in zip(names, ws, strict=True))  # noqa: E731
        if new != self.assigned and total(new) > total(self.assigned) + self.margin:
            log.info("CLAP, each band on its own: %s", "; ".join(f"{b} → {w} ({scores[b][w]:+.3f})"
                                                               for b, w in zip(names, new, strict=True)))
            self.assigned = new
        flat = {f"{b} → {w}": float(scores[b][w]) for b, w in zip(names, self.assigned, strict=True)}
        return WordChoice(self.prompt, list(self.assigned), flat, time.monotonic())

    @property
    def error(self) -> BaseException | None:
        """The failure that made the thread give up (after its restarts), else None."""
        return self.supervisor.error

    def _ranking_failed(self, exc: Exception) -> float:
        """Keep the words, say so, and return the back-off before the next try (doubling, capped)."""
        self.failures += 1
        self.total_failures += 1
        self.last_error = exc
        delay = min(self.retry_max_s, self.every_s * 2 ** (self.failures - 1))
        kept = ", ".join(self.hysteresis.current) if self.hysteresis.current else "the current words"
        self.alert = f"CLAP FAILED: {type(exc).__name__}: {exc} (keeping {kept}; retry in {delay:.1f} s)"
        log.error("CLAP ranking failed (%s: %s); keeping %s, trying again in %.1f s (%d failure(s) in a row)",
                  type(exc).__name__, exc, kept, delay, self.failures, exc_info=exc if self.failures == 1 else None)
        return delay

    def run(self) -> None:
        self.supervisor.run(self._run)

    def _run(self) -> None:
        next_rank = time.monotonic() + min(self.every_s, MIN_AUDIO_S + 0.1)
        while not self.stop_event.is_set():
            self._wake.wait(max(0.0, min(0.25, next_rank - time.monotonic())))
            if self.stop_event.is_set():
                break
            self._wake.clear()
            prompt = self._prompts.get(timeout=0)
            if prompt is not None and prompt != self.prompt:
                self.prompt = prompt
                self.hysteresis.reset()
                self._warned.clear()
                next_rank = time.monotonic()
            if time.monotonic() < next_rank:
                continue
            try:
                choice = self.rank_once()
            except Exception as exc:  # noqa: BLE001 - CLAP failing never stops the show
                next_rank = time.monotonic() + self._ranking_failed(exc)
                continue
            if self.failures:
                log.info("CLAP ranks again after %d failed attempt(s)", self.failures)
                self.failures, self.alert = 0, None
            next_rank = time.monotonic() + (self.every_s if choice is not None else 0.25)
            if choice is not None:
                self.latest = choice
                self.out.put(choice)
