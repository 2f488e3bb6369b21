"""``--image photo.jpg --invert``: null-text inversion (Mokady et al. 2022), so the frame at weight 1 *is* the photo.

1. **DDIM inversion.** The photo's VAE latent is run up the deterministic DDIM schedule under the prompt (no
   guidance), giving a trajectory ``z*_0 .. z*_T``; ``z*_T`` becomes the base's start latent.
2. **Null-text optimisation.** Rendering with classifier-free guidance from ``z*_T`` drifts off that trajectory.
   For each step, from ``T`` down, the unconditional ("null") text embedding is tuned with Adam (about 10
   iterations, stopping early once the latent error is small) so that the guided DDIM step lands on ``z*_{t-1}``;
   that step's embedding is kept, and the next step starts where the tuned one landed.

The result is part of the base (docs/design.md §3): the start latent and one unconditional embedding per step,
which replace the prompt's empty-text embedding step by step. Reweighting scales only the conditional row, so at
weight 1 a frame follows the optimised trajectory back to the photo, and the frame atlas works on top unchanged.

The renderer steps with DDIM (eta 0) whatever the model's own scheduler, so that rendering retraces the
inversion. Results are cached on disk per (photo, prompt, model, steps, guidance, size, precision) in
``$AADIFF_ENGINES/inversions`` (default ``./engines/inversions``): a second render or a live show starts at once.
Few-step models (turbo, LCM) and models without guidance cannot be inverted this way: one-line error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import torch
from tqdm import tqdm

from aadiff_live.errors import UserError

log = logging.getLogger(__name__)
INNER_STEPS = 10  # Adam iterations per step (Mokady et al.)
LR = 1e-2  # Adam's learning rate at the first step, lowered by 1% per step as in the reference code
EARLY_STOP = 1e-5  # stop a step's iterations once the latent MSE is below this (+ 2e-5 per step done)
CACHE_FORMAT = 1
FEW_STEP = ("--invert needs a multi-step model with classifier-free guidance (the SD 1.5 and SD 2.1 families); "
            "{why}: animate the photo with --image and --strength instead (img2img)")


@dataclass(frozen=True)
class Inversion:
    """What an inversion leaves in the base: the start latent and one unconditional embedding per step."""

    latent: torch.Tensor  # z*_T, [1, 4, h, w] float32
    nulls: torch.Tensor  # [steps, tokens, dim]: the unconditional embedding of each step, in the schedule's order
    stats: dict = field(default_factory=dict)  # per step: iterations and final latent MSE; seconds; cache hit


def check_invertible(components, steps: int, guidance: float) -> None:
    """One-line :class:`UserError` unless ``components`` at ``steps``/``guidance`` can be null-text inverted."""
    name = components.name.lower()
    cls = type(components.scheduler).__name__
    if "turbo" in name or "LCM" in cls or "lcm" in name or getattr(components.unet.config, "time_cond_proj_dim", None):
        raise UserError(FEW_STEP.format(why=f"{components.name} is a few-step distilled model"))
    if components.is_tiny:
        raise UserError(FEW_STEP.format(why="--model tiny runs 2 steps without guidance"))
    if guidance <= 1.0:
        raise UserError(FEW_STEP.format(why=f"--guidance {guidance:g} turns guidance off"))
    if steps < 2:
        raise UserError(FEW_STEP.format(why=f"--steps {steps} is a single step"))
    if components.text_encoder_2 is not None:
        raise UserError("--invert supports SD 1.x and 2.x models (one text encoder); for SDXL use --image with "
                        "--strength (img2img)")


def check_invertible_name(model: str, guidance: float | None) -> None:
    """The same check from the model's name alone, before it loads (turbo, LCM, tiny; guidance off)."""
    low = model.lower()
    if "turbo" in low or "lcm" in low:
        raise UserError(FEW_STEP.format(why=f"{model} is a few-step distilled model"))
    if low == "tiny":
        raise UserError(FEW_STEP.format(why="--model tiny runs 2 steps without guidance"))
    if guidance is not None and guidance <= 1.0:
        raise UserError(FEW_STEP.format(why=f"--guidance {guidance:g} turns guidance off"))


def ddim_scheduler(scheduler):
    """A DDIM scheduler (eta 0) from the model's scheduler config: the one the inversion retraces."""
    from diffusers import DDIMScheduler

    if isinstance(scheduler, DDIMScheduler):
        return scheduler
    return DDIMScheduler.from_config(scheduler.config)


def _alphas(sched, t: int) -> tuple[float, float]:
    """``(alpha_bar at t, alpha_bar at the step before t)`` on ``sched``'s inference schedule."""
    prev = t - sched.config.num_train_timesteps // sched.num_inference_steps
    a_t = float(sched.alphas_cumprod[t])
    a_prev = float(sched.alphas_cumprod[prev]) if prev >= 0 else float(sched.final_alpha_cumprod)
    return a_t, a_prev


def _x0_eps(sched, out: torch.Tensor, x: torch.Tensor, a: float) -> tuple[torch.Tensor, torch.Tensor]:
    kind = sched.config.prediction_type
    if kind == "epsilon":
        return (x - (1 - a) ** 0.5 * out) / a ** 0.5, out
    if kind == "v_prediction":
        return a ** 0.5 * x - (1 - a) ** 0.5 * out, a ** 0.5 * out + (1 - a) ** 0.5 * x
    raise UserError(f"--invert: the scheduler predicts {kind!r}; only epsilon and v_prediction models invert")


def ddim_down(sched, out: torch.Tensor, t: int, x: torch.Tensor) -> torch.Tensor:
    """One deterministic DDIM step from ``t`` to the step before (what ``DDIMScheduler.step`` does at eta 0)."""
    a_t, a_prev = _alphas(sched, t)
    x0, eps = _x0_eps(sched, out, x, a_t)
    return a_prev ** 0.5 * x0 + (1 - a_prev) ** 0.5 * eps


def ddim_up(sched, out: torch.Tensor, t: int, x: torch.Tensor) -> torch.Tensor:
    """One DDIM inversion step: from the step before ``t`` up to ``t``, with the model's output at ``t``."""
    a_t, a_prev = _alphas(sched, t)
    x0, eps = _x0_eps(sched, out, x, a_prev)
    return a_t ** 0.5 * x0 + (1 - a_t) ** 0.5 * eps


Unet = Callable[[torch.Tensor, int, torch.Tensor], torch.Tensor]  # (latent, timestep, text [1, tokens, dim]) -> out


def torch_unet(unet) -> Unet:
    """The components' torch UNet as ``(latent, t, text) -> output`` in float32 (gradients flow to ``text``)."""
    p = next(unet.parameters())

    def run(x: torch.Tensor, t: int, text: torch.Tensor) -> torch.Tensor:
        return unet(x.to(p.device, p.dtype), t, encoder_hidden_states=text.to(p.device, p.dtype)).sample.float()

    return run


@torch.no_grad()
def ddim_trajectory(unet: Unet, sched, latent0: torch.Tensor, cond: torch.Tensor) -> list[torch.Tensor]:
    """``[z*_0, ..., z*_T]``: the photo's latent run up the schedule under the prompt, no guidance."""
    out = [latent0]
    x = latent0
    for t in reversed(sched.timesteps.tolist()):
        x = ddim_up(sched, unet(x, t, cond), t, x)
        out.append(x)
    return out


def null_text(unet: Unet, sched, trajectory: list[torch.Tensor], cond: torch.Tensor, null0: torch.Tensor,
              guidance: float, *, inner: int = INNER_STEPS, progress: bool = True) -> tuple[torch.Tensor, list[dict]]:
    """Per step, the unconditional embedding that brings the guided DDIM step onto the trajectory; ``([steps,
    tokens, dim], per-step stats)``."""
    timesteps = sched.timesteps.tolist()
    null = null0.detach().float().clone()
    x = trajectory[-1]
    nulls, stats = [], []
    bar = tqdm(total=len(timesteps) * inner, desc="null-text inversion", unit="it", disable=not progress,
               dynamic_ncols=True)
    for i, t in enumerate(timesteps):
        target = trajectory[len(trajectory) - i - 2]
        with torch.no_grad():
            out_cond = unet(x, t, cond)
        null = null.detach().requires_grad_(True)
        opt = torch.optim.Adam([null], lr=LR * (1.0 - i / 100.0))
        loss_value, done = float("nan"), 0
        for j in range(inner):
            with torch.enable_grad():
                out_null = unet(x, t, null)
                guided = out_null + guidance * (out_cond - out_null)
                loss = torch.nn.functional.mse_loss(ddim_down(sched, guided, t, x), target)
                opt.zero_grad()
                loss.backward()
            opt.step()
            loss_value, done = float(loss.detach()), j + 1
            bar.update(1)
            if loss_value < EARLY_STOP + i * 2e-5:
                break
        bar.update(inner - done)
        bar.set_postfix(mse=f"{loss_value:.2e}")
        null = null.detach()
        with torch.no_grad():
            out_null = unet(x, t, null)
            x = ddim_down(sched, out_null + guidance * (out_cond - out_null), t, x)
        nulls.append(null[0])
        stats.append({"t": int(t), "iterations": done, "mse": loss_value})
    bar.close()
    return torch.stack(nulls), stats


# ---------------------------------------------------------------- the cache
def default_cache_dir() -> Path:
    """Beside the compiled engines: ``$AADIFF_ENGINES/inversions`` (default ``./engines/inversions``)."""
    from aadiff_live.backends.engines import default_engines_dir

    return default_engines_dir() / "inversions"


def photo_digest(pixels) -> str:
    """sha256 of the photo as it is inverted (cropped and resized to the render size, RGB bytes)."""
    import numpy as np

    return hashlib.sha256(np.ascontiguousarray(pixels).tobytes()).hexdigest()


def cache_key(**parts) -> str:
    """A file name stem for these identifying parts (photo digest, prompt, model, steps, guidance, size, ...)."""
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:32]


def load_cached(path: Path) -> Inversion | None:
    if not path.is_file():
        return None
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
        if data.get("format") != CACHE_FORMAT:
            raise ValueError(f"format {data.get('format')}")
        return Inversion(data["latent"].float(), data["nulls"].float(), {**json.loads(data["stats"]), "cached": True})
    except Exception as exc:  # noqa: BLE001 - a damaged file is computed again, said once
        log.warning("the cached inversion %s is damaged (%s): computing it again", path, type(exc).__name__)
        return None


def save_cached(path: Path, inv: Inversion, parts: dict) -> None:
    """Written to a temporary file and renamed: a crash leaves no half file. A folder that cannot be written
    loses only the cache (a warning), never the render."""
    tmp = None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
        os.close(fd)
        torch.save({"format": CACHE_FORMAT, "latent": inv.latent, "nulls": inv.nulls,
                    "stats": json.dumps(inv.stats), "key": json.dumps(parts, default=str)}, tmp)
        from aadiff_live.output.sidecar import current_umask  # here: the render core imports no output module

        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        log.warning("cannot cache the inversion in %s (%s); the next run computes it again", path.parent,
                    exc.strerror or type(exc).__name__)


def invert(unet: Unet, sched, latent0: torch.Tensor, cond: torch.Tensor, null0: torch.Tensor, guidance: float, *,
           cache: Path | None, parts: dict, null_text_steps: bool = True, progress: bool = True) -> Inversion:
    """The photo's inversion: from ``cache / <key>.pt`` when there, else computed (and cached). ``sched`` has its
    timesteps set. ``null_text_steps=False``: plain DDIM inversion (the prompt's empty-text embedding every step)."""
    path = cache / f"{cache_key(**parts, null_text=null_text_steps)}.pt" if cache is not None else None
    if path is not None and (hit := load_cached(path)) is not None:
        log.info("inversion of the photo: from the cache (%s)", path)
        return hit
    t0 = time.perf_counter()
    cond = cond.float()
    traj = ddim_trajectory(unet, sched, latent0.float(), cond)
    if null_text_steps:
        log.info("inverting the photo (DDIM, then null-text optimisation: up to %d iterations per step; cached "
                 "for the next run)", INNER_STEPS)
        nulls, steps = null_text(unet, sched, traj, cond, null0, guidance, progress=progress)
    else:
        nulls, steps = null0.detach().float().expand(len(sched.timesteps), *null0.shape[1:]).clone(), []
    inv = Inversion(traj[-1].detach().cpu(), nulls.detach().cpu(),
                    {"seconds": time.perf_counter() - t0, "steps": steps, "cached": False})
    if path is not None:
        save_cached(path, inv, parts)
    return inv
