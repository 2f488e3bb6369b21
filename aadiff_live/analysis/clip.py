"""A whole clip analysed in one streaming pass: the envelope, and the excerpt CLAP ranks the words on.

Memory does not grow with the clip's length: the audio is read in blocks (:mod:`aadiff_live.audio.stream`),
each block goes through the streaming STFT and is dropped; what stays is two floats per video frame
and CLAP's excerpt. CLAP ranks on the whole clip cut into 10 s chunks when it has at most
:data:`CLAP_CHUNKS` of them; a longer clip contributes that many chunks spread evenly over its length
(a two-hour set: 12 ten-second looks, not 720).

With ``sources`` the same pass computes the other sources too (:mod:`aadiff_live.analysis.sources`):
bands and onsets stream like the envelope; stems (:mod:`aadiff_live.analysis.stems`) need the whole
clip, which is then kept in memory for the separator.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace

import numpy as np

from aadiff_live.analysis.envelope import Envelope, envelope_from_raw
from aadiff_live.analysis.sources import LOUDNESS, OfflineSources, Smoothing, SourceFrames, is_stem
from aadiff_live.audio.stream import AudioSource
from aadiff_live.config import EnvelopeConfig, FeaturesConfig, TempoConfig

CLAP_CHUNKS = 12
CLAP_CHUNK_S = 10.0


@dataclass(frozen=True)
class ClipAnalysis:
    envelope: Envelope
    samplerate: int
    channels: int
    n_samples: int
    excerpt: np.ndarray  # mono float32 at ``samplerate``: what CLAP ranks the words on
    excerpt_starts_s: list[float]  # where its chunks come from
    sources: SourceFrames | None = None  # the sources asked for (always with the loudness), per video frame

    @property
    def duration(self) -> float:
        return self.n_samples / self.samplerate


def _chunk_picks(n_samples: int, chunk: int, max_chunks: int) -> np.ndarray:
    n = max(1, -(-n_samples // chunk))
    if n <= max_chunks:
        return np.arange(n)
    return np.unique(np.linspace(0, n - 1, max_chunks).round().astype(np.int64))


def analyse_clip(source: AudioSource, env: EnvelopeConfig, *, max_chunks: int = CLAP_CHUNKS,
                 chunk_s: float = CLAP_CHUNK_S, features: FeaturesConfig | None = None,
                 sources: Sequence[str] = (), onset_hz: float = 100.0, smoothing: Mapping[str, Smoothing] | None = None,
                 separator=None, tempo: TempoConfig | None = None, track_beats: bool = False) -> ClipAnalysis:
    """``sources``: names of :func:`~aadiff_live.analysis.sources.known_sources` to compute besides the envelope
    (``onset_hz``: the live analysis rate, so that the onsets are the live ones; ``smoothing``: per source,
    else the envelope's); stems need ``separator`` (:func:`~aadiff_live.analysis.stems.load_separator`);
    ``tempo``: the settings of the beat-locked sources (beat, bar, lfo:SHAPE:BEATS); ``track_beats``: find the
    beats (``sources.beats``) even when no beat-locked source is asked for."""
    features = features or FeaturesConfig()
    stem_names = [n for n in sources if is_stem(n)]
    stream_names = list(dict.fromkeys([LOUDNESS, *(n for n in sources if not is_stem(n))]))
    if stem_names:
        from aadiff_live.analysis.stems import require_demucs

        require_demucs()
        if separator is None:
            raise ValueError("stem sources need a separator")
    kept: list[np.ndarray] = []  # the clip itself, only for the separator
    sr = source.samplerate
    n_total = source.frames
    if n_total is None:  # the container does not say: count it first (a decode pass, flat memory)
        n_total = sum(b.shape[0] for b in source.blocks())
    chunk = max(1, int(round(chunk_s * sr)))
    picks = _chunk_picks(n_total, chunk, max_chunks)
    starts = picks * chunk
    sizes = [max(0, min(chunk, n_total - int(s))) for s in starts]
    excerpt = np.zeros(sum(sizes), np.float32)
    bounds = np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64)
    parts = [excerpt[bounds[k]:bounds[k + 1]] for k in range(len(sizes))]  # views: filled in place
    seen = {"n": 0}

    def mono_blocks():
        pos = 0
        for b in source.blocks():
            if stem_names:
                kept.append(np.asarray(b, dtype=np.float32))
            mono = b.mean(axis=1, dtype=np.float32) if b.shape[1] > 1 else b[:, 0]
            end = pos + mono.size
            for k, s in enumerate(starts):  # copy what falls into CLAP's chunks
                lo, hi = max(pos, int(s)), min(end, int(s) + parts[k].size)
                if lo < hi:
                    parts[k][lo - int(s):hi - int(s)] = mono[lo - pos:hi - pos]
            pos = end
            yield mono
        seen["n"] = pos

    analyser = OfflineSources(sr, env, features, stream_names, onset_hz, tempo, track_beats=track_beats)
    for mono in mono_blocks():
        analyser.push(mono)
    frames = analyser.finish(None, smoothing)
    raw, rms_db = frames.raw[LOUDNESS], frames.rms_db
    n = seen["n"]
    if stem_names:
        from aadiff_live.analysis.stems import separate, stem_values

        audio = np.concatenate(kept) if kept else np.zeros((0, source.channels), np.float32)
        kept.clear()
        stems, stem_sr = separate(separator, audio, sr)
        del audio
        values, stem_raw = stem_values(stems, stem_sr, env, features, stem_names, frames.n_frames, smoothing)
        frames = replace(frames, values={**frames.values, **values}, raw={**frames.raw, **stem_raw})
    envelope = envelope_from_raw(raw, rms_db, env)
    return ClipAnalysis(envelope, sr, source.channels, n, excerpt, [float(s) / sr for s in starts],
                        frames if sources else None)


def envelope_stats(env: Envelope) -> dict:
    """Numbers to tune ``--window`` / ``--gain`` by before a long render."""
    w = env.weights
    q = (lambda a, p: float(np.percentile(a, p)) if a.size else None)  # noqa: E731
    silent = env.normalised <= 0.0
    return {
        "frames": int(env.n_frames), "fps": env.fps, "duration_s": env.n_frames / env.fps,
        "weight": {"min": float(w.min(initial=np.inf)) if w.size else None, "p5": q(w, 5), "median": q(w, 50),
                   "mean": float(w.mean()) if w.size else None, "p95": q(w, 95),
                   "max": float(w.max(initial=-np.inf)) if w.size else None},
        "rms_db": {"p5": q(env.rms_db, 5), "median": q(env.rms_db, 50), "p95": q(env.rms_db, 95),
                   "max": float(env.rms_db.max(initial=-400.0))},
        "silent_fraction": float(silent.mean()) if silent.size else 0.0,
        "at_full_weight_fraction": float((env.normalised >= 1.0).mean()) if env.n_frames else 0.0,
        # how much the weight moves from one frame to the next (jitter: raise --window if large)
        "frame_to_frame_change_median": float(np.median(np.abs(np.diff(w)))) if w.size > 1 else 0.0,
    }
