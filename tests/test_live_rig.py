"""A running headless live instance steered over real UDP on 127.0.0.1 (OSC in and out), scenes, CLI flags."""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time

import numpy as np
import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from helpers import bursts_wav, run_watched  # noqa: E402

from aadiff_live.config import load_config  # noqa: E402
from aadiff_live.live.app import LiveApp  # noqa: E402
from aadiff_live.output.sidecar import read_frames  # noqa: E402

SR = 16000


def free_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Listener:
    """The mixer's side: a python-osc server that keeps what it gets."""

    def __init__(self):
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import BlockingOSCUDPServer

        self.got: list[tuple] = []
        d = Dispatcher()
        d.map("/aadiff/*", lambda addr, *a: self.got.append((time.monotonic(), addr, *a)))
        self.server = BlockingOSCUDPServer(("127.0.0.1", 0), d)
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def values(self, addr):
        return [g[2] for g in self.got if g[1] == addr]

    def count(self, addr):
        return sum(1 for g in self.got if g[1] == addr)

    def close(self):
        self.server.shutdown()
        self.server.server_close()


def switch_frame(is_new, d, t_sent, t_next, within):
    """Index of the first frame showing a change sent at ``t_sent``: none before it, all after it until the next."""
    k = int(np.argmax(is_new & (d >= t_sent)))
    assert is_new[k] and d[k] - t_sent < within, (d[k] - t_sent, within)
    assert not is_new[d < t_sent].any()
    span = (d >= d[k]) & (d < t_next)
    assert span.sum() >= 3 and is_new[span].all()
    return k



def test_osc_steers_a_running_instance_and_the_sidecar_says_when(tmp_path, caplog, wait_until):
    from pythonosc.udp_client import SimpleUDPClient

    src = tmp_path / "bursts.wav"
    bursts_wav(src, 10.0, SR)
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("scenes:\n  - {name: blizzard, prompt: a fire in a blizzard, gain: 0.5}\n")
    mixer = Listener()
    port = free_udp_port()
    cfg = load_config(cfg_file, {"model": {"model": "tiny", "size": "64"}, "live": {"input": str(src)},
                                 "tokens": {"tokens": ["fire"]},
                                 # a new prompt or scene shows once its atlas is complete: 9 levels keep that
                                 # well inside the 1.5 s asked below on a loaded machine (the fill is timed in
                                 # tools/bench_atlas.py, not here)
                                 "atlas": {"levels": 9},
                                 "osc": {"port": port, "send": f"127.0.0.1:{mixer.port}"}})
    out = tmp_path / "rig.mp4"
    app = LiveApp(cfg, prompt="a fire in the rain", no_display=True, duration=None, record=str(out), monitor=False)
    c = SimpleUDPClient("127.0.0.1", port)
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sent: dict[str, float] = {}

    def steer():  # beside the running show, which stops by itself at the end of the file
        assert wait_until(lambda: mixer.count("/aadiff/weight") >= 3, 60), "no frame came out over OSC"
        # malformed: wrong types, unknown address, the largest string a datagram carries, garbage, a flood
        c.send_message("/aadiff/gain", "loud")
        c.send_message("/aadiff/scene", 1.5)
        c.send_message("/aadiff/bogus", 1)
        c.send_message("/aadiff/prompt", "fire " * 12000)
        raw.sendto(os.urandom(512), ("127.0.0.1", port))
        for i in range(10000):
            c.send_message("/aadiff/w_max" if i % 2 else "/aadiff/freeze", 2.0 if i % 2 else 9)
        n = mixer.count("/aadiff/weight")
        assert wait_until(lambda: mixer.count("/aadiff/weight") >= n + 3, 10), "no frames after the flood"
        assert app.running.is_set()
        # then the changes whose timing the sidecar must show
        sent["gain"] = time.monotonic()
        c.send_message("/aadiff/gain", 0.25)
        time.sleep(2.0)
        sent["prompt"] = time.monotonic()
        c.send_message("/aadiff/prompt", "a fire in the snow")
        time.sleep(2.0)
        sent["scene"] = time.monotonic()
        c.send_message("/aadiff/scene", 1)

    with caplog.at_level(logging.INFO):
        try:
            code = run_watched(app, steer)
        finally:
            time.sleep(0.2)  # the last frames' OSC datagrams
            mixer.close()
    assert code == 0
    t_gain, t_prompt, t_scene = sent["gain"], sent["prompt"], sent["scene"]
    t0 = app.capture.ring.capture_time(0)
    side = json.loads((tmp_path / "rig.mp4.json").read_text())
    assert side["settings"]["osc_in"] == f"127.0.0.1:{port}" and side["settings"]["scenes"] == ["blizzard"]
    f = read_frames(tmp_path / "rig.mp4.json")  # the rows, streamed to rig.mp4.frames.jsonl
    d = np.array(f["time"])
    gain, prompt, scene, w = np.array(f["gain"]), np.array(f["prompt"]), f["scene"], np.array(f["weight"])
    cap = np.array(f["capture_time"])
    tg, tp, ts = t_gain - t0, t_prompt - t0, t_scene - t0
    end = d[-1] + 1
    # each change shows up from one frame on (soon after it was sent: within 1.5 s on a loaded 2-core machine,
    # where the OSC thread waits its turn) and stays until the next change
    k_gain = switch_frame(gain == 0.25, d, tg, ts, within=1.5)
    k_prompt = switch_frame(prompt == "a fire in the snow", d, tp, ts, within=1.5)
    k_scene = switch_frame(np.array([s == "blizzard" for s in scene]), d, ts, end, within=1.5)
    assert np.all(gain[:k_gain] == 1.0) and np.all(prompt[:k_prompt] == "a fire in the rain")
    assert np.all(prompt[k_scene:] == "a fire in a blizzard") and np.all(gain[k_scene:] == 0.5)
    # and the weight obeyed: w = w_max * gain * envelope <= 2 * 0.25 for audio captured after the change
    assert w[d < tg].max() > 1.5 and w[(cap > d[k_gain]) & (d < ts)].max() <= 0.5 + 1e-6
    # OSC out: one /aadiff/weight and latency per display refresh; the recording keeps the video rate, so its
    # frames are a subsequence of the refreshes, with the same values; words once
    sent = list(zip(mixer.values("/aadiff/weight"), mixer.values("/aadiff/latency_ms"), strict=True))
    rec = list(zip(w, np.array(f["latency_s"]) * 1000, strict=True))
    assert len(sent) > len(rec)
    j = 0
    for sw, sl in sent:
        if j < len(rec) and abs(sw - rec[j][0]) < 1e-5 and abs(sl - rec[j][1]) < 0.01:
            j += 1
    assert j == len(rec), (j, len(rec))
    assert mixer.values("/aadiff/words") == ["fire"]
    # every malformed message was refused with a reason, none crashed anything
    text = caplog.text
    for why in ("/aadiff/gain takes a float (f), got str", "/aadiff/scene takes a whole number, got 1.5",
                "unknown address '/aadiff/bogus'", "60000 characters, more than 1000"):
        assert why in text, why
    assert "more control messages ignored in the last second" in text
    assert "Traceback" not in text


def test_cli_flags_reach_the_rig(tmp_path, capsys):
    from aadiff_live.cli import main

    src = tmp_path / "b.wav"
    bursts_wav(src, 2.0, SR)
    mixer = Listener()
    try:
        code = main(["--input", str(src), "--model", "tiny", "--size", "64", "--prompt", "a fire in the rain",
                     "--tokens", "fire", "--no-display", "--osc-port", "0", "--osc-send", f"127.0.0.1:{mixer.port}"])
        time.sleep(0.2)
    finally:
        mixer.close()
    assert code == 0
    assert mixer.count("/aadiff/weight") >= 3 and mixer.values("/aadiff/words") == ["fire"]
    assert mixer.count("/aadiff/envelope") == mixer.count("/aadiff/level_db") == mixer.count("/aadiff/weight")


@pytest.mark.parametrize("args,expect", [
    (["--output", "syphon"], "--output syphon works on macOS only"),
    (["--output", "hdmi"], "--output 'hdmi': use one of ndi[:NAME]"),
    (["--output", "ndi", "--output-hud"], "--output-hud needs the window"),
    (["--osc-send", "nowhere"], "--osc-send 'nowhere': expected HOST:PORT"),
    (["--osc-port", "70000"], "--osc-port: "),
    (["--midi", "nanoKONTROL"], "--midi 'nanoKONTROL': no M"),
])
def test_rig_mistakes_are_one_line_errors_before_any_model_loads(tmp_path, capsys, args, expect):
    from aadiff_live.cli import main

    src = tmp_path / "b.wav"
    bursts_wav(src, 0.5, SR)
    t0 = time.monotonic()
    code = main(["--input", str(src), "--model", "tiny", "--prompt", "fire", "--no-display", *args])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("aadiff-live: error: ") and expect in err[-1], err
    assert "Traceback" not in "\n".join(err)
    assert time.monotonic() - t0 < 10


def test_midi_ports_command(capsys):
    from aadiff_live.cli import main

    code = main(["midi-ports"])
    out, err = capsys.readouterr()
    if os.path.exists("/dev/snd/seq"):
        assert code == 0
    else:  # this machine has no ALSA sequencer: said in one line, exit 2
        assert code == 2 and err.strip().startswith("aadiff-live: error: no MIDI system on this machine")
        assert "/dev/snd/seq" in err and len(err.strip().splitlines()) == 1


def test_scene_keys_hud_line_and_output_with_hud():
    pygame = pytest.importorskip("pygame")
    from aadiff_live.control.settings import SceneConfig
    from aadiff_live.live.display import Display, HudInfo
    from aadiff_live.live.rig import Rig

    d = Display(64, 64, window_size=128, fullscreen=False, display=0, hud=True)
    try:
        for key, n in ((pygame.K_1, 1), (pygame.K_9, 9), (pygame.K_0, None)):
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=key, mod=0, unicode="", scancode=0))
            assert d.poll().scene == n
        pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=pygame.K_l, mod=0, unicode="", scancode=0))
        assert d.poll().learn
        pic = np.full((64, 64, 3), 40, np.uint8)
        rig = Rig(load_config(None), prompt="a fire", pinned=None, has_clap=True, headless=False)
        rig.set_scene(2, SceneConfig(name="blizzard", prompt="a fire in a blizzard"))
        hud = HudInfo(words=("fire",), prompt="a fire in a blizzard", notes=rig.hud_lines())
        assert hud.notes == ["scene 2: blizzard"]
        out = d.picture_with_hud(pic, hud)
        assert out.shape == pic.shape and out.dtype == np.uint8
        assert (out != 40).any() and np.array_equal(pic, np.full((64, 64, 3), 40, np.uint8))  # a copy, HUD drawn on it
        rig.close()
    finally:
        d.close()


@pytest.mark.parametrize("mode", ["trailing", "attack-release"])
def test_envelope_changes_reach_the_analysis_thread(mode):
    import types

    from aadiff_live.analysis.envelope import AttackRelease, TrailingMean
    from aadiff_live.live.analysis_thread import AnalysisThread
    from aadiff_live.live.rig import Rig
    from aadiff_live.live.ring import RingBuffer
    from aadiff_live.mailbox import Mailbox

    cfg = load_config(None, {"envelope": {"mode": mode, "fps": 30.0}})
    analysis = AnalysisThread(RingBuffer(48000, 1, 48000), cfg.envelope, cfg.live, Mailbox(), threading.Event())
    rig = Rig(cfg, prompt="a fire", pinned=None, has_clap=True, headless=True)
    rig.start(types.SimpleNamespace(envelope=analysis))
    before = analysis.smoother
    rig.set_envelope(w_min=-0.5, w_max=3.0)
    assert (analysis.w_min, analysis.w_max) == (-0.5, 3.0) and analysis.smoother is before  # no new smoother
    rig.set_envelope(window_ms=500.0, attack_ms=100.0, release_ms=1000.0)
    s = analysis.smoother
    if mode == "trailing":
        # 500 ms at the analysis rate (100 weights/s), whatever the video rate
        assert isinstance(s, TrailingMean) and s.window == 50 == round(0.5 * cfg.live.analysis_hz)
    else:  # one 10 ms step towards 1 from 0 covers 1 - exp(-10 ms / 100 ms) of the way
        assert isinstance(s, AttackRelease)
        s.step(0.0)
        assert s.step(1.0) == pytest.approx(1 - np.exp(-1000 / (100 * cfg.live.analysis_hz)))
    rig.set_gain(3.5)
    assert analysis.gain == 3.5
