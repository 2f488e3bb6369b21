"""Backends behind one interface (:mod:`aadiff_live.backends.base`)."""

from __future__ import annotations

import logging

import torch

from aadiff_live.backends.base import Backend
from aadiff_live.errors import UserError

log = logging.getLogger(__name__)


def resolve_device(name: str) -> torch.device:
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(name)
    except RuntimeError:
        raise UserError(f"--device {name!r} is not a device; use auto, cpu, cuda, cuda:N or mps") from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("--device cuda: no CUDA GPU is visible to torch; use --device cpu")
    return dev


def resolve_dtype(name: str, device: torch.device) -> torch.dtype:
    if name == "auto":
        return torch.float16 if device.type in ("cuda", "mps") else torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def make_backend(name: str, components, device: torch.device, dtype: torch.dtype, **kw) -> Backend:
    """Build the named backend (``auto`` picks the fastest available and says which)."""
    if name == "auto":
        name = "torch"
    if name == "torch":
        from aadiff_live.backends.torch_backend import torch_backend

        return torch_backend(components, device, dtype)
    if name == "onnxruntime":
        from aadiff_live.backends.onnx_backend import onnx_backend

        return onnx_backend(components, device, dtype, **kw)
    if name == "tensorrt":
        from aadiff_live.backends.tensorrt_backend import tensorrt_backend

        return tensorrt_backend(components, device, dtype, **kw)
    raise UserError(f"--backend {name!r} is unknown; use auto, torch, onnxruntime or tensorrt")
