"""Tempo and beat phase from the sound: a causal beat tracker (live) and an offline one (render, analyse).

Both read the onset strength that :class:`~aadiff_live.analysis.sources.OnsetDetector` computes every
analysis hop (SuperFlux's spectral flux over the whole spectrum, ``detector.flux[0]``).

- :class:`BeatTracker` (causal, one value per hop): the tempo is the lag of the largest autocorrelation
  of the last :data:`WINDOW_S` seconds of onset strength (searched over :data:`MIN_BPM`-:data:`MAX_BPM`,
  weighted by a broad log-normal preference around :data:`PRIOR_BPM` and helped by the autocorrelation
  at twice the lag, so that a straight eighth-note hi-hat does not double the tempo); the beat phase
  is the offset of the comb of that period which collects the most onset strength (recent beats count
  most), and a phase-locked loop pulls the predicted beat towards it by :data:`PLL_GAIN` per update.
  A beat is emitted when the prediction is passed; its time is the prediction (not the hop that
  noticed it). When the input falls silent or the pulse goes away the tracker keeps its last tempo
  freewheeling, with its ``confidence`` falling to 0, and locks again when the beat comes back.
- :func:`offline_beats` (whole file): the tempo per moment from the same autocorrelation over a window
  centred on it, then dynamic programming (Ellis, 2007) places the beats where the onset strength is
  high and the spacing follows that tempo; no warm-up, and a tempo change is followed on both sides.

No maintained beat tracker installs from wheels on every platform under a licence that allows an MIT
project (madmom and BeatNet need building, aubio is GPL, essentia AGPL; librosa's ``beat_track`` is
offline only), so this module is small and written here; ``tools/bench_beats.py`` measures both
trackers against known beats and beside librosa's ``beat_track``.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

WINDOW_S = 6.0  # the tempo is the autocorrelation of this much onset strength
UPDATE_S = 0.1  # how often tempo and phase are re-estimated
MIN_BPM, MAX_BPM = 60.0, 200.0
PRIOR_BPM, PRIOR_OCTAVES = 120.0, 1.0  # a broad preference (log-normal, this wide in octaves) for tempi near 120
PLL_GAIN = 0.25  # each update moves the predicted beat this share of the way to the measured phase
TEMPO_GAIN = 0.3  # each update moves the period this share of the way to a nearby new estimate
SWITCH_UPDATES = 5  # a tempo more than TEMPO_JUMP away must win this many updates in a row to be taken
TEMPO_JUMP = 0.06
SILENT_FLUX = 1e-3  # below this mean onset strength over the last SILENT_S the input is silent (log units)
SILENT_S = 1.5
MIN_CONFIDENCE = 0.2  # below this autocorrelation there is no pulse: freewheel, change nothing


def _smooth(x: np.ndarray) -> np.ndarray:
    """A short (5-hop) Hann smoothing: a beat a hop early or late still lands on the comb."""
    k = np.hanning(7)[1:-1]
    return np.convolve(x, k / k.sum(), mode="same")


def _autocorr(x: np.ndarray) -> np.ndarray:
    x = x - x.mean()
    n = 1 << int(math.ceil(math.log2(2 * x.size)))
    f = np.fft.rfft(x, n)
    ac = np.fft.irfft(f * np.conj(f), n)[:x.size]
    return ac / ac[0] if ac[0] > 0 else np.zeros(x.size)


def tempo_of(strength: np.ndarray, hz: float) -> tuple[float, float]:
    """``(period in hops, confidence in [0, 1])`` of an onset strength excerpt: the best-weighted
    autocorrelation lag (fractional, parabolic), and its normalised autocorrelation."""
    x = np.asarray(strength, dtype=np.float64)
    ac = _autocorr(_smooth(x))
    lo = max(2, int(math.floor(hz * 60.0 / MAX_BPM)))
    hi = min(x.size // 2 - 1, int(math.ceil(hz * 60.0 / MIN_BPM)))
    if hi <= lo + 2:
        return hz * 60.0 / PRIOR_BPM, 0.0
    lags = np.arange(lo, hi + 1)
    double = np.minimum(2 * lags, ac.size - 1)
    score = np.maximum(ac[lags], 0.0) + 0.5 * np.maximum(ac[double], 0.0)
    bpm = hz * 60.0 / lags
    score = score * np.exp(-0.5 * (np.log2(bpm / PRIOR_BPM) / PRIOR_OCTAVES) ** 2)
    k = int(np.argmax(score))
    lag = float(lags[k])
    if 0 < k < lags.size - 1:  # parabolic interpolation on the raw autocorrelation
        a, b, c = ac[lags[k] - 1], ac[lags[k]], ac[lags[k] + 1]
        den = a - 2 * b + c
        if den < 0:
            lag += float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))
    return lag, float(np.clip(ac[lags[k]], 0.0, 1.0))


def comb_phase(strength: np.ndarray, period: float) -> tuple[float, float]:
    """``(hops since the last beat, score)``: the offset of the comb of ``period`` hops, ending at the newest
    hop, that collects the most onset strength; newer teeth weigh more (half weight after 4 beats)."""
    x = _smooth(np.asarray(strength, dtype=np.float64))
    n = x.size
    n_teeth = int((n - 1) // period)
    if n_teeth < 1:
        return 0.0, 0.0
    offsets = np.arange(int(math.ceil(period)))
    teeth = np.arange(n_teeth)
    pos = (n - 1) - offsets[:, None] - teeth[None, :] * period  # [offset, tooth] positions in the buffer
    i0 = np.floor(pos).astype(np.int64)
    frac = pos - i0
    ok = i0 >= 0
    i0c = np.clip(i0, 0, n - 1)
    i1c = np.clip(i0 + 1, 0, n - 1)
    val = np.where(ok, x[i0c] * (1 - frac) + x[i1c] * frac, 0.0)
    w = 0.5 ** (teeth / 4.0)
    score = val @ w
    k = int(np.argmax(score))
    off = float(offsets[k])
    if 0 < k < offsets.size - 1:
        a, b, c = score[k - 1], score[k], score[k + 1]
        den = a - 2 * b + c
        if den < 0:
            off += float(np.clip(0.5 * (a - c) / den, -0.5, 0.5))
    return off, float(score[k] / (w.sum() * max(x.mean(), 1e-12)))


@dataclass(frozen=True)
class TempoState:
    """The tracker's view after a hop (NB: handed to other threads whole)."""

    bpm: float
    phase: float  # beat phase in [0, 1): 0 on the beat
    beat: int  # beats emitted so far
    confidence: float  # 0 (freewheeling: silence or no pulse) .. 1 (a clear, steady pulse)
    locked: bool  # False while warming up or freewheeling


class BeatTracker:
    """Causal: ``step(strength)`` once per analysis hop at ``hz``; returns ``True`` on a hop where a beat fell.

    ``t0`` is the time (s) of hop 0 in the audio (the onset detector's time of its first frame); beat
    times (``beats``) and ``phase_at`` are in that clock. Not thread-safe: the analysis thread owns it.
    """

    def __init__(self, hz: float, *, t0: float = 0.0, warmup_s: float = 2.0) -> None:
        self.hz = float(hz)
        self.t0 = float(t0)
        self._buf: deque[float] = deque(maxlen=int(round(WINDOW_S * hz)))
        self._update = max(1, int(round(UPDATE_S * hz)))
        self._warm = int(round(warmup_s * hz))
        self._n = 0  # hops seen
        self.period = hz * 60.0 / PRIOR_BPM  # hops per beat
        self._next: float | None = None  # hop index (fractional) of the next predicted beat
        self._candidate: tuple[float, int] | None = None  # a far-away tempo and how many updates it has won
        self.confidence = 0.0
        self.beat_count = 0
        self.beats: list[float] = []  # emitted beat times (s)

    @property
    def bpm(self) -> float:
        return self.hz * 60.0 / self.period

    @property
    def locked(self) -> bool:
        return self._next is not None and self.confidence > 0.0

    def _time(self, hop: float) -> float:
        return self.t0 + hop / self.hz

    def _estimate(self) -> None:
        x = np.fromiter(self._buf, dtype=np.float64, count=len(self._buf))
        if x[-int(SILENT_S * self.hz):].mean() < SILENT_FLUX:
            self.confidence = 0.0  # silence: freewheel at the last tempo
            return
        period, conf = tempo_of(x, self.hz)
        if conf < MIN_CONFIDENCE:
            self.confidence = 0.0  # no pulse (noise, a pad): freewheel too
            return
        if self._next is None:
            self.period = period
        elif abs(period / self.period - 1.0) <= TEMPO_JUMP:
            self.period += TEMPO_GAIN * (period - self.period)
            self._candidate = None
        else:
            c = self._candidate
            wins = c[1] + 1 if c is not None and abs(period / c[0] - 1.0) <= TEMPO_JUMP else 1
            self._candidate = (period, wins)
            if wins >= SWITCH_UPDATES:
                self.period, self._candidate = period, None
        off, _ = comb_phase(x, self.period)
        now = self._n - 1
        measured = now - off + self.period  # the next beat the comb predicts
        if self._next is None:
            self._next = measured
            while self._next <= now:
                self._next += self.period
        else:
            err = (measured - self._next + self.period / 2) % self.period - self.period / 2
            self._next += PLL_GAIN * err
        self.confidence = conf

    def step(self, strength: float) -> bool:
        self._buf.append(float(strength))
        self._n += 1
        if self._n >= self._warm and self._n % self._update == 0:
            self._estimate()
        now = self._n - 1
        if self._next is None or now < self._next:
            return False
        self.beats.append(self._time(self._next))
        self.beat_count += 1
        self._next += self.period
        while self._next <= now:  # a long stall: never emit a burst of late beats
            self._next += self.period
        return True

    def phase_at(self, t: float) -> float:
        """The beat phase in [0, 1) at time ``t`` (s, the tracker's clock), extrapolated at the current tempo."""
        if self._next is None:
            return 0.0
        hops = (t - self.t0) * self.hz
        return float(((hops - self._next) / self.period) % 1.0)

    def position_at(self, t: float) -> float:
        """The beat position at time ``t`` (s, the tracker's clock): ``floor`` counts the beats emitted (the first
        emitted beat is beat 0), the fraction is the phase; extrapolated at the current tempo. Continuous across
        an emitted beat; a phase correction moves it by a fraction of a beat."""
        if self._next is None:
            return 0.0
        hops = (t - self.t0) * self.hz
        return float(self.beat_count - 1 + (hops - self._next + self.period) / self.period)

    def state(self) -> TempoState:
        return TempoState(self.bpm, self.phase_at(self._time(self._n - 1)), self.beat_count, self.confidence,
                          self.locked)


def track(strength: Iterable[float], hz: float, t0: float = 0.0) -> BeatTracker:
    """The causal tracker run over a whole onset-strength sequence (for tests, benchmarks and ``analyse``)."""
    tr = BeatTracker(hz, t0=t0)
    for s in strength:
        tr.step(s)
    return tr


def local_periods(strength: np.ndarray, hz: float, window_s: float = WINDOW_S, step_s: float = 0.5) -> np.ndarray:
    """The beat period (hops) at every hop, from the autocorrelation of a window centred on it (offline)."""
    x = np.asarray(strength, dtype=np.float64)
    n = x.size
    half = int(round(window_s * hz / 2))
    step = max(1, int(round(step_s * hz)))
    centres = np.arange(0, n, step)
    periods = np.array([tempo_of(x[max(0, c - half):min(n, c + half)], hz)[0] if n > 4 * hz * 60 / MIN_BPM
                        else hz * 60.0 / PRIOR_BPM for c in centres])
    # a median over 3 windows: one window on a fill does not change the tempo
    if periods.size >= 3:
        periods = np.concatenate([[periods[0]], np.median(np.stack([periods[:-2], periods[1:-1], periods[2:]]), axis=0),
                                  [periods[-1]]])
    return np.interp(np.arange(n), centres, periods)


def offline_beats(strength: np.ndarray, hz: float, t0: float = 0.0, tightness: float = 100.0) -> tuple[np.ndarray, float]:
    """``(beat times in s, median tempo in BPM)`` of a whole onset-strength sequence: dynamic programming
    over the hops, each beat's score its onset strength plus the best earlier beat's score less
    ``tightness * log(gap / period)^2`` (Ellis, 2007), with the period of :func:`local_periods`."""
    x = np.asarray(strength, dtype=np.float64)
    n = x.size
    if n == 0 or x.max() <= 0:
        return np.zeros(0), PRIOR_BPM
    period = local_periods(x, hz)
    o = _smooth(x)
    o = o / (o.std() + 1e-12)
    score = o.copy()
    back = np.full(n, -1, dtype=np.int64)
    for t in range(n):
        p = period[t]
        lo, hi = int(t - 2 * p), int(t - p / 2)
        if hi < 0:
            continue
        prev = np.arange(max(0, lo), hi + 1)
        cand = score[prev] - tightness * np.log((t - prev) / p) ** 2
        k = int(np.argmax(cand))
        score[t] = o[t] + cand[k]
        back[t] = prev[k]
    # the last beat: the best score within the last period; then follow the chain back
    tail = max(0, n - int(period[-1]) - 1)
    t = tail + int(np.argmax(score[tail:]))
    path = []
    while t >= 0:
        path.append(t)
        t = int(back[t])
    hops = np.array(path[::-1], dtype=np.float64)
    # drop leading beats on weak onsets before the music starts
    strong = o[hops.astype(np.int64)] > 0.1 * np.median(o[hops.astype(np.int64)])
    if strong.any():
        hops = hops[int(np.argmax(strong)):]
    bpm = float(hz * 60.0 / np.median(np.diff(hops))) if hops.size > 1 else float(hz * 60.0 / np.median(period))
    return t0 + hops / hz, bpm


def beat_position(t: np.ndarray, beats: np.ndarray) -> np.ndarray:
    """The beat position (beat ``k`` at ``beats[k]``, linear between beats, extrapolated at the first and last
    beat's spacing) at times ``t``."""
    t = np.asarray(t, dtype=np.float64)
    b = np.asarray(beats, dtype=np.float64)
    if b.size < 2:
        return np.zeros(t.size)
    pos = np.interp(t, b, np.arange(b.size, dtype=np.float64))
    first, last = b[1] - b[0], b[-1] - b[-2]
    pos = np.where(t < b[0], (t - b[0]) / first, pos)
    return np.where(t > b[-1], b.size - 1 + (t - b[-1]) / last, pos)


def downbeat_offset(beat_strength: np.ndarray, quantum: int) -> int:
    """Which beat of the first ``quantum`` starts the bar: the one whose class (every ``quantum``-th beat) has
    the strongest low-band onsets (the kick); a guess from the sound (a clock knows its bar)."""
    s = np.asarray(beat_strength, dtype=np.float64)
    if s.size < quantum:
        return 0
    means = np.array([np.median(s[k::quantum]) for k in range(quantum)])  # median: the first hops have no flux
    return int(np.flatnonzero(means >= 0.95 * means.max())[0])  # near-ties (a kick on 1 and 3): the earliest


LFO_SHAPES = ("sine", "saw", "square", "triangle")


def lfo_shape(shape: str, p: np.ndarray) -> np.ndarray:
    """The LFO in [0, 1] at phase ``p`` in [0, 1): 0 at the bar line for sine, saw and triangle (sine: a
    raised cosine), square: 1 in the first half of the period."""
    p = np.mod(np.asarray(p, dtype=np.float64), 1.0)
    if shape == "sine":
        return 0.5 - 0.5 * np.cos(2 * np.pi * p)
    if shape == "saw":
        return p
    if shape == "square":
        return (p < 0.5).astype(np.float64)
    if shape == "triangle":
        return 1.0 - np.abs(2.0 * p - 1.0)
    raise ValueError(shape)
