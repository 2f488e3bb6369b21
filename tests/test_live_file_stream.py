"""A rehearsal's sound file is streamed from disk (decoded a little ahead, never whole) and can loop."""

from __future__ import annotations

import time
import tracemalloc

import numpy as np
import soundfile as sf

from aadiff_live.live.capture import FileCapture


def _wait(cond, timeout: float = 5.0) -> bool:
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        time.sleep(0.01)
    return cond()


def test_a_long_file_plays_in_flat_memory(tmp_path):
    """Two minutes of 48 kHz stereo (46 MB as float32 samples): starting and playing it takes a few MB,
    not the whole file (the old input decoded the file before the show)."""
    sr = 48000
    path = tmp_path / "set.wav"
    rng = np.random.default_rng(0)
    with sf.SoundFile(path, "w", sr, 2, subtype="PCM_16") as f:
        for _ in range(120):
            f.write((0.1 * rng.standard_normal((sr, 2))).astype(np.float32))
    tracemalloc.start()
    try:
        cap = FileCapture(str(path), blocksize=512, ring_seconds=2.0)
        cap.start()
        try:
            assert _wait(lambda: cap.ring.written >= sr // 4)
            _, peak = tracemalloc.get_traced_memory()
        finally:
            cap.stop()
    finally:
        tracemalloc.stop()
    assert cap.duration == 120.0 and cap.channels == 2 and cap.samplerate == sr
    assert peak < 8 * 2**20, f"{peak / 2**20:.1f} MB traced while starting a 120 s file"


def test_a_looped_file_starts_again_at_its_end_and_never_finishes(tmp_path):
    sr = 48000
    x = (0.5 * np.sin(2 * np.pi * 3 * np.arange(sr // 4) / sr)).astype(np.float32)  # 0.25 s
    path = tmp_path / "loop.wav"
    sf.write(path, x, sr, subtype="FLOAT")
    cap = FileCapture(str(path), blocksize=256, ring_seconds=4.0, loop=True)
    cap.start()
    try:
        assert _wait(lambda: cap.ring.written >= 3 * x.size + 256)
        assert not cap.finished.is_set()
        got = cap.ring.copy_range(0, 3 * x.size)[:, 0]
    finally:
        cap.stop()
    np.testing.assert_allclose(got, np.tile(x, 3), atol=1e-6)  # the file, three times, seamlessly


def test_a_file_ends_once_played_without_loop(tmp_path):
    sr = 44100
    x = np.zeros((sr // 5, 1), np.float32)
    path = tmp_path / "short.flac"
    sf.write(path, x, sr)
    cap = FileCapture(str(path), blocksize=256, ring_seconds=2.0)
    cap.start()
    try:
        assert _wait(lambda: cap.finished.is_set(), 3.0)
    finally:
        cap.stop()
    assert cap.ring.written == x.shape[0] and cap.samplerate == sr


def test_monitored_playback_copies_the_file_out_and_into_the_ring_then_stops(tmp_path):
    """``--monitor``: PortAudio's output callback takes the decoded samples (no lock, no allocation of its
    own), writes them to the speakers and the ring, and stops the stream at the file's end."""
    from types import SimpleNamespace

    import pytest

    sr = 48000
    x = np.linspace(-0.5, 0.5, 3000, dtype=np.float32)
    path = tmp_path / "m.wav"
    sf.write(path, x, sr, subtype="FLOAT")
    cap = FileCapture(str(path), blocksize=1024, ring_seconds=2.0, monitor=True)
    cap._prefetch.start()  # what start() does before it opens the speakers
    cap._prefetch.wait_ready(x.size, timeout=2.0)
    info = SimpleNamespace(outputBufferDacTime=0.0, currentTime=0.0)
    heard = []
    try:
        with pytest.raises(RuntimeError):  # sounddevice's CallbackStop, once the file has ended
            for _ in range(5):
                out = np.full((1024, 1), 9.0, np.float32)
                cap._play(out, 1024, info, None)
                heard.append(out.copy())
    finally:
        cap.stop()
    heard.append(out)
    played = np.concatenate(heard)[:, 0]
    np.testing.assert_array_equal(played[:x.size], x)
    assert not played[x.size:3072].any()  # silence after the end, never stale samples
    np.testing.assert_array_equal(cap.ring.copy_range(0, x.size)[:, 0], x)
