"""The grid atlas (docs/design.md §7): k routed words, one axis each, multilinear blends of 2^k corners."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch

from aadiff_live.backends import make_backend
from aadiff_live.errors import UserError
from aadiff_live.rendering.atlas import (
    Atlas,
    AtlasCache,
    AtlasKey,
    Axis,
    blend_many,
    check_fits,
    coarse_to_fine,
    fill,
    grid_key,
    grid_order,
)
from aadiff_live.rendering.pipeline import Renderer

PROMPT = "thunder and rain over a dark sea"


def key(shape=(5, 5), prompt="fire", size=4, lo=0.0, hi=2.0) -> AtlasKey:
    more = tuple(Axis((10 + a,), lo, hi, n) for a, n in enumerate(shape[1:]))
    return AtlasKey(model="m", backend="b", prompt=prompt, positions=(1,), seed=0, width=size, height=size, steps=1,
                    guidance=0.0, image=None, strength=None, w_lo=lo, w_hi=hi, levels=shape[0], more=more)


def coded(atlas: Atlas) -> dict[int, np.ndarray]:
    """Each cell's frame encodes its weights: channel a = 40 * weight on axis a (exactly linear in w)."""
    out = {}
    for i in range(atlas.n_cells):
        w = atlas.point(i)
        f = np.zeros((atlas.key.height, atlas.key.width, 3), np.uint8)
        for a, x in enumerate(w):
            f[..., a] = round(40 * x)
        out[i] = f
    return out


@pytest.fixture(scope="module")
def renderer(tiny_components):
    backend = make_backend("torch", tiny_components, torch.device("cpu"), torch.float32)
    r = Renderer(tiny_components, backend, width=64, height=64, seed=2)
    r.prepare(PROMPT)
    return r


def groups(renderer) -> list[list[int]]:
    from aadiff_live.tokens.words import word_positions

    found = word_positions(renderer.c.tokenizer, PROMPT, ["thunder", "rain"])
    return [found["thunder"], found["rain"]]


def test_grid_order_is_coarse_to_fine_on_every_axis():
    assert grid_order((9,)) == coarse_to_fine(9)
    order = grid_order((5, 5))
    assert sorted(order) == list(range(25))
    idx = [np.unravel_index(c, (5, 5)) for c in order]
    assert set(idx[:4]) == {(0, 0), (0, 4), (4, 0), (4, 4)}  # the corners of the whole grid
    assert set(idx[:9]) == set(itertools.product((0, 2, 4), repeat=2))  # then the 3x3 grid
    assert sorted(grid_order((3, 2, 4))) == list(range(24))


def test_blend_is_multilinear_and_exact_on_cells():
    a = Atlas(key((5, 9)))
    assert a.k == 2 and a.n_cells == 45 and a.frames.shape[0] == 45
    for i, f in coded(a).items():
        a.put(i, f)
    assert a.complete
    img, look = a.blend((1.0, 0.5))  # a cell itself
    assert look.exact and look.cells == (a.nearest((1.0, 0.5)),) and img[0, 0, 0] == 40
    rng = np.random.default_rng(0)
    for _ in range(20):
        w = rng.uniform(0, 2, size=2)
        img, look = a.blend(tuple(w))
        assert not look.stand_in and len(look.cells) == 4 and sum(look.coeffs) == pytest.approx(1.0)
        # the frames are linear in each weight, so the multilinear blend recovers them (to rounding)
        assert abs(int(img[0, 0, 0]) - 40 * w[0]) <= 1.0 and abs(int(img[0, 0, 1]) - 40 * w[1]) <= 1.0
    # on a grid line only the 2 cells along the other axis take part; outside the range: clamped
    assert len(a.lookup((0.5, 0.3)).cells) == 2
    img, look = a.blend((-1.0, 5.0))
    assert look.exact and look.cells == (int(np.ravel_multi_index((0, 8), (5, 9))),)


def test_missing_corner_takes_the_nearest_rendered_cell_until_it_arrives():
    a = Atlas(key((5, 5)))
    assert a.lookup((1.0, 1.0)) is None
    frames = coded(a)
    for c in grid_order((5, 5))[:9]:  # the 3x3 coarse grid: levels 0, 2, 4 on each axis
        a.put(c, frames[c])
    w = (0.9, 0.9)  # level 1.8 on both axes: corners (1,1) (1,2) (2,1) (2,2); only (2,2) is rendered
    look = a.lookup(w)
    assert look.stand_in and not look.exact
    assert sum(look.coeffs) == pytest.approx(1.0) and set(look.cells) <= set(np.flatnonzero(a.filled()))
    # the fill starts with the missing corners of that cell, nearest the weights first
    todo = a.missing(w, 3)
    assert [tuple(int(x) for x in np.unravel_index(c, (5, 5))) for c in todo] == [(1, 2), (2, 1), (1, 1)]
    for c in todo:
        a.put(c, frames[c])
    img, look = a.blend(w)
    assert not look.stand_in and len(look.cells) == 4 and look.coeffs == pytest.approx((0.04, 0.16, 0.16, 0.64))
    assert abs(int(img[0, 0, 0]) - 36) <= 1


def test_fill_order_corners_of_the_newest_cell_first_then_coarse_grid():
    a = Atlas(key((9, 9)))
    w = (1.2, 0.3)  # level 4.8 and 1.2: the cell (4..5, 1..2); nearest corner (5, 1)
    todo = a.missing(w, 6)
    cells = [tuple(int(x) for x in np.unravel_index(c, (9, 9))) for c in todo]
    assert cells[0] == (5, 1) and set(cells[:4]) == {(4, 1), (4, 2), (5, 1), (5, 2)}
    assert cells[4:] == [(0, 0), (0, 8)]  # then the coarse grid from its start


def test_fill_renders_weight_vectors_and_one_axis_stays_as_before():
    a = Atlas(key((3, 2)))
    got: list = []

    def render(points):
        got.extend(points)
        return np.zeros((len(points), 4, 4, 3), np.uint8)

    assert fill(a, render, range(6)) == 6 and a.complete
    assert got == [(0.0, 0.0), (0.0, 2.0), (1.0, 0.0), (1.0, 2.0), (2.0, 0.0), (2.0, 2.0)]
    one = Atlas(key((5,)))
    assert one.k == 1 and one.point(2) == 1.0 and one.n_levels == 5


def test_grid_memory_cap_and_cache():
    with pytest.raises(UserError) as err:
        check_fits((9, 9), 512, 512, 32)
    msg = str(err.value)
    assert "\n" not in msg and "9x9" in msg and "at most 6 levels per axis fit" in msg and "--levels-2" in msg
    check_fits((5, 5), 512, 512, 32)
    one = Atlas(key((3, 3))).nbytes
    cache = AtlasCache(cap_mb=2.5 * one / (1024 * 1024))
    a = cache.get(key((3, 3), prompt="a"))
    cache.get(key((3, 3), prompt="b"))
    cache.get(key((3, 3), prompt="c"), pinned=[a.key])
    assert a.key in cache and key((3, 3), prompt="b") not in cache


def test_blend_many_rounds_like_blend_frames():
    f = [np.full((1, 1, 3), v, np.uint8) for v in (0, 255, 10, 20)]
    assert blend_many(f[:2], [0.5, 0.5])[0, 0, 0] == 128
    assert blend_many(f, [0.25] * 4)[0, 0, 0] == round((255 + 30) / 4)


def test_token_scale_carries_one_value_per_routed_word(renderer):
    g = groups(renderer)
    assert g[0] and g[1] and not set(g[0]) & set(g[1])
    c = renderer.token_scales(g, [(0.5, 1.5), (2.0, 0.0)])
    assert c.shape == (2, renderer.n_tokens)
    assert torch.all(c[0, g[0]] == 0.5) and torch.all(c[0, g[1]] == 1.5)
    assert torch.all(c[1, g[0]] == 2.0) and torch.all(c[1, g[1]] == 0.0)
    others = [i for i in range(renderer.n_tokens) if i not in g[0] + g[1]]
    assert torch.all(c[:, others] == 1)
    with pytest.raises(ValueError):
        renderer.token_scales(g, [0.5])


def test_grid_rows_equal_single_renders_and_each_word_moves_the_picture(renderer):
    g = groups(renderer)
    points = [(0.0, 0.0), (2.0, 0.0), (0.0, 2.0), (1.0, 1.0)]
    batch = renderer.render_batch(points, g)
    singles = np.stack([renderer.render(p, g) for p in points])
    assert np.abs(batch.astype(int) - singles).max() <= 1
    # both weights equal: the same as one group holding both words' tokens
    same = renderer.render(1.0, sorted(g[0] + g[1]))
    assert np.abs(singles[3].astype(int) - same).max() <= 1
    # each word's weight changes the frame on its own
    base = singles[0].astype(float)
    assert np.abs(singles[1] - base).mean() > 0.5 and np.abs(singles[2] - base).mean() > 0.5
    assert np.abs(singles[1].astype(float) - singles[2]).mean() > 0.5


def test_static_buffer_path_takes_a_weight_vector(tiny_components, renderer):
    backend = make_backend("torch", tiny_components, torch.device("cpu"), torch.float32)
    r = Renderer(tiny_components, backend, width=64, height=64, seed=2, static=True)
    r.prepare(PROMPT)
    g = groups(r)
    for p in [(0.3, 1.7), (1.9, 0.1)]:
        assert np.abs(r.render(p, g).astype(int) - renderer.render(p, g)).max() <= 1


def test_grid_key_limits_the_axes(renderer):
    g = groups(renderer)
    axes = [Axis(tuple(g[0]), 0.0, 2.0, 9), Axis(tuple(g[1]), 0.0, 2.0, 9)]
    k = grid_key(renderer, PROMPT, axes)
    assert k.axes == tuple(axes) and k.shape == (9, 9) and k.n_cells == 81
    assert k != grid_key(renderer, PROMPT, [axes[1], axes[0]])
    with pytest.raises(ValueError):
        grid_key(renderer, PROMPT, axes * 2)
