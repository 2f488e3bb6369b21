"""Recorder thread: the frames as shown, each at its display time, with the captured audio muxed in.

Time 0 of the recording is the capture time of the first audio sample, so the picture lags the
sound in the file exactly as it did on the screen (the audio-to-photon latency). The file is
finalised on quit, Ctrl-C or a renderer crash (temporary file + rename, by :class:`VideoWriter`),
and a JSON sidecar records per frame the capture time, display time and latency.
"""

from __future__ import annotations

import logging
import queue
import threading
from pathlib import Path

import numpy as np

from aadiff_live.live.render_thread import Frame
from aadiff_live.live.ring import RingBuffer, RingReader
from aadiff_live.output.sidecar import sidecar_path, write_json_atomic
from aadiff_live.output.video import VideoWriter

log = logging.getLogger(__name__)
MAX_PENDING = 256  # shown frames waiting for the encoder; beyond this they are dropped (and counted)


class Recorder(threading.Thread):
    def __init__(self, path: str | Path, ring: RingBuffer, fps: float, width: int, height: int,
                 stop: threading.Event) -> None:
        super().__init__(name="recorder", daemon=False)
        self.path = Path(path)
        self.ring = ring
        self.stop_event = stop
        self.writer = VideoWriter(self.path, fps, width, height,
                                  audio=np.zeros((0, ring.channels), np.float32), samplerate=ring.samplerate, vfr=True)
        self._reader = RingReader(ring, start=0)
        self._q: queue.Queue[tuple[Frame, float, dict | None]] = queue.Queue(maxsize=MAX_PENDING)
        self.dropped = 0
        self.rows: list[dict] = []  # per written frame, for the sidecar
        self.error: BaseException | None = None
        self._t0: float | None = None

    def add(self, frame: Frame, shown_time: float, extra: dict | None = None) -> None:
        """From the display thread: never blocks. ``extra``: more per-frame fields (gain, scene, ...)."""
        try:
            self._q.put_nowait((frame, shown_time, extra))
        except queue.Full:
            self.dropped += 1
            if self.dropped == 1:
                log.warning("the recorder cannot keep up: dropping frames from the recording")

    def pending(self) -> int:
        return self._q.qsize()

    def _pull_audio(self) -> None:
        _, data = self._reader.read()
        if data.shape[0]:
            self.writer.append_audio(data)

    def _t_zero(self) -> float | None:
        if self._t0 is None:
            self._t0 = self.ring.capture_time(0)
        return self._t0

    def _write(self, frame: Frame, shown: float, extra: dict | None) -> None:
        self._pull_audio()
        t0 = self._t_zero()
        if t0 is None:
            return  # no audio yet: cannot place the frame
        t = max(0.0, shown - t0)
        self.writer.write(frame.image, t=t)
        s = frame.sample
        self.rows.append({"display_time": t, "capture_time": s.capture_time - t0, "latency_s": shown - s.capture_time,
                          "weight": s.weight, "normalised": s.normalised, "rms_db": s.rms_db,
                          "render_s": frame.render_s, "words": list(frame.words), "prompt": frame.prompt,
                          **(extra or {})})

    def run(self) -> None:
        try:
            while True:
                try:
                    item = self._q.get(timeout=0.1)
                except queue.Empty:
                    if self.stop_event.is_set():
                        break
                    self._pull_audio()
                    continue
                self._write(*item)
        except BaseException as exc:  # noqa: BLE001 - reported by finish(); the app keeps showing
            self.error = exc
            log.exception("the recorder failed; the recording stops here")

    def finish(self, settings: dict, summary: dict) -> Path | None:
        """After the thread has ended: all captured audio in, finalise the file, write the sidecar."""
        if self.error is None:
            self._pull_audio()
        path = self.writer.close(complete=True)
        if path is None:
            log.warning("no frame was shown: no recording written")
            return None
        rows = self.rows
        data = {
            "settings": settings,
            "summary": {**summary, "frames_dropped_from_recording": self.dropped},
            "audio": {"samplerate": self.ring.samplerate, "channels": self.ring.channels,
                      "duration_s": self.ring.written / self.ring.samplerate},
            "n_frames": len(rows), "complete": True,
            "frames": {key: [r.get(key) for r in rows] for key in dict.fromkeys(k for r in rows for k in r)},
        }
        side = write_json_atomic(sidecar_path(path), data)
        log.info("recorded %s (%d frames) and %s", path, len(rows), side)
        return path
