"""H.264 (yuv420p) MP4 with the audio muxed in, through PyAV (FFmpeg).

Written to a temporary file beside the target and renamed at the end, so the target is never
half-written. :meth:`VideoWriter.close` finalises a playable file of the frames written so far
(the audio trimmed to match), which is what Ctrl-C and crashes use; :meth:`abort` removes it.
Frames are either at a constant ``fps`` or, with ``vfr=True``, each at its own time in seconds
(live recordings: each frame at its display time).

``fragmented=True`` (live recordings) writes a fragmented MP4 straight to the target instead:
a fragment (about :data:`FRAGMENT_S` seconds, each starting on a keyframe) is flushed to disk as
soon as it is complete, so the file is playable at every moment and a crash or power cut loses
only the unflushed tail.

A file that cannot be created raises :class:`~aadiff_live.errors.UserError` naming the flag (exit
code 2); a write that fails later (disk full, folder gone) raises
:class:`~aadiff_live.errors.OutputError` naming the file and the cause (exit code 1).
"""

from __future__ import annotations

import os
import tempfile
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from aadiff_live.audio.rates import AAC_RATES, FALLBACK_RATE
from aadiff_live.errors import UserError, cannot_create, cannot_write
from aadiff_live.output.sidecar import current_umask

FRAGMENT_S = 2.0  # fragmented MP4: a keyframe and a flushed fragment about this often


def check_writable(path: Path, flag: str = "--out", example: str = "video.mp4") -> None:
    folder = path.parent if str(path.parent) else Path(".")
    if not folder.exists():
        raise UserError(f"output folder {folder} does not exist; create it or choose another {flag} path")
    if not os.access(folder, os.W_OK):
        raise UserError(f"output folder {folder} is not writable; choose another {flag} path")
    if path.exists() and path.is_dir():
        raise UserError(f"{flag} {path} is a folder; give a file name such as {path / example}")
    try:  # a folder can look writable and not be (/proc as root, a read-only mount): try it
        fd, probe = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".probe", dir=folder)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise cannot_create(path, exc, flag) from None


class VideoWriter:
    def __init__(self, path: str | Path, fps: float, width: int, height: int, *,
                 audio: np.ndarray | None = None, samplerate: int | None = None, vfr: bool = False,
                 crf: int = 18, fragmented: bool = False, flag: str = "--out") -> None:
        self.path = Path(path)
        check_writable(self.path, flag)
        self.fragmented = fragmented
        options: dict[str, str] = {}
        self.tmp = self.path
        try:
            if fragmented:  # written in place: every flushed fragment is already playable
                options = {"movflags": "frag_keyframe+empty_moov+default_base_moof",
                           "frag_duration": str(int(FRAGMENT_S * 1e6)), "flush_packets": "1"}
            else:
                fd, tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".partial.mp4",
                                           dir=self.path.parent or ".")
                os.close(fd)
                self.tmp = Path(tmp)
            self.container = av.open(str(self.tmp), mode="w", format="mp4", options=options)
        except OSError as exc:
            if self.tmp != self.path:
                self.tmp.unlink(missing_ok=True)
            raise cannot_create(self.path, exc, flag) from None
        self.fps = float(fps)
        self.vfr = vfr
        rate = Fraction(self.fps).limit_denominator(1001)
        self.video = self.container.add_stream("libx264", rate=rate)
        self.video.width, self.video.height = width, height
        self.video.pix_fmt = "yuv420p"
        self.video.options = {"crf": str(crf), "preset": "veryfast"}
        if fragmented:
            self.video.options = {**self.video.options, "g": str(max(1, round(FRAGMENT_S * self.fps)))}
        self.video.codec_context.time_base = Fraction(1, 1000) if vfr else 1 / rate
        self.n_frames = 0
        self._last_pts = -1
        self.audio_stream: av.audio.stream.AudioStream | None = None
        self._pending: deque[np.ndarray] = deque()  # queued audio not yet encoded
        self._queued = 0  # samples queued so far (absolute)
        self._audio_pos = 0  # samples encoded so far
        if audio is not None and samplerate:
            self._setup_audio(np.asarray(audio, dtype=np.float32), int(samplerate))
        self._closed = False

    def _setup_audio(self, audio: np.ndarray, sr: int) -> None:
        if audio.ndim == 1:
            audio = audio[:, None]
        if sr not in AAC_RATES:
            if audio.shape[0] == 0:
                raise ValueError(f"streaming audio needs an AAC sample rate, one of {AAC_RATES}")
            import soxr

            audio = soxr.resample(audio, sr, FALLBACK_RATE).astype(np.float32).reshape(-1, audio.shape[1])
            sr = FALLBACK_RATE
        self._layout = "mono" if audio.shape[1] == 1 else "stereo"
        stream = self.container.add_stream("aac", rate=sr, layout=self._layout)
        stream.bit_rate = 192000
        self.audio_stream = stream
        self._sr = sr
        self.append_audio(audio)

    def append_audio(self, block: np.ndarray) -> None:
        """Queue samples ``[n, channels]`` at the writer's rate (live recordings stream them; open the
        writer with ``audio=np.zeros((0, channels))``). Encoded samples are dropped, so memory stays flat."""
        if self.audio_stream is None:
            raise RuntimeError("open the writer with audio=np.zeros((0, channels)) and samplerate= first")
        block = np.asarray(block, dtype=np.float32)
        if block.ndim == 1:
            block = block[:, None]
        if block.shape[0]:
            self._pending.append(np.clip(block[:, : 1 if self._layout == "mono" else 2], -1, 1))
            self._queued += block.shape[0]

    @property
    def audio_queued_s(self) -> float:
        """Seconds of audio queued but not yet encoded (what a frozen picture would let pile up)."""
        if self.audio_stream is None:
            return 0.0
        return (self._queued - self._audio_pos) / self._sr

    @property
    def audio_s(self) -> float:
        """Seconds of audio given to the writer so far."""
        return self._queued / self._sr if self.audio_stream is not None else 0.0

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """An OS error while encoding or muxing (disk full, folder gone) becomes one line naming the file."""
        try:
            yield
        except OSError as exc:
            if self.fragmented:  # a fragmented file keeps what was flushed: it is playable
                raise cannot_write(self.path, exc, "what was flushed before is kept") from None
            self.abort()
            raise cannot_write(self.path, exc, "the partial file was removed") from None

    def flush_audio(self, seconds: float) -> None:
        """Encode the queued audio up to ``seconds`` even if no frame comes (a frozen picture, a stalled
        renderer): the queue stays short whatever the picture does."""
        with self._writing():
            self._write_audio_until(seconds)

    def _write_audio_until(self, seconds: float | None) -> None:
        if self.audio_stream is None:
            return
        end = self._queued if seconds is None else min(self._queued, int(round(seconds * self._sr)))
        while self._audio_pos < end:
            head = self._pending[0]
            take = min(head.shape[0], end - self._audio_pos, 4096)
            frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(head[:take].T), format="fltp",
                                               layout=self._layout)
            frame.sample_rate = self._sr
            frame.pts = self._audio_pos
            frame.time_base = Fraction(1, self._sr)
            for pkt in self.audio_stream.encode(frame):
                self.container.mux(pkt)
            if take == head.shape[0]:
                self._pending.popleft()
            else:
                self._pending[0] = head[take:]
            self._audio_pos += take

    def write(self, image: np.ndarray, t: float | None = None, index: int | None = None) -> None:
        """Append a ``[h, w, 3]`` uint8 frame (at time ``t`` seconds when ``vfr``; at frame ``index`` of the
        constant rate otherwise, default the next one; an index at or before the last is ignored)."""
        frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
        if self.vfr:
            pts = int(round((t or 0.0) * 1000))
            pts = max(pts, self._last_pts + 1)
            frame.pts = pts
            frame.time_base = Fraction(1, 1000)
            self._last_pts = pts
            end = pts / 1000.0
        else:
            pts = self._last_pts + 1 if index is None else int(index)
            if pts <= self._last_pts:
                return
            frame.pts = pts
            self._last_pts = pts
            end = (pts + 1) / self.fps
        with self._writing():
            self._encode_video(frame)
            self.n_frames += 1
            self._write_audio_until(end)

    def _encode_video(self, frame: av.VideoFrame | None) -> None:
        for pkt in self.video.encode(frame):
            self.container.mux(pkt)

    def close(self, complete: bool = True, audio_seconds: float | None = None) -> Path | None:
        """Finalise: flush encoders, mux the audio (all of it when ``complete``, else as long as the
        video), rename the temp file to the target. Returns the path, or None if no frame was written."""
        if self._closed:
            return self.path if self.path.exists() else None
        self._closed = True
        try:
            if self.n_frames == 0:
                self.container.close()
                self.tmp.unlink(missing_ok=True)
                return None
            self._encode_video(None)
            if audio_seconds is None and not complete:
                audio_seconds = (self._last_pts / 1000.0 + 1 / self.fps) if self.vfr else (self._last_pts + 1) / self.fps
            self._write_audio_until(audio_seconds)
            if self.audio_stream is not None:
                for pkt in self.audio_stream.encode(None):
                    self.container.mux(pkt)
            self.container.close()
            if not self.fragmented:
                os.chmod(self.tmp, 0o666 & ~current_umask())
                os.replace(self.tmp, self.path)
        except BaseException as exc:
            if not self.fragmented:  # a fragmented file keeps what was flushed: it is playable
                self.tmp.unlink(missing_ok=True)
            if isinstance(exc, OSError):
                note = "the partial file was removed" if not self.fragmented else "what was flushed before is kept"
                raise cannot_write(self.path, exc, note) from None
            raise
        return self.path

    def abort(self) -> None:
        if not self._closed:
            self._closed = True
            try:
                self.container.close()
            except Exception:  # noqa: BLE001 - the file is being discarded anyway
                pass
        self.tmp.unlink(missing_ok=True)
