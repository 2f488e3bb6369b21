"""The live recorder for runs of days: rows streamed to disk, no audio pile-up, segments, write errors."""

from __future__ import annotations

import json
import threading
import time
from contextlib import contextmanager

import numpy as np
import pytest

from aadiff_live.live.messages import Frame, WeightSample
from aadiff_live.live.recorder import Recorder
from aadiff_live.live.ring import RingBuffer
from aadiff_live.output.sidecar import read_frames

SR = 48000
T0 = 1000.0  # capture time (monotonic s) of the first sample


def make_ring(seconds: float, capacity_s: float = 8.0, seed: int = 0) -> tuple[RingBuffer, np.ndarray]:
    """A ring holding ``seconds`` of stereo noise whose level steps every 0.25 s, written in 256-sample blocks."""
    ring = RingBuffer(int(capacity_s * SR), 2, SR)
    n = int(seconds * SR)
    level = 0.05 + 0.25 * ((np.arange(n) // (SR // 4)) % 2)
    x = (level[:, None] * np.random.default_rng(seed).standard_normal((n, 2))).astype(np.float32)
    for s in range(0, n, 256):
        ring.write(x[s:s + 256], T0 + s / SR)
    return ring, x


def frame(i: int, fps: float = 30.0, size: int = 64) -> Frame:
    img = np.full((size, size, 3), (i * 7) % 256, np.uint8)
    cap = T0 + i / fps
    return Frame(img, WeightSample(i, 1.0 + (i % 2), 0.5, -20.0, cap), ("fire",), "a fire", 0.01)


def decode(path):
    import av

    with av.open(str(path)) as c:
        sr = c.streams.audio[0].rate
        audio = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1)
    with av.open(str(path)) as c:
        times = [float(f.time) for f in c.decode(video=0)]
    return audio, sr, times


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@contextmanager
def running(rec: Recorder, stop: threading.Event, timeout: float = 5.0):
    """The recorder's thread runs inside the block; on leaving it (even on a failed assert) it is stopped and joined."""
    rec.start()
    try:
        yield rec
    finally:
        stop.set()
        rec.join(timeout=timeout)


def wait_for(cond, timeout=10.0):
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            return False
        time.sleep(0.01)
    return True


def test_rows_stream_to_disk_as_they_come_and_nothing_per_frame_is_kept(tmp_path):
    ring, _ = make_ring(3.0)
    stop = threading.Event()
    out = tmp_path / "set.mp4"
    rec = Recorder(out, ring, 30.0, 64, 64, stop, clock=Clock(T0 + 3.0))
    with running(rec, stop):
        for i in range(40):
            rec.add(frame(i), T0 + i / 30 + 0.05, extra={"scene": i // 20})
        rows = tmp_path / "set.mp4.frames.jsonl"
        # the newest refresh is decided by the next one (or at the end): 39 rows on disk while it runs
        assert wait_for(lambda: rows.is_file() and len(rows.read_text().splitlines()) >= 39)
        # while the show runs: every row is on disk, none is held in memory
        assert not any(isinstance(v, list) and len(v) >= 40 for v in vars(rec).values())
        first = json.loads(rows.read_text().splitlines()[0])
        assert first["scene"] == 0 and first["words"] == ["fire"] and first["weight"] == 1.0
    files = rec.finish({"frames_shown": 40})
    assert files == [out]
    side = json.loads((tmp_path / "set.mp4.json").read_text())
    assert side["frames_file"] == "set.mp4.frames.jsonl" and side["n_frames"] == 40 and side["complete"]
    cols = read_frames(tmp_path / "set.mp4.json")
    assert len(cols["time"]) == 40 and cols["scene"][-1] == 1
    np.testing.assert_allclose(np.diff(cols["time"]), 1 / 30, atol=2e-3)


def test_frames_are_the_refreshes_shown_at_the_files_frame_times(tmp_path):
    """A 60 Hz display half a 30 fps frame out of phase with the first sound sample: each frame of the file (row
    ``time``, from the first sample) is the refresh shown at that time, not one half a frame before it."""
    ring, _ = make_ring(3.0)
    stop = threading.Event()
    out = tmp_path / "phase.mp4"
    rec = Recorder(out, ring, 30.0, 64, 64, stop, clock=Clock(T0 + 3.0))
    with running(rec, stop):
        for i in range(60):
            rec.add(frame(i, fps=60), T0 + 0.5 + 1 / 60 - 0.0002 + i / 60)
    rec.finish({})
    cols = read_frames(tmp_path / "phase.mp4.json")
    off = np.array(cols["time"]) - (np.array(cols["capture_time"]) + np.array(cols["latency_s"]))  # frame - shown
    assert len(off) >= 29 and abs(off[0]) <= 0.5 / 30  # the first refresh takes the first frame at once
    assert np.abs(off[1:]).max() < 1e-3, off  # a grid started at the first refresh: 16.5 ms on every frame


def test_frozen_picture_does_not_pile_up_audio(tmp_path):
    """Space freezes the display: no frame reaches the recorder, but the audio keeps being encoded."""
    ring = RingBuffer(8 * SR, 2, SR)
    stop = threading.Event()
    clock = Clock(T0)
    rec = Recorder(tmp_path / "frozen.mp4", ring, 30.0, 64, 64, stop, clock=clock)
    block = np.zeros((SR // 10, 2), np.float32)
    worst = 0.0
    with running(rec, stop):
        ring.write(block, T0)
        rec.add(frame(0), T0 + 0.05)  # one frame, then frozen for 10 s of audio (played 4x faster than real)
        assert wait_for(lambda: rec.current_path is not None)
        for k in range(1, 100):
            ring.write(block, T0 + k / 10)
            clock.t = T0 + (k + 1) / 10
            time.sleep(0.025)
            worst = max(worst, rec.audio_queued_s())
    files = rec.finish({})
    assert worst < 1.5, worst  # bounded by the recorder's idle period and AUDIO_LAG_S, not by the freeze
    audio, sr, times = decode(files[0])
    assert len(times) == 1 and audio.shape[1] / sr == pytest.approx(10.0, abs=0.1)


def test_segment_boundaries_split_audio_and_frames_without_loss(tmp_path):
    seconds, seg_s = 3.5, 1.0
    ring, x = make_ring(seconds)
    stop = threading.Event()
    out = tmp_path / "set.mp4"
    rec = Recorder(out, ring, 30.0, 64, 64, stop, segment_s=seg_s, clock=Clock(T0 + seconds))
    n = int(seconds * 30)
    with running(rec, stop, timeout=10):
        for i in range(n):
            rec.add(frame(i), T0 + i / 30 + 0.04)
    files = rec.finish({"frames_shown": n})
    assert len(files) == 4 and not out.exists()
    names = [f.name for f in files]
    assert all(nm.startswith("set_") and nm.endswith("Z.mp4") for nm in names)
    assert names == sorted(names) and len(set(names)) == 4  # one second apart: the start time is in the name
    total_audio = 0
    total_rows = 0
    for k, f in enumerate(files):
        side = json.loads(f.with_name(f.name + ".json").read_text())
        assert side["complete"] and side["segment"]["index"] == k
        assert side["segment"]["start_s"] == pytest.approx(k * seg_s, abs=1e-6)
        audio, sr, times = decode(f)
        expected = min(seg_s, seconds - k * seg_s)
        assert side["audio"]["duration_s"] == pytest.approx(expected, abs=1e-3)
        assert audio.shape[1] / sr == pytest.approx(expected, abs=0.05)  # AAC pads to whole 1024-sample frames
        cols = read_frames(f.with_name(f.name + ".json"))
        d = np.array(cols["time"])
        assert len(times) == len(d) == side["n_frames"] > 0
        assert d.min() >= 0 and d.max() < seg_s
        total_audio += round(side["audio"]["duration_s"] * SR)
        total_rows += len(d) - sum(1 for h in cols.get("held", []) if h)
    assert total_audio == x.shape[0]  # every captured sample is in exactly one file
    assert total_rows == n  # every shown frame too (plus one held picture at each new file's start)
    # the audio really is the captured audio, in order: the level steps line up across the files
    joined = np.concatenate([decode(f)[0][:, : round(json.loads(f.with_name(f.name + ".json").read_text())
                                                            ["audio"]["duration_s"] * SR)] for f in files], axis=1)
    env = np.abs(joined.mean(axis=0)).reshape(-1, SR // 4).mean(axis=1)
    ref = np.abs(x.mean(axis=1)[: joined.shape[1]]).reshape(-1, SR // 4).mean(axis=1)
    assert np.corrcoef(env, ref)[0, 1] > 0.99


class FailingWriterAfter:
    """Patches VideoWriter.write to raise like a full disk after ``n`` frames."""

    def __init__(self, monkeypatch, n: int) -> None:
        from aadiff_live.output import video

        self.n, self.count = n, 0
        real = video.VideoWriter.write

        def write(writer, image, t=None, index=None):
            self.count += 1
            if self.count > self.n:
                raise OSError(28, "No space left on device")
            return real(writer, image, t, index)

        monkeypatch.setattr(video.VideoWriter, "write", write)


def test_disk_write_error_is_loud_and_the_recorder_keeps_draining(tmp_path, monkeypatch, caplog):
    FailingWriterAfter(monkeypatch, 10)
    monkeypatch.setattr("aadiff_live.live.recorder.RETRY_S", 0.3)
    ring, _ = make_ring(3.0)
    stop = threading.Event()
    clock = Clock(T0 + 3.0)
    rec = Recorder(tmp_path / "full.mp4", ring, 30.0, 64, 64, stop, clock=clock)
    with running(rec, stop):
        for i in range(20):
            rec.add(frame(i), T0 + i / 30 + 0.05)
        assert wait_for(lambda: rec.alert is not None)
        assert "RECORDING FAILED" in rec.alert and "No space left" in rec.alert
        # the show goes on: frames are taken (not queued up, not "cannot keep up")
        for i in range(20, 400):
            rec.add(frame(i), T0 + i / 30 + 0.05)
        assert rec.dropped == 0 and rec.is_alive()
        clock.t += 1.0  # the retry is due: a new file is tried (and fails again on the next frame)
        assert wait_for(lambda: rec.failures >= 2 or rec.alert is None)
    rec.finish({})
    assert rec.error is not None and "recording failed" in caplog.text and "cannot keep up" not in caplog.text
    # what was written before the failure is kept and playable (fragmented MP4)
    _, _, times = decode(tmp_path / "full.mp4")
    assert len(times) >= 1


def test_killed_process_leaves_a_playable_open_file(tmp_path):
    """A crash or power cut: the open fragmented MP4 plays up to its last flushed fragment."""
    import subprocess
    import sys

    out = tmp_path / "crash.mp4"
    script = f"""
import os, signal, numpy as np
from aadiff_live.output.video import VideoWriter
w = VideoWriter({str(out)!r}, 30.0, 64, 64, audio=np.zeros((0, 1), np.float32), samplerate=48000, vfr=True,
                fragmented=True)
rng = np.random.default_rng(0)
for i in range(240):  # 8 s
    w.append_audio(0.1 * rng.standard_normal(1600).astype(np.float32))
    w.write(np.full((64, 64, 3), i % 256, np.uint8), t=i / 30)
os.kill(os.getpid(), signal.SIGKILL)
"""
    p = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert p.returncode == -9, p.stderr
    audio, sr, times = decode(out)
    assert len(times) >= 150 and audio.shape[1] / sr >= 5.0  # at most ~2 s fragments (+ encoder delay) lost
