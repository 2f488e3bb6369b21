"""Schedulers: every frame gets the same start and the same injected noise, whatever the scheduler."""

from __future__ import annotations

import copy

import diffusers
import numpy as np
import pytest
import torch

from aadiff_live.backends import make_backend
from aadiff_live.rendering.pipeline import Renderer, default_schedule

SCHEDULERS = ["EulerDiscreteScheduler", "EulerAncestralDiscreteScheduler", "DDIMScheduler", "PNDMScheduler",
              "DPMSolverMultistepScheduler", "LCMScheduler"]


@pytest.mark.parametrize("name", SCHEDULERS)
def test_same_weight_same_frame_and_weight_moves_it(tiny_components, name):
    c = copy.copy(tiny_components)
    cfg = dict(tiny_components.scheduler.config)
    if name in ("PNDMScheduler", "EulerAncestralDiscreteScheduler"):  # no "sample" prediction there
        cfg["prediction_type"] = "epsilon"
    if name == "PNDMScheduler":  # as SD 1.5 ships it
        cfg.update(skip_prk_steps=True, steps_offset=1, timestep_spacing="leading")
    c.scheduler = getattr(diffusers, name).from_config(cfg)
    backend = make_backend("torch", c, torch.device("cpu"), torch.float32)
    r = Renderer(c, backend, width=64, height=64, steps=3, guidance=0.0, seed=3)
    r.prepare("fire over water")
    pos = [1, 2, 3, 4]
    a = r.render(1.7, pos)
    b = r.render(0.2, pos)
    a2 = r.render(1.7, pos)
    np.testing.assert_array_equal(a, a2)  # injected noise is identical every frame (ancestral, LCM)
    assert np.abs(a.astype(float) - b).mean() > 1.0


def test_seed_changes_the_base(tiny_components):
    backend = make_backend("torch", tiny_components, torch.device("cpu"), torch.float32)
    frames = []
    for seed in (0, 1):
        r = Renderer(tiny_components, backend, width=64, height=64, seed=seed)
        r.prepare("fire")
        frames.append(r.render(1.0, [1, 2, 3, 4]).astype(float))
    assert np.abs(frames[0] - frames[1]).mean() > 1.0


def test_guidance_weights_only_the_conditional_branch(tiny_components):
    backend = make_backend("torch", tiny_components, torch.device("cpu"), torch.float32)
    r = Renderer(tiny_components, backend, width=64, height=64, steps=3, guidance=5.0)
    r.prepare("fire over water")
    assert r.base.embeddings.shape[0] == 2
    c = r.token_scale([2, 3], 0.0)
    assert c[0].tolist() == [1.0] * c.shape[1] and c[1, 2] == 0 and c[1, 4] == 1
    a, b = r.render(0.0, [1, 2, 3, 4]), r.render(2.0, [1, 2, 3, 4])
    assert np.abs(a.astype(float) - b).mean() > 1.0


def test_default_schedules_by_family(tiny_components):
    c = copy.copy(tiny_components)
    c.is_tiny = False
    c.name = "stabilityai/sd-turbo"
    assert default_schedule(c, None, None) == (1, 0.0)
    c.name = "runwayml/stable-diffusion-v1-5"
    assert default_schedule(c, None, None) == (25, 7.5)
    assert default_schedule(c, 10, 3.0) == (10, 3.0)
    c.scheduler = diffusers.LCMScheduler.from_config(c.scheduler.config)
    assert default_schedule(c, None, None) == (4, 0.0)


def test_new_prompt_keeps_the_base_noise(tiny_components):
    backend = make_backend("torch", tiny_components, torch.device("cpu"), torch.float32)
    r = Renderer(tiny_components, backend, width=64, height=64)
    first = r.prepare("fire over water").latents
    second = r.prepare("rain over water")
    assert second.prompt == "rain over water" and second.latents is first


@pytest.mark.parametrize("name", ["EulerDiscreteScheduler", "DPMSolverMultistepScheduler", "PNDMScheduler"])
def test_scheduler_is_prepared_once_not_per_frame(tiny_components, name, monkeypatch):
    """``set_timesteps`` rebuilds the schedule: prepare() runs it once; a frame only rewinds the step
    state (and multistep history), and still gives the same frame for the same weight."""
    c = copy.copy(tiny_components)
    cfg = dict(tiny_components.scheduler.config)
    if name == "PNDMScheduler":
        cfg.update(prediction_type="epsilon", skip_prk_steps=True, steps_offset=1, timestep_spacing="leading")
    c.scheduler = getattr(diffusers, name).from_config(cfg)
    backend = make_backend("torch", c, torch.device("cpu"), torch.float32)
    r = Renderer(c, backend, width=64, height=64, steps=3, guidance=0.0, seed=3)
    calls = []
    real = c.scheduler.set_timesteps
    monkeypatch.setattr(c.scheduler, "set_timesteps", lambda *a, **k: (calls.append(a), real(*a, **k))[1])
    r.prepare("fire over water")
    assert len(calls) == 1
    first = r.render(1.3, [1, 2, 3])
    r.render(0.4, [1, 2, 3])
    again = r.render(1.3, [1, 2, 3])
    assert len(calls) == 1, "set_timesteps ran during a frame"
    np.testing.assert_array_equal(first, again)
