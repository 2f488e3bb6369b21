"""The frame atlas: levels, blends, fill order, stand-ins, memory cap and LRU (docs/design.md §7)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from aadiff_live.backends import make_backend
from aadiff_live.errors import UserError
from aadiff_live.rendering.atlas import (
    Atlas,
    AtlasCache,
    AtlasKey,
    atlas_key,
    blend_frames,
    check_fits,
    coarse_to_fine,
    fill,
)
from aadiff_live.rendering.pipeline import Renderer

POS = [1, 2, 3, 4, 5]


def key(levels=9, prompt="fire", size=8, lo=0.0, hi=2.0) -> AtlasKey:
    return AtlasKey(model="m", backend="b", prompt=prompt, positions=(1,), seed=0, width=size, height=size, steps=1,
                    guidance=0.0, image=None, strength=None, w_lo=lo, w_hi=hi, levels=levels)


@pytest.fixture(scope="module")
def renderer(tiny_components):
    backend = make_backend("torch", tiny_components, torch.device("cpu"), torch.float32)
    r = Renderer(tiny_components, backend, width=64, height=64, seed=2)
    r.prepare("fire over water")
    return r


def test_coarse_to_fine_order():
    assert coarse_to_fine(9) == [0, 8, 4, 2, 6, 1, 3, 5, 7]
    assert coarse_to_fine(5) == [0, 4, 2, 1, 3]
    for n in (1, 2, 3, 17, 33, 20):
        assert sorted(coarse_to_fine(n)) == list(range(n))


def test_blend_equals_exact_render_at_level_points_and_clamps(renderer):
    a = Atlas(atlas_key(renderer, "fire over water", POS, 5, 0.0, 2.0))
    fill(a, lambda ws: renderer.render_batch(ws, POS), range(5))
    assert a.complete
    for i, w in enumerate(a.weights):  # 0, 0.5, 1, 1.5, 2
        img, look = a.blend(float(w))
        assert look.exact and look.lo == i
        # the level's own frame, which is the exact render (a batched UNet call may round 1/255 apart)
        np.testing.assert_array_equal(img, a.frames[i])
        assert np.abs(img.astype(int) - renderer.render(float(w), POS)).max() <= 1
    # outside the range: the end levels
    np.testing.assert_array_equal(a.blend(-3.0)[0], a.frames[0])
    np.testing.assert_array_equal(a.blend(7.0)[0], a.frames[4])
    # between two levels: their linear blend
    img, look = a.blend(0.75)
    assert (look.lo, look.hi, look.exact) == (1, 2, False) and look.t == pytest.approx(0.5)
    mid = (a.frames[1].astype(np.float32) + a.frames[2]) / 2
    assert np.abs(img - mid).max() <= 0.5 + 1e-6
    # and the blend is close to the exact render there (smooth in w)
    exact = renderer.render(0.75, POS).astype(np.float32)
    assert np.abs(img - exact).mean() < np.abs(a.frames[1].astype(np.float32) - exact).mean()


def test_blend_frames_rounds():
    a = np.zeros((1, 1, 3), np.uint8)
    b = np.full((1, 1, 3), 255, np.uint8)
    assert blend_frames(a, b, 0.5)[0, 0, 0] == 128  # 127.5 rounds half up
    assert blend_frames(a, b, 0.0)[0, 0, 0] == 0 and blend_frames(a, b, 1.0)[0, 0, 0] == 255


def test_fill_order_nearest_first_then_coarse_to_fine():
    a = Atlas(key(levels=9))
    assert a.missing(None, 3) == [0, 8, 4]
    # the weight on screen is 1.2 -> level 4.8 -> nearest 5: rendered first
    assert a.missing(1.2, 4) == [5, 0, 8, 4]
    frame = np.zeros((8, 8, 3), np.uint8)
    for i in (5, 0, 8, 4):
        a.put(i, frame)
    assert a.missing(1.2, 3) == [2, 6, 1]  # nearest present: plain coarse to fine
    assert a.missing(0.26, 2) == [1, 2]  # 0.26 -> level 1.04: its level 1 jumps the queue


def test_nearest_rendered_level_stands_in_until_both_neighbours_exist():
    a = Atlas(key(levels=9))
    assert a.lookup(1.0) is None  # nothing yet
    frames = {i: np.full((8, 8, 3), 10 * i, np.uint8) for i in range(9)}
    a.put(0, frames[0])
    look = a.lookup(1.1)  # level 4.4
    assert (look.lo, look.hi, look.stand_in) == (0, 0, True)
    a.put(8, frames[8])
    assert a.lookup(1.1).lo == 8  # level 8 is nearer to 4.4 than level 0
    a.put(4, frames[4])
    look = a.lookup(1.1)
    assert (look.lo, look.stand_in) == (4, True)  # 5 missing: 4 stands in
    a.put(5, frames[5])
    img, look = a.blend(1.1)
    assert (look.lo, look.hi, look.stand_in) == (4, 5, False) and look.t == pytest.approx(0.4)
    assert int(img[0, 0, 0]) == 44


def test_memory_cap_is_a_one_line_error_that_says_what_fits():
    with pytest.raises(UserError) as err:
        check_fits(65, 512, 512, 32)
    msg = str(err.value)
    assert "\n" not in msg and "--levels 65" in msg and "at most 42 levels fit" in msg and "--atlas-mb" in msg
    check_fits(42, 512, 512, 32)


def test_lru_evicts_least_recently_used_by_memory_never_the_pinned():
    one = Atlas(key()).nbytes
    cache = AtlasCache(cap_mb=3.5 * one / (1024 * 1024))  # room for 3
    a, b, c = (cache.get(key(prompt=p)) for p in "abc")
    assert len(cache) == 3 and cache.evicted == 0
    assert cache.get(key(prompt="a")) is a  # a is now the most recent: b is the oldest
    cache.get(key(prompt="d"))
    assert key(prompt="b") not in cache and key(prompt="a") in cache and cache.evicted == 1
    assert cache.nbytes <= cache.cap
    # c is pinned (on screen): e evicts a instead
    cache.get(key(prompt="e"), pinned=[key(prompt="c")])
    assert key(prompt="c") in cache and key(prompt="a") not in cache
    # a filled atlas that comes back is kept with its frames
    d = cache.get(key(prompt="d"))
    d.put(0, np.ones((8, 8, 3), np.uint8))
    cache.get(key(prompt="f"))
    assert cache.get(key(prompt="d")).has(0)


def test_key_names_everything_that_determines_the_frames(renderer):
    k = atlas_key(renderer, "fire over water", POS, 33, 0.0, 2.0)
    assert k != atlas_key(renderer, "fire over land", POS, 33, 0.0, 2.0)
    assert k != atlas_key(renderer, "fire over water", [1, 2], 33, 0.0, 2.0)
    assert (k.seed, k.width, k.height, k.steps, k.model) == (2, 64, 64, renderer.steps, renderer.c.name)
