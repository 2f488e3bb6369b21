"""``aadiff-live build-engine``: build (or check) the compiled engines in ``engines/`` ahead of a show."""

from __future__ import annotations

import logging

from aadiff_live.backends import resolve_device, resolve_dtype
from aadiff_live.backends.hardware import importable
from aadiff_live.config import Config, parse_size
from aadiff_live.errors import UserError
from aadiff_live.models.loading import load_components

log = logging.getLogger(__name__)


def build_engine_command(cfg: Config, *, engines_dir: str | None = None, force: bool = False) -> int:
    """``aadiff-live build-engine``: build (or check) the UNet and decoder engines for ``cfg.model``."""
    m = cfg.model
    width, height = parse_size(m.size)
    device = resolve_device(m.device)
    dtype = resolve_dtype(m.dtype, device)
    backend = m.backend
    if backend == "auto":
        backend = "tensorrt" if device.type == "cuda" and importable("tensorrt") else "onnxruntime"
        log.info("build-engine: --backend auto -> %s", backend)
    if backend == "torch":
        raise UserError("the torch backend needs no engine; build-engine builds --backend onnxruntime or tensorrt")
    components = load_components(m.model, dtype=dtype, vae=m.vae, loras=m.loras)
    if backend == "onnxruntime":
        from aadiff_live.backends.onnx_backend import ensure_onnx_engines

        engines = ensure_onnx_engines(components, device, dtype, width=width, height=height,
                                      engines_dir=engines_dir, force=force)
    else:
        from aadiff_live.backends.tensorrt_backend import ensure_tensorrt_engines

        engines = ensure_tensorrt_engines(components, device, dtype, width=width, height=height,
                                          engines_dir=engines_dir, force=force)
    for e in engines:
        size = sum(p.stat().st_size for p in e.folder.iterdir() if p.is_file())
        print(f"{e.spec.part:>13}: {e.folder}  ({size / 1e6:.1f} MB, {e.spec.precision})")
    return 0
