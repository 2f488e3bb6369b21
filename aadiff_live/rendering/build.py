"""Build the prepared renderer from the config: shared by every mode (render, batch, live, benchmarks)."""

from __future__ import annotations

import logging

import numpy as np

from aadiff_live.backends import make_backend, resolve_device, resolve_dtype
from aadiff_live.config import Config, parse_size
from aadiff_live.errors import UserError
from aadiff_live.models.components import Components
from aadiff_live.models.loading import load_components
from aadiff_live.rendering.invert import check_invertible_name
from aadiff_live.rendering.pipeline import Renderer, check_image

log = logging.getLogger(__name__)

RANDOM_WEIGHTS_NOTE = (
    "--model tiny: random-weight models built in-process (no download). They draw soft blotches of colour "
    "(a soft haze over the --image or demo picture) that move with the sound, not imagery; use a real model "
    "(e.g. --model stabilityai/sd-turbo) for pictures."
)


def check_image_args(cfg: Config, image: str | None) -> None:
    """``--image`` / ``--invert`` checked before any model loads (one line each): a readable picture, big enough;
    ``--invert`` only with a photo and a model that can be inverted (by name: not turbo, LCM or tiny)."""
    if image is not None:
        check_image(image)
    if cfg.model.invert:
        if image is None:
            raise UserError("--invert needs a photo: --image photo.jpg --invert")
        check_invertible_name(cfg.model.model, cfg.model.guidance)


def model_key(cfg: Config) -> tuple:
    """What the loaded components depend on: two configs with the same key share one load."""
    m = cfg.model
    device = resolve_device(m.device)
    return m.model, str(device), str(resolve_dtype(m.dtype, device)), m.vae, tuple(m.loras)


def backend_key(cfg: Config) -> tuple:
    """What a backend depends on beyond the components (an engine is built for one size)."""
    m = cfg.model
    return model_key(cfg), m.backend, m.compile, parse_size(m.size)


def load_model(cfg: Config) -> Components:
    """The diffusion model's components (the slow part: weights read, LoRAs fused)."""
    m = cfg.model
    device = resolve_device(m.device)
    if m.model == "tiny":
        log.warning(RANDOM_WEIGHTS_NOTE)
    elif m.model == "random-sd-turbo":
        log.warning("--model random-sd-turbo: the full-size SD-Turbo architecture with random weights, for timing; "
                    "it draws noise, not pictures")
    return load_components(m.model, dtype=resolve_dtype(m.dtype, device), vae=m.vae, loras=m.loras)


def load_backend(cfg: Config, components: Components):
    """The backend that runs ``components`` for the config's device, dtype, size and backend choice."""
    m = cfg.model
    width, height = parse_size(m.size)
    device = resolve_device(m.device)
    backend = make_backend(m.backend, components, device, resolve_dtype(m.dtype, device), width=width,
                           height=height, compile=m.compile)
    log.info("backend: %s", backend.description)
    return backend


def make_renderer(cfg: Config, components: Components, backend, prompt: str,
                  image: str | np.ndarray | None = None) -> Renderer:
    """A Renderer on a loaded backend, prepared for ``prompt`` and warmed up."""
    m = cfg.model
    width, height = parse_size(m.size)
    renderer = Renderer(components, backend, width=width, height=height, steps=m.steps, guidance=m.guidance,
                        seed=m.seed, image=image, strength=m.strength, invert=m.invert and image is not None)
    renderer.prepare(prompt)
    renderer.warm_up()  # CUDA graphs: compile and capture now, not during the show
    log.info("model %s: %d step(s), guidance %.1f, %dx%d, seed %d", components.name, renderer.steps,
             renderer.guidance, width, height, m.seed)
    return renderer


def build_renderer(cfg: Config, prompt: str, image: str | np.ndarray | None = None):
    """Components, backend and a prepared Renderer from the config (shared by render and live)."""
    components = load_model(cfg)
    return components, make_renderer(cfg, components, load_backend(cfg, components), prompt, image)
