"""Tempo and beat from the booth's clock: MIDI clock (24 pulses per quarter note) and Ableton Link.

Both followers answer ``reading(now)`` with a :class:`ClockReading`: the tempo, the beat position (a
float: ``floor`` is the beat count, the fraction the phase) and whether the clock is being heard or
freewheeling at its last tempo (a stopped or silent MIDI clock, a Link session with no peer left).

- :class:`MidiClock` is fed mido messages (``clock``, ``start``, ``stop``, ``continue``) with their
  arrival times; it holds no port (the MIDI thread of the rig owns the port and hands messages over).
  The tempo is the slope of the last :data:`FIT_PULSES` pulses' times (a least-squares line: one late
  pulse moves it little). ``start`` puts the next pulse on beat 0; ``stop`` freezes the song position
  and ``continue`` resumes from it, so the phase is kept across a pause; while the clock is stopped or
  no pulse came for :data:`CLOCK_TIMEOUT_S`, the beat runs on at the last tempo (freewheeling).
- :class:`LinkFollower` reads a Link session object (``tempo``, ``beat``, ``phase``, ``num_peers``: the
  interface of the ``aalink`` package's ``Link``) and can propose a tempo to the session. ``aalink``
  is GPLv3+, so it is not a dependency of aadiff-live; the follower takes any object with that
  interface (the tests use a fake one).
- :func:`change_start`: when to start a scene or prompt change so that its cross-fade is complete on the
  next beat or bar line (``off|beat|bar``), a lookahead earlier for the display's delay (not yet wired to
  the live show).
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

PPQN = 24  # MIDI clock: pulses per quarter note
FIT_PULSES = 48  # the tempo is fitted over this many pulses (two beats)
CLOCK_TIMEOUT_S = 0.5  # no pulse for this long: the clock counts as stopped (freewheeling)


@dataclass(frozen=True)
class ClockReading:
    bpm: float
    beats: float  # beat position: floor = beats since start, fraction = phase (0 on the beat)
    heard: bool  # False: freewheeling at the last tempo (clock stopped or gone, no Link peer)
    detail: str  # for the HUD: "midi", "midi stopped", "link 2 peers", ...

    @property
    def phase(self) -> float:
        return float(self.beats % 1.0)

    def bar_position(self, quantum: float = 4.0) -> float:
        """The position in the bar in beats, ``[0, quantum)``."""
        return float(self.beats % quantum)


class MidiClock:
    """A MIDI clock follower. ``feed(msg, t)`` from the MIDI thread, ``reading(now)`` from any other thread."""

    def __init__(self, default_bpm: float = 120.0) -> None:
        self._lock = threading.Lock()
        self._times: deque[tuple[int, float]] = deque(maxlen=FIT_PULSES)  # (pulse, arrival time) while running
        self._pulse = -1  # song position in pulses of the newest pulse (-1: the next pulse is pulse 0)
        self._last_t: float | None = None  # arrival time of the newest pulse
        self._running = False
        self.bpm = float(default_bpm)

    def feed(self, msg: Any, t: float) -> bool:
        """Take one message that arrived at ``t`` (s); ``True`` when it was a clock pulse that starts a beat."""
        kind = getattr(msg, "type", None)
        with self._lock:
            if kind == "start":
                self._running, self._pulse = True, -1
                self._times.clear()
            elif kind == "continue":
                self._running = True
                self._times.clear()  # the pause is not part of the tempo
            elif kind == "stop":
                self._running = False
            elif kind == "clock":
                if not self._running:  # a clock without start (some devices send pulses always): follow the tempo
                    self._running = True
                self._pulse += 1
                self._last_t = float(t)
                self._times.append((self._pulse, float(t)))
                if len(self._times) >= 3:
                    p = np.array([q for q, _ in self._times], dtype=np.float64)
                    ts = np.array([s for _, s in self._times], dtype=np.float64)
                    slope = float(np.polyfit(p, ts, 1)[0])
                    if slope > 0:
                        self.bpm = 60.0 / (slope * PPQN)
                return self._pulse % PPQN == 0
        return False

    @property
    def known(self) -> bool:
        """A pulse has come: the tempo and beat are the clock's (before, the reading is a placeholder)."""
        return self._last_t is not None

    def reading(self, now: float) -> ClockReading:
        with self._lock:
            base = max(self._pulse, 0) / PPQN
            if self._last_t is None:
                return ClockReading(self.bpm, 0.0, False, "midi: no clock yet")
            late = now - self._last_t
            heard = self._running and late <= CLOCK_TIMEOUT_S
            if not self._running:
                # stopped: the song position holds (continue resumes from it); the beat freewheels from it
                return ClockReading(self.bpm, base + max(0.0, late) * self.bpm / 60.0, False, "midi stopped")
            beats = base + max(0.0, min(late, 1.0 / PPQN * 60.0 / self.bpm) if heard else late) * self.bpm / 60.0
            return ClockReading(self.bpm, beats, heard, "midi" if heard else "midi clock lost")


class LinkSession(Protocol):
    """What the follower needs of a Link session (``aalink.Link`` has these)."""

    tempo: float

    @property
    def beat(self) -> float: ...

    @property
    def phase(self) -> float: ...

    @property
    def num_peers(self) -> int: ...


class LinkFollower:
    """Follows a Link session's tempo and beat; ``propose(bpm)`` sets the session's tempo for every peer."""

    def __init__(self, session: LinkSession, quantum: float = 4.0) -> None:
        self.session = session
        self.quantum = float(quantum)

    known = True  # a Link session always has a tempo and a beat (alone: its own)

    def reading(self, now: float | None = None) -> ClockReading:
        peers = int(self.session.num_peers)
        detail = f"link {peers} peer{'s' if peers != 1 else ''}" if peers else "link: no peer (freewheeling)"
        return ClockReading(float(self.session.tempo), float(self.session.beat), peers > 0, detail)

    def propose(self, bpm: float) -> None:
        self.session.tempo = float(bpm)


class TapTempo:
    """Tap tempo (the T key): ``tap(t)`` -> the tempo of the taps so far (the median interval), from the third tap
    on; a pause longer than :data:`TAP_RESET_S` starts over."""

    def __init__(self) -> None:
        self._taps: deque[float] = deque(maxlen=8)

    def tap(self, t: float) -> float | None:
        if self._taps and t - self._taps[-1] > TAP_RESET_S:
            self._taps.clear()
        self._taps.append(float(t))
        if len(self._taps) < 3:
            return None
        gap = float(np.median(np.diff(np.array(self._taps))))
        return 60.0 / gap if gap > 0 else None


TAP_RESET_S = 2.0
QUANTISE = ("off", "beat", "bar")


def change_start(now: float, reading: ClockReading, quantise: str, *, quantum: float = 4.0,
                 lookahead_s: float = 0.0, fade_s: float = 0.0) -> float:
    """When (s, the clock of ``now``) to start a change asked for at ``now`` so that it lands on the next beat
    or bar line (``quantise``): its cross-fade (``fade_s``) complete on the line, and shown ``lookahead_s``
    early for a display's delay. ``off``: at once. A line too close to make it: the one after."""
    if quantise == "off":
        return now
    if quantise not in QUANTISE:
        raise ValueError(quantise)
    unit = 1.0 if quantise == "beat" else float(quantum)
    spb = 60.0 / reading.bpm  # seconds per beat
    ahead = fade_s + lookahead_s
    pos = reading.beats
    target = (pos // unit + 1) * unit  # the next line, in beats
    while (target - pos) * spb < ahead:
        target += unit
    return now + (target - pos) * spb - ahead
