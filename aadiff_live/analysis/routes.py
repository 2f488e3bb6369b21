"""Routes: one prompt word driven by one sound source, each with its own weight (docs/design.md §1.6).

A route maps a source's value ``e`` in [0, 1] (the loudness, a band, an onset flash, a stem) to its
word's weight ``w = w_min + (w_max - w_min) * gain * e``, with its own range and gain (the
envelope's when not given) and, when asked, its own attack/release. With no route the product is
what it always was: CLAP's word(s) follow the loudness envelope.

:func:`resolve_routes` checks the routes against the prompt and the known sources before any model
loads (each mistake a one-line :class:`UserError`); the token positions of each word come later,
from the diffusion tokenizer (:func:`aadiff_live.tokens.words.route_groups`).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from aadiff_live.analysis.envelope import to_weight
from aadiff_live.config import MAX_ROUTES, EnvelopeConfig, RouteConfig
from aadiff_live.errors import UserError
from aadiff_live.tokens.words import normalise_word, split_words


@dataclass(frozen=True)
class Route:
    source: str
    word: str  # the word's normal form (lower case)
    w_min: float
    w_max: float
    gain: float
    attack_ms: float | None = None  # set: the source follows attack/release with these times on this route
    release_ms: float | None = None

    @property
    def label(self) -> str:
        return f"{self.source} → {self.word}"

    def weight(self, e: np.ndarray | float) -> np.ndarray:
        return to_weight(e, self.w_min, self.w_max, self.gain)


def _spec(r: RouteConfig) -> str:
    return f"--route {r.source}={r.word}"


def resolve_routes(routes: Sequence[RouteConfig], env: EnvelopeConfig, prompt: str, known: Sequence[str], *,
                   pinned: Sequence[str] | None = None, live: bool = False) -> list[Route]:
    """The routes checked and completed from the envelope's settings; one-line errors for: more routes than an
    atlas can vary, an unknown source, a word that is not one word of the prompt, one word on two routes,
    routes beside pinned words (``--tokens``), one source smoothed two ways."""
    if len(routes) > MAX_ROUTES:
        raise UserError(f"--route: {len(routes)} routes, but a frame atlas varies at most {MAX_ROUTES} words at once; "
                        f"drop {len(routes) - MAX_ROUTES} of them")
    if routes and pinned:
        raise UserError("--tokens and --route both choose the weighted words; route the word instead "
                        "(e.g. --route loudness=WORD)")
    in_prompt = {w.norm for w in split_words(prompt)}
    out: list[Route] = []
    seen: dict[str, str] = {}
    smoothing: dict[str, tuple[float | None, float | None]] = {}
    for r in routes:
        if r.source not in known:
            where = "live" if live else "known"
            raise UserError(f"{_spec(r)}: unknown source '{r.source}'; {where} sources: {', '.join(known)}")
        word = normalise_word(r.word)
        if not word:
            raise UserError(f"{_spec(r)}: '{r.word}' is not one word; route one word of the prompt")
        if word not in in_prompt:
            raise UserError(f"{_spec(r)}: '{word}' is not a word of the prompt \"{prompt}\"; route a word that "
                            f"appears in it")
        if word in seen:
            raise UserError(f"--route: '{word}' is on two routes ({seen[word]} and {r.source}); give each word one "
                            f"source")
        seen[word] = r.source
        times = (r.attack_ms, r.release_ms)
        if r.source in smoothing and smoothing[r.source] != times:
            raise UserError(f"routes: source '{r.source}' has two different attack/release settings; give its "
                            f"routes the same ones")
        smoothing[r.source] = times
        out.append(Route(r.source, word, env.w_min if r.w_min is None else float(r.w_min),
                         env.w_max if r.w_max is None else float(r.w_max), env.gain if r.gain is None else float(r.gain),
                         r.attack_ms, r.release_ms))
    return out


def route_weights(values: Mapping[str, np.ndarray], routes: Sequence[Route]) -> np.ndarray:
    """``[frames, k]``: each route's weight per frame from its source's values in [0, 1]."""
    return np.stack([np.asarray(r.weight(values[r.source]), dtype=np.float64) for r in routes], axis=1)


class LiveRoutes:
    """Live: the routes' weights from each hop's source values, and their gain and range changed while the
    show runs (OSC ``/aadiff/route/<word>/gain``, ``.../range``).

    Thread-safe: the control thread replaces a route whole, the analysis thread reads the tuple of routes.
    """

    def __init__(self, routes: Sequence[Route]) -> None:
        self._routes = tuple(routes)  # NB: replaced (never mutated) by the control thread, read by the analysis
        self._lock = threading.Lock()

    @property
    def routes(self) -> tuple[Route, ...]:
        return self._routes

    @property
    def words(self) -> list[str]:
        return [r.word for r in self._routes]

    def weights(self, values: Mapping[str, float]) -> tuple[float, ...]:
        return tuple(float(r.weight(values.get(r.source, 0.0))) for r in self._routes)

    def ranges(self) -> list[tuple[float, float]]:
        return [(r.w_min, r.w_max) for r in self._routes]

    def _set(self, word: str, change: Callable[[Route], Route]) -> Route:
        with self._lock:
            routes = list(self._routes)
            for i, r in enumerate(routes):
                if r.word == word:
                    routes[i] = change(r)
                    self._routes = tuple(routes)
                    return routes[i]
        raise KeyError(word)

    def set_gain(self, word: str, gain: float) -> Route:
        """``KeyError`` for a word on no route."""
        return self._set(word, lambda r: replace(r, gain=max(0.0, float(gain))))

    def set_words(self, words: Sequence[str]) -> None:
        """``--route auto`` live: CLAP's new word for each route (in order), the sources and settings kept."""
        with self._lock:
            self._routes = tuple(replace(r, word=w) for r, w in zip(self._routes, words, strict=True))

    def set_range(self, word: str, w_min: float, w_max: float) -> Route:
        return self._set(word, lambda r: replace(r, w_min=float(w_min), w_max=float(w_max)))


def band_audio(mono: np.ndarray, samplerate: int, lo: float, hi: float) -> np.ndarray:
    """The part of ``mono`` between ``lo`` and ``hi`` Hz: a 4th-order Butterworth band-pass run forwards and
    backwards (no phase shift), a low-pass from 0 Hz, a high-pass up to the Nyquist frequency."""
    from scipy.signal import butter, sosfiltfilt

    x = np.asarray(mono, dtype=np.float64)
    nyq = samplerate / 2.0
    lo_ok, hi_ok = lo > 0.0, hi < 0.98 * nyq
    if x.size < 64 or not (lo_ok or hi_ok):
        return x.astype(np.float32)
    if lo_ok and hi_ok:
        sos = butter(4, [lo, hi], btype="bandpass", fs=samplerate, output="sos")
    elif lo_ok:
        sos = butter(4, min(lo, 0.98 * nyq), btype="highpass", fs=samplerate, output="sos")
    else:
        sos = butter(4, hi, btype="lowpass", fs=samplerate, output="sos")
    return sosfiltfilt(sos, x).astype(np.float32)


@dataclass(frozen=True)
class AutoRoutes:
    """``--route auto``: the routes CLAP chose and every source's scores (source -> word -> similarity)."""

    routes: list[Route]
    scores: dict[str, dict[str, float]]

    def table(self) -> str:
        return "; ".join(f"{r.label} ({self.scores[r.source][r.word]:+.3f})" for r in self.routes)


def assign_words(scores: Mapping[str, Mapping[str, float]], words: Sequence[str]) -> list[tuple[str, str]]:
    """``(source, word)`` pairs, each source (in order) a different word, the largest sum of ``scores``."""
    from scipy.optimize import linear_sum_assignment

    names = list(scores)
    m = np.array([[scores[n][w] for w in words] for n in names])
    rows, cols = linear_sum_assignment(-m)
    return [(names[r], words[c]) for r, c in sorted(zip(rows, cols, strict=True))]


def auto_routes(ranker, audio: Mapping[str, np.ndarray], samplerate: int, words: Sequence[str], env: EnvelopeConfig,
                template: str) -> AutoRoutes:
    """Each source's own audio (``audio``: source name -> mono signal, a band's filtered signal or a stem)
    ranked by CLAP against ``words``, and one word given to each source so that the sum of the similarities is
    the largest (no word on two routes; at most :data:`MAX_ROUTES` sources, as many as there are words)."""
    names = list(audio)[:MAX_ROUTES]
    words = list(words)
    if not words:
        raise UserError("--route auto: the prompt has no content word to route; add nouns such as 'thunder'")
    scores = {n: ranker.rank(audio[n], samplerate, words, template).scores for n in names}
    routes = [Route(n, w, env.w_min, env.w_max, env.gain) for n, w in assign_words(scores, words)]
    return AutoRoutes(routes, scores)


def route_smoothing(env: EnvelopeConfig, routes: Sequence[Route]) -> dict:
    """Per source: the attack/release smoothing its routes ask for (sources without: the envelope's own)."""
    from aadiff_live.analysis.sources import Smoothing

    return {r.source: replace(Smoothing.of(env, r.attack_ms, r.release_ms), mode="attack-release")
            for r in routes if r.attack_ms is not None or r.release_ms is not None}
