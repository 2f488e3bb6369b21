"""Live mode with the frame atlas: the renderer thread fills, the display blends and cross-fades,
analysis posts a weight every 10 ms with smoothing defined in time, stale audio is never shown."""

from __future__ import annotations

import os
import threading

import numpy as np
import pytest
import torch

os.environ.setdefault("HF_HUB_OFFLINE", "1")

from aadiff_live.backends import make_backend  # noqa: E402
from aadiff_live.config import Config, load_config  # noqa: E402
from aadiff_live.live.analysis_thread import AnalysisThread  # noqa: E402
from aadiff_live.live.messages import RenderRequest  # noqa: E402
from aadiff_live.live.render_thread import RenderThread  # noqa: E402
from aadiff_live.live.ring import RingBuffer, RingReader  # noqa: E402
from aadiff_live.live.screen import AtlasScreen  # noqa: E402
from aadiff_live.live.watchdog import StallWatchdog  # noqa: E402
from aadiff_live.mailbox import Mailbox  # noqa: E402
from aadiff_live.rendering.atlas import blend_frames  # noqa: E402
from aadiff_live.rendering.pipeline import Renderer  # noqa: E402

LEVELS = 5


@pytest.fixture()
def thread(tiny_components):
    backend = make_backend("torch", tiny_components, torch.device("cpu"), torch.float32)
    r = Renderer(tiny_components, backend, width=64, height=64, seed=3)
    r.prepare("a fire in the rain")
    weight = {"w": 1.3}
    t = RenderThread(tiny_components, r, prompt="a fire in the rain", words=["fire"], pinned=True, top_k=1,
                     weights=Mailbox(), choices=Mailbox(), requests=Mailbox(), frames=Mailbox(),
                     stop=threading.Event(), levels=LEVELS, atlas_mb=64, batch=2, views=Mailbox(),
                     w_range=lambda: (0.0, 2.0), watchdog=StallWatchdog(20.0), restarts=3,
                     newest_weight=lambda: weight["w"], grid_levels=9)
    t.weight = weight  # type: ignore[attr-defined]
    return t


def fill_until_idle(t: RenderThread, limit: int = 20) -> int:
    steps = 0
    while t.step_atlas():
        steps += 1
        assert steps < limit
    return steps


def test_first_atlas_is_shown_at_once_nearest_level_first(thread):
    t = thread
    assert t.step_atlas()  # one batch of 2
    view = t.views.get(timeout=0)
    assert view is not None and view.prompt == "a fire in the rain" and view.words == ("fire",)
    # w = 1.3 of [0, 2] over 5 levels sits nearest level 3 (w = 1.5): rendered first, then level 0 (coarse to fine)
    assert list(np.flatnonzero(view.atlas.filled())) == [0, 3]
    look = view.atlas.lookup(1.3)
    assert look is not None and look.stand_in and look.lo == 3  # the nearest rendered level stands in
    assert fill_until_idle(t) == 2 and view.atlas.complete
    assert t.n_rendered == LEVELS and t.first_fill_s is not None
    assert t.views.get(timeout=0) is None  # nothing new to publish: the same atlas is on screen


def test_new_prompt_keeps_the_old_atlas_until_the_new_one_is_complete(thread):
    t = thread
    fill_until_idle(t)
    old = t.views.get(timeout=0)
    assert old is not None and old.atlas.complete
    t.requests.put(RenderRequest(prompt="a fire in the snow", words=("fire",), seed=3))
    assert t.step_atlas()
    assert t.target is not None and t.target.prompt == "a fire in the snow" and not t.target.atlas.complete
    assert t.views.get(timeout=0) is None  # the old atlas stays on screen while the new one fills
    fill_until_idle(t)
    new = t.views.get(timeout=0)
    assert new is not None and new.prompt == "a fire in the snow" and new.atlas.complete
    assert not np.array_equal(new.atlas.frames, old.atlas.frames)
    # going back to the first prompt is instant: its atlas is in the LRU, complete, published with no render
    n = t.n_rendered
    t.requests.put(RenderRequest(prompt="a fire in the rain", words=("fire",), seed=3))
    assert not t.step_atlas()
    back = t.views.get(timeout=0)
    assert back is not None and back.atlas is old.atlas and t.n_rendered == n


def test_screen_cross_fades_from_the_old_atlas_to_the_new(thread):
    t = thread
    fill_until_idle(t)
    old = t.views.get(timeout=0)
    t.requests.put(RenderRequest(prompt="a fire in the snow", words=("fire",), seed=3))
    fill_until_idle(t)
    new = t.views.get(timeout=0)
    assert old is not None and new is not None
    screen = AtlasScreen(fade_s=0.5)
    screen.offer(old, now=10.0)
    w = 0.7
    a = screen.picture(w, now=10.1)
    assert a is not None and a.fade is None and a.view is old
    screen.offer(new, now=11.0)
    mid = screen.picture(w, now=11.25)  # halfway through the 0.5 s fade
    old_img, new_img = old.atlas.blend(w)[0], new.atlas.blend(w)[0]
    assert mid is not None and mid.fade == pytest.approx(0.5)
    np.testing.assert_array_equal(mid.image, blend_frames(old_img, new_img, 0.5))
    assert np.abs(mid.image.astype(int) - old_img.astype(int)).mean() > 1
    assert np.abs(mid.image.astype(int) - new_img.astype(int)).mean() > 1
    end = screen.picture(w, now=11.6)
    assert end is not None and end.fade is None
    np.testing.assert_array_equal(end.image, new_img)
    # no fade configured: the new atlas replaces the old at once
    cut = AtlasScreen(fade_s=0.0)
    cut.offer(old, 0.0)
    cut.offer(new, 1.0)
    p = cut.picture(w, 1.0)
    assert p is not None and p.fade is None and np.array_equal(p.image, new_img)


def _analysis(cfg: Config, sr: int = 48000) -> tuple[AnalysisThread, RingBuffer]:
    ring = RingBuffer(sr * 8, 1, sr)
    return AnalysisThread(ring, cfg.envelope, cfg.live, Mailbox(), threading.Event()), ring


@pytest.mark.parametrize("mode", ["attack-release", "trailing"])
def test_analysis_posts_every_10_ms_and_the_look_does_not_change_with_the_hop(mode):
    sr = 48000
    rng = np.random.default_rng(1)
    sig = np.concatenate([np.zeros(sr), 0.3 * rng.standard_normal(sr), np.zeros(sr)])
    res = {}
    for hz in (100.0, 25.0):
        cfg = load_config(None, {"envelope": {"mode": mode, "window": 9, "attack_ms": 80.0, "release_ms": 300.0},
                                 "live": {"analysis_hz": hz}})
        a, ring = _analysis(cfg, sr)
        times, weights = [], []
        for s in range(0, sig.size, 240):  # 5 ms blocks: every 10 ms hop completes within one block
            blk = sig[s:s + 240, None].astype(np.float32)
            ring.write(blk, s / sr)
            before = a.n_frames
            r = a.step(blk[:, 0], s)
            assert a.n_frames - before <= 1
            if r is not None:
                times.append(r.capture_time)
                weights.append(r.weight)
        res[hz] = (np.array(times), np.array(weights))
    t100, w100 = res[100.0]
    assert np.diff(t100).max() == pytest.approx(0.01, abs=1e-6) and t100.size == pytest.approx(300, abs=1)
    # the same envelope in time: the 25 Hz weights lie on the 100 Hz curve (a quarter of a coarse hop's change)
    t25, w25 = res[25.0]
    on100 = np.interp(t25, t100, w100)
    assert np.abs(on100 - w25).max() < 0.25 and np.abs(on100 - w25).mean() < 0.05
    # the onset (first weight over 1) comes at the same time within one coarse hop
    assert abs(t100[np.argmax(w100 > 1.0)] - t25[np.argmax(w25 > 1.0)]) <= 0.04 + 1e-9


def test_stale_audio_is_skipped_not_shown():
    cfg = load_config(None, {"envelope": {"mode": "attack-release"}})
    sr = 48000
    a, ring = _analysis(cfg, sr)
    rng = np.random.default_rng(2)
    # 3 s of audio arrived while the analysis was busy (start-up): a backlog
    for s in range(0, 3 * sr, 256):
        ring.write((0.1 * rng.standard_normal((256, 1))).astype(np.float32), 100.0 + s / sr)
    reader = RingReader(ring, start=0)
    skipped = a.skip_stale(reader)
    assert skipped == ring.written - a.stft.n_fft and reader.available() == a.stft.n_fft
    start, data = reader.read()
    r = a.step(data.mean(axis=1), start)
    assert r is not None and r.capture_time == pytest.approx(100.0 + 3.0, abs=0.011)  # the newest sound
    # a backlog within one window plus 50 ms is read, not skipped
    ring.write(np.zeros((1024, 1), np.float32), 103.0)
    assert a.skip_stale(reader) == 0


def test_start_up_holds_weights_from_queued_sound_and_gives_up_on_a_slow_device(caplog):
    """At start-up a weight from sound older than FRESH_S is held back (and counted); fresh sound is posted and
    ends the check; a device whose sound is always old is shown anyway after STARTUP_WAIT_S, with a warning."""
    import logging
    from dataclasses import replace

    from aadiff_live.live import analysis_thread as at
    from aadiff_live.live.messages import WeightSample

    cfg = load_config(None, {"envelope": {"mode": "attack-release"}})
    a, _ = _analysis(cfg)
    s = WeightSample(0, 1.0, 0.5, -20.0, 100.0, {}, ())
    assert not a._fresh_enough(s, 480, now=100.5) and a.skipped == 480 and not a.fresh
    assert not a._fresh_enough(s, 480, now=100.0 + at.FRESH_S + 0.01) and a.skipped == 960
    assert a._fresh_enough(replace(s, capture_time=100.6), 480, now=100.6 + at.FRESH_S / 2) and a.fresh
    b, _ = _analysis(cfg)  # a device whose sound always arrives 300 ms old
    caplog.set_level(logging.WARNING)
    assert not b._fresh_enough(s, 480, now=100.3)
    assert not b._fresh_enough(replace(s, capture_time=102.0), 480, now=102.3)
    assert b._fresh_enough(replace(s, capture_time=100.0 + at.STARTUP_WAIT_S), 480,
                           now=100.3 + at.STARTUP_WAIT_S) and b.fresh
    assert "300 ms old when it arrives" in caplog.text


def test_start_up_never_shows_sound_older_than_100_ms(tmp_path):
    """File input, where capture times are known: from the first frame on screen, every refresh shows
    sound at most 100 ms old (the exact path used to show ~740 ms old sound for the first ~2 s)."""
    import soundfile as sf

    from aadiff_live.live.app import run_live

    sr = 48000
    rng = np.random.default_rng(3)
    x = np.concatenate([0.3 * rng.standard_normal(sr // 2), np.zeros(sr // 2)] * 3).astype(np.float32)
    src = tmp_path / "b.wav"
    sf.write(src, x, sr)
    cfg = load_config(None, {"model": {"model": "tiny", "size": "64"}, "live": {"input": str(src)},
                             "tokens": {"tokens": ["fire"]}, "atlas": {"levels": 9}})
    stats: dict = {}
    assert run_live(cfg, prompt="a fire in the rain", no_display=True, stats_out=stats) == 0
    lat = np.array(stats["latencies_s"])
    assert lat.size > 60 and stats["levels"] == 9 and stats["atlas_fill_s"] is not None
    assert lat.max() <= 0.1, np.sort(lat)[-5:]


def test_words_changed_during_the_first_fill_show_at_once(thread):
    """At start-up CLAP may drop the first words before their atlas is complete: the new words' atlas
    replaces the incomplete one as soon as it has a level (no waiting for an atlas nobody will see)."""
    t = thread
    assert t.step_atlas()
    first = t.views.get(timeout=0)
    assert first is not None and not first.atlas.complete
    t.requests.put(RenderRequest(prompt="a fire in the rain", words=("rain",), seed=3))
    assert t.step_atlas()
    new = t.views.get(timeout=0)
    assert new is not None and new.words == ("rain",) and new.atlas is not first.atlas and new.atlas.n_filled == 2


def test_scene_atlases_fill_ahead_and_switching_to_a_scene_is_instant(thread, tiny_components):
    t = thread
    t.prefill = [RenderRequest(prompt="a fire in the snow", words=("snow",), seed=7, scene="snow")]
    before = t.renderer.render(1.0, t.positions)
    fill_until_idle(t, limit=40)  # the atlas on screen, then the scene's, batch by batch
    assert t.n_prefilled == LEVELS and t.n_rendered == 2 * LEVELS
    assert not t.step_atlas()  # all done: nothing more to render
    # the renderer's own prompt, base and schedule came back: the picture on screen is unchanged
    np.testing.assert_array_equal(t.renderer.render(1.0, t.positions), before)
    n = t.n_rendered
    t.views.get(timeout=0)
    t.requests.put(RenderRequest(prompt="a fire in the snow", words=("snow",), seed=7, scene="snow"))
    assert not t.step_atlas()
    view = t.views.get(timeout=0)
    assert view is not None and view.scene == "snow" and view.atlas.complete and t.n_rendered == n
    # and the prefilled levels are what the scene renders (same prompt, word, seed; a batched render may differ
    # from a single one by float rounding: at most 1/255 here)
    backend = make_backend("torch", tiny_components, torch.device("cpu"), torch.float32)
    fresh = Renderer(tiny_components, backend, width=64, height=64, seed=7)
    fresh.prepare("a fire in the snow")
    exact = fresh.render(float(view.atlas.weights[2]), list(view.positions))
    assert np.abs(view.atlas.frames[2].astype(int) - exact.astype(int)).max() <= 1
    other = Renderer(tiny_components, backend, width=64, height=64, seed=8)  # not another seed's picture
    other.prepare("a fire in the snow")
    assert np.abs(view.atlas.frames[2].astype(int) - other.render(float(view.atlas.weights[2]),
                                                                  list(view.positions)).astype(int)).mean() > 1


def test_a_prefill_never_evicts(thread):
    t = thread
    per_atlas_mb = LEVELS * 64 * 64 * 3 / 2**20
    t.cache.cap = int(1.5 * per_atlas_mb * 2**20)  # room for the atlas on screen only
    t.prefill = [RenderRequest(prompt="a fire in the snow", words=("snow",), seed=7, scene="snow")]
    fill_until_idle(t)
    assert t.n_prefilled == 0 and len(t.cache) == 1
