"""Real PortAudio capture through PulseAudio (CI runs tools/start_pulse.sh first).

A null sink ``v`` whose monitor is the default source: what ``paplay --device=v`` plays is what
the app captures from ``--input default``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time

import numpy as np
import pytest
from helpers import run_watched

from aadiff_live.output.sidecar import read_frames

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("HF_HUB_OFFLINE", "1")



def _pulse_ready() -> bool:
    if not shutil.which("pactl") or not shutil.which("paplay"):
        return False
    try:
        info = subprocess.run(["pactl", "info"], capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return info.returncode == 0 and "Default Source: v.monitor" in info.stdout


pytestmark = [pytest.mark.pulse, pytest.mark.skipif(not _pulse_ready(), reason="needs PulseAudio with the "
                                                    "null sink v as default source (tools/start_pulse.sh)")]


def test_capture_from_pulse_matches_the_played_file(tmp_path, audio_dir):
    import av
    import soundfile as sf
    from scipy.signal import correlate

    from aadiff_live.config import load_config
    from aadiff_live.live.app import LiveApp

    wav = audio_dir / "ibm_thunder.flac"
    original, sr = sf.read(str(wav), dtype="float32", always_2d=True)
    original = original.mean(axis=1)
    cfg = load_config(None, {"model": {"model": "tiny", "size": "64"}, "live": {"input": "default"},
                             "tokens": {"tokens": ["rain"]}})
    out = tmp_path / "pulse.mp4"
    app = LiveApp(cfg, prompt="rain on a tin roof", no_display=True, duration=60, record=str(out), monitor=False)
    player: dict = {}

    def play():  # the show is on (the capture runs): play into the null sink
        app.stop.wait(0.3)
        player["rc"] = subprocess.run(["paplay", "--device=v", str(wav)], timeout=40).returncode
        # the first block of an idle null sink can arrive up to 2 s late: wait for the capture to catch up
        end = time.monotonic() + 3.0
        while time.monotonic() < end and app.capture.ring.written < original.size:
            app.stop.wait(0.1)
        app.stop.wait(0.5)
        app.stop.set()

    code = run_watched(app, play)
    assert code == 0 and player.get("rc") == 0
    side = json.loads((tmp_path / "pulse.mp4.json").read_text())
    assert side["summary"]["threads_stuck"] == [] and side["n_frames"] > 50
    with av.open(str(out)) as c:
        rec_sr = c.streams.audio[0].rate
        recorded = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1).mean(axis=0)
    if rec_sr != sr:
        import soxr

        recorded = soxr.resample(recorded, rec_sr, sr)
    assert recorded.size >= original.size * 0.95
    cc = correlate(recorded, original, mode="full", method="fft")
    peak = float(np.max(np.abs(cc)) / np.sqrt(np.sum(original**2) * np.sum(recorded**2)))
    assert peak > 0.9, peak
    lat = np.array(read_frames(tmp_path / "pulse.mp4.json")["latency_s"])
    assert np.all(lat >= 0) and np.median(lat) < 2.0


def test_no_sound_server_is_a_clear_error_exit_2():
    import sys

    env = {**os.environ, "PULSE_SERVER": "unix:/nonexistent", "HF_HUB_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "-m", "aadiff_live", "--model", "tiny", "--prompt", "fire", "--no-display"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert p.returncode == 2, p.stderr
    assert "no audio input device" in p.stderr and "Traceback" not in p.stderr
