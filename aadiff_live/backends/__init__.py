"""Backends behind one interface (:mod:`aadiff_live.backends.base`)."""

from __future__ import annotations

import logging

import torch

from aadiff_live.backends.base import Backend, EngineLoadError
from aadiff_live.backends.hardware import cpu_has_bf16, importable
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
        if device.type in ("cuda", "mps"):
            return torch.float16
        # fp32 stays the CPU default: exact and comparable across backends; bf16 is the fast opt-in
        if cpu_has_bf16():
            log.info("tip: this CPU has bf16 instructions; --dtype bfloat16 renders about 2x faster")
        return torch.float32
    return {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}[name]


def pick_auto(components, device: torch.device, dtype: torch.dtype, *, width: int, height: int,
              engines_dir=None) -> tuple[str, str]:
    """``(backend, why)`` for ``--backend auto``. Never starts a (multi-minute) export by itself.

    - CUDA: tensorrt when it is importable and a matching engine is in engines/, else torch fp16.
    - CPU bf16: torch (on a CPU with avx512_bf16 it ran the full-size UNet 2-3x faster than fp32 and
      faster than onnxruntime fp32, docs/bench_cpu.json).
    - CPU fp32: onnxruntime when matching ONNX engines are in engines/ (measured faster than torch
      fp32 on the full-size UNet), else torch, with a hint to run build-engine.
    - anything else (MPS): torch.
    """
    if device.type == "cuda":
        if importable("tensorrt"):
            from aadiff_live.backends.tensorrt_backend import tensorrt_engines_ready

            if tensorrt_engines_ready(components, device, dtype, width=width, height=height,
                                      engines_dir=engines_dir):
                return "tensorrt", "a matching TensorRT engine is in engines/"
            return "torch", ("no TensorRT engine for this model and size yet; build one with "
                             "`aadiff-live build-engine --backend tensorrt`")
        return "torch", "CUDA: torch fp16 with fused attention (TensorRT is not installed)"
    if device.type == "cpu":
        from aadiff_live.backends.onnx_backend import onnx_engines_ready

        if dtype == torch.bfloat16:  # ONNX Runtime's CPU kernels are fp32; torch bf16 measured fastest
            return "torch", "CPU bf16: torch bf16 beat onnxruntime fp32 in docs/bench_cpu.json"

        if onnx_engines_ready(components, device, dtype, width=width, height=height, engines_dir=engines_dir):
            return "onnxruntime", "matching ONNX engines are in engines/"
        return "torch", ("no ONNX engine for this model and size yet; `aadiff-live build-engine --backend "
                         "onnxruntime` (once, minutes for a full-size model) makes onnxruntime the CPU choice")
    return "torch", f"torch is the backend for {device.type}"


def make_backend(name: str, components, device: torch.device, dtype: torch.dtype, **kw) -> Backend:
    """Build the named backend (``auto``: the fixed rule of :func:`pick_auto`, logged with its reason).

    ``kw``: ``width``, ``height`` (engines are built per size), ``engines_dir`` (default ./engines
    or $AADIFF_ENGINES), ``compile`` (torch on CUDA: torch.compile + CUDA graphs; None = on for CUDA).
    """
    if name == "auto":
        if "width" in kw and "height" in kw:
            name, why = pick_auto(components, device, dtype, width=kw["width"], height=kw["height"],
                                  engines_dir=kw.get("engines_dir"))
        else:
            name, why = "torch", "no size given to look up engines"
        log.info("--backend auto -> %s (%s)", name, why)
    if name == "torch":
        from aadiff_live.backends.torch_backend import torch_backend

        return torch_backend(components, device, dtype, compile=kw.get("compile"))
    if name in ("onnxruntime", "tensorrt"):
        if name == "onnxruntime":
            from aadiff_live.backends.onnx_backend import onnx_backend as build
        else:
            from aadiff_live.backends.tensorrt_backend import tensorrt_backend as build
        try:
            return build(components, device, dtype, **kw)
        except EngineLoadError as exc:  # the load boundary only: the show runs on torch instead, loudly
            return _torch_instead(name, exc, components, device, dtype, kw.get("compile"))
    raise UserError(f"--backend {name!r} is unknown; use auto, torch, onnxruntime or tensorrt")


def _torch_instead(name: str, exc: EngineLoadError, components, device: torch.device, dtype: torch.dtype,
                   compile: bool | None) -> Backend:
    """The torch backend standing in for an engine that did not load, saying so (log and HUD)."""
    from aadiff_live.backends.torch_backend import torch_backend

    alert = f"ENGINE FAILED, running torch: {exc}"
    log.warning("%s; the show goes on with --backend torch (slower; `aadiff-live build-engine --backend %s "
                "--force` rebuilds the engine)", alert, name)
    backend = torch_backend(components, device, dtype, compile=compile)
    backend.alert = alert
    backend.description += f" (instead of {name}: its engine did not load)"
    return backend
