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
