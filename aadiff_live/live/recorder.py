"""Recorder thread: the frames as shown, each at its display time, with the captured audio muxed in.

Time 0 of a recording is the capture time of its first audio sample, so the picture lags the
sound in the file exactly as it did on the screen (the audio-to-photon latency).

Bounded for runs of days:

- Per frame, one row (a dict: display time, capture time, latency, weight, level, words, ...,
  plus whatever ``extra`` the caller adds) goes straight to a JSON-lines file beside the video
  (``set.mp4.frames.jsonl``), line-buffered; nothing per frame is kept in memory. The JSON
  sidecar (``set.mp4.json``), written when the file is closed, names that file.
- The audio is encoded up to "now" even when no frame comes (a frozen picture, a stalled
  renderer), so it never piles up in the writer.
- ``segment_s``: every so many seconds the open MP4 is closed (with its sidecar) and the next is
  opened; each file's name carries its start time (UTC), e.g. ``set_20261126T164100Z.mp4``.
- Each file is a fragmented MP4 written in place (:class:`VideoWriter` ``fragmented``): playable
  at every moment, so a crash or power cut loses only the last ~2 s of the open file.

A write error (disk full, folder gone) stops the recording, not the show: :attr:`error` is set,
the HUD (:attr:`Recorder.alert`) and the log say so, the recorder tries again every
:data:`RETRY_S` seconds with a new file (named by its start time, nothing is overwritten), and the
app's exit code is non-zero at the end.
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from aadiff_live.errors import UserError
from aadiff_live.live.frame_grid import FrameGrid, Pick
from aadiff_live.live.messages import Frame, latency_split
from aadiff_live.live.ring import RingBuffer, RingReader
from aadiff_live.output.sidecar import RowWriter, frames_path, sidecar_doc, sidecar_path, write_json_atomic
from aadiff_live.output.video import VideoWriter

log = logging.getLogger(__name__)
MAX_PENDING = 256  # shown frames waiting for the encoder; beyond this they are dropped (and counted)
AUDIO_LAG_S = 0.25  # with no frame coming, audio is encoded up to this long before "now"
ROTATE_GRACE_S = 0.3  # with no frame coming, a segment closes this long after its end (audio delivered)
RETRY_S = 30.0  # after a write error, try a new file this often
AUDIO_WAIT_S = 0.3  # at a segment end, wait at most this long for the audio block that holds the end


def segment_name(path: Path, wall_start: float) -> Path:
    """``set.mp4`` -> ``set_20261126T164100Z.mp4`` (the segment's start, UTC)."""
    stamp = datetime.fromtimestamp(wall_start, tz=timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    return path.with_name(f"{path.stem}_{stamp}{path.suffix or '.mp4'}")


class _Segment:
    """One open MP4 and its JSON-lines rows."""

    def __init__(self, path: Path, index: int, t0: float, wall_start: float, fps: float, width: int, height: int,
                 channels: int, samplerate: int) -> None:
        self.path = path
        self.index = index
        self.t0 = t0  # monotonic capture time of the first audio sample
        self.wall_start = wall_start
        self.fps = fps
        self.slot_offset: int | None = None  # this file's frame index minus the grid's slot index
        # a constant rate: frame k at k / fps (the slots of live/frame_grid.py), so editors get a fixed-rate file
        self.writer = VideoWriter(path, fps, width, height, audio=np.zeros((0, channels), np.float32),
                                  samplerate=samplerate, fragmented=True, flag="--record")
        try:
            self.rows = RowWriter(frames_path(path), line_buffered=True)
        except BaseException:
            self.writer.abort()
            raise

    @property
    def n_rows(self) -> int:
        return self.rows.n_rows

    def write(self, image: np.ndarray, index: int, row: dict[str, Any]) -> None:
        """Frame ``index`` of this file (its time is ``index / fps``)."""
        before = self.writer.n_frames
        self.writer.write(image, index=index)
        if self.writer.n_frames > before:
            self.rows.write({"frame": index, "time": index / self.fps, **row})

    def close(self) -> Path | None:
        try:
            return self.writer.close(complete=True)
        finally:
            self.rows.close()


class Recorder(threading.Thread):
    def __init__(self, path: str | Path, ring: RingBuffer, fps: float, width: int, height: int,
                 stop: threading.Event, *, segment_s: float | None = None,
                 settings: Callable[[], dict] | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(name="recorder", daemon=False)
        self.path = Path(path)
        self.ring = ring
        self.fps, self.width, self.height = fps, width, height
        self.stop_event = stop
        self.segment_s = segment_s
        self.settings = settings or dict
        self.clock = clock
        self._reader = RingReader(ring, start=0)
        self.grid: FrameGrid[tuple[Frame, dict | None]] = FrameGrid(fps)  # NB: only the display thread offers
        self._q: queue.Queue[Pick[tuple[Frame, dict | None]]] = queue.Queue(maxsize=MAX_PENDING)
        self.dropped = 0
        self.error: BaseException | None = None  # NB: set by this thread, read by the app at the end
        self.alert: str | None = None  # NB: set by this thread, read by the HUD: the recording is stopped
        self.failures = 0
        self._retry_at: float | None = None  # while broken: when to try a new file
        self._final = False
        self.closed: list[Path] = []  # finished files, in order
        self._seg: _Segment | None = None  # NB: only this thread (and finish(), after it ended) touches it
        self._last: tuple[np.ndarray, dict] | None = None  # the picture on screen and its row
        self._t_first: float | None = None  # capture time of the recording's first sample

    # ------------------------------------------------------------------ from the display thread
    def add(self, frame: Frame, shown_time: float, extra: dict | None = None) -> None:
        """Every display refresh, never blocks: the frame grid picks the refresh nearest each slot of the
        video rate (live/frame_grid.py). ``extra``: more per-frame fields for the row (display, scene, ...)."""
        if self.grid.origin is None:  # the slots lie on the file's frame times: from its first sound sample
            origin = self.ring.capture_time(0)
            if origin is None:
                return  # no sound yet: the recording starts at its first sample, this refresh comes before it
            self.grid.origin = origin
        for pick in self.grid.offer(shown_time, (frame, extra)):
            self._put(pick)

    def _put(self, pick: Pick[tuple[Frame, dict | None]]) -> None:
        if self._retry_at is not None:
            return  # the recording is stopped (already reported); the show goes on
        try:
            self._q.put_nowait(pick)
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1:
                log.warning("the recorder cannot keep up: dropping frames from the recording")

    def pending(self) -> int:
        return self._q.qsize()

    @property
    def current_path(self) -> Path | None:
        seg = self._seg
        return seg.path if seg is not None else None

    def audio_queued_s(self) -> float:
        seg = self._seg
        return seg.writer.audio_queued_s if seg is not None else 0.0

    # ------------------------------------------------------------------ segments
    def _segment_end(self) -> float | None:
        seg = self._seg
        if seg is None or self.segment_s is None:
            return None
        return seg.t0 + self.segment_s

    def _open(self, t0: float) -> None:
        index = len(self.closed) + self.failures
        wall = time.time() - (self.clock() - t0)
        path = self.path if self.segment_s is None and index == 0 else segment_name(self.path, wall)
        self._seg = _Segment(path, index, t0, wall, self.fps, self.width, self.height, self.ring.channels,
                             self.ring.samplerate)
        if index:
            log.info("recording segment %d: %s", index + 1, path)

    def _close_segment(self, summary: dict | None = None) -> Path | None:
        seg, self._seg = self._seg, None
        if seg is None:
            return None
        path = seg.close()
        if path is None:
            return None
        self.closed.append(path)
        ring = self.ring
        data = sidecar_doc(
            "live", seg.rows,
            settings=self.settings(),
            summary={**(summary or {}), "frames_dropped_from_recording": self.dropped,
                     # slots that repeated the picture before them: the display stalled (whole recording so far)
                     "frames_held_in_recording": self.grid.held},
            audio={"samplerate": ring.samplerate, "channels": ring.channels, "duration_s": seg.writer.audio_s},
            n_frames=seg.n_rows, complete=True,
            segment={"index": seg.index, "start_utc": datetime.fromtimestamp(seg.wall_start, tz=timezone.utc)
                     .isoformat(timespec="milliseconds"), "start_s": seg.t0 - (self._t_first or seg.t0),
                     "duration_s": seg.writer.audio_s, "segment_s": self.segment_s},
        )
        side = write_json_atomic(sidecar_path(path), data)
        log.info("recorded %s (%d frames, %.1f s) and %s", path, seg.n_rows, seg.writer.audio_s, side)
        return path

    def _rotate(self) -> None:
        """Close the open segment at its end and open the next one there."""
        end = self._segment_end()
        assert end is not None
        # the display may pass the end before the audio block that holds it is captured: wait for it (bounded)
        deadline = time.monotonic() + AUDIO_WAIT_S
        while not self._audio_reaches(end) and time.monotonic() < deadline:
            time.sleep(0.002)
        self._pull_audio()  # up to the end, no further
        self._close_segment()
        self._open(end)  # its first frames repeat the picture on screen when it starts (see _write)

    # ------------------------------------------------------------------ audio and frames
    def _audio_reaches(self, t: float) -> bool:
        """Whether the ring holds audio captured at time ``t`` or later."""
        last = self.ring.written - 1
        t_last = self.ring.capture_time(last) if last >= 0 else None
        return t_last is not None and t_last >= t

    def _pull_audio(self) -> None:
        """Move the captured audio into the open segment (up to the segment's end, the rest stays in the ring)."""
        seg = self._seg
        if seg is None:
            return
        limit = None
        end = None if self._final else self._segment_end()
        pos = self._reader.pos
        if end is not None and self.ring.written > pos:
            t_pos = self.ring.capture_time(pos)
            if t_pos is not None:
                limit = max(0, int(round((end - t_pos) * self.ring.samplerate)))
        _, data = self._reader.read(limit)
        if data.shape[0]:
            seg.writer.append_audio(data)

    def _start(self) -> bool:
        """Open the first file once the first audio has arrived."""
        if self._seg is not None:
            return True
        t0 = self.ring.capture_time(0)
        if t0 is None:
            return False
        self._t_first = t0
        self._open(t0)
        return True

    def _seg_write(self, image: np.ndarray, index: int, row: dict) -> None:
        assert self._seg is not None
        self._seg.write(image, index, row)

    def _write(self, pick: Pick[tuple[Frame, dict | None]]) -> None:
        if not self._start():
            return  # no audio yet: cannot place the frame
        frame, extra = pick.item
        end = self._segment_end()
        if end is not None and pick.time >= end:
            self._rotate()
        self._pull_audio()
        seg = self._seg
        assert seg is not None
        if seg.slot_offset is None:  # the grid's slots are this file's frames from here on, one for one
            seg.slot_offset = math.floor((pick.time - seg.t0) * self.fps + 0.5) - pick.slot
        index = pick.slot + seg.slot_offset
        if index < 0:
            return  # before this file's first sound
        if seg.writer.n_frames == 0 and seg.index > 0 and self._last is not None:
            # a new segment: the picture on screen when it started, until this slot
            image, row = self._last
            for k in range(index):
                self._seg_write(image, k, {**row, "held": True})
        s = frame.sample
        row = {"capture_time": s.capture_time - seg.t0, "latency_s": pick.shown - s.capture_time,
               "weight": s.weight, "normalised": s.normalised, "rms_db": s.rms_db, "render_s": frame.render_s,
               "words": list(frame.words), "prompt": frame.prompt, **latency_split(frame, pick.shown), **(extra or {})}
        self._seg_write(frame.image, index, {**row, "held": True} if pick.held else row)
        self._last = (frame.image, row)

    def _idle(self) -> None:
        if not self._start():
            return
        now = self.clock()
        end = self._segment_end()
        if end is not None and now >= end + ROTATE_GRACE_S:
            self._rotate()
        self._pull_audio()
        seg = self._seg
        if seg is not None and seg.writer.n_frames:
            seg.writer.flush_audio(now - seg.t0 - AUDIO_LAG_S)

    def _fail(self, exc: BaseException) -> None:
        self.error = exc
        self.failures += 1
        where = self.current_path or self.path
        # an OutputError already names the file and the cause; anything else gets its type and the file
        cause = str(exc) if isinstance(exc, UserError) else f"{type(exc).__name__}: {exc} ({where})"
        self.alert = f"RECORDING FAILED: {cause}"
        self._retry_at = self.clock() + RETRY_S
        log.error("recording failed: %s; the show goes on, trying a new file in %.0f s", cause, RETRY_S)
        seg, self._seg = self._seg, None
        if seg is not None:
            try:  # keep what can be kept: the fragments already on disk are playable
                path = seg.close()
                if path is not None:
                    self.closed.append(path)
            except Exception as close_exc:  # noqa: BLE001 - the disk is the problem; nothing more to save
                log.debug("closing the failed recording: %s", close_exc)

    def run(self) -> None:
        while not self.stop_event.is_set() or not self._q.empty():
            try:
                item = self._q.get(timeout=0.1)
            except queue.Empty:
                item = None
            if self._retry_at is not None:
                self._reader.read()  # drop audio and frames while the recording is stopped
                if self.clock() < self._retry_at or self.stop_event.is_set():
                    continue
                self._retry()
                continue
            try:
                if item is None:
                    self._idle()
                else:
                    self._write(item)
            except Exception as exc:  # noqa: BLE001 - the recording stops, the show goes on (loudly)
                self._fail(exc)

    def _retry(self) -> None:
        t0 = self.ring.capture_time(self._reader.pos)
        try:
            self._open(t0 if t0 is not None else self.clock())
        except Exception as exc:  # noqa: BLE001 - still failing: try again later
            self._fail(exc)
            return
        self._retry_at = None
        self.alert = None
        self._last = None
        log.warning("recording again, to %s", self.current_path)

    def finish(self, summary: dict) -> list[Path]:
        """After the thread has ended: all captured audio in, close the open file with its sidecar.
        Returns the files written (every segment). Raises nothing: a failure here is recorded in
        :attr:`error` and logged."""
        if self._retry_at is None:
            try:
                for pick in self.grid.flush():  # the last refresh, when it is its slot's nearest
                    self._write(pick)
            except Exception as exc:  # noqa: BLE001 - reported through the exit code
                self._fail(exc)
        self._final = True
        if self._seg is not None:
            try:
                self._pull_audio()
                self._close_segment(summary)
            except Exception as exc:  # noqa: BLE001 - reported through the exit code
                self._fail(exc)
        if not self.closed and self.error is None:
            log.warning("no frame was shown: no recording written")
        return list(self.closed)
