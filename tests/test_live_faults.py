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

from aadiff_live.errors import UserError  # noqa: E402
from aadiff_live.live import capture as capture_mod  # noqa: E402
from aadiff_live.live.devices import InputDevice  # noqa: E402


class FakeStream:
    """Stands in for ``sounddevice.InputStream``: calls back every 5 ms until 'unplugged'."""

    plugged = True
    opened = 0

    def __init__(self, *, device, channels, samplerate, blocksize, dtype, callback):
        if not FakeStream.plugged:
            raise capture_mod.sounddevice_module().PortAudioError("device unavailable")
        FakeStream.opened += 1
        self.callback, self.blocksize, self.channels = callback, blocksize, channels
        self.active = False
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, name="fake-portaudio")

    def _run(self):
        block = np.zeros((self.blocksize, self.channels), np.float32)
        info = SimpleNamespace(inputBufferAdcTime=0.0, currentTime=0.0)
        while not self._stop.wait(0.005):
            if not FakeStream.plugged:
                self.active = False  # PortAudio stops the stream when its device goes away
                return
            self.callback(block, self.blocksize, info, 0)

    def start(self):
        self.active = True
        self._t.start()

    def close(self, ignore_errors=True):
        self._stop.set()
        self._t.join(timeout=1)


def test_device_vanishing_reports_no_input_and_reopens(monkeypatch):
    sd = capture_mod.sounddevice_module()
    monkeypatch.setattr(sd, "InputStream", FakeStream)
    dev = InputDevice(3, "USB Mic", 1, 48000.0, True)

    def resolve(name):
        if not FakeStream.plugged:
            raise UserError("no audio input device")
        return dev

    monkeypatch.setattr(capture_mod, "resolve_input", resolve)
    monkeypatch.setattr(capture_mod, "STALL_S", 0.3)
    monkeypatch.setattr(capture_mod, "RETRY_S", 0.1)
    FakeStream.plugged, FakeStream.opened = True, 0
    cap = capture_mod.DeviceCapture(dev, None, 256, 2.0)
    cap.start()
    try:
        deadline = time.monotonic() + 3
        while cap.status != "ok" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cap.status == "ok" and cap.ring.written > 0
        FakeStream.plugged = False
        deadline = time.monotonic() + 3
        while cap.status != "no input" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cap.status == "no input"
        FakeStream.plugged = True
        deadline = time.monotonic() + 3
        while cap.status != "ok" and time.monotonic() < deadline:
            time.sleep(0.02)
        assert cap.status == "ok" and FakeStream.opened == 2
    finally:
        t0 = time.monotonic()
        cap.stop()
        assert time.monotonic() - t0 < 1.5
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
        time.sleep(2.0)
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
