"""Live with routes: the renderer thread fills a grid atlas (one axis per routed word) nearest the newest
weight vector first; OSC's gain and range changes reach the weights and the atlas."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from aadiff_live.analysis.routes import LiveRoutes, Route  # noqa: E402
from aadiff_live.backends import make_backend  # noqa: E402
from aadiff_live.live.render_thread import RenderThread  # noqa: E402
from aadiff_live.live.watchdog import StallWatchdog  # noqa: E402
from aadiff_live.mailbox import Mailbox  # noqa: E402
from aadiff_live.rendering.pipeline import Renderer  # noqa: E402

PROMPT = "a fire in the rain"


@pytest.fixture()
def routed(tiny_components):
    backend = make_backend("torch", tiny_components, torch.device("cpu"), torch.float32)
    r = Renderer(tiny_components, backend, width=64, height=64, seed=3)
    r.prepare(PROMPT)
    routes = LiveRoutes([Route("low", "fire", 0.0, 2.0, 1.0), Route("high", "rain", 0.0, 2.0, 1.0)])
    values = {"low": 0.65, "high": 0.2}
    t = RenderThread(tiny_components, r, prompt=PROMPT, words=["fire"], pinned=False, top_k=1,
                     weights=Mailbox(), choices=Mailbox(), requests=Mailbox(), frames=Mailbox(),
                     stop=threading.Event(), levels=33, atlas_mb=64, batch=2, views=Mailbox(),
                     w_range=lambda: (0.0, 2.0), watchdog=StallWatchdog(20.0), restarts=3,
                     newest_weight=lambda: routes.weights(values), routes=routes, grid_levels=3)
    return t, routes, values


def fill_until_idle(t: RenderThread, limit: int = 20) -> int:
    steps = 0
    while t.step_atlas():
        steps += 1
        assert steps < limit
    return steps


def test_grid_atlas_fills_the_newest_cell_first_and_blends_weight_vectors(routed):
    t, routes, values = routed
    assert t.words == ["fire", "rain"] and len(t.groups) == 2
    assert t.step_atlas()
    view = t.views.get(timeout=0)
    atlas = view.atlas
    assert atlas.shape == (3, 3) and view.words == ("fire", "rain")
    # weights (1.3, 0.4): levels 1.3 and 0.4 of 0..2 -> the cell (1..2, 0..1); its nearest corners come first
    first = [tuple(int(x) for x in np.unravel_index(c, (3, 3))) for c in np.flatnonzero(atlas.filled())]
    assert set(first) <= {(1, 0), (1, 1), (2, 0), (2, 1)} and len(first) == 2
    fill_until_idle(t)
    assert atlas.complete and t.n_rendered == 9
    img, look = atlas.blend(routes.weights(values))
    assert len(look.cells) == 4 and not look.stand_in
    # the cells are the renderer's frames for each weight vector
    exact = t.renderer.render(atlas.point(4), t.groups)
    assert np.abs(atlas.frames[4].astype(int) - exact).max() <= 1


def test_a_new_range_makes_a_new_atlas_and_words_stay_routed(routed):
    from aadiff_live.live.messages import WordChoice

    t, routes, values = routed
    fill_until_idle(t)
    old = t.target.atlas
    t.choices.put(WordChoice(PROMPT, ["rain"], {}))  # CLAP's choice does not move routed words
    routes.set_range("rain", 0.5, 1.5)
    assert t.step_atlas()
    assert t.words == ["fire", "rain"] and t.target.atlas is not old
    assert t.target.atlas.key.axes[1].w_lo == 0.5 and t.target.atlas.key.axes[0].w_hi == 2.0
    routes.set_gain("fire", 0.5)
    assert routes.weights(values) == pytest.approx((0.65, 0.5 + 0.2))


def test_one_route_is_a_one_axis_atlas(tiny_components):
    backend = make_backend("torch", tiny_components, torch.device("cpu"), torch.float32)
    r = Renderer(tiny_components, backend, width=64, height=64, seed=3)
    r.prepare(PROMPT)
    routes = LiveRoutes([Route("onset", "rain", 0.0, 3.0, 1.0)])
    t = RenderThread(tiny_components, r, prompt=PROMPT, words=["fire"], pinned=False, top_k=1,
                     weights=Mailbox(), choices=Mailbox(), requests=Mailbox(), frames=Mailbox(),
                     stop=threading.Event(), levels=5, atlas_mb=64, batch=5, views=Mailbox(),
                     w_range=lambda: (0.0, 2.0), watchdog=StallWatchdog(20.0), restarts=3,
                     newest_weight=lambda: routes.weights({"onset": 0.5})[0], routes=routes, grid_levels=9)
    t.step_atlas()
    atlas = t.target.atlas
    assert atlas.k == 1 and atlas.complete and atlas.key.w_hi == 3.0 and t.words == ["rain"]
    assert list(atlas.key.positions) == t.groups[0]


def test_osc_in_steers_a_routes_gain_and_range(wait_until, caplog):
    import logging
    import time

    from pythonosc.udp_client import SimpleUDPClient

    from aadiff_live.control.apply import apply_route_changes
    from aadiff_live.control.osc import OscServer
    from aadiff_live.control.params import ControlInbox

    routes = LiveRoutes([Route("low", "thunder", 0.0, 2.0, 1.0), Route("high", "rain", 0.0, 2.0, 1.0)])
    box = ControlInbox()
    server = OscServer(box, "127.0.0.1", 0, route_words=routes.words)
    server.start()
    try:
        c = SimpleUDPClient("127.0.0.1", server.port)
        with caplog.at_level(logging.WARNING):
            c.send_message("/aadiff/route/thunder/gain", -1.0)  # a gain below 0
            c.send_message("/aadiff/route/rain/range", 1.0)  # one value for a range
            c.send_message("/aadiff/route/sea/gain", 1.0)  # no such route
            c.send_message("/aadiff/route/thunder/gain", 2.5)
            c.send_message("/aadiff/route/rain/range", [0.5, 3.0])
            assert wait_until(lambda: box.received >= 2)
            time.sleep(0.1)
        changes = box.take()
    finally:
        server.close()
    assert changes == {"route:thunder:gain": 2.5, "route:rain:range": (0.5, 3.0)}
    assert box.ignored.total == 3 and "Traceback" not in caplog.text
    assert "unknown address '/aadiff/route/sea/gain'" in caplog.text
    apply_route_changes(changes, routes)
    assert routes.routes[0].gain == 2.5 and routes.ranges()[1] == (0.5, 3.0)
    assert routes.weights({"low": 0.4, "high": 1.0}) == pytest.approx((2.0, 3.0))


def test_osc_out_sends_each_routed_words_weight(wait_until):
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import ThreadingOSCUDPServer

    from aadiff_live.control.osc import OscSender

    got: list[tuple] = []
    d = Dispatcher()
    d.map("/aadiff/weight/*", lambda addr, *a: got.append((addr, *a)))
    srv = ThreadingOSCUDPServer(("127.0.0.1", 0), d)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        OscSender(f"127.0.0.1:{srv.server_address[1]}").send_weights({"thunder": 1.5, "rain": 0.25})
        assert wait_until(lambda: len(got) >= 2)
    finally:
        srv.shutdown()
        srv.server_close()
    assert sorted(got) == [("/aadiff/weight/rain", 0.25), ("/aadiff/weight/thunder", 1.5)]


# ---------------------------------------------------------------- live from a file, end to end
KH_SR = 32000


def kicks_and_hats_wav(path):
    import soundfile as sf

    from tests.test_render_routes import SR, kicks_and_hats

    kick, hat = kicks_and_hats(6.0)
    sf.write(str(path), (kick + hat).astype(np.float32), SR)
    return kick, hat, SR


def followed(x: np.ndarray, sr: int, times: np.ndarray, attack_ms: float, release_ms: float) -> np.ndarray:
    """``x``'s envelope as a causal follower hears it: the RMS over the 64 ms before each 10 ms hop, through an
    attack/release follower, read at ``times``."""
    from aadiff_live.analysis.envelope import AttackRelease

    hop, n = sr // 100, int(0.064 * sr)
    ends = np.arange(hop, x.size + 1, hop)
    rms = np.array([np.sqrt(np.mean(x[max(0, e - n):e] ** 2)) for e in ends])
    f = AttackRelease(100.0, attack_ms, release_ms)
    env = np.array([f.step(float(v)) for v in rms])
    return np.interp(times, ends / sr, env)


def test_live_from_a_file_kicks_move_thunder_and_hats_move_rain(tmp_path):
    from aadiff_live.config import RouteConfig, load_config
    from aadiff_live.live.app import run_live
    from aadiff_live.output.sidecar import read_frames

    src = tmp_path / "kh.wav"
    kick, hat, sr = kicks_and_hats_wav(src)
    cfg = load_config(None, {"model": {"model": "tiny", "size": "64"}, "live": {"input": str(src)},
                             "atlas": {"levels_2": 3}})
    # each route its own quick release: a kick's 120 ms decay, a hat's 40 ms, followed as they are
    cfg.routes = [RouteConfig(source="low", word="thunder", attack_ms=2.0, release_ms=60.0),
                  RouteConfig(source="high", word="rain", attack_ms=2.0, release_ms=60.0)]
    out = tmp_path / "live.mp4"
    stats: dict = {}
    code = run_live(cfg, prompt="thunder and rain over a dark sea", no_display=True, record=str(out),
                    stats_out=stats)
    assert code == 0
    side = json.loads((tmp_path / "live.mp4.json").read_text())
    assert [(r["source"], r["word"]) for r in side["settings"]["routes"]] == [("low", "thunder"), ("high", "rain")]
    assert side["settings"]["grid"] == [3, 3] and side["summary"]["frames_rendered"] == 9
    f = read_frames(tmp_path / "live.mp4.json")
    c = np.array(f["capture_time"])  # a file input: its own time
    thunder, rain = np.array(f["weights"]["thunder"]), np.array(f["weights"]["rain"])
    assert set(f["sources"]) == {"low", "high"}
    kr, hr = followed(kick, sr, c, 2.0, 60.0), followed(hat, sr, c, 2.0, 60.0)
    keep = (c > 0.2) & (c < kick.size / sr - 0.05)  # not the automatic gain's first moments, nor after the end
    r = lambda a, b: float(np.corrcoef(a[keep], b[keep])[0, 1])  # noqa: E731
    assert r(thunder, kr) >= 0.9 and r(thunder, hr) <= 0.2, (r(thunder, kr), r(thunder, hr))
    assert r(rain, hr) >= 0.9 and r(rain, kr) <= 0.2, (r(rain, hr), r(rain, kr))
    # the display blends the grid's cells for the weight vector once the atlas is filled
    assert any(len(cells) == 4 for cells in f["cells"] if cells)


@pytest.mark.parametrize("route,needle,more", [
    ("drums=thunder", "source 'drums' is a stem, made offline only (render, analyse); live sources: loudness", ()),
    ("lfo:sine:4=rain", "the source follows the tempo, but --tempo is off", ("--tempo", "off")),
    ("lfo:blob:4=rain", "expected lfo:SHAPE:BEATS", ()),
    ("beats=rain", "unknown source 'beats'", ())])
def test_live_route_errors(cli, route, needle, more):
    code, _, err = cli("live", "--model", "tiny", "--prompt", "thunder and rain", "--route", route, *more,
                       "--no-display", "--duration", "1", "--input", "nonexistent-device-name-for-test")
    assert code == 2 and err.strip().count("\n") == 0 and needle in err, err


def test_live_route_auto_gives_each_band_a_word_from_clap(tmp_path):
    from helpers import run_watched

    from aadiff_live.config import load_config
    from aadiff_live.live.app import LiveApp
    from aadiff_live.output.sidecar import read_frames

    src = tmp_path / "kh.wav"
    kicks_and_hats_wav(src)
    cfg = load_config(None, {"model": {"model": "tiny", "size": "64"}, "live": {"input": str(src), "clap_every_s": 0.5,
                                                                                 "clap_hysteresis": 0.0},
                             "atlas": {"levels_3": 2}})
    cfg.routes = "auto"
    prompt = "thunder and rain over a dark sea"
    app = LiveApp(cfg, prompt=prompt, no_display=True, duration=None, record=str(tmp_path / "a.mp4"),
                  monitor=False)
    assert [r.source for r in app.routes.routes] == ["low", "mid", "high"]
    assert app.routes.words == ["thunder", "rain", "dark"]  # in order, until CLAP has heard each band
    seen: list = []

    def watch():
        while not app.stop.is_set() and app.clap.latest is None:
            app.stop.wait(0.05)
        seen.append(app.clap.latest)
        hud = app.present.hud(0.0)
        seen.append(hud.routes)
        app.stop.wait(1.0)
        app.stop.set()

    assert run_watched(app, watch) == 0
    choice, bars = seen
    assert len(choice.words) == 3 and len(set(choice.words)) == 3
    assert set(choice.words) <= {"thunder", "rain", "dark", "sea"}
    assert all(" → " in k for k in choice.scores)  # "low → thunder": each band's own score
    assert [label.split(" → ")[0] for label, _, _ in bars] == ["low", "mid", "high"]
    side = read_frames(tmp_path / "a.mp4.json")
    assert len(side["weights"]) >= 3 and set(choice.words) <= set(side["weights"])  # a column per word routed


def test_exact_mode_renders_each_routed_words_own_weight(tiny_components):
    from aadiff_live.live.messages import WeightSample

    backend = make_backend("torch", tiny_components, torch.device("cpu"), torch.float32)
    r = Renderer(tiny_components, backend, width=64, height=64, seed=3)
    r.prepare(PROMPT)
    routes = LiveRoutes([Route("low", "fire", 0.0, 2.0, 1.0), Route("high", "rain", 0.0, 2.0, 1.0)])
    t = RenderThread(tiny_components, r, prompt=PROMPT, words=["fire"], pinned=False, top_k=1,
                     weights=Mailbox(), choices=Mailbox(), requests=Mailbox(), frames=Mailbox(),
                     stop=threading.Event(), levels=0, atlas_mb=64, batch=1, w_range=lambda: (0.0, 2.0),
                     watchdog=StallWatchdog(20.0), restarts=3, routes=routes, grid_levels=9)
    t.weights.put(WeightSample(0, 1.0, 0.5, -20.0, 0.0, {"low": 0.9, "high": 0.1}))
    threading.Timer(2.0, t.stop_event.set).start()  # one sample: one render, then the loop idles
    t._run_exact()
    frame = t.frames.get(timeout=0)
    exact = r.render((1.8, 0.2), t.groups)
    assert frame is not None and np.abs(frame.image.astype(int) - exact).max() <= 1
