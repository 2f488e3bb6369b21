"""Sources: the numbers in [0, 1] that can drive a word (docs/design.md §1.5), one streaming analysis for all.

A *source* is one named signal per frame, computed from the same streaming STFT
(:class:`~aadiff_live.analysis.envelope.FrameSTFT`) offline and live:

- ``loudness``: today's envelope (mean STFT magnitude), unchanged; the default source.
- one per frequency band of ``features.bands`` (defaults ``low`` 20-200 Hz, ``mid`` 200-2000 Hz,
  ``high`` 2000-16000 Hz): the mean STFT magnitude over the band's bins, in the envelope's units.
- ``onset`` and ``onset:<band>``: a flash (1 at the onset, then down with time constant
  ``features.onset_decay_ms``; offline, a frame shows the flash's peak within it) at each onset event
  found by causal adaptive peak picking on the
  spectral flux of the whole spectrum (or of the band's bins).
- ``beat``, ``bar`` and ``lfo:SHAPE:BEATS``: locked to the beat (offline: the beats that
  :func:`aadiff_live.analysis.tempo.offline_beats` finds in the clip; live: the show's tempo source,
  :mod:`aadiff_live.analysis.beat_live`), computed by :func:`beat_locked_values` in both: a flash on every beat (time constant
  ``tempo.beat_decay_ms``), on every bar line (every ``tempo.quantum`` beats), and an oscillator (sine, saw,
  square, triangle) with a period of BEATS beats, starting on a bar line.
- ``drums``, ``bass``, ``vocals``, ``other`` (offline only, ``pip install "aadiff-live[stems]"``):
  the loudness of each stem of a source separator (:mod:`aadiff_live.analysis.stems`).

Each level source (loudness, bands, stems) has its own smoothing (the envelope's mode, window,
attack and release unless a caller gives its own attack/release) and its own normalisation
(offline: divided by a high percentile of the clip; live: its own :class:`LiveNormaliser`). A
flash is neither smoothed nor normalised.

The API other modules build on (stable):

- :func:`known_sources` / :func:`check_source`: the names, and a one-line :class:`UserError` that
  lists them for an unknown one (``flag`` names the option it came from).
- :func:`sources_offline` (whole clip, mono array) or :class:`OfflineSources` (push blocks, then
  ``finish``) -> :class:`SourceFrames`: ``values[name]`` one value in [0, 1] per video frame,
  ``raw[name]`` before smoothing and normalisation, ``onsets[name]`` the onset events in seconds.
- :class:`SourceStepper` (live): ``step(spectrum, rms_db) -> dict[str, float]`` every analysis hop,
  every live source; ``fired`` lists the onset sources whose event fell on that hop.

Onsets are detected at the live analysis rate (``live.analysis_hz``, 10 ms hops) in both modes, on
the same STFT window, so the events offline are the events live; offline, the flash is then read
at each video frame's end. The onset strength is SuperFlux's spectral flux (Böck and Widmer, 2013)
over :data:`ONSET_MELS` mel bands: the log magnitude ``log(1 + 100 |X|)`` against a maximum-filtered
(3 bands) copy of the frame :data:`ONSET_LAG_MS` earlier, the positive differences averaged over
the bands (for ``onset:<band>``, the share of that mean from the mel bands inside the band: a band
onset needs a change as large as a whole-spectrum onset, within the band). An event fires
on the first hop where the flux is the largest of the last :data:`ONSET_PRE_MAX_MS`, exceeds the
mean of the last :data:`ONSET_PRE_AVG_MS` by ``features.onset_delta`` (log units: the detector
does not depend on the level) and comes at least ``onset_wait_ms`` after the previous one. An
event's time is the centre of the STFT window that found it plus :data:`ONSET_SHIFT_MS` (the flux
rises before an attack reaches the centre; measured on the signals of ``tools/bench_onsets.py``);
it is known, and flashes, at the end of that window.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np

from aadiff_live.analysis.envelope import (
    BLOCK,
    FrameSTFT,
    LiveNormaliser,
    make_causal_smoother,
    n_frames_for,
    normalise_offline,
    smooth,
)
from aadiff_live.analysis.tempo import LFO_SHAPES, beat_position, downbeat_offset, lfo_shape, offline_beats
from aadiff_live.config import EnvelopeConfig, FeaturesConfig, TempoConfig
from aadiff_live.errors import UserError

LOUDNESS = "loudness"
ONSET = "onset"
STEMS = ("drums", "bass", "vocals", "other")
STEMS_INSTALL = 'pip install "aadiff-live[stems]"'

BEAT, BAR, LFO = "beat", "bar", "lfo"
BEAT_LOCKED_HELP = "beat, bar, lfo:SHAPE:BEATS (SHAPE: " + ", ".join(LFO_SHAPES) + ")"

ONSET_LAG_MS = 30.0  # the flux compares each frame with the one this much earlier
ONSET_PRE_MAX_MS = 30.0  # an event is the largest flux over this long
ONSET_PRE_AVG_MS = 100.0  # ... and above the mean of this long by onset_delta
ONSET_SHIFT_MS = 10.0  # an event's time: the centre of the window that found it, plus this
ONSET_LOG_GAIN = 100.0  # log(1 + gain * |X|) compresses the magnitudes (|X| in the envelope's units)
ONSET_MELS, ONSET_FMIN, ONSET_FMAX = 80, 30.0, 16000.0  # the flux is taken over mel bands


def band_names(features: FeaturesConfig) -> list[str]:
    return list(features.bands)


def known_sources(features: FeaturesConfig, *, live: bool = False) -> list[str]:
    """Every source name, in a stable order: loudness, bands, onset, onset per band, then stems (offline)."""
    bands = band_names(features)
    names = [LOUDNESS, *bands, ONSET, *(f"{ONSET}:{b}" for b in bands)]
    return names if live else names + list(STEMS)


def is_onset(name: str) -> bool:
    return name == ONSET or name.startswith(ONSET + ":")


def is_stem(name: str) -> bool:
    return name in STEMS


def is_beat_locked(name: str) -> bool:
    return name in (BEAT, BAR) or name.startswith(LFO + ":")


def parse_lfo(name: str, flag: str = "--route") -> tuple[str, float]:
    """``lfo:SHAPE:BEATS`` -> ``(shape, beats)``; a one-line :class:`UserError` for anything else."""
    parts = name.split(":")
    beats = None
    if len(parts) == 3:
        try:
            beats = float(parts[2])
        except ValueError:
            beats = None
    if len(parts) != 3 or parts[1] not in LFO_SHAPES or beats is None or not 0 < beats <= 1024:
        raise UserError(f"{flag}: source '{name}': expected lfo:SHAPE:BEATS with SHAPE one of "
                        f"{', '.join(LFO_SHAPES)} and BEATS a period in beats (0 < BEATS <= 1024), e.g. lfo:sine:4")
    return parts[1], float(beats)


def check_source(name: str, features: FeaturesConfig, *, live: bool = False, flag: str = "--route") -> str:
    """``name`` if it is a source; else a one-line :class:`UserError` listing the known ones."""
    if name in known_sources(features, live=live):
        return name
    if is_beat_locked(name):
        if name.startswith(LFO + ":"):
            parse_lfo(name, flag)
        return name
    if live and is_stem(name):
        raise UserError(f"{flag}: source '{name}' is a stem, made offline only (render, analyse); live sources: "
                        f"{', '.join(known_sources(features, live=True))}")
    raise UserError(f"{flag}: unknown source '{name}'; known sources: {', '.join(known_sources(features))}, "
                    f"{BEAT_LOCKED_HELP} (bands from features.bands in config.yaml)")


@dataclass(frozen=True)
class Smoothing:
    """How a level source is smoothed (the envelope's settings, or a route's own attack/release)."""

    mode: str
    window: int  # frames at ``fps`` (trailing / centred)
    attack_ms: float
    release_ms: float

    @classmethod
    def of(cls, env: EnvelopeConfig, attack_ms: float | None = None, release_ms: float | None = None) -> Smoothing:
        return cls(env.mode, env.window, env.attack_ms if attack_ms is None else attack_ms,
                   env.release_ms if release_ms is None else release_ms)


class SourceBank:
    """Raw per-frame values of the level sources from STFT magnitude frames (``|rfft|`` of a FrameSTFT)."""

    def __init__(self, features: FeaturesConfig, samplerate: int, n_fft: int, norm: float) -> None:
        freqs = np.fft.rfftfreq(n_fft, 1.0 / samplerate)
        self.norm = float(norm)
        self.bands = band_names(features)
        self.masks = np.zeros((len(self.bands), freqs.size))
        for k, name in enumerate(self.bands):
            lo, hi = features.bands[name]
            sel = (freqs >= lo) & (freqs < hi)
            if not sel.any():  # a band narrower than a bin: the nearest bin
                sel[int(np.argmin(np.abs(freqs - (lo + hi) / 2)))] = True
            self.masks[k, sel] = 1.0 / sel.sum()

    def levels(self, spectra: np.ndarray) -> dict[str, np.ndarray]:
        """``{name: raw value per frame}`` for loudness and every band; ``spectra`` is ``[frames, bins]``."""
        spectra = np.atleast_2d(spectra)
        out = {LOUDNESS: spectra.mean(axis=1) / self.norm}
        banded = spectra @ self.masks.T / self.norm
        for k, name in enumerate(self.bands):
            out[name] = banded[:, k]
        return out


def mel_filterbank(samplerate: int, n_fft: int, n_mels: int, fmin: float, fmax: float) -> tuple[np.ndarray, np.ndarray]:
    """Triangular filters evenly spaced in mel (HTK), each averaging the magnitudes under it: ``([n_mels, bins],
    centre frequencies)``. A filter narrower than a bin takes the nearest bin."""
    freqs = np.fft.rfftfreq(n_fft, 1.0 / samplerate)
    fmax = min(fmax, samplerate / 2)
    mel = np.linspace(2595 * np.log10(1 + fmin / 700), 2595 * np.log10(1 + fmax / 700), n_mels + 2)
    edges = 700 * (10 ** (mel / 2595) - 1)
    fb = np.zeros((n_mels, freqs.size))
    for k in range(n_mels):
        lo, mid, hi = edges[k], edges[k + 1], edges[k + 2]
        up = (freqs - lo) / (mid - lo)
        down = (hi - freqs) / (hi - mid)
        row = np.maximum(0.0, np.minimum(up, down))
        if row.sum() <= 0:
            row[int(np.argmin(np.abs(freqs - mid)))] = 1.0
        fb[k] = row / row.sum()
    return fb, edges[1:-1]


class OnsetDetector:
    """Causal onset detection on STFT magnitude frames at ``hz`` frames per second, whole spectrum and per band.

    ``step(spectrum)`` returns the names (``onset``, ``onset:<band>``) whose event fires on this frame.
    """

    def __init__(self, features: FeaturesConfig, samplerate: int, n_fft: int, norm: float, hz: float) -> None:
        self.fb, centres = mel_filterbank(samplerate, n_fft, ONSET_MELS, ONSET_FMIN, ONSET_FMAX)
        self.names = [ONSET] + [f"{ONSET}:{b}" for b in band_names(features)]
        rows = [np.ones(centres.size)]
        for b in band_names(features):
            lo, hi = features.bands[b]
            sel = (centres >= lo) & (centres < hi)
            if not sel.any():
                sel[int(np.argmin(np.abs(centres - (lo + hi) / 2)))] = True
            rows.append(sel.astype(np.float64))
        self.masks = np.stack(rows) / centres.size  # [names, mels]: each name's share of the whole spectrum's flux
        self.hz = float(hz)
        self.lag = max(1, round(ONSET_LAG_MS * hz / 1000.0))
        self.pre_max = max(1, round(ONSET_PRE_MAX_MS * hz / 1000.0))
        self.pre_avg = max(1, round(ONSET_PRE_AVG_MS * hz / 1000.0))
        self.wait = round(features.onset_wait_ms * hz / 1000.0)
        self.delta = float(features.onset_delta)
        self.scale = ONSET_LOG_GAIN / norm
        n = len(self.names)
        self._past: deque[np.ndarray] = deque(maxlen=self.lag)  # max-filtered log spectra of the last frames
        self._flux: deque[np.ndarray] = deque(maxlen=max(self.pre_max, self.pre_avg - 1, 1))
        self._since = np.full(n, 1 << 30)  # frames since each name's last event
        self.flux = np.zeros(n)  # NB: the newest flux per name, for plots and tests

    def step(self, spectrum: np.ndarray) -> list[str]:
        log_mel = np.log1p(self.scale * (self.fb @ np.asarray(spectrum, dtype=np.float64)))
        widened = log_mel.copy()  # SuperFlux: a 3-band maximum filter over frequency on the reference frame
        np.maximum(widened[1:], log_mel[:-1], out=widened[1:])
        np.maximum(widened[:-1], log_mel[1:], out=widened[:-1])
        ref = self._past[0] if len(self._past) == self.lag else None
        self._past.append(widened)
        self._since += 1
        flux = self.masks @ np.maximum(log_mel - ref, 0.0) if ref is not None else np.zeros(len(self.names))
        self.flux = flux
        recent = np.array(self._flux) if self._flux else np.zeros((0, flux.size))
        past_avg = recent[recent.shape[0] - (self.pre_avg - 1):] if self.pre_avg > 1 else recent[:0]
        avg = (past_avg.sum(axis=0) + flux) / (past_avg.shape[0] + 1)
        prev_max = recent[-self.pre_max:].max(axis=0) if recent.shape[0] else np.zeros_like(flux)
        self._flux.append(flux)
        fire = (flux >= prev_max) & (flux >= avg + self.delta) & (self._since > self.wait)
        self._since[fire] = 0
        return [self.names[k] for k in np.flatnonzero(fire)]


def onset_time(detected_s: np.ndarray | float, n_fft: int, samplerate: int) -> np.ndarray:
    """The time of an onset found by the window that ends at ``detected_s`` (see the module's docstring)."""
    return np.asarray(detected_s, dtype=np.float64) - n_fft / 2 / samplerate + ONSET_SHIFT_MS / 1000.0


def onset_strength(mono: np.ndarray, samplerate: int, env: EnvelopeConfig, features: FeaturesConfig,
                   hz: float = 100.0) -> tuple[np.ndarray, float]:
    """``(onset strength per hop at hz, time in s of hop 0)``: the whole-spectrum flux of :class:`OnsetDetector`,
    the signal the beat trackers (:mod:`aadiff_live.analysis.tempo`) follow."""
    stft = FrameSTFT(samplerate, hz, live_window(samplerate, env), fit=False)
    det = OnsetDetector(features, samplerate, stft.n_fft, stft.norm, hz)
    mono = np.asarray(mono).reshape(-1)
    out: list[float] = []
    for s in range(0, mono.size, BLOCK):
        for spec in stft.push_spectra(mono[s:s + BLOCK])[0]:
            det.step(spec)
            out.append(float(det.flux[0]))
    t0 = float(onset_time(stft.frame_end(0) / samplerate, stft.n_fft, samplerate))
    return np.asarray(out), t0


def flash_per_frame(starts: np.ndarray, ends: np.ndarray, events: np.ndarray, decay_ms: float) -> np.ndarray:
    """The flash's peak within each frame ``(start, end]``: 1 where an event falls in it (every onset shows at
    full strength, whatever the frame rate), else the flash at the frame's start."""
    events = np.sort(np.asarray(events, dtype=np.float64))
    out = flash_at(starts, events, decay_ms)
    hit = np.searchsorted(events, ends, side="right") > np.searchsorted(events, starts, side="right")
    out[hit] = 1.0
    return out


def flash_at(times: np.ndarray, events: np.ndarray, decay_ms: float) -> np.ndarray:
    """The flash at each time: ``exp(-(t - e) / decay)`` for the newest event ``e <= t``; 0 before the first."""
    times = np.asarray(times, dtype=np.float64)
    events = np.sort(np.asarray(events, dtype=np.float64))
    out = np.zeros(times.size)
    if events.size == 0:
        return out
    k = np.searchsorted(events, times, side="right") - 1
    has = k >= 0
    out[has] = np.exp(-(times[has] - events[k[has]]) * 1000.0 / decay_ms)
    return out


def beat_locked_values(names: Sequence[str], times: np.ndarray, beats: np.ndarray, downbeats: np.ndarray,
                       position: np.ndarray | None, tempo: TempoConfig) -> dict[str, np.ndarray]:
    """The beat-locked sources at ``times`` (s), from the beat and bar-line times before them and the beat position
    (0 on a bar line; ``None``: no tempo, the oscillators rest at 0): ``beat`` and ``bar`` flash on each beat / bar
    line (time constant ``tempo.beat_decay_ms``), ``lfo:SHAPE:BEATS`` is ``SHAPE`` at ``position / BEATS``. The one
    computation for a file (render, analyse) and the live show (:mod:`aadiff_live.analysis.beat_live`)."""
    times = np.asarray(times, dtype=np.float64)
    out: dict[str, np.ndarray] = {}
    for name in names:
        if name == BEAT:
            out[name] = flash_at(times, beats, tempo.beat_decay_ms)
        elif name == BAR:
            out[name] = flash_at(times, downbeats, tempo.beat_decay_ms)
        else:
            shape, period = parse_lfo(name)
            out[name] = lfo_shape(shape, position / period) if position is not None else np.zeros(times.size)
    return out


@dataclass(frozen=True)
class SourceFrames:
    """Every requested source of a clip, per video frame (offline)."""

    fps: float
    times: np.ndarray  # frame start times (s)
    values: dict[str, np.ndarray]  # name -> value in [0, 1] per frame (smoothed, normalised; a flash for onsets)
    raw: dict[str, np.ndarray]  # name -> raw value per frame (level sources: STFT units; onsets: the flash)
    rms_db: np.ndarray  # the full mix's level per frame (the gate)
    onsets: dict[str, np.ndarray] = field(default_factory=dict)  # onset source -> event times (s)
    beats: np.ndarray | None = None  # beat-locked sources asked for: the beat times (s) the offline tracker found
    downbeats: np.ndarray | None = None  # ... the bar lines among them
    bpm: float | None = None  # ... and the median tempo

    @property
    def names(self) -> list[str]:
        return list(self.values)

    @property
    def n_frames(self) -> int:
        return int(self.times.size)


def live_window(samplerate: int, env: EnvelopeConfig) -> int:
    """The STFT window (samples) of the video-rate analysis; the live and onset analyses use the same one."""
    return FrameSTFT(samplerate, env.fps, env.n_fft).n_fft


class OfflineSources:
    """A clip pushed in mono blocks: the video-rate STFT (level sources) and, when asked for, the onset-rate
    STFT (onsets); memory: a few floats per frame, never the clip."""

    def __init__(self, samplerate: int, env: EnvelopeConfig, features: FeaturesConfig, names: Sequence[str],
                 onset_hz: float, tempo: TempoConfig | None = None, *, track_beats: bool = False) -> None:
        for n in names:
            check_source(n, features)
        stems = [n for n in names if is_stem(n)]
        if stems:
            raise ValueError(f"stem sources {stems} need the audio itself: use stems.stem_sources")
        self.samplerate = int(samplerate)
        self.env, self.features, self.names = env, features, list(names)
        self.stft = FrameSTFT(samplerate, env.fps, env.n_fft)
        self.bank = SourceBank(features, samplerate, self.stft.n_fft, self.stft.norm)
        self.onset_names = [n for n in self.names if is_onset(n)]
        self.beat_names = [n for n in self.names if is_beat_locked(n)]
        self.tempo = tempo or TempoConfig()
        self.track_beats = bool(self.beat_names) or track_beats  # the beats, even with no beat-locked source
        flux = bool(self.onset_names or self.track_beats)
        self.onset_stft = FrameSTFT(samplerate, onset_hz, self.stft.n_fft, fit=False) if flux else None
        self.detector = (OnsetDetector(features, samplerate, self.stft.n_fft, self.stft.norm, onset_hz)
                         if flux else None)
        bands = band_names(features)  # the lowest band's flux places the bar lines (the kick)
        self._low = 1 + min(range(len(bands)), key=lambda k: features.bands[bands[k]][0]) if bands else 0
        self._strength: list[float] = []  # whole-spectrum onset strength per hop (beat-locked sources only)
        self._low_strength: list[float] = []
        self._levels: dict[str, list[np.ndarray]] = {n: [] for n in [LOUDNESS, *self.bank.bands]}
        self._db: list[np.ndarray] = []
        self._events: dict[str, list[float]] = {n: [] for n in self.onset_names}
        self._received = 0
        self._onset_frames = 0  # onset-rate frames analysed

    def _take(self, spectra: np.ndarray, db: np.ndarray) -> None:
        for name, v in self.bank.levels(spectra).items():
            self._levels[name].append(v)
        self._db.append(db)

    def _onsets(self, spectra: np.ndarray) -> None:
        assert self.detector is not None and self.onset_stft is not None
        for spec in spectra:
            for name in self.detector.step(spec):
                if name in self._events:
                    self._events[name].append(self._onset_frames)
            if self.track_beats:
                self._strength.append(float(self.detector.flux[0]))
                self._low_strength.append(float(self.detector.flux[self._low]))
            self._onset_frames += 1

    def push(self, mono: np.ndarray) -> None:
        mono = np.asarray(mono).reshape(-1)
        for s in range(0, mono.size, BLOCK):
            part = mono[s:s + BLOCK]
            spectra, _, db = self.stft.push_spectra(part)
            self._take(spectra, db)
            if self.onset_stft is not None:
                self._onsets(self.onset_stft.push_spectra(part)[0])
        self._received += mono.size

    def finish(self, n_frames: int | None = None, smoothing: Mapping[str, Smoothing] | None = None) -> SourceFrames:
        """Every source per video frame; ``smoothing`` overrides the envelope's per source name."""
        n = n_frames_for(self._received / self.samplerate, self.env.fps) if n_frames is None else int(n_frames)
        spectra, _, db = self.stft.flush_spectra(n)
        self._take(spectra, db)
        fps = self.env.fps
        rms_db = np.concatenate(self._db)[:n]
        raw_all = {k: np.concatenate(v)[:n] for k, v in self._levels.items()}
        times = np.arange(n) / fps
        ends = self.stft.frame_end(np.arange(n)) / self.samplerate  # when each frame's audio is complete
        starts = np.concatenate([[0.0], ends[:-1]])
        values: dict[str, np.ndarray] = {}
        raw: dict[str, np.ndarray] = {}
        onsets: dict[str, np.ndarray] = {}
        if self.onset_stft is not None:  # the onset analysis runs to the clip's end too
            self._onsets(self.onset_stft.flush_spectra(int(math.ceil(self._received / self.samplerate
                                                                     * self.onset_stft.fps)))[0])
        beats = downbeats = None
        bpm = None
        if self.track_beats:
            assert self.onset_stft is not None
            hz = self.onset_stft.fps
            t0 = float(onset_time(self.onset_stft.frame_end(0) / self.samplerate, self.onset_stft.n_fft,
                                  self.samplerate))
            beats, bpm = offline_beats(np.asarray(self._strength), hz, t0)
            low = np.asarray(self._low_strength)
            at = np.clip(np.round((beats - t0) * hz).astype(np.int64), 0, max(0, low.size - 1))
            first = downbeat_offset(low[at] if low.size else np.zeros(0), self.tempo.quantum)
            downbeats = beats[first::self.tempo.quantum]
            centres = times + 0.5 / fps  # a frame shows the middle of its time
            position = beat_position(centres, beats) - first  # 0 on the first bar line
            for name, v in beat_locked_values(self.beat_names, centres, beats, downbeats,
                                              position if beats.size >= 2 else None, self.tempo).items():
                raw[name] = values[name] = v
        for name in self.names:
            if name in values:
                continue
            if is_onset(name):
                assert self.onset_stft is not None
                idx = np.asarray(self._events[name], dtype=np.int64)
                detected = self.onset_stft.frame_end(idx) / self.samplerate if idx.size else np.zeros(0)
                onsets[name] = onset_time(detected, self.onset_stft.n_fft, self.samplerate)
                raw[name] = values[name] = flash_per_frame(starts, ends, detected, self.features.onset_decay_ms)
                continue
            sm = (smoothing or {}).get(name) or Smoothing.of(self.env)
            raw[name] = raw_all[name]
            smoothed = smooth(raw[name], sm.mode, sm.window, fps, sm.attack_ms, sm.release_ms)
            values[name] = normalise_offline(smoothed, rms_db, self.env.norm_percentile, self.env.silence_db)
        return SourceFrames(fps, times, values, raw, rms_db, onsets, beats, downbeats, bpm)


def sources_offline(mono: np.ndarray, samplerate: int, env: EnvelopeConfig, features: FeaturesConfig,
                    names: Sequence[str] | None = None, *, onset_hz: float = 100.0, n_frames: int | None = None,
                    smoothing: Mapping[str, Smoothing] | None = None) -> SourceFrames:
    """Every source in ``names`` (default: every non-stem source) of a whole mono clip, per video frame.

    ``onset_hz`` is the live analysis rate (``live.analysis_hz``) so that offline onsets are the live ones.
    """
    names = list(names) if names is not None else known_sources(features, live=True)
    analyser = OfflineSources(samplerate, env, features, names, onset_hz)
    analyser.push(mono)
    return analyser.finish(n_frames, smoothing)


def sources_from_blocks(blocks: Iterable[np.ndarray], samplerate: int, env: EnvelopeConfig,
                        features: FeaturesConfig, names: Sequence[str], *, onset_hz: float = 100.0,
                        n_frames: int | None = None) -> SourceFrames:
    analyser = OfflineSources(samplerate, env, features, names, onset_hz)
    for b in blocks:
        analyser.push(b)
    return analyser.finish(n_frames)


class SourceStepper:
    """Live: every live source, one value per analysis hop, from the hop's STFT magnitude frame.

    Built with the analysis thread's :class:`FrameSTFT` (its rate ``hz``, window ``n_fft`` and ``norm``);
    ``smoothing`` is causal (the analysis thread's mode), ``smoothing_for`` overrides it per source.
    Not thread-safe: the analysis thread owns it.
    """

    def __init__(self, features: FeaturesConfig, samplerate: int, n_fft: int, norm: float, hz: float,
                 smoothing: Smoothing, *, video_fps: float, agc_release_s: float, gate_db: float,
                 smoothing_for: Mapping[str, Smoothing] | None = None) -> None:
        self.names = known_sources(features, live=True)
        self.bank = SourceBank(features, samplerate, n_fft, norm)
        self.detector = OnsetDetector(features, samplerate, n_fft, norm, hz)
        self.hz = float(hz)
        self._flash_decay = math.exp(-1000.0 / (features.onset_decay_ms * hz))
        self._smoothers = {}
        self._normalisers = {}
        for name in [LOUDNESS, *self.bank.bands]:
            sm = (smoothing_for or {}).get(name) or smoothing
            frames = max(1, round(sm.window / video_fps * hz))  # the window is in video frames, as configured
            self._smoothers[name] = make_causal_smoother(sm.mode, frames, hz, sm.attack_ms, sm.release_ms)
            self._normalisers[name] = LiveNormaliser(hz, agc_release_s, gate_db)
        self._flash = dict.fromkeys(self.detector.names, 0.0)
        self.fired: list[str] = []  # NB: the onset sources whose event fell on the last step
        self.values: dict[str, float] = dict.fromkeys(self.names, 0.0)

    def step(self, spectrum: np.ndarray, rms_db: float) -> dict[str, float]:
        """One hop: ``{name: value in [0, 1]}`` for every live source (a new dict each hop)."""
        levels = self.bank.levels(spectrum)
        out: dict[str, float] = {}
        for name in [LOUDNESS, *self.bank.bands]:
            smoothed = self._smoothers[name].step(float(levels[name][0]))
            out[name] = self._normalisers[name].step(smoothed, rms_db)
        self.fired = self.detector.step(spectrum)
        for name in self.detector.names:
            self._flash[name] = 1.0 if name in self.fired else self._flash[name] * self._flash_decay
        out.update(self._flash)
        self.values = out
        return out
