"""The beat live: the causal tracker as a clock, and the beat-locked sources from any clock's reading.

- :class:`AudioClock`: :class:`~aadiff_live.analysis.tempo.BeatTracker` stepped once per analysis hop with the
  onset strength, answering ``reading(now)`` like the booth's clocks (:mod:`aadiff_live.analysis.clock`) do, on
  the monotonic clock of the capture times. The bar counts from the first beat the tracker emitted (the sound
  says where the beat is, not where the bar starts: a clock knows its bar).
- :class:`LiveBeatSources`: ``beat``, ``bar`` and ``lfo:SHAPE:BEATS`` at a time from a
  :class:`~aadiff_live.analysis.clock.ClockReading`: the newest beat and bar line are read off the beat position
  (``t - phase * seconds per beat``), and the values come from the same
  :func:`~aadiff_live.analysis.sources.beat_locked_values` a render uses, so the same beat times give the same
  values live and in a render.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from aadiff_live.analysis.clock import ClockReading
from aadiff_live.analysis.sources import ONSET_SHIFT_MS, beat_locked_values
from aadiff_live.analysis.tempo import BeatTracker
from aadiff_live.config import TempoConfig


def audio_lag_s(samplerate: int, n_fft: int) -> float:
    """How long after an onset's time (:func:`~aadiff_live.analysis.sources.onset_time`) the analysis hop that
    sees it ends: half the STFT window less the onset shift."""
    return n_fft / 2 / samplerate - ONSET_SHIFT_MS / 1000.0


class AudioClock:
    """``step`` from the analysis thread (it owns the tracker); ``reading`` from any thread."""

    def __init__(self, hz: float, lag_s: float) -> None:
        self.tracker = BeatTracker(hz)
        self.lag_s = float(lag_s)
        self._hops = 0
        # NB: (capture time, beat position there, bpm, confidence), replaced whole by the analysis thread
        self._anchor: tuple[float, float, float, float] | None = None

    def step(self, strength: float, capture_time: float) -> None:
        """One hop's onset strength; ``capture_time``: when the hop's last sample was captured (monotonic s)."""
        tr = self.tracker
        tr.step(strength)
        self._hops += 1
        if tr.beat_count == 0:  # warming up: no beat yet
            return
        at = (self._hops - 1) / tr.hz + self.lag_s  # the hop's end, on the tracker's clock
        self._anchor = (float(capture_time), tr.position_at(at), tr.bpm, tr.confidence)

    @property
    def known(self) -> bool:
        """The tracker has emitted a beat (before, the reading is a placeholder)."""
        return self._anchor is not None

    def reading(self, now: float) -> ClockReading:
        a = self._anchor
        if a is None:
            return ClockReading(self.tracker.bpm, 0.0, False, "audio: listening")
        t, pos, bpm, conf = a
        heard = conf > 0.0
        return ClockReading(bpm, pos + (now - t) * bpm / 60.0, heard,
                            f"audio {conf:.2f}" if heard else "audio: no beat in the sound")


class LiveBeatSources:
    """The beat-locked sources ``names`` at a time, from a clock's reading (``None``: no tempo yet, all 0)."""

    def __init__(self, names: Sequence[str], tempo: TempoConfig) -> None:
        self.names = list(names)
        self.tempo = tempo
        self.quantum = float(tempo.quantum)

    def values(self, reading: ClockReading | None, t: float) -> dict[str, float]:
        if not self.names:
            return {}
        if reading is None or reading.beats < 0.0 or reading.bpm <= 0.0:
            return dict.fromkeys(self.names, 0.0)
        spb = 60.0 / reading.bpm
        p = reading.beats
        at = np.array([t])
        beat = np.array([t - (p % 1.0) * spb])
        bar = np.array([t - (p % self.quantum) * spb])
        got = beat_locked_values(self.names, at, beat, bar, np.array([p]), self.tempo)
        return {k: float(v[0]) for k, v in got.items()}
