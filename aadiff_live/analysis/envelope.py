"""Loudness envelope (docs/design.md §1): STFT magnitude per video frame, smoothing, normalisation, weight.

One code path for offline renders and live capture: :class:`FrameSTFT` is streaming (push any
block size, get the frames that became complete), and the offline :func:`analyse` pushes the
whole clip through the same object. Frame ``i`` covers the time ``[i/fps, (i+1)/fps)``; its STFT
window of ``n_fft`` samples ends at the end of that interval, so it only sees audio up to the
frame's end (causal, usable live). The hop is ``samplerate/fps`` samples, fractional hops
included (frame ends are rounded per frame, so they never drift).

Units: the raw envelope is the mean STFT magnitude over frequency divided by
``sqrt(sum(window**2))``, so white noise of standard deviation s reads about 0.89*s whatever
``n_fft`` is. Each frame also gets the RMS level of its window in dBFS (used for the gate).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np
from scipy.signal import get_window

from aadiff_live.config import EnvelopeConfig


class FrameSTFT:
    """Streaming STFT with one frame per video frame. Not thread-safe: one analysis thread owns it."""

    def __init__(self, samplerate: int, fps: float, n_fft: int = 2048, *, fit: bool = True) -> None:
        if samplerate <= 0 or fps <= 0:
            raise ValueError("samplerate and fps must be positive")
        self.samplerate = int(samplerate)
        self.fps = float(fps)
        # At low sample rates keep the window about 46 ms long, never longer than 4 frames (``fit``; live
        # analysis passes the video rate's window and a shorter hop, so the envelope does not change with the hop).
        self.n_fft = int(min(n_fft, max(64, 2 ** int(np.ceil(np.log2(4 * samplerate / fps)))))) if fit else int(n_fft)
        self.window = get_window("hann", self.n_fft).astype(np.float64)
        self._norm = float(np.sqrt(np.sum(self.window**2)))
        self._buf = np.zeros(self.n_fft, dtype=np.float64)  # the last n_fft samples (zeros before t=0)
        self._received = 0  # samples pushed so far
        self._next = 0  # index of the next frame to emit

    def frame_end(self, i: int | np.ndarray) -> np.ndarray:
        return np.round((np.asarray(i) + 1) * self.samplerate / self.fps).astype(np.int64)

    def push(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Feed mono samples; return (magnitude, rms_db) of every frame completed by them."""
        _, mag, rms_db = self.push_spectra(block)
        return mag, rms_db

    def push_spectra(self, block: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """As :meth:`push`, and first the frames' magnitude spectra ``|rfft|`` (``[frames, n_fft // 2 + 1]``,
        not divided by the window's norm): what the other sources (:mod:`aadiff_live.analysis.sources`) read."""
        block = np.asarray(block, dtype=np.float64).reshape(-1)
        start = self._received
        total = start + block.size
        data = np.concatenate([self._buf, block])  # data[k] is sample start - n_fft + k
        first = self._next
        # frames whose end lies within the data received so far
        count = 0
        while self.frame_end(first + count) <= total:
            count += 1
        if count:
            ends = self.frame_end(np.arange(first, first + count)) - (start - self.n_fft)
            idx = ends[:, None] - self.n_fft + np.arange(self.n_fft)[None, :]
            frames = data[idx] * self.window
            spectra = np.abs(np.fft.rfft(frames, axis=1))
            mag = spectra.mean(axis=1) / self._norm
            power = np.sum(frames**2, axis=1) / (self._norm**2)
            rms_db = 10.0 * np.log10(np.maximum(power, 1e-20))
            self._next += count
        else:
            spectra = np.zeros((0, self.n_fft // 2 + 1))
            mag = np.zeros(0)
            rms_db = np.zeros(0)
        self._buf = data[-self.n_fft :].copy()
        self._received = total
        return spectra, mag, rms_db

    @property
    def norm(self) -> float:
        """``sqrt(sum(window**2))``: magnitudes divided by it read in the envelope's units."""
        return self._norm

    def flush(self, n_frames: int) -> tuple[np.ndarray, np.ndarray]:
        """Zero-pad the end of a finite clip so that exactly ``n_frames`` frames exist in all."""
        _, mag, rms_db = self.flush_spectra(n_frames)
        return mag, rms_db

    def flush_spectra(self, n_frames: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        missing = int(self.frame_end(n_frames - 1)) - self._received if n_frames > self._next else 0
        if missing <= 0:
            return np.zeros((0, self.n_fft // 2 + 1)), np.zeros(0), np.zeros(0)
        return self.push_spectra(np.zeros(missing))


class TrailingMean:
    """Causal moving average over the last ``window`` frames (fewer at the start)."""

    def __init__(self, window: int) -> None:
        self.window = int(window)
        self._values: deque[float] = deque(maxlen=self.window)
        self._sum = 0.0

    def step(self, x: float) -> float:
        if len(self._values) == self.window:
            self._sum -= self._values[0]
        self._values.append(float(x))
        self._sum += float(x)
        return self._sum / len(self._values)


class AttackRelease:
    """Envelope follower: rises with time constant ``attack_ms``, falls with ``release_ms``."""

    def __init__(self, fps: float, attack_ms: float, release_ms: float) -> None:
        self._a = 1.0 - np.exp(-1000.0 / (max(attack_ms, 1e-6) * fps))
        self._r = 1.0 - np.exp(-1000.0 / (max(release_ms, 1e-6) * fps))
        self._y: float | None = None

    def step(self, x: float) -> float:
        if self._y is None:
            self._y = float(x)
        else:
            coef = self._a if x > self._y else self._r
            self._y += coef * (float(x) - self._y)
        return self._y


def make_causal_smoother(mode: str, window: int, fps: float, attack_ms: float, release_ms: float):
    if mode == "trailing":
        return TrailingMean(window)
    if mode == "attack-release":
        return AttackRelease(fps, attack_ms, release_ms)
    raise ValueError(f"mode {mode!r} is not causal; use 'trailing' or 'attack-release'")


def centred_mean(x: np.ndarray, window: int) -> np.ndarray:
    """Centred moving average of ``window`` frames, averaging only frames that exist at the edges.

    ``window == 1`` returns ``x``; ``window >= len(x)`` returns the whole-clip mean everywhere.
    """
    x = np.asarray(x, dtype=np.float64)
    n = x.size
    if n == 0 or window <= 1:
        return x.copy()
    if window >= n:
        return np.full(n, x.mean())
    before = (window - 1) // 2
    after = window - 1 - before
    csum = np.concatenate([[0.0], np.cumsum(x)])
    lo = np.clip(np.arange(n) - before, 0, n)
    hi = np.clip(np.arange(n) + after + 1, 0, n)
    return (csum[hi] - csum[lo]) / (hi - lo)


def smooth(raw: np.ndarray, mode: str, window: int, fps: float, attack_ms: float | None = None,
           release_ms: float | None = None) -> np.ndarray:
    """Offline smoothing of a whole envelope; causal modes run the same streaming objects as live.
    ``attack_ms`` and ``release_ms`` (``envelope.attack_ms``, ``envelope.release_ms``) are needed by
    'attack-release' only."""
    if mode == "centred":
        return centred_mean(raw, window)
    if window >= len(raw) and mode == "trailing":
        return np.full(len(raw), float(np.mean(raw))) if len(raw) else np.zeros(0)
    if mode == "attack-release" and (attack_ms is None or release_ms is None):
        raise ValueError("attack-release smoothing needs attack_ms and release_ms")
    smoother = make_causal_smoother(mode, window, fps, attack_ms or 0.0, release_ms or 0.0)
    return np.array([smoother.step(v) for v in raw], dtype=np.float64)


def normalise_offline(smoothed: np.ndarray, rms_db: np.ndarray, percentile: float, silence_db: float) -> np.ndarray:
    """Divide by a high percentile of the clip, clip to [0, 1]. A clip quieter than ``silence_db`` -> 0."""
    if smoothed.size == 0 or float(np.max(rms_db, initial=-400.0)) < silence_db:
        return np.zeros_like(smoothed)
    ref = float(np.percentile(smoothed, percentile))
    if ref <= 0:
        return np.zeros_like(smoothed)
    return np.clip(smoothed / ref, 0.0, 1.0)


def to_weight(e: np.ndarray | float, w_min: float, w_max: float, gain: float) -> np.ndarray:
    """``w = w_min + (w_max - w_min) * gain * e`` (docs/design.md §1.2)."""
    return w_min + (w_max - w_min) * gain * np.asarray(e, dtype=np.float64)


class LiveNormaliser:
    """Automatic gain for live input: slow-release peak follower, a floor, and a noise gate.

    ``e = smoothed / peak`` where ``peak`` jumps up to any louder frame and decays with time
    constant ``release_s``. The peak never drops below ``floor`` (the level ``gate_db + 24 dB``),
    so a quiet room is not amplified to full weight; frames whose RMS is under ``gate_db`` (with
    3 dB of hysteresis) read 0, so the picture rests at the base in silence.
    """

    def __init__(self, fps: float, release_s: float, gate_db: float, headroom_db: float = 24.0) -> None:
        self._decay = float(np.exp(-1.0 / (release_s * fps)))
        self.gate_db = gate_db
        self.floor = 0.89 * 10 ** ((gate_db + headroom_db) / 20.0)
        self.peak = self.floor
        self._open = False

    def step(self, smoothed: float, rms_db: float) -> float:
        self.peak = max(smoothed, self.peak * self._decay, self.floor)
        threshold = self.gate_db if not self._open else self.gate_db - 3.0
        self._open = rms_db >= threshold
        if not self._open:
            return 0.0
        return float(min(1.0, smoothed / self.peak))


@dataclass(frozen=True)
class Envelope:
    fps: float
    times: np.ndarray  # frame start times (s)
    raw: np.ndarray
    smoothed: np.ndarray
    normalised: np.ndarray
    weights: np.ndarray
    rms_db: np.ndarray

    @property
    def n_frames(self) -> int:
        return int(self.raw.size)


def n_frames_for(duration: float, fps: float) -> int:
    return max(1, int(round(duration * fps)))


BLOCK = 16384  # samples pushed at a time: the STFT's work matrix stays ~BLOCK/hop x n_fft (a few MB), whatever the length


def raw_envelope_blocks(blocks: Iterable[np.ndarray], samplerate: int, fps: float, n_fft: int = 2048,
                        n_frames: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame raw magnitude and RMS dBFS of a clip given as mono blocks (any sizes). Memory: the
    per-frame results (two floats a frame) and one block's work, never the whole clip."""
    stft = FrameSTFT(samplerate, fps, n_fft)
    mags, dbs = [], []
    total = 0
    for b in blocks:
        b = np.asarray(b).reshape(-1)
        total += b.size
        for s in range(0, b.size, BLOCK):
            m, d = stft.push(b[s : s + BLOCK])
            mags.append(m)
            dbs.append(d)
    n = n_frames_for(total / samplerate, fps) if n_frames is None else n_frames
    m, d = stft.flush(n)
    mags.append(m)
    dbs.append(d)
    return np.concatenate(mags)[:n], np.concatenate(dbs)[:n]


def raw_envelope(mono: np.ndarray, samplerate: int, fps: float, n_fft: int = 2048,
                 n_frames: int | None = None, block: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Per-frame raw magnitude and RMS dBFS of a whole clip (pushed in blocks of ``block`` samples)."""
    step = max(1, int(block or BLOCK))
    return raw_envelope_blocks((mono[s : s + step] for s in range(0, mono.size, step)), samplerate, fps, n_fft,
                               n_frames if n_frames is not None else n_frames_for(mono.size / samplerate, fps))


def analyse(mono: np.ndarray, samplerate: int, env: EnvelopeConfig) -> Envelope:
    """The envelope and weights of a whole clip with the settings ``env`` (``Config.envelope``)."""
    raw, rms_db = raw_envelope(mono, samplerate, env.fps, env.n_fft)
    return envelope_from_raw(raw, rms_db, env)


def envelope_from_raw(raw: np.ndarray, rms_db: np.ndarray, env: EnvelopeConfig) -> Envelope:
    """Smoothing, normalisation and weights of a raw per-frame envelope (offline), with the settings ``env``."""
    fps = env.fps
    sm = smooth(raw, env.mode, env.window, fps, env.attack_ms, env.release_ms)
    norm = normalise_offline(sm, rms_db, env.norm_percentile, env.silence_db)
    weights = to_weight(norm, env.w_min, env.w_max, env.gain)
    times = np.arange(raw.size) / fps
    return Envelope(fps, times, raw, sm, norm, weights, rms_db)
