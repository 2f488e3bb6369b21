"""Faults in live mode: a device that vanishes mid-set, and Ctrl-C while recording."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from helpers import bursts_wav, hang_nth_render, run_watched  # noqa: E402

from aadiff_live.errors import UserError  # noqa: E402
from aadiff_live.live import capture as capture_mod  # noqa: E402


def test_device_vanishing_reports_no_input_and_reopens(monkeypatch):
    sd = capture_mod.sounddevice_module()
    pa = FakePortAudio(sd, monkeypatch)
    monkeypatch.setattr(capture_mod, "STALL_S", 0.3)
    monkeypatch.setattr(capture_mod, "RETRY_S", 0.1)
    cap = capture_mod.open_capture("USB Audio", samplerate=None, blocksize=256, ring_seconds=2.0, monitor=False)
    cap.start()
    assert pa.streams[0].latency == "low"  # PortAudio's low input latency, not sounddevice's default 'high'
    try:
        assert _wait(lambda: cap.status == "ok") and cap.ring.written > 0
        pa.unplug(3)
        assert _wait(lambda: cap.status == "no input")
        pa.plug(3, "USB Audio (hw:2,0)")  # back where it was
        assert _wait(lambda: cap.status == "ok") and len(pa.streams) == 2
    finally:
        t0 = time.monotonic()
        cap.stop()
        assert time.monotonic() - t0 < 1.5
    assert all(s.closed for s in pa.streams)
    assert not any(t.name in ("capture-watchdog", "fake-portaudio") for t in threading.enumerate())


def test_ctrl_c_finalises_the_recording(tmp_path):
    import soundfile as sf

    sr = 48000
    x = (0.2 * np.random.default_rng(0).standard_normal(sr * 30)).astype(np.float32)
    sf.write(str(tmp_path / "in.wav"), x, sr)
    out = tmp_path / "ctrlc.mp4"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SDL_VIDEODRIVER": "dummy"}
    proc = subprocess.Popen([sys.executable, "-m", "aadiff_live", "live", "--model", "tiny", "--size", "64",
                             "--input", str(tmp_path / "in.wav"), "--prompt", "a fire", "--tokens", "fire",
                             "--no-display", "--record", str(out)], stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        for line in proc.stderr:  # wait until the app is running
            lines.append(line)
            if "live: headless" in line:
                break
        assert _wait(lambda: _rows(tmp_path / "ctrlc.mp4.frames.jsonl") >= 5, 30)  # frames are being recorded
        proc.send_signal(signal.SIGINT)
        _, rest = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = "".join(lines) + rest
    assert proc.returncode == 0, err
    assert "stopped (Ctrl-C)" in err and "Traceback" not in err
    assert out.is_file() and (tmp_path / "ctrlc.mp4.json").is_file()


@pytest.mark.parametrize("spec", ["nosuchdevice"])
def test_unknown_device_name_lists_devices(monkeypatch, cli, spec):
    import sounddevice as sd

    monkeypatch.setattr(sd, "query_devices", lambda *a, **k: [
        {"index": 0, "name": "Built-in Microphone", "max_input_channels": 2, "default_samplerate": 44100.0}])
    code, _out, err = cli("live", "--model", "tiny", "--prompt", "fire", "--no-display", "--input", spec)
    assert code == 2 and "0: Built-in Microphone" in err


def _tiny_cfg(src, **live):
    from aadiff_live.config import load_config

    return load_config(None, {"model": {"model": "tiny", "size": "64"}, "live": {"input": str(src), **live},
                              "tokens": {"tokens": ["fire"]}})


def test_recorder_disk_error_shows_in_hud_and_exit_code_while_the_show_goes_on(tmp_path, monkeypatch, caplog):
    from aadiff_live.live import display as display_mod
    from aadiff_live.live.app import LiveApp
    from aadiff_live.output import video

    src = tmp_path / "in.wav"
    bursts_wav(src, 30.0)
    real_write = video.VideoWriter.write
    count = {"n": 0}

    def full_disk(self, image, t=None, index=None):
        count["n"] += 1
        if count["n"] > 2:
            raise OSError(28, "No space left on device")
        return real_write(self, image, t, index)

    monkeypatch.setattr(video.VideoWriter, "write", full_disk)
    alerts: list[str] = []
    real_draw = display_mod.Display.draw

    def draw(self, hud):
        alerts.extend(hud.alerts)
        return real_draw(self, hud)

    monkeypatch.setattr(display_mod.Display, "draw", draw)
    stats: dict = {}
    app = LiveApp(_tiny_cfg(src), prompt="a fire", no_display=False, duration=60.0, record=str(tmp_path / "rec.mp4"),
                  monitor=False, stats_out=stats)

    def stop_after_frames():  # however loaded the machine: stop once the show has gone on for a while
        while not app.stop.wait(0.1):
            if app.present.stats.n_shown >= 12 and alerts:
                app.stop.set()

    code = run_watched(app, stop_after_frames)
    assert code == 1  # loud at the end ...
    assert any("RECORDING FAILED" in a and "No space left" in a for a in alerts)  # ... and on screen
    assert "recording failed" in caplog.text and "cannot keep up" not in caplog.text
    assert stats["frames_shown"] >= 12 and stats["stopped_by"] == "stopped"  # the show went on


def test_finish_raising_still_closes_the_window_and_restores_sigterm(tmp_path, monkeypatch):
    from aadiff_live.live import display as display_mod
    from aadiff_live.live.app import run_live
    from aadiff_live.live.recorder import Recorder

    src = tmp_path / "in.wav"
    bursts_wav(src, 10.0)

    def boom(self, summary):
        raise RuntimeError("simulated finish failure")

    monkeypatch.setattr(Recorder, "finish", boom)
    closed = []
    real_close = display_mod.Display.close
    monkeypatch.setattr(display_mod.Display, "close", lambda self: (closed.append(1), real_close(self)))

    def mine(*_):
        pass

    previous = signal.signal(signal.SIGTERM, mine)
    try:
        code = run_live(_tiny_cfg(src), prompt="a fire", no_display=False, duration=1.5,
                        record=str(tmp_path / "rec.mp4"))
        assert signal.getsignal(signal.SIGTERM) is mine
    finally:
        signal.signal(signal.SIGTERM, previous)
    assert closed == [1] and code == 1


def _decode_av(path):
    import av

    with av.open(str(path)) as c:
        sr = c.streams.audio[0].rate
        audio = sum(f.samples for f in c.decode(audio=0)) / sr
    with av.open(str(path)) as c:
        frames = sum(1 for _ in c.decode(video=0))
    return frames, audio


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_stop_mid_segment_leaves_playable_files_with_audio(tmp_path, sig):
    import json

    src = tmp_path / "in.wav"
    bursts_wav(src, 60.0)
    out = tmp_path / "set.mp4"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "SDL_VIDEODRIVER": "dummy"}
    proc = subprocess.Popen([sys.executable, "-m", "aadiff_live", "live", "--model", "tiny", "--size", "64",
                             "--input", str(src), "--prompt", "a fire", "--tokens", "fire", "--no-display",
                             "--record", str(out), "--segment-minutes", "0.05"],  # 3 s files
                            stderr=subprocess.PIPE, text=True, env=env)
    try:
        lines = []
        for line in proc.stderr:
            lines.append(line)
            if "recording segment 2" in line:  # the first file is closed and the second is open
                break
        # mid-segment: the second file has recorded 1 s (a segment is 3 s)
        assert _wait(lambda: len(files := sorted(tmp_path.glob("set_*Z.mp4.frames.jsonl"))) >= 2
                     and _span_s(files[-1]) >= 1.0, 30)
        proc.send_signal(sig)
        _, rest = proc.communicate(timeout=40)
    finally:
        if proc.poll() is None:
            proc.kill()
    err = "".join(lines) + rest
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    files = sorted(tmp_path.glob("set_*Z.mp4"))
    assert len(files) >= 2 and not out.exists(), err
    for f in files:
        side = json.loads(f.with_name(f.name + ".json").read_text())
        frames, audio_s = _decode_av(f)
        assert side["complete"] and frames == side["n_frames"] > 0
        assert audio_s == pytest.approx(side["audio"]["duration_s"], abs=0.05) and audio_s > 0.5
    assert json.loads(files[0].with_name(files[0].name + ".json").read_text())["audio"]["duration_s"] == \
        pytest.approx(3.0, abs=1e-3)


class FakePortAudio:
    """A PortAudio whose device list, like the real one, is read when it initialises: a device
    unplugged and plugged back (with a new index, as USB does) is seen only after a re-initialise."""

    def __init__(self, sd, monkeypatch, stream_cls: type | None = None) -> None:
        self.sd = sd
        self.system = {0: "Built-in Microphone", 3: "USB Audio (hw:2,0)"}  # what is plugged in now
        self.seen = dict(self.system)  # PortAudio's list, from the last initialise
        self.inits = 0
        self.streams: list[FakePAStream] = []
        fake = self

        class Stream(stream_cls or FakePAStream):  # type: ignore[misc]
            def __init__(self, **kw):
                super().__init__(fake, **kw)

        monkeypatch.setattr(sd, "InputStream", Stream)
        monkeypatch.setattr(sd, "query_devices", self.query_devices)
        monkeypatch.setattr(sd, "default", SimpleNamespace(device=(0, None)))
        monkeypatch.setattr(sd, "_terminate", lambda: None)
        monkeypatch.setattr(sd, "_initialize", self.initialize)

    def initialize(self):
        self.inits += 1
        self.seen = dict(self.system)

    def query_devices(self, *a, **k):
        return [{"index": i, "name": n, "max_input_channels": 2, "default_samplerate": 48000.0}
                for i, n in sorted(self.seen.items())]

    def unplug(self, index):
        del self.system[index]

    def plug(self, index, name):
        self.system[index] = name


class FakePAStream:
    def __init__(self, pa, *, device, channels, samplerate, blocksize, dtype, callback, latency=None):
        if pa.system.get(device) != pa.seen.get(device) or device not in pa.system:
            raise pa.sd.PortAudioError(f"Invalid device {device}")
        self.pa, self.device, self.callback, self.blocksize, self.channels = pa, device, callback, blocksize, channels
        self.latency = latency
        self.active = False
        self.closed = False
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, name="fake-portaudio")
        pa.streams.append(self)

    def _run(self):
        block = np.zeros((self.blocksize, self.channels), np.float32)
        info = SimpleNamespace(inputBufferAdcTime=0.0, currentTime=0.0)
        while not self._stop.wait(0.005):
            if self.device not in self.pa.system:
                self.active = False
                return
            self.callback(block, self.blocksize, info, 0)

    def start(self):
        self.active = True
        self._t.start()

    def close(self, ignore_errors=True):
        self.closed = True
        self._stop.set()
        if self._t.is_alive():
            self._t.join(timeout=1)


def _rows(path) -> int:
    """Lines in a recording's frames file so far (0 before it exists)."""
    try:
        return len(path.read_text().splitlines())
    except OSError:
        return 0


def _span_s(path) -> float:
    """Seconds between the first and the last frame recorded so far in a frames file (0 before two exist)."""
    import json

    try:
        times = [json.loads(line)["time"] for line in path.read_text().splitlines() if line.endswith("}")]
    except OSError:
        return 0.0
    return times[-1] - times[0] if len(times) > 1 else 0.0


def _wait(cond, timeout=5.0):
    end = time.monotonic() + timeout
    while not cond() and time.monotonic() < end:
        time.sleep(0.02)
    return cond()


def test_replugged_usb_interface_is_found_again_by_name(monkeypatch):
    sd = capture_mod.sounddevice_module()
    pa = FakePortAudio(sd, monkeypatch)
    monkeypatch.setattr(capture_mod, "STALL_S", 0.3)
    monkeypatch.setattr(capture_mod, "RETRY_S", 0.1)
    cap = capture_mod.open_capture("USB Audio", samplerate=None, blocksize=256, ring_seconds=2.0, monitor=False)
    cap.start()
    try:
        assert _wait(lambda: cap.status == "ok")
        pa.unplug(3)
        assert _wait(lambda: cap.status == "no input")
        inits = pa.inits
        assert _wait(lambda: pa.inits >= inits + 2)  # a few failed tries while it is away
        pa.plug(5, "USB Audio (hw:3,0)")  # back, with another index and card number
        assert _wait(lambda: cap.status == "ok"), "the replugged interface was not found again"
        assert cap.device.index == 5 and cap.device.name == "USB Audio (hw:3,0)" and pa.inits >= 1
        written = cap.ring.written
        assert _wait(lambda: cap.ring.written > written)
    finally:
        cap.stop()
    assert all(s.closed for s in pa.streams)


def test_stop_during_a_reopen_leaves_no_stream_running(monkeypatch):
    """stop() while the watchdog is still opening a new stream: that stream must not survive."""
    sd = capture_mod.sounddevice_module()
    pa = FakePortAudio(sd, monkeypatch)
    monkeypatch.setattr(capture_mod, "STALL_S", 0.3)
    monkeypatch.setattr(capture_mod, "RETRY_S", 0.05)
    cap = capture_mod.open_capture("USB Audio", samplerate=None, blocksize=256, ring_seconds=2.0, monitor=False)
    opening = threading.Event()
    release = threading.Event()
    real_stream = sd.InputStream

    def slow_open(**kw):
        if pa.streams:  # the reopen, not the first open: hangs like a slow driver
            opening.set()
            release.wait(5)
        return real_stream(**kw)

    cap.start()
    try:
        assert _wait(lambda: cap.status == "ok")
        monkeypatch.setattr(sd, "InputStream", slow_open)
        pa.unplug(3)
        assert _wait(lambda: cap.status == "no input")
        pa.plug(3, "USB Audio (hw:2,0)")  # back: the next try finds it and opens it, slowly
        assert opening.wait(5)
    finally:
        cap.stop()  # gives up waiting for the watchdog after 1 s
        release.set()
    # the slow open returns after stop(): its stream must be closed at once, so no thread writes into the ring
    assert _wait(lambda: not any(t.name in ("capture-watchdog", "fake-portaudio") for t in threading.enumerate()))
    assert len(pa.streams) == 2 and all(s.closed for s in pa.streams), "a stream opened after stop() was left open"


# ---------------------------------------------------------------- failing threads: CLAP, analysis (supervisor)
def test_supervisor_restarts_a_bounded_number_of_times_then_stops_the_app(caplog):
    from aadiff_live.live.supervisor import Supervisor

    stop = threading.Event()
    calls = []

    def flaky():
        calls.append(time.monotonic())
        if len(calls) <= 2:
            raise ValueError(f"boom {len(calls)}")

    s = Supervisor("analysis", stop, restarts=3, backoff_s=0.02)
    s.run(flaky)
    assert len(calls) == 3 and s.restarts == 2 and s.error is None and not stop.is_set()
    assert calls[2] - calls[1] >= 0.04 - 1e-3  # the back-off doubles: 0.02 s, then 0.04 s
    assert "ANALYSIS RESTARTED (2/3): ValueError: boom 2" == s.alert()
    assert caplog.text.count("restarting it in") == 2

    def always():
        calls.append(time.monotonic())
        raise OSError("gone")

    calls.clear()
    s = Supervisor("clap", stop, restarts=2, backoff_s=0.01)
    s.run(always)
    assert len(calls) == 3 and isinstance(s.error, OSError) and stop.is_set()  # 2 restarts, then it gives up
    assert s.alert() == "CLAP FAILED: OSError: gone"
    assert "after 2 restart(s); the app stops" in caplog.text


class _FlakyClap:
    """A CLAP ranker whose 2nd and 3rd rankings raise (a driver error, an out-of-memory), then it works again."""

    calls: list[float] = []

    def __init__(self, model_id, device="cpu"):
        _FlakyClap.calls = []

    def rank(self, mono, samplerate, words, template="{word}"):
        from aadiff_live.tokens.clap import Ranking

        _FlakyClap.calls.append(time.monotonic())
        if len(_FlakyClap.calls) in (2, 3):
            raise RuntimeError("CUDA error: out of memory")
        return Ranking({w: (1.0 if w == "smoke" else 0.0) for w in words})


def test_clap_that_raises_keeps_the_words_says_so_and_retries_with_backoff(tmp_path, monkeypatch, caplog):
    """Before: a CLAP failure ended the show (exit 1). Now the show goes on with the last words."""
    import logging

    from aadiff_live.config import load_config
    from aadiff_live.live.app import LiveApp
    from aadiff_live.tokens import clap

    monkeypatch.setattr(clap, "ClapRanker", _FlakyClap)
    caplog.set_level(logging.INFO)
    src = tmp_path / "in.wav"
    bursts_wav(src, 60.0)
    cfg = load_config(None, {"model": {"model": "tiny", "size": "64"},
                             "live": {"input": str(src), "clap_every_s": 0.2, "clap_window_s": 1.0}})
    stats: dict = {}
    app = LiveApp(cfg, prompt="fire and smoke", no_display=True, duration=60.0, record=None, monitor=False,
                  stats_out=stats)
    seen: dict = {"alerts": [], "words_while_failing": set()}

    def watch():
        while not app.stop.wait(0.02):
            alerts = app.health.alerts()
            seen["alerts"] += alerts
            if any("CLAP FAILED" in a for a in alerts):
                seen["words_while_failing"].add(tuple(app.render_thread.words))
            if len(_FlakyClap.calls) >= 5:  # recovered and ranked again
                app.stop.set()

    code = run_watched(app, watch)
    calls = _FlakyClap.calls
    assert len(calls) >= 5, "CLAP was not retried: the show stopped at its failure"
    # back-off: 0.2 s after the 1st failure, 0.4 s after the 2nd (doubling from clap_every_s)
    assert calls[2] - calls[1] >= 0.2 - 0.02 and calls[3] - calls[2] >= 0.4 - 0.02
    assert any("CLAP FAILED: RuntimeError: CUDA error: out of memory (keeping smoke" in a for a in seen["alerts"])
    assert seen["words_while_failing"] == {("smoke",)}  # the last words were kept
    assert "keeping smoke, trying again in" in caplog.text and "CLAP ranks again after 2 failed" in caplog.text
    assert app.clap.alert is None  # cleared once it works again
    assert stats["stopped_by"] == "stopped" and app.clap.error is None
    assert code == 1 and "CLAP ranking failed 2 time(s)" in caplog.text  # loud at the end


def test_analysis_thread_is_restarted_then_the_app_exits_non_zero(tmp_path, monkeypatch, caplog):
    from aadiff_live.live import analysis_thread, supervisor
    from aadiff_live.live.app import LiveApp

    monkeypatch.setattr(supervisor, "BACKOFF_S", 0.05)
    src = tmp_path / "in.wav"
    bursts_wav(src, 60.0)
    real_step = analysis_thread.AnalysisThread.step
    fail = {"n": 0, "from": 20, "times": 1}

    def step(self, mono, first):
        if self.n_frames >= fail["from"] and fail["n"] < fail["times"]:
            fail["n"] += 1
            raise FloatingPointError("bad block")
        return real_step(self, mono, first)

    monkeypatch.setattr(analysis_thread.AnalysisThread, "step", step)
    # one failure: restarted with a log line, the show goes on (weights keep coming), exit code 1 at the end
    app = LiveApp(_tiny_cfg(src, thread_restarts=2), prompt="a fire", no_display=True, duration=60.0, record=None,
                  monitor=False)
    alerts: list[str] = []

    def watch():
        while not app.stop.wait(0.02):
            alerts.extend(app.health.alerts())
            if app.analysis.supervisor.restarts and app.analysis.n_frames >= fail["from"] + 30:
                app.stop.set()

    code = run_watched(app, watch)
    assert app.analysis.n_frames >= fail["from"] + 30  # it went on analysing after the restart
    assert any(a.startswith("ANALYSIS RESTARTED (1/2): FloatingPointError") for a in alerts)
    assert "the analysis thread failed (FloatingPointError: bad block); restarting it" in caplog.text
    assert code == 1 and "the analysis thread was restarted 1 time(s)" in caplog.text

    # failing for good: 2 restarts, then the app stops by itself, exit code 1
    fail.update(n=0, **{"from": 5, "times": 100})
    caplog.clear()
    stats: dict = {}
    app = LiveApp(_tiny_cfg(src, thread_restarts=2), prompt="a fire", no_display=True, duration=60.0, record=None,
                  monitor=False, stats_out=stats)
    t0 = time.monotonic()
    code = app.run()
    assert code == 1 and fail["n"] == 3 and time.monotonic() - t0 < 30
    assert "after 2 restart(s); the app stops" in caplog.text and stats["stopped_by"] == "stopped"


def _stall_setup(tmp_path, stall_s: float):
    """A 60 s file input, the tiny model with ``live.stall_s``, its renderer built here (to be made to hang), and
    the Event that lets a hung render return."""
    from aadiff_live.rendering.build import build_renderer

    src = tmp_path / "in.wav"
    bursts_wav(src, 60.0)
    cfg = _tiny_cfg(src, stall_s=stall_s)
    components, renderer = build_renderer(cfg, "a fire")
    return cfg, components, renderer, threading.Event()


def test_a_renderer_that_hangs_shows_render_stalled_once_then_recovers(tmp_path, caplog):
    """The watchdog: no progress from the renderer for live.stall_s -> RENDER STALLED on the HUD, logged once."""
    from aadiff_live.live.app import LiveApp

    cfg, components, renderer, release = _stall_setup(tmp_path, 0.5)
    hung = threading.Event()
    n = hang_nth_render(renderer, 4, hung, release)  # the 4th render hangs until released
    stats: dict = {}
    app = LiveApp(cfg, prompt="a fire", no_display=True, duration=60.0, record=None, monitor=False,
                  prebuilt=(components, renderer), stats_out=stats)
    seen: dict = {"stalled": [], "after": []}

    def watch():
        t_stall = None
        while not app.stop.wait(0.05):
            stalled = [a for a in app.health.alerts() if a.startswith("RENDER STALLED")]
            if hung.is_set() and t_stall is None and stalled:
                t_stall = time.monotonic()
            if t_stall is not None and not release.is_set():
                seen["stalled"] += stalled
                if time.monotonic() - t_stall > 1.0:  # stalled for a while: the alert stays, logged once
                    release.set()
            if release.is_set():
                seen["after"].append(stalled)
                if len(seen["after"]) > 20:
                    app.stop.set()

    code = run_watched(app, watch, release.set)
    assert seen["stalled"] and all("no progress for" in a for a in seen["stalled"])
    assert caplog.text.count("RENDER STALLED") == 1  # logged once per stall, not per check
    assert "making progress again" in caplog.text
    assert seen["after"][-1] == []  # the alert clears once frames come again
    assert stats["render_stalls"] == 1 and code == 0  # a stall that ended is shown and logged, not a failure
    assert n["renders"] > 4


def test_stall_time_from_the_command_line_and_config():
    from aadiff_live.cli import _overrides, build_parser
    from aadiff_live.config import load_config

    a = build_parser().parse_args(["live", "--stall-s", "3.5", "--prompt", "fire"])
    assert load_config(None, _overrides(a)).live.stall_s == 3.5
    assert load_config(None, {}).live.stall_s == 20.0
    with pytest.raises(UserError, match="stall-s: Input should be greater than 0"):
        load_config(None, {"live": {"stall_s": 0}})


def test_a_renderer_that_raises_once_is_restarted_and_the_show_goes_on(tmp_path, monkeypatch, caplog):
    from aadiff_live.live import supervisor
    from aadiff_live.live.app import LiveApp
    from aadiff_live.rendering.pipeline import Renderer

    monkeypatch.setattr(supervisor, "BACKOFF_S", 0.05)
    src = tmp_path / "in.wav"
    bursts_wav(src, 60.0)
    real = Renderer.render_batch
    calls = {"n": 0}

    def flaky(self, weights, positions, profile=False):
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("CUDA error: an illegal memory access")
        return real(self, weights, positions, profile)

    monkeypatch.setattr(Renderer, "render_batch", flaky)
    app = LiveApp(_tiny_cfg(src), prompt="a fire", no_display=True, duration=60.0, record=None, monitor=False)
    alerts: list[str] = []

    def watch():
        while not app.stop.wait(0.02):
            alerts.extend(app.health.alerts())
            if calls["n"] >= 6:  # rendering again after the restart
                app.stop.set()

    code = run_watched(app, watch)
    assert calls["n"] >= 6 and not app.render_thread.failed.is_set()
    assert any(a.startswith("RENDERER RESTARTED (1/3): RuntimeError") for a in alerts)
    assert code == 1 and "the renderer thread was restarted 1 time(s)" in caplog.text


def test_a_renderer_still_stalled_when_the_show_stops_makes_the_exit_code_1(tmp_path, caplog):
    from aadiff_live.live.app import LiveApp

    cfg, components, renderer, release = _stall_setup(tmp_path, 0.3)
    real = renderer.render_batch

    def hang(*args, **kwargs):  # the very first render never returns (until the test lets it go)
        release.wait(30)
        return real(*args, **kwargs)

    renderer.render_batch = hang
    app = LiveApp(cfg, prompt="a fire", no_display=True, duration=60.0, record=None, monitor=False,
                  prebuilt=(components, renderer))

    def watch():
        while not app.stop.wait(0.05):
            if app.health.stalled:
                app.stop.set()
        # once the display loop has ended (the stall is what it last saw), let the hung render return so the
        # thread can be joined
        while app.running.is_set():
            time.sleep(0.01)
        release.set()

    code = run_watched(app, watch, release.set)
    assert code == 1 and "still stalled when the show stopped" in caplog.text


class QueuedPAStream(FakePAStream):
    """A device that, like PulseAudio with sound already playing, first hands over about 0.9 s of sound it
    queued before the stream started, a little faster than real time (ADC times say how old each block is),
    then keeps up: noise bursts, so the weight moves."""

    QUEUED_S = 0.9

    def _run(self):
        sr, n = 48000, self.blocksize
        block_s = n / sr
        rng = np.random.default_rng(5)
        age, k = self.QUEUED_S, 0
        next_t = time.monotonic()
        while not self._stop.is_set():
            on = (k * block_s) % 0.5 < 0.25
            block = (0.3 * on * rng.standard_normal((n, self.channels))).astype(np.float32)
            now = time.monotonic()
            info = SimpleNamespace(inputBufferAdcTime=now - age - block_s, currentTime=now)
            self.callback(block, n, info, 0)
            k += 1
            if age > block_s:  # catching up: two blocks per block's time
                age = max(block_s, age - block_s / 2)
                next_t += block_s / 2
            else:
                next_t += block_s
            self._stop.wait(max(0.0, next_t - time.monotonic()))


def test_sound_a_device_queued_before_the_show_is_never_shown(monkeypatch):
    """With sound already playing when the show starts, a device hands over ~0.9 s of queued sound first:
    no refresh shows sound older than 100 ms, and the skipped sound is counted (it was 0 for a device)."""
    from aadiff_live.config import load_config
    from aadiff_live.live.app import LiveApp

    sd = capture_mod.sounddevice_module()
    FakePortAudio(sd, monkeypatch, QueuedPAStream)
    cfg = load_config(None, {"model": {"model": "tiny", "size": "64"}, "live": {"input": "USB Audio"},
                             "tokens": {"tokens": ["fire"]}, "atlas": {"levels": 9}})
    stats: dict = {}
    app = LiveApp(cfg, prompt="a fire in the rain", no_display=True, duration=30.0, record=None, monitor=False,
                  stats_out=stats)

    def watch():  # past the queued sound, with enough refreshes shown
        while not app.stop.wait(0.05):
            if app.present.stats.n_shown >= 90 and app.capture.ring.written > 2.5 * 48000:
                app.stop.set()

    assert run_watched(app, watch) == 0
    lat = np.array(stats["latencies_s"])
    assert lat.size >= 60, lat.size
    assert lat.max() <= 0.1, np.sort(lat)[-5:]
    assert stats["stale_audio_skipped_s"] >= 0.3, stats["stale_audio_skipped_s"]
