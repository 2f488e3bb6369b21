"""``Renderer.render_batch``: several levels per UNet call equal the frames rendered one by one."""

from __future__ import annotations

import copy

import diffusers
import numpy as np
import pytest
import torch

from aadiff_live.backends import make_backend
from aadiff_live.rendering.pipeline import Renderer

WEIGHTS = [0.0, 0.7, 1.3, 2.0]


def _renderer(components, scheduler: str | None = None, guidance: float = 0.0, steps: int = 2) -> Renderer:
    c = copy.copy(components)
    if scheduler is not None:
        cfg = dict(components.scheduler.config)
        cfg["prediction_type"] = "epsilon"
        c.scheduler = getattr(diffusers, scheduler).from_config(cfg)
    backend = make_backend("torch", c, torch.device("cpu"), torch.float32)
    r = Renderer(c, backend, width=64, height=64, steps=steps, guidance=guidance, seed=5)
    r.prepare("fire over water")
    return r


@pytest.mark.parametrize("scheduler,guidance", [(None, 0.0), (None, 4.0), ("EulerAncestralDiscreteScheduler", 0.0),
                                                ("LCMScheduler", 0.0)])
def test_batch_rows_equal_single_renders(tiny_components, scheduler, guidance):
    r = _renderer(tiny_components, scheduler, guidance)
    pos = [1, 2, 3, 4]
    batch = r.render_batch(WEIGHTS, pos)
    assert batch.shape == (len(WEIGHTS), 64, 64, 3) and batch.dtype == np.uint8
    singles = np.stack([r.render(w, pos) for w in WEIGHTS])
    # the same frames up to float rounding (batched kernels may sum in another order)
    diff = np.abs(batch.astype(int) - singles)
    assert diff.max() <= 1 and diff.mean() < 0.01, (diff.max(), diff.mean())
    # and the rows differ from each other: each row got its own weight
    assert np.abs(batch[0].astype(float) - batch[-1]).mean() > 1.0


def test_token_scales_one_row_per_weight_conditional_only(tiny_components):
    r = _renderer(tiny_components, guidance=4.0)
    c = r.token_scales([2, 3], [0.5, 1.5])
    assert c.shape == (4, r.n_tokens)
    assert torch.all(c[:2] == 1)  # unconditional rows untouched
    assert c[2, 2] == 0.5 and c[3, 3] == 1.5 and c[3, 4] == 1


def test_batch_inputs_are_allocated_once_per_shape_and_rebuilt_for_a_new_prompt(tiny_components):
    """The backend's UNet gets the same text and token_scale tensors in every call of one batch size (kept alive
    here, so a new allocation cannot reuse their memory and pass for them)."""
    r = _renderer(tiny_components, guidance=4.0)
    seen: list[tuple[torch.Tensor, torch.Tensor]] = []
    unet = r.backend.unet

    def spy(sample, timestep, text, token_scale, *added):
        seen.append((text, token_scale))
        return unet(sample, timestep, text, token_scale, *added)

    r.backend.unet = spy
    r = Renderer(r.c, r.backend, width=64, height=64, steps=2, guidance=4.0, seed=5)  # built on the spy
    r.prepare("fire over water")
    first = r.render_batch(WEIGHTS, [1, 2])
    calls = list(seen)
    seen.clear()
    again = r.render_batch(WEIGHTS[::-1], [3])  # other weights and positions, the same batch size
    assert all(a[0] is b[0] and a[1] is b[1] for a, b in zip(calls, seen, strict=True))
    assert not np.array_equal(first, again[::-1])  # ... written with this call's weights and positions
    np.testing.assert_array_equal(r.render_batch(WEIGHTS, [1, 2]), first)
    seen.clear()
    r.render_batch(WEIGHTS[:2], [1, 2])  # another batch size: its own buffers
    assert seen[0][1].shape[0] == 4 and seen[0][1] is not calls[0][1]
    r.prepare("smoke over water")  # a new prompt: new text inputs
    seen.clear()
    r.render_batch(WEIGHTS, [1, 2])
    assert seen[0][0] is not calls[0][0] and not torch.equal(seen[0][0], calls[0][0])


def test_prepare_with_a_new_seed_draws_a_new_base(tiny_components):
    r = _renderer(tiny_components)
    old = r.base
    r.prepare("fire over water", seed=5)  # the same seed: the same base noise
    assert torch.equal(r.base.latents, old.latents)
    a = r.render(1.0, [1])
    r.prepare("fire over water", seed=6)
    assert r.seed == 6 and not torch.equal(r.base.latents, old.latents)
    b = r.render(1.0, [1])
    r.prepare("fire over water", seed=5)
    np.testing.assert_array_equal(r.render(1.0, [1]), a)  # back to the first seed: the first picture
    assert not np.array_equal(a, b)
    with pytest.raises(AttributeError):
        r.seed = 7  # type: ignore[misc]  # only prepare() changes it
