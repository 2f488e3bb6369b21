"""Decode any common audio file (wav, flac, ogg, mp3, m4a, ...) to float32 samples.

The file is read by :mod:`aadiff_live.audio.stream` (soundfile, else PyAV); resampling is soxr's.
Samples are returned as ``[n_samples, channels]`` float32 in [-1, 1].
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
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


def load_audio(path: str | Path) -> Audio:
    """Decode the whole of ``path`` into memory (short clips: a file played as live input); one-line
    UserError if it is missing, empty or not audio. Long files are read in blocks instead
    (:func:`aadiff_live.audio.stream.open_audio`)."""
    from aadiff_live.audio.stream import open_audio

    src = open_audio(path)
    blocks = list(src.blocks())
    if not blocks:
        raise UserError(f"{path} contains no samples; pass a sound file that is not empty")
    return Audio(np.ascontiguousarray(np.concatenate(blocks)), src.samplerate)
