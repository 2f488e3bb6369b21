"""The status and control page (``--web``): a real headless browser, refused requests, /health and /metrics.

One show (the tiny model, a file input, ``--record``) runs for the module; the renderer-stall test runs its
own. The browser is the system's Chromium driven by Playwright (no browser download).
"""

from __future__ import annotations

import json
import os
import shutil
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path
from types import SimpleNamespace

import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from helpers import bursts_wav, hang_nth_render, wait_started  # noqa: E402

TOKEN = "test-token-0123456789"
CHROMIUM = os.environ.get("AADIFF_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")


def _cfg(src: Path, **web):
    from aadiff_live.config import load_config

    return load_config(None, {"model": {"model": "tiny", "size": "64"}, "live": {"input": str(src), "display_fps": 30},
                              "tokens": {"tokens": ["fire"]},
                              "web": {"listen": "127.0.0.1:0", "token": TOKEN, **web}})


def _start(app) -> SimpleNamespace:
    out: dict = {}
    t = threading.Thread(target=lambda: out.update(code=app.run()), name="live-under-test")
    t.start()
    assert wait_started(app), "the show did not start"
    return SimpleNamespace(app=app, thread=t, out=out, base=f"http://127.0.0.1:{app.web.port}")


def _stop(show) -> int:
    show.app.stop.set()
    show.thread.join(timeout=60)
    assert not show.thread.is_alive()
    return show.out["code"]


@pytest.fixture(scope="module")
def show(tmp_path_factory):
    from aadiff_live.live.app import LiveApp

    tmp = tmp_path_factory.mktemp("web")
    src = bursts_wav(tmp / "in.wav", 300.0)
    app = LiveApp(_cfg(src), prompt="a fire", no_display=True, duration=300.0, record=str(tmp / "rec.mp4"),
                  monitor=False)
    s = _start(app)
    s.rows = tmp / "rec.mp4.frames.jsonl"
    yield s
    _stop(s)


def http(base: str, path: str, *, token: str | None = TOKEN, data: bytes | None = None,
         headers: dict | None = None) -> tuple[int, dict, bytes]:
    h = {**({"Authorization": f"Bearer {token}"} if token is not None else {}), **(headers or {})}
    if data is not None:
        h.setdefault("Content-Type", "application/json")
    req = urllib.request.Request(base + path, data=data, headers=h, method="POST" if data is not None else "GET")
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, dict(r.headers), r.read()
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers), e.read()


def status(show) -> dict:
    code, _, body = http(show.base, "/api/status")
    assert code == 200
    return json.loads(body)


def _rows(path: Path) -> list[dict]:
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.endswith("}")]


def test_the_page_in_a_real_browser_shows_the_status_and_a_typed_prompt_reaches_the_recording(show, wait_until):
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (Debian: apt-get install chromium; tools/test.sh installs it)")
    from playwright.sync_api import sync_playwright

    assert wait_until(lambda: _rows(show.rows), 30)
    typed = 'a <img src=x id="pwned"> fire at night'  # markup that must stay text
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True)
        try:
            page = browser.new_page(viewport={"width": 390, "height": 844})  # a phone
            errors: list[str] = []
            page.on("pageerror", lambda e: errors.append(str(e)))
            page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
            resp = page.goto(f"{show.base}/?token={TOKEN}")
            assert resp is not None and resp.status == 200
            assert "script-src 'self'" in resp.headers["content-security-policy"]
            page.wait_for_function("() => document.body.dataset.live === '1'", timeout=15000)
            page.wait_for_function("() => parseFloat(document.getElementById('fps').textContent) > 0", timeout=15000)
            assert page.text_content("#atlas").startswith("atlas")
            assert "in.wav" in page.text_content("#input")
            assert page.text_content("#prompt-now") == "a fire" and page.text_content("#words") == "fire"
            assert page.text_content("#state") == "running"
            assert float(page.text_content("#lat50")) > 0
            assert "rec.mp4" in page.text_content("#recording") and page.text_content("#disk").endswith("B")
            assert page.is_hidden("#alerts-box")
            # the tempo line (--tempo audio, the default): the HUD's own, BPM once the tracker knows the beat
            line = page.text_content("#bpm")
            assert page.is_visible("#bpm-box") and ("tempo: audio" in line or "BPM" in line), line
            page.wait_for_function("() => document.getElementById('preview').src.startsWith('blob:') && "
                                   "document.getElementById('preview').naturalWidth === 64", timeout=15000)
            page.fill("#prompt-input", typed)
            page.click("#prompt-send")
            page.wait_for_function(f"() => document.getElementById('prompt-now').textContent === {json.dumps(typed)}",
                                   timeout=15000)
            assert page.query_selector("#pwned") is None and page.query_selector("img[src=x]") is None
            assert not errors, errors
        finally:
            browser.close()
    # the typed prompt went through the rig, as OSC's does: the recording's rows say from when
    assert wait_until(lambda: any(r["prompt"] == typed for r in _rows(show.rows)), 30)
    prompts = [r["prompt"] for r in _rows(show.rows)]
    first = prompts.index(typed)
    assert first > 0 and set(prompts[:first]) == {"a fire"} and set(prompts[first:]) == {typed}


def test_controls_go_through_the_rig_and_bad_requests_are_refused_while_the_show_goes_on(show, wait_until):
    app = show.app
    shown = status(show)["counters"]["frames_shown"]
    refused = app.web.refused
    body = lambda o: json.dumps(o).encode()  # noqa: E731
    cases = [  # (path, token, data, expected status)
        ("/", None, None, 401), ("/", "wrong-token-000000", None, 401), ("/api/status", "nope", None, 401),
        ("/api/preview.jpg", None, None, 401),
        ("/api/control", "wrong-token-000000", body({"name": "gain", "value": 2.0}), 401),
        ("/api/control", TOKEN, b"{not json", 400),
        ("/api/control", TOKEN, b"\xff\xfe", 400),
        ("/api/control", TOKEN, body(["gain", 2.0]), 400),
        ("/api/control", TOKEN, body({"name": "gain"}), 400),
        ("/api/control", TOKEN, body({"name": "w_max", "value": 3.0}), 404),  # an OSC parameter, not the page's
        ("/api/control", TOKEN, body({"name": "rm -rf", "value": 1}), 404),
        ("/api/control", TOKEN, body({"name": "gain", "value": 1e9}), 422),
        ("/api/control", TOKEN, body({"name": "seed", "value": "x"}), 422),
        ("/api/control", TOKEN, body({"name": "prompt", "value": "x" * 20000}), 413),
        ("/api/control", TOKEN, b"[" * 100000, 413),
        ("/nowhere", TOKEN, None, 404),
    ]
    for path, token, data, want in cases:
        code, headers, _ = http(show.base, path, token=token, data=data)
        assert code == want, (path, token, data[:40] if data else None, code)
        assert "default-src 'none'" in headers["Content-Security-Policy"]
    assert app.web.refused - refused == len(cases)
    assert wait_until(lambda: "/nowhere" in (status(show)["refused"] or ""), 5)  # the page shows the latest refusal
    # the page's controls: the same inbox as OSC and MIDI, applied by the display loop through the rig
    for name, value in (("gain", 1.5), ("seed", 7), ("freeze", 1)):
        code, _, b = http(show.base, "/api/control", data=body({"name": name, "value": value}))
        assert code == 202 and json.loads(b) == {"accepted": name}
    assert wait_until(lambda: app.analysis.gain == 1.5 and app.rig.request.seed == 7 and app.rig.frozen, 10)
    assert wait_until(lambda: (lambda s: (s["gain"], s["seed"], s["frozen"]))(status(show)) == (1.5, 7, True), 5)
    http(show.base, "/api/control", data=body({"name": "freeze", "value": 0}))
    assert wait_until(lambda: not app.rig.frozen, 10)
    assert wait_until(lambda: status(show)["counters"]["frames_shown"] > shown + 30, 20)  # the show went on
    assert wait_until(lambda: any(r.get("gain") == 1.5 for r in _rows(show.rows)), 10)
    assert http(show.base, "/health", token=None)[0] == 200


def test_health_and_metrics_are_open_on_loopback_only(show, monkeypatch):
    from prometheus_client.parser import text_string_to_metric_families

    from aadiff_live.web import server

    code, headers, body = http(show.base, "/metrics", token=None)
    assert code == 200 and headers["Content-Type"].startswith("text/plain; version=0.0.4")
    fams = {f.name: f for f in text_string_to_metric_families(body.decode())}
    for name in ("aadiff_up", "aadiff_display_fps", "aadiff_latency_seconds", "aadiff_frames_shown",
                 "aadiff_frames_dropped", "aadiff_renders", "aadiff_thread_restarts", "aadiff_recording_bytes",
                 "aadiff_recording_segments", "aadiff_input_overflows", "aadiff_disk_free_bytes"):
        assert name in fams, name
    value = lambda fam, **lab: next(s.value for s in fams[fam].samples  # noqa: E731
                                    if all(s.labels.get(k) == v for k, v in lab.items()))
    assert fams["aadiff_frames_shown"].type == "counter" and value("aadiff_frames_shown") > 0
    assert value("aadiff_up") == 1 and value("aadiff_display_fps") > 0 and value("aadiff_renders") >= 33
    assert 0 < value("aadiff_latency_seconds", quantile="0.5") <= value("aadiff_latency_seconds", quantile="0.95")
    assert value("aadiff_recording_segments") == 1 and value("aadiff_recording_bytes") > 0
    assert {s.labels["where"] for s in fams["aadiff_frames_dropped"].samples} == {"display", "recording"}
    code, _, body = http(show.base, "/health", token=None)
    assert code == 200 and json.loads(body)["status"] == "ok"
    # a page elsewhere whose name was rebound to 127.0.0.1 (its own Host header): the token is needed
    assert http(show.base, "/metrics", token=None, headers={"Host": f"evil.example:{show.app.web.port}"})[0] == 401
    # from another machine: the token is needed
    monkeypatch.setattr(server, "is_loopback", lambda remote: False)
    assert http(show.base, "/health", token=None)[0] == 401
    assert http(show.base, "/metrics", token="wrong-token-000000")[0] == 401
    assert http(show.base, "/health")[0] == 200 and http(show.base, "/metrics")[0] == 200


def test_health_turns_503_while_the_renderer_stalls(tmp_path, wait_until):
    """Fault injected: the 4th render hangs until released; /health says 503 with the HUD's alert, then 200."""
    from aadiff_live.live.app import LiveApp
    from aadiff_live.rendering.build import build_renderer

    src = bursts_wav(tmp_path / "in.wav", 60.0)
    cfg = _cfg(src)
    cfg.live.stall_s = 0.5
    components, renderer = build_renderer(cfg, "a fire")
    release, hung = threading.Event(), threading.Event()
    hang_nth_render(renderer, 4, hung, release)  # the 4th render hangs until released
    cfg.atlas.batch = 1  # one level per render: the 4th render comes early
    app = LiveApp(cfg, prompt="a fire", no_display=True, duration=60.0, record=None, monitor=False,
                  prebuilt=(components, renderer))
    show = _start(app)
    try:
        health = lambda: http(show.base, "/health", token=None)  # noqa: E731
        assert wait_until(lambda: hung.is_set(), 30)
        assert wait_until(lambda: health()[0] == 503, 10)
        code, _, body = health()
        doc = json.loads(body)
        assert code == 503 and doc["status"] == "alert" and doc["alerts"][0].startswith("RENDER STALLED")
        release.set()
        assert wait_until(lambda: health()[0] == 200, 15)
    finally:
        release.set()
        _stop(show)


def test_without_the_extra_one_line_names_the_install_command(monkeypatch):
    import sys

    from aadiff_live.errors import UserError
    from aadiff_live.web.server import require_aiohttp

    monkeypatch.setitem(sys.modules, "aiohttp", None)
    with pytest.raises(UserError, match=r'^--web needs aiohttp \(the web extra\): pip install "aadiff-live\[web\]"$'):
        require_aiohttp()


def test_web_flags_and_a_port_in_use_are_one_line_errors_before_the_model_loads(tmp_path, capsys):
    import socket

    from aadiff_live.cli import _overrides, build_parser, main
    from aadiff_live.config import Config, load_config

    assert Config().web.listen is None  # off by default
    cfg = load_config(None, _overrides(build_parser().parse_args(["live", "--web", "8080", "--web-token", TOKEN])))
    assert (cfg.web.listen, cfg.web.token) == ("8080", TOKEN)
    from aadiff_live.web.settings import parse_listen

    assert parse_listen("8080") == ("127.0.0.1", 8080) and parse_listen("0.0.0.0:80") == ("0.0.0.0", 80)
    assert parse_listen("[::1]:9000") == ("::1", 9000)
    src = bursts_wav(tmp_path / "b.wav", 0.5)
    busy = socket.socket()
    busy.bind(("127.0.0.1", 0))
    busy.listen(1)
    port = busy.getsockname()[1]
    try:
        for args, expect in ((["--web", f"127.0.0.1:{port}"], f"--web 127.0.0.1:{port}: cannot listen there"),
                             (["--web", "host:port"], "--web: 'host:port' is not [HOST:]PORT"),
                             (["--web", "0", "--web-token", "short"], "--web-token: a token is at least 12")):
            t0 = time.monotonic()
            code = main(["--input", str(src), "--model", "tiny", "--prompt", "fire", "--no-display", *args])
            err = capsys.readouterr().err.strip().splitlines()
            assert code == 2 and err[-1].startswith("aadiff-live: error: ") and expect in err[-1], err
            assert "Traceback" not in "\n".join(err) and time.monotonic() - t0 < 10
    finally:
        busy.close()


def test_health_says_starting_running_and_not_running_from_the_snapshot_age():
    """/health without a show: no snapshot yet (503 starting), a fresh one (200), one older than 2 s: the display
    loop has stopped reporting (503 not running), an alert (503 alert)."""
    from aadiff_live.control.params import ControlInbox
    from aadiff_live.web.board import Board, Snapshot
    from aadiff_live.web.preview import PreviewEncoder
    from aadiff_live.web.server import STALE_S, WebServer

    board = Board()
    web = WebServer(board, ControlInbox(), host="127.0.0.1", port=0, token=TOKEN, preview=PreviewEncoder(),
                    record_dir=None, recording_files=list, started=time.monotonic)
    web.preview.start()
    web.start()
    base = f"http://127.0.0.1:{web.port}"
    try:
        for snap, want in ((None, (503, "starting")),
                           (Snapshot(time.monotonic(), True, {"alerts": [], "fps": 60.0}), (200, "ok")),
                           (Snapshot(time.monotonic() - STALE_S - 1, True, {"alerts": []}), (503, "not running")),
                           (Snapshot(time.monotonic(), True, {"alerts": ["RECORDING FAILED: disk full"]}),
                            (503, "alert"))):
            board.snapshot = snap
            t0 = time.monotonic()
            while web._loop is None and time.monotonic() - t0 < 10:
                time.sleep(0.01)
            code, _, body = http(base, "/health", token=None)
            assert (code, json.loads(body)["status"]) == want
    finally:
        web.close()
    assert not web.is_alive() and not web.preview.is_alive()


def test_the_status_carries_the_tempo_where_the_show_tracks_one():
    from aadiff_live.live.web_feed import WebFeed

    beat = SimpleNamespace(reading=lambda now: SimpleNamespace(bpm=120.04))
    feed = SimpleNamespace(presenter=SimpleNamespace(tempo=beat))
    assert WebFeed.tempo(feed, 1.0, SimpleNamespace(tempo=("120.0 BPM  audio ", 0.5, 4))) == {  # type: ignore[arg-type]
        "bpm": 120.0, "tempo": "120.0 BPM  audio"}
    none = SimpleNamespace(presenter=SimpleNamespace(tempo=None))
    assert WebFeed.tempo(none, 1.0, SimpleNamespace(tempo=None)) == {"bpm": None, "tempo": None}  # type: ignore[arg-type]
    unknown = SimpleNamespace(presenter=SimpleNamespace(tempo=SimpleNamespace(reading=lambda now: None)))
    assert WebFeed.tempo(unknown, 1.0, SimpleNamespace(tempo=None))["bpm"] is None  # type: ignore[arg-type]


def test_routes_and_their_weights_are_in_the_status_and_the_plot(tmp_path, wait_until):
    from aadiff_live.config import RouteConfig
    from aadiff_live.live.app import LiveApp

    src = bursts_wav(tmp_path / "in.wav", 60.0)
    cfg = _cfg(src)
    cfg.tokens.tokens = None
    cfg.routes = [RouteConfig(source="low", word="fire"), RouteConfig(source="high", word="rain")]
    app = LiveApp(cfg, prompt="a fire in the rain", no_display=True, duration=60.0, record=None, monitor=False)
    show = _start(app)
    try:
        assert wait_until(lambda: len(status(show).get("history", [])) > 5, 20)  # none before the first snapshot
        s = status(show)
        assert [r["label"] for r in s["routes"]] == [r.label for r in app.routes.routes]
        assert all(isinstance(r["weight"], float) and 0 <= r["fill"] <= 1 for r in s["routes"])
        assert s["words"] == ["fire", "rain"] and s["history_labels"] == ["envelope", "fire", "rain"]
        assert all(len(row) == 4 for row in s["history"])  # time, envelope, one weight per route
    finally:
        _stop(show)
