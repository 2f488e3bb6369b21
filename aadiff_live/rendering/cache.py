"""Loaded models kept between renders: ``render`` makes one render with it, ``batch`` many.

The slow part of a render with a real model is loading it (the diffusion model's weights, CLAP's). A
:class:`ModelCache` loads each once and hands it to every later render whose model settings are the same
(:func:`~aadiff_live.rendering.build.model_key`); a render with other settings replaces what it holds, so
one process never holds two diffusion models. A reused renderer is prepared again for the new prompt and
seed, which gives the same frames a fresh one would (tests/test_batch.py checks it against ``render``).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np

from aadiff_live.config import Config
from aadiff_live.models.components import Components
from aadiff_live.rendering import build
from aadiff_live.rendering.pipeline import Renderer

log = logging.getLogger(__name__)


class ModelCache:
    def __init__(self) -> None:
        self._model: tuple[tuple, Components] | None = None  # (model_key, the loaded model)
        self._backend: tuple[tuple, Any] | None = None  # (backend_key, Backend)
        self._renderer: tuple[tuple, Renderer] | None = None  # (renderer key, Renderer)
        self._rankers: dict[str, Any] = {}  # CLAP checkpoint -> ClapRanker
        self.loads = 0  # diffusion model loads so far (a batch of rows with one model: 1)

    def ranker(self, clap_model: str):
        """The CLAP ranker of ``clap_model``, loaded on first use."""
        if clap_model not in self._rankers:
            from aadiff_live.tokens.clap import ClapRanker

            self._rankers[clap_model] = ClapRanker(clap_model)
        return self._rankers[clap_model]

    def renderer(self, cfg: Config, prompt: str, image: str | np.ndarray | None, image_key: str | None):
        """``(components, renderer)`` prepared for ``prompt`` with the config's seed; ``image_key`` names the
        image (its path), so that a renderer built on another picture is not reused."""
        mk, bk = build.model_key(cfg), build.backend_key(cfg)
        if self._model is None or self._model[0] != mk:
            self.clear()
            self._model = (mk, build.load_model(cfg))
            self.loads += 1
        components = self._model[1]
        if self._backend is None or self._backend[0] != bk:
            self._renderer = None
            self._backend = (bk, build.load_backend(cfg, components))
        m = cfg.model
        inverted = m.invert and image is not None
        # an inverted photo is inverted under its prompt (a new prompt would keep the old inversion): not shared
        rk = (bk, m.steps, m.guidance, m.strength if image is not None else None, image_key, inverted,
              prompt if inverted else None)
        if self._renderer is not None and self._renderer[0] == rk:
            renderer = self._renderer[1]
            renderer.prepare(prompt, m.seed)
        else:
            self._renderer = None  # the old one's buffers go before the new one's are made
            renderer = build.make_renderer(cfg, components, self._backend[1], prompt, image)
            self._renderer = (rk, renderer)
        return components, renderer

    def clear(self) -> None:
        """Forget the diffusion model (after a failure that may have left it in a bad state, e.g. out of memory)."""
        self._model = self._backend = self._renderer = None
