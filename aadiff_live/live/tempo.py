"""The show's tempo (``--tempo audio|midi|link|off``): one clock every thread reads (docs/tempo.md).

:class:`LiveTempo` holds the one follower the show uses: the causal beat tracker on the input
(:class:`~aadiff_live.analysis.beat_live.AudioClock`, stepped by the analysis thread), the MIDI clock of the
``--midi`` port (:class:`~aadiff_live.analysis.clock.MidiClock`, fed by rtmidi's thread through the rig) or a
Link session (:class:`~aadiff_live.analysis.clock.LinkFollower`; the session object comes from the plug-in
``tempo.link_session``, since no Link binding installs under a licence an MIT project can depend on).

- the analysis thread calls :meth:`LiveTempo.step` every hop: the beat-locked sources' values at the hop's
  capture time, and ``on_beat`` (OSC out ``/aadiff/beat``, ``/aadiff/bpm``) when a beat passed;
- the main thread reads :meth:`reading` (the HUD, the recording's rows, when a change must start to land on
  the next beat or bar: :meth:`change_start`) and calls :meth:`check` every refresh, which logs a clock that
  is lost or comes back once, and keeps the HUD's alert while the tempo freewheels.

A clock that stops (MIDI stop, no pulse), a Link session with no peer left, or an input with no beat (silence)
never stops the show: the last tempo runs on (freewheeling), the HUD says so, and the clock is followed again
as soon as it is heard.
"""

from __future__ import annotations

import importlib
import logging
import math
import time
from collections.abc import Callable, Sequence
from typing import Any

from aadiff_live.analysis.beat_live import AudioClock, LiveBeatSources, audio_lag_s
from aadiff_live.analysis.clock import ClockReading, LinkFollower, MidiClock, change_start
from aadiff_live.config import TempoConfig
from aadiff_live.errors import UserError

log = logging.getLogger(__name__)


def load_link_session(spec: str) -> Any:
    """``module:callable`` (``tempo.link_session``) -> the Link session it returns (``tempo``, ``beat``, ``phase``,
    ``num_peers``); a one-line :class:`UserError` for anything wrong."""
    mod, sep, name = spec.partition(":")
    if not sep or not mod or not name:
        raise UserError(f"tempo.link_session {spec!r}: expected MODULE:CALLABLE, e.g. my_link:session "
                        "(docs: tempo and beat, Ableton Link)")
    try:
        factory = getattr(importlib.import_module(mod), name)
    except (ImportError, AttributeError) as exc:
        raise UserError(f"tempo.link_session {spec!r}: cannot load it ({exc}); put the module on PYTHONPATH") from None
    try:
        session = factory()
    except Exception as exc:  # noqa: BLE001 - the user's own code: one line, whatever it raised
        raise UserError(f"tempo.link_session {spec!r} failed: {type(exc).__name__}: {exc}") from None
    missing = [a for a in ("tempo", "beat", "num_peers") if not hasattr(session, a)]
    if missing:
        raise UserError(f"tempo.link_session {spec!r}: the session has no {', '.join(missing)}; it must have "
                        "Link's tempo, beat and num_peers")
    return session


class LiveTempo:
    def __init__(self, cfg: TempoConfig, *, hz: float, samplerate: int, n_fft: int, names: Sequence[str] = (),
                 midi_port: str | None = None, in_use: bool = False,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """``names``: the beat-locked sources routed; ``in_use``: the show depends on the tempo (beat-locked routes,
        ``--quantise``): a clock lost is then an alert, not only a HUD line."""
        self.cfg = cfg
        self.source = cfg.source
        self.quantum = float(cfg.quantum)
        self.clock = clock
        self.sources = LiveBeatSources(names, cfg)
        self.in_use = bool(in_use or names) or self.source in ("midi", "link")
        self.audio: AudioClock | None = None
        self.midi: MidiClock | None = None
        self.link: LinkFollower | None = None
        if self.source == "audio":
            self.audio = AudioClock(hz, audio_lag_s(samplerate, n_fft))
        elif self.source == "midi":
            if not midi_port:
                raise UserError("--tempo midi follows the MIDI clock of the --midi port; give --midi NAME "
                                "(`aadiff-live midi-ports` lists them)")
            self.midi = MidiClock()
        elif self.source == "link":
            if not cfg.link_session:
                raise UserError("--tempo link needs a Link session: set tempo.link_session to MODULE:CALLABLE in "
                                "config.yaml (docs: tempo and beat, Ableton Link)")
            self.link = LinkFollower(load_link_session(cfg.link_session), cfg.quantum)
        self.on_beat: Callable[[int, float], None] | None = None  # NB: called on the analysis thread
        self._last_beat: int | None = None  # analysis thread's
        self.lost = False  # main thread: the clock is not heard now (freewheeling), after it was heard
        self.freewheels = 0  # how many times the clock was lost during the show

    @property
    def on(self) -> bool:
        return self.source != "off"

    # ------------------------------------------------------------------ any thread
    @property
    def follower(self) -> AudioClock | MidiClock | LinkFollower | None:
        return self.audio or self.midi or self.link

    def raw(self, now: float) -> ClockReading | None:
        """The follower's own reading, a placeholder before it knows the beat (``None`` with --tempo off)."""
        f = self.follower
        return f.reading(now) if f is not None else None

    def reading(self, now: float | None = None) -> ClockReading | None:
        """The tempo and beat position at ``now``; ``None`` until the follower knows them (the tracker's first beat,
        the first MIDI pulse) and with --tempo off."""
        f = self.follower
        if f is None or not f.known:
            return None
        return f.reading(self.clock() if now is None else now)

    def change_start(self, now: float, quantise: str, lookahead_s: float, fade_s: float) -> float:
        """When a change asked for at ``now`` must start so that its cross-fade is complete on the next beat or bar
        line (``now`` itself with no tempo yet, or ``--quantise off``)."""
        r = self.reading(now)
        if r is None or quantise == "off":
            return now
        return change_start(now, r, quantise, quantum=self.quantum, lookahead_s=lookahead_s, fade_s=fade_s)

    # ------------------------------------------------------------------ analysis thread
    def step(self, strength: float, capture_time: float) -> dict[str, float]:
        """One analysis hop: the tracker (audio), a beat passed (``on_beat``), the beat-locked sources' values."""
        if self.audio is not None:
            self.audio.step(strength, capture_time)
        r = self.reading(capture_time)
        if r is not None and self.on_beat is not None:
            b = math.floor(r.beats)
            if self._last_beat is not None and b != self._last_beat:
                self.on_beat(int(b % self.quantum) + 1, r.bpm)
            self._last_beat = b
        return self.sources.values(r, capture_time)

    # ------------------------------------------------------------------ main thread
    def check(self, now: float) -> None:
        """Log the clock lost (freewheeling) or back, once each; the HUD reads :meth:`alert` meanwhile."""
        r = self.reading(now)
        lost = r is not None and not r.heard
        if lost and not self.lost and r is not None:
            self.freewheels += 1
            log.log(logging.WARNING if self.in_use else logging.INFO,
                    "tempo: %s; freewheeling at %.1f BPM until it comes back", r.detail, r.bpm)
        elif self.lost and not lost and r is not None:
            log.info("tempo: %s again, %.1f BPM", r.detail, r.bpm)
        self.lost = lost

    def alert(self, now: float) -> str | None:
        """The HUD's red line while a tempo the show depends on freewheels."""
        r = self.reading(now)
        if r is None or r.heard or not self.in_use:
            return None
        return f"TEMPO FREEWHEELING at {r.bpm:.1f} BPM: {r.detail}"

    def status(self, now: float) -> tuple[str, float, float] | None:
        """For the HUD: ``(text, beat position, quantum)``; ``None`` with --tempo off."""
        r = self.raw(now)
        if r is None or self.follower is None:
            return None
        if not self.follower.known:
            return f"tempo: {r.detail}", 0.0, self.quantum
        state = "" if r.heard else " (freewheeling)"
        return f"{r.bpm:5.1f} BPM  {r.detail}{state}", r.beats, self.quantum

    def row(self, now: float) -> dict[str, float]:
        """The recording's per-frame fields: the beat phase [0, 1) and the position in the bar [0, quantum)."""
        r = self.reading(now)
        if r is None:
            return {}
        return {"beat_phase": r.phase, "bar_position": r.bar_position(self.quantum)}

    def propose(self, bpm: float) -> str | None:
        """A tempo for the Link session (``/aadiff/tempo f``); why not, for another source."""
        if self.link is None:
            return f"a tempo is proposed to a Link session; the tempo here follows {self.source} (--tempo link)"
        self.link.propose(bpm)
        log.info("tempo: proposed %.1f BPM to the Link session", bpm)
        return None

    def settings(self) -> dict[str, Any]:
        return {"tempo": self.source, "quantum": self.cfg.quantum, "beat_decay_ms": self.cfg.beat_decay_ms,
                "quantise": self.cfg.quantise, "lookahead_ms": self.cfg.lookahead_ms}
