"""A long headless run: no memory or queue growth, every thread gone after quit."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

RUN_S = 45.0


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads memory use from /proc (Linux)")
def test_long_headless_run_has_no_growth_and_stops_cleanly(tmp_path):
    import soundfile as sf

    from aadiff_live.config import load_config
    from aadiff_live.live.app import LiveApp

    sr = 48000
    rng = np.random.default_rng(1)
    t = np.arange(int((RUN_S + 10) * sr)) / sr
    x = (0.3 * (np.sin(2 * np.pi * 0.7 * t) > 0) * rng.standard_normal(t.size)).astype(np.float32)
    src = tmp_path / "long.wav"
    sf.write(str(src), x, sr)
    del x, t
    cfg = load_config(None, {"model": {"model": "tiny", "size": "64"}, "live": {"input": str(src),
                                                                                "clap_every_s": 2.0}})
    app = LiveApp(cfg, prompt="a storm over the sea", no_display=True, duration=RUN_S, record=None, monitor=False)
    samples: list[tuple[float, float, int]] = []  # (elapsed, rss MB, largest mailbox)
    before = {th.ident for th in threading.enumerate()}

    def watch():
        while not app.stop.wait(1.0):
            if not hasattr(app, "frames") or app.stats.n_shown == 0:
                continue
            boxes = max(app.weights.qsize(), app.frames.qsize(), app.choices.qsize(), app.prompts.qsize())
            samples.append((app.stats.n_shown, rss_mb(), boxes))

    w = threading.Thread(target=watch, name="test-watch")
    w.start()
    try:
        code = app.run()
    finally:
        app.stop.set()
        w.join(timeout=5)
    assert code == 0
    left = [th.name for th in threading.enumerate() if th.ident not in before and th.is_alive()]
    assert left == []
    assert app.stats.n_shown > RUN_S * 5
    assert max(s[2] for s in samples) <= 1
    # memory after warm-up (the first third) against the end: flat, not growing with frames shown
    third = len(samples) // 3
    early = np.median([s[1] for s in samples[third:third + 3]])
    late = np.median([s[1] for s in samples[-3:]])
    assert late - early < 25.0, (early, late)
    assert app.clap is not None and app.clap.latest is not None  # CLAP kept ranking
    assert app.analysis.error is None and app.render_thread.error is None
