"""Sound files read in blocks, so that memory does not grow with a clip's length (hours-long sets).

:func:`open_audio` checks the file once (exists, decodable, not empty) and returns a source whose
:meth:`AudioSource.blocks` yields ``[n, channels]`` float32 blocks from the start, as often as
asked: soundfile (libsndfile) reads wav/flac/ogg/mp3 block by block, PyAV (FFmpeg) decodes
anything else packet by packet; a different output rate is made by soxr's streaming
:class:`soxr.ResampleStream`. :class:`ArraySource` gives the same interface to samples already
in memory (the generated demo sound).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import soundfile as sf

from aadiff_live.errors import UserError

log = logging.getLogger(__name__)
BLOCK = 65536  # samples per block read from the file (~1.5 s at 44.1 kHz)


def _check_block(block: np.ndarray, path: object) -> np.ndarray:
    if not np.all(np.isfinite(block)):
        raise UserError(f"{path} contains NaN or infinite samples; re-export it from your audio editor")
    return block


def _resampled(blocks: Iterator[np.ndarray], src: int, dst: int, channels: int) -> Iterator[np.ndarray]:
    import soxr

    rs = soxr.ResampleStream(src, dst, channels, dtype="float32", quality="HQ")
    for b in blocks:
        out = rs.resample_chunk(np.ascontiguousarray(b, dtype=np.float32))
        if out.shape[0]:
            yield out.reshape(-1, channels)
    out = rs.resample_chunk(np.zeros((0, channels), np.float32), last=True)
    if out.shape[0]:
        yield out.reshape(-1, channels)


class AudioSource:
    """A sound file read in blocks. ``frames`` is the length in samples when the container says it
    exactly (soundfile), else None until a full pass has counted it."""

    samplerate: int
    channels: int
    frames: int | None
    label: str

    def _raw_blocks(self, size: int) -> Iterator[np.ndarray]:
        raise NotImplementedError

    def blocks(self, size: int = BLOCK, rate: int | None = None) -> Iterator[np.ndarray]:
        """``[n, channels]`` float32 blocks from the start (at ``rate`` if given); n varies, never 0."""
        it = (_check_block(b, self.label) for b in self._raw_blocks(size))
        if rate is not None and rate != self.samplerate:
            return _resampled(it, self.samplerate, int(rate), self.channels)
        return it

    @property
    def duration(self) -> float | None:
        return None if self.frames is None else self.frames / self.samplerate


class _SoundFileSource(AudioSource):
    def __init__(self, path: Path) -> None:
        with sf.SoundFile(str(path)) as f:
            self.samplerate, self.channels, frames = int(f.samplerate), int(f.channels), int(f.frames)
        self.path = path
        self.label = str(path)
        self.frames = frames

    def _raw_blocks(self, size: int) -> Iterator[np.ndarray]:
        with sf.SoundFile(str(self.path)) as f:
            while True:
                try:
                    b = f.read(size, dtype="float32", always_2d=True)
                except (sf.LibsndfileError, RuntimeError) as exc:  # a file damaged part-way through
                    raise UserError(f"cannot decode {self.path} past {f.tell() / self.samplerate:.1f} s ({exc}); "
                                    f"re-export it from your audio editor") from None
                if b.shape[0] == 0:
                    return
                yield b


class _AVSource(AudioSource):
    def __init__(self, path: Path) -> None:
        import av

        with av.open(str(path)) as c:
            if not c.streams.audio:
                raise UserError(f"{path} has no audio stream; pass a sound file (wav, flac, ogg, mp3)")
            s = c.streams.audio[0]
            self.samplerate, self.channels = int(s.rate), int(s.channels or 1)
            self._layout = s.layout.name
        self.path = path
        self.label = str(path)
        self.frames = None

    def _raw_blocks(self, size: int) -> Iterator[np.ndarray]:
        import av

        with av.open(str(self.path)) as c:
            stream = c.streams.audio[0]
            resampler = av.AudioResampler(format="fltp", layout=self._layout, rate=self.samplerate)
            for frame in c.decode(stream):
                for out in resampler.resample(frame):
                    yield np.ascontiguousarray(out.to_ndarray().T, dtype=np.float32)
            for out in resampler.resample(None):
                yield np.ascontiguousarray(out.to_ndarray().T, dtype=np.float32)


class ArraySource(AudioSource):
    """Samples in memory (``[n, channels]``) behind the same interface."""

    def __init__(self, samples: np.ndarray, samplerate: int, label: str = "audio") -> None:
        x = np.asarray(samples, dtype=np.float32)
        self.samples = x[:, None] if x.ndim == 1 else x
        self.samplerate, self.channels = int(samplerate), int(self.samples.shape[1])
        self.frames = int(self.samples.shape[0])
        self.label = label

    def _raw_blocks(self, size: int) -> Iterator[np.ndarray]:
        for s in range(0, self.samples.shape[0], size):
            yield self.samples[s:s + size]


def open_audio(path: str | Path, arg: str = "--audio") -> AudioSource:
    """A block reader for ``path``; one-line UserError if it is missing, not audio or empty (``arg``: where
    the user gave the path, for the message)."""
    p = Path(path)
    if not p.exists():
        raise UserError(f"audio file {p} not found; check the path passed to {arg}")
    if p.is_dir():
        raise UserError(f"{p} is a folder; {arg} takes a sound file (wav, flac, ogg, mp3)")
    try:
        return _check_length(_SoundFileSource(p))
    except (sf.LibsndfileError, RuntimeError, TypeError):
        pass
    try:
        src = _AVSource(p)
        first = next(src.blocks(4096), None)  # decodable at all?
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - any FFmpeg failure means "not decodable"
        raise UserError(
            f"cannot decode {p} as audio ({type(exc).__name__}); convert it to wav, flac, ogg or mp3"
        ) from None
    if first is None:
        raise UserError(f"{p} decodes to no samples; pass a sound file that is not empty")
    return src


def _check_length(src: AudioSource) -> AudioSource:
    p = src.label
    if src.frames == 0:
        raise UserError(f"{p} contains no samples; pass a sound file that is not empty")
    return src


class AudioFeed:
    """Hands a video writer the source's audio block by block as the picture advances (render)."""

    def __init__(self, source: AudioSource, writer, rate: int) -> None:
        self._it = source.blocks(rate=rate)
        self.writer = writer
        self.rate = int(rate)
        self.given = 0  # samples handed over so far

    def until(self, seconds: float | None) -> None:
        """Hand over audio up to ``seconds`` (None: all of it)."""
        target = None if seconds is None else int(round(seconds * self.rate))
        while target is None or self.given < target:
            b = next(self._it, None)
            if b is None:
                return
            self.writer.append_audio(b[:, :2])
            self.given += b.shape[0]
