"""One interface for every backend: the pipeline does not know which one runs.

A backend supplies two callables on torch tensors:
- ``unet(sample, timestep, encoder_hidden_states, token_scale) -> noise prediction`` where
  ``token_scale`` is ``[batch, tokens]`` (the per-frame reweighting, an ordinary input);
- ``decode(latents) -> image`` in [-1, 1], NCHW (latents already divided by the VAE scale).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import torch


class UNetRunner(Protocol):
    def __call__(self, sample: torch.Tensor, timestep: torch.Tensor, encoder_hidden_states: torch.Tensor,
                 token_scale: torch.Tensor) -> torch.Tensor: ...


class DecoderRunner(Protocol):
    def __call__(self, latents: torch.Tensor) -> torch.Tensor: ...


@dataclass
class Backend:
    name: str  # e.g. "torch", "onnxruntime"
    description: str  # what runs: backend, device, precision
    unet: UNetRunner | Callable[..., torch.Tensor]
    decode: DecoderRunner | Callable[..., torch.Tensor]
    device: torch.device
    dtype: torch.dtype
    graphs: bool = False  # the renderer may capture unet and decode as CUDA graphs (static shapes and buffers)
    # compiled backends: the same modules uncompiled, run if compiling or capturing fails (rendering/static.py)
    eager_unet: Callable[..., torch.Tensor] | None = None
    eager_decode: Callable[..., torch.Tensor] | None = None
    alert: str | None = None  # a fault the show carries on through (an engine that failed to load): HUD, log


class EngineLoadError(RuntimeError):
    """A built engine (ONNX, TensorRT plan) could not be loaded on this machine: the caller falls back to torch."""
