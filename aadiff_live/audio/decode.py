"""Decode any common audio file (wav, flac, ogg, mp3, m4a, ...) to float32 samples.

soundfile (libsndfile) reads wav/flac/ogg/mp3; PyAV (FFmpeg) takes whatever else. Resampling is
soxr's. Samples are returned as ``[n_samples, channels]`` float32 in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import soxr

from aadiff_live.errors import UserError


@dataclass(frozen=True)
class Audio:
    samples: np.ndarray  # [n, channels] float32
    samplerate: int

    @property
    def duration(self) -> float:
        return self.samples.shape[0] / self.samplerate

    @property
    def channels(self) -> int:
        return int(self.samples.shape[1])

    def mono(self) -> np.ndarray:
        return self.samples.mean(axis=1).astype(np.float32)

    def resampled(self, rate: int) -> Audio:
        if rate == self.samplerate:
            return self
        out = soxr.resample(self.samples, self.samplerate, rate, quality="HQ")
        return Audio(np.ascontiguousarray(out, dtype=np.float32).reshape(-1, self.channels), rate)


def _decode_av(path: Path) -> Audio:
    import av

    with av.open(str(path)) as container:
        if not container.streams.audio:
            raise UserError(f"{path} has no audio stream; pass a sound file (wav, flac, ogg, mp3)")
        stream = container.streams.audio[0]
        resampler = av.AudioResampler(format="fltp", layout=stream.layout.name, rate=stream.rate)
        chunks = []
        for frame in container.decode(stream):
            for out in resampler.resample(frame):
                chunks.append(out.to_ndarray())
        for out in resampler.resample(None):
            chunks.append(out.to_ndarray())
        rate = stream.rate
    if not chunks:
        raise UserError(f"{path} decodes to no samples; pass a sound file that is not empty")
    data = np.concatenate(chunks, axis=1).T
    return Audio(np.ascontiguousarray(data, dtype=np.float32), int(rate))


def load_audio(path: str | Path) -> Audio:
    """Decode ``path``; one-line UserError if it is missing, empty or not audio."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"audio file {p} not found; check the path passed to --audio")
    if p.is_dir():
        raise UserError(f"{p} is a folder; --audio takes a sound file (wav, flac, ogg, mp3)")
    try:
        data, rate = sf.read(str(p), dtype="float32", always_2d=True)
        audio = Audio(np.ascontiguousarray(data), int(rate))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        try:
            audio = _decode_av(p)
        except UserError:
            raise
        except Exception as exc:  # noqa: BLE001 - any FFmpeg failure means "not decodable"
            raise UserError(
                f"cannot decode {p} as audio ({type(exc).__name__}); convert it to wav, flac, ogg or mp3"
            ) from None
    if audio.samples.shape[0] == 0:
        raise UserError(f"{p} contains no samples; pass a sound file that is not empty")
    if not np.all(np.isfinite(audio.samples)):
        raise UserError(f"{p} contains NaN or infinite samples; re-export it from your audio editor")
    return audio
