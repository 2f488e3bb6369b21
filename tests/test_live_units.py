"""Live mode pieces without threads: ring buffer, mailbox, hysteresis, devices, analysis, display keys."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from aadiff_live.config import Config  # noqa: E402
from aadiff_live.errors import UserError  # noqa: E402
from aadiff_live.live.analysis_thread import AnalysisThread, live_smoothing_mode  # noqa: E402
from aadiff_live.live.ring import RingBuffer, RingReader  # noqa: E402
from aadiff_live.mailbox import Mailbox  # noqa: E402
from aadiff_live.tokens.choose import Hysteresis, initial_words  # noqa: E402


def test_ring_wraps_and_keeps_order():
    ring = RingBuffer(capacity=10, channels=2, samplerate=100)
    reader = RingReader(ring, start=0)
    data = np.arange(28, dtype=np.float32).reshape(14, 2)
    ring.write(data[:6], 1.0)
    start, got = reader.read()
    assert start == 0 and np.array_equal(got, data[:6])
    ring.write(data[6:14], 1.06)  # wraps around the end
    start, got = reader.read()
    assert start == 6 and np.array_equal(got, data[6:14])
    assert reader.lost == 0
    assert np.array_equal(ring.latest(4), data[10:14])


def test_ring_capture_times_and_overrun():
    ring = RingBuffer(capacity=8, channels=1, samplerate=100)
    reader = RingReader(ring, start=0)
    for k in range(5):
        ring.write(np.full((4, 1), k, np.float32), 10.0 + k * 0.04)
    assert ring.capture_time(0) is not None
    assert ring.capture_time(9) == pytest.approx(10.0 + 0.08 + 0.01)
    assert ring.capture_time(19) == pytest.approx(10.16 + 0.03)
    start, got = reader.read()  # 20 written, only 8 kept: the reader is told what it lost
    assert reader.lost == 20 - 4 and start == 16 and got[:, 0].tolist() == [4, 4, 4, 4]


def test_ring_write_does_not_allocate_arrays():
    # tracemalloc sees every numpy buffer, temporaries included (an id() check only sees the ring's own arrays)
    import tracemalloc

    ring = RingBuffer(capacity=4096, channels=2, samplerate=48000)
    blocks = [np.ones((256, 2), np.float32) for _ in range(100)]
    ring.write(blocks[0], 0.0)
    tracemalloc.start()
    try:
        tracemalloc.reset_peak()
        base = tracemalloc.get_traced_memory()[0]
        for i, block in enumerate(blocks):  # wraps around the ring six times
            ring.write(block, i * 0.005)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak - base < 1024, f"{peak - base} bytes allocated while writing (a block is {blocks[0].nbytes})"
    assert ring.written == 101 * 256 and ring.copy_range(ring.written - 4, ring.written)[:, 0].tolist() == [1.0] * 4


def test_mailbox_newest_wins_and_never_grows():
    box: Mailbox[int] = Mailbox()
    for i in range(100):
        box.put(i)
        assert box.qsize() == 1
    assert box.get(timeout=0) == 99
    assert box.get(timeout=0) is None
    assert box.dropped == 99
    threading.Timer(0.05, box.put, args=(7,)).start()
    assert box.get(timeout=2) == 7  # a waiting reader wakes on put (no polling)


def test_hysteresis_switches_only_by_margin():
    h = Hysteresis(top_k=1, margin=0.05)
    assert h.update({"fire": 0.30, "rain": 0.20}) == (["fire"], True)
    assert h.update({"fire": 0.30, "rain": 0.33}) == (["fire"], False)  # better, but not by the margin
    assert h.update({"fire": 0.30, "rain": 0.36}) == (["rain"], True)
    assert h.update({"fire": 0.37, "rain": 0.36}) == (["rain"], False)
    h.reset()
    assert h.update({"fire": 0.37, "rain": 0.36}) == (["fire"], True)
    h2 = Hysteresis(top_k=2, margin=0.01)
    words, _ = h2.update({"a": 0.5, "b": 0.4, "c": 0.1})
    assert set(words) == {"a", "b"}
    assert set(h2.update({"a": 0.5, "b": 0.4, "c": 0.42})[0]) == {"a", "b"}  # mean 0.46 vs 0.45
    assert set(h2.update({"a": 0.5, "b": 0.4, "c": 0.45})[0]) == {"a", "c"}


def test_initial_words_and_causal_mode():
    assert initial_words("a fire in the rain", 1) == ["fire"]
    assert live_smoothing_mode("centred") == "attack-release"
    assert live_smoothing_mode("trailing") == "trailing"


def _analyse(signal: np.ndarray, sr: int = 48000, block: int = 256) -> list:
    cfg = Config()
    ring = RingBuffer(sr * 4, 1, sr)
    out: Mailbox = Mailbox()
    a = AnalysisThread(ring, cfg.envelope, cfg.live, out, threading.Event())
    samples = []
    pos = 0
    for s in range(0, signal.size, block):
        blk = signal[s:s + block, None].astype(np.float32)
        ring.write(blk, s / sr)
        r = a.step(blk[:, 0], pos)
        pos += blk.shape[0]
        if r is not None:
            samples.append(r)
    return samples


def test_silence_rests_at_w_min_and_quiet_noise_is_not_pumped():
    sr = 48000
    rng = np.random.default_rng(0)
    silent = _analyse(np.zeros(sr * 2))
    assert all(s.weight == 0.0 for s in silent)
    # room noise at -70 dBFS: under the gate, no flicker
    room = _analyse(10 ** (-70 / 20) * rng.standard_normal(sr * 3))
    assert all(s.weight == 0.0 for s in room)
    # noise at -45 dBFS: above the gate, but the AGC floor keeps it well below full weight
    hum = _analyse(10 ** (-45 / 20) * rng.standard_normal(sr * 3))
    assert max(s.weight for s in hum[10:]) < 0.5
    # a loud burst after quiet reaches near full weight, and frames carry rising capture times
    loud = _analyse(np.concatenate([np.zeros(sr), 0.3 * rng.standard_normal(sr)]))
    assert max(s.weight for s in loud) > 1.9
    times = [s.capture_time for s in loud]
    assert all(b > a for a, b in zip(times, times[1:], strict=False))
    assert times[-1] == pytest.approx(2.0, abs=0.05)


def _fake_devices(monkeypatch, devices, default_in=-1):
    import sounddevice as sd

    monkeypatch.setattr(sd, "query_devices", lambda *a, **k: devices)
    monkeypatch.setattr(sd.default, "device", [default_in, -1])


def test_resolve_input_by_index_name_and_default(monkeypatch):
    from aadiff_live.live.devices import resolve_input

    devs = [
        {"index": 0, "name": "HDA Intel: ALC (hw:0,0)", "max_input_channels": 2, "default_samplerate": 48000.0},
        {"index": 1, "name": "Speakers", "max_input_channels": 0, "default_samplerate": 48000.0},
        {"index": 2, "name": "USB Mic", "max_input_channels": 1, "default_samplerate": 44100.0},
    ]
    _fake_devices(monkeypatch, devs, default_in=2)
    assert resolve_input("default").index == 2
    assert resolve_input("0").name.startswith("HDA")
    assert resolve_input("usb").index == 2
    with pytest.raises(UserError, match="no input device has that index"):
        resolve_input("1")
    with pytest.raises(UserError, match="matches no input device"):
        resolve_input("webcam")


def test_no_input_device_is_a_clear_error_exit_2(monkeypatch, cli):
    _fake_devices(monkeypatch, [{"index": 0, "name": "Speakers", "max_input_channels": 0,
                                 "default_samplerate": 48000.0}])
    code, _out, err = cli("live", "--model", "tiny", "--prompt", "fire", "--no-display", "--input", "default")
    assert code == 2
    assert "no audio input device" in err and "aadiff-live devices" in err
    assert "Traceback" not in err
    code, _out, err = cli("devices")
    assert code == 2 and "no audio input devices" in err


def test_missing_input_file_is_a_clear_error(cli, tmp_path):
    code, _out, err = cli("live", "--model", "tiny", "--prompt", "fire", "--no-display",
                          "--input", str(tmp_path / "nope.wav"))
    assert code == 2 and "no such sound file" in err


def test_display_keys_and_hud_draw(tmp_path):
    pygame = pytest.importorskip("pygame")
    from aadiff_live.live.display import Display, HudInfo

    d = Display(64, 64, window_size=128, fullscreen=False, display=0, hud=True)
    try:
        d.set_picture(np.full((64, 64, 3), 128, np.uint8))
        d.draw(HudInfo(fps=10, render_ms=20, latency_ms=30, level_db=-20, words=("fire",), weight=1.5,
                       input_status="ok", prompt="a fire"))
        post = lambda **kw: pygame.event.post(pygame.event.Event(pygame.KEYDOWN, mod=0, unicode="", scancode=0, **kw))  # noqa: E731
        post(key=pygame.K_EQUALS)
        post(key=pygame.K_h)
        post(key=pygame.K_SPACE)
        post(key=pygame.K_RIGHTBRACKET)
        act = d.poll()
        # gain, HUD and freeze are asked for; the display loop applies them through the rig (one control path)
        assert act.gain_factor > 1 and act.hud is False and act.toggle_freeze and d.hud and d.window_size == 192
        assert d.screen.get_size() == (192, 192)
        post(key=pygame.K_p)
        d.poll()
        assert d.typing == ""
        pygame.event.post(pygame.event.Event(pygame.TEXTINPUT, text="rain"))
        post(key=pygame.K_RETURN)
        act = d.poll()
        assert act.new_prompt == "rain" and d.typing is None
        post(key=pygame.K_q)
        assert d.poll().quit
        d.save(str(tmp_path / "shot.png"))
        assert (tmp_path / "shot.png").stat().st_size > 0
    finally:
        d.close()


def test_streaming_writer_drops_encoded_audio(tmp_path):
    from aadiff_live.output.video import VideoWriter

    w = VideoWriter(tmp_path / "a.mp4", 30, 64, 64, audio=np.zeros((0, 2), np.float32), samplerate=48000,
                             vfr=True)
    img = np.zeros((64, 64, 3), np.uint8)
    for i in range(60):  # 2 s: audio blocks of 1/30 s, a frame each
        w.append_audio(np.full((1600, 2), 0.1, np.float32))
        w.write(img, t=i / 30)
        assert len(w._pending) <= 2  # encoded audio is not kept
    assert w.close(complete=True) is not None
    import av

    with av.open(str(tmp_path / "a.mp4")) as c:
        n = sum(f.samples for f in c.decode(audio=0))
    assert abs(n - 60 * 1600) <= 2048


def test_quit_cancels_a_render_in_progress_and_unhooks(tiny_components):
    import torch

    from aadiff_live.backends import make_backend
    from aadiff_live.live.render_thread import RenderCancelled, _blocks, cancellable
    from aadiff_live.rendering.pipeline import Renderer

    backend = make_backend("torch", tiny_components, torch.device("cpu"), torch.float32, width=64, height=64)
    r = Renderer(tiny_components, backend, width=64, height=64)
    r.prepare("a fire")
    stop = threading.Event()
    points = _blocks(tiny_components)
    assert len(points) > 10  # resnets, attentions, resamplers of the UNet and the decoder
    with cancellable(points, stop):
        r.render(1.0, [3])  # not stopping: renders
        stop.set()
        with pytest.raises(RenderCancelled):
            r.render(1.5, [3])
    assert r.render(1.5, [3]).shape == (64, 64, 3)  # hooks gone with the context


def test_block_capture_times_are_never_in_the_future():
    """A block is complete when the callback runs: its last sample cannot be younger than 'now' (PulseAudio's
    ALSA plugin reports ADC times that said otherwise, and a live latency came out negative)."""
    from aadiff_live.live.capture import _stream_time_to_monotonic as t

    block = 256 / 44100
    assert t(10.000, 10.020, 100.0, block) == pytest.approx(100.0 - 0.020)  # a plausible ADC time is kept
    assert t(10.019, 10.020, 100.0, block) == pytest.approx(100.0 - block)  # 1 ms old for a 5.8 ms block: no
    assert t(0.0, 0.0, 100.0, block) == pytest.approx(100.0 - block)  # no ADC time reported
    assert t(5.0, 10.0, 100.0, block) == pytest.approx(100.0 - block)  # an implausible 5 s: not trusted
