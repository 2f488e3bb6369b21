"""The ONNX Runtime backend: the exported reweighting UNet and decoder, from ``engines/``.

CPU (``CPUExecutionProvider``, fp32) everywhere; ``CUDAExecutionProvider`` (fp16 graph) when the
device is CUDA and ``onnxruntime-gpu`` is installed. Tensors cross as numpy arrays (zero-copy on
the CPU; on CUDA a host round trip per call, which is why torch fp16 or TensorRT are the CUDA
choices). ``token_scale`` is a graph input: prompts and weights change with no re-export.
"""

from __future__ import annotations

import json
import logging
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import torch

from aadiff_live.backends.base import Backend, EngineLoadError
from aadiff_live.backends.engines import (
    Engine,
    EngineSpec,
    check_engine,
    config_hash,
    default_engines_dir,
    ensure_engine,
    part_identity,
)
from aadiff_live.backends.onnx_export import (
    DECODER_INPUTS,
    GraphShape,
    decoder_example,
    export_decoder,
    export_unet,
    on_cpu,
    unet_example,
    unet_input_names,
)
from aadiff_live.errors import UserError
from aadiff_live.models.attention import reweighting_installed
from aadiff_live.models.components import text_length, vae_scale_factor

log = logging.getLogger(__name__)

ONNX_NAME = "model.onnx"
VERIFY_NAME = "verify.json"
# fp32 export vs torch on the build machine: max |diff| allowed, relative to the output's range
VERIFY_TOL = 1e-3


def decoder_part(vae) -> str:
    return "decoder-tiny" if hasattr(vae.config, "decoder_block_out_channels") else "decoder-kl"


def graph_shape(components, width: int, height: int) -> GraphShape:
    f = vae_scale_factor(components.vae)
    tokens = text_length(components.tokenizer)
    cfg = components.unet.config
    pooled = 0
    if getattr(cfg, "addition_embed_type", None) == "text_time":  # SDXL: pooled text + 6 time ids
        pooled = int(cfg.projection_class_embeddings_input_dim) - 6 * int(cfg.addition_time_embed_dim)
    return GraphShape(latent_channels=int(cfg.in_channels), latent_height=height // f,
                      latent_width=width // f, tokens=tokens, text_dim=int(cfg.cross_attention_dim),
                      pooled_dim=pooled)


def onnx_precision(device: torch.device, dtype: torch.dtype) -> str:
    """fp16 graphs for CUDA fp16; fp32 otherwise (ONNX Runtime's CPU kernels are fp32)."""
    return "fp16" if device.type == "cuda" and dtype == torch.float16 else "fp32"


def engine_specs(components, *, width: int, height: int, precision: str, backend: str = "onnxruntime",
                 device: str = "any", lib_version: str = "") -> tuple[EngineSpec, EngineSpec]:
    # NB: per part (config + weights), not Components.identity: a UNet engine stays valid when only
    # the VAE changes, and the hash must not depend on the process (see engines.config_hash)
    common = dict(model=components.name, width=width, height=height, precision=precision, backend=backend,
                  device=device, lib_version=lib_version)
    # fused LoRAs change weights the cheap fingerprint may not sample: they are named explicitly
    loras = components.extra.get("loras") if isinstance(getattr(components, "extra", None), dict) else None
    lora_id = "" if not loras else "-lora-" + config_hash({"loras": loras})
    unet = EngineSpec(part="unet", identity=part_identity(components.unet) + lora_id, **common)
    dec = EngineSpec(part=decoder_part(components.vae), identity=part_identity(components.vae), **common)
    return unet, dec


def _session(path: Path, providers: list[str]):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.log_severity_level = 3
    return ort.InferenceSession(str(path), sess_options=so, providers=providers)


def _verify(module: torch.nn.Module, args: tuple, onnx_path: Path, names: tuple[str, ...],
            variants: list[tuple] | None = None) -> dict:
    """Run the exported graph in ONNX Runtime (CPU) against ``module``; raise if they differ."""
    sess = _session(onnx_path, ["CPUExecutionProvider"])
    worst = 0.0
    for a in variants or [args]:
        with torch.no_grad():
            ref = module(*a).float().numpy()
        got = sess.run(None, {n: t.numpy() for n, t in zip(names, a, strict=True)})[0]
        err = float(np.abs(got - ref).max() / max(1.0, float(np.abs(ref).max())))
        worst = max(worst, err)
    if worst > VERIFY_TOL:
        raise RuntimeError(f"exported graph {onnx_path} differs from torch by {worst:.2e} (relative); "
                           f"this is a bug in the export, please report it")
    log.debug("verified %s: max relative error %.2e", onnx_path, worst)
    return {"max_rel_err": worst, "checked": len(variants or [args])}


def onnx_build_steps(module: torch.nn.Module, part: str, shape: GraphShape, precision: str) -> list:
    """Export (+ verify for fp32) steps for :func:`ensure_engine`. ``module``: the diffusers UNet for
    ``part="unet"`` (it gets the reweighting processors only while it is exported and verified), else
    a :class:`~aadiff_live.backends.torch_backend.Decoder`. Both are left as they were handed."""
    from aadiff_live.backends.torch_backend import UNetWithScale

    dtype = torch.float16 if precision == "fp16" else torch.float32
    is_unet = part == "unet"

    def export(folder: Path) -> None:
        if is_unet:
            with reweighting_installed(module):
                export_unet(UNetWithScale(module), folder / ONNX_NAME, shape, dtype)
        else:
            export_decoder(module, folder / ONNX_NAME, shape, dtype)

    def verify(folder: Path) -> None:
        with on_cpu(module, dtype) as m, reweighting_installed(m) if is_unet else nullcontext(m):
            _verify_part(m, folder)

    def _verify_part(m: torch.nn.Module, folder: Path) -> None:
        if is_unet:
            m = UNetWithScale(m)
            s, t, e, c, *added = unet_example(shape, dtype, seed=1)
            variants = []
            for w in (0.0, 1.0, 2.5):
                c2 = c.clone()
                c2[:, 1:4] = w
                variants.append((s, t, e, c2, *added))
            rec = _verify(m, (s, t, e, c, *added), folder / ONNX_NAME, unet_input_names(shape), variants)
        else:
            rec = _verify(m, decoder_example(shape, dtype, seed=1), folder / ONNX_NAME, DECODER_INPUTS)
        (folder / VERIFY_NAME).write_text(json.dumps(rec) + "\n", encoding="utf-8")

    steps = [("export ONNX graph (torch.onnx, one external-data file)", export)]
    if precision == "fp32":
        steps.append(("verify with onnxruntime against torch", verify))
    return steps


def ensure_onnx_engines(components, device: torch.device, dtype: torch.dtype, *, width: int, height: int,
                        engines_dir=None, force: bool = False, build: bool = True,
                        parts: tuple[str, ...] = ("unet", "decoder")) -> list[Engine]:
    """The UNet and/or decoder ONNX engines for ``components`` at ``width`` x ``height``."""
    from aadiff_live.backends.torch_backend import Decoder

    precision = onnx_precision(device, dtype)
    shape = graph_shape(components, width, height)
    unet_spec, dec_spec = engine_specs(components, width=width, height=height, precision=precision)
    roles = {"onnx": ONNX_NAME}
    out = []
    if "unet" in parts:
        steps = onnx_build_steps(components.unet, "unet", shape, precision)
        out.append(ensure_engine(unet_spec, steps, roles, engines_dir=engines_dir, force=force, build=build))
    if "decoder" in parts:
        steps = onnx_build_steps(Decoder(components.vae), dec_spec.part, shape, precision)
        out.append(ensure_engine(dec_spec, steps, roles, engines_dir=engines_dir, force=force, build=build))
    return out


def onnx_engines_ready(components, device: torch.device, dtype: torch.dtype, *, width: int, height: int,
                       engines_dir=None) -> bool:
    """Whether matching, intact ONNX engines exist (used by ``--backend auto``; builds nothing)."""
    root = Path(engines_dir) if engines_dir is not None else default_engines_dir()
    specs = engine_specs(components, width=width, height=height, precision=onnx_precision(device, dtype))
    return all(check_engine(root / s.folder_name, s)[0] == "ok" for s in specs)


class OrtRunner:
    """Calls one ONNX Runtime session with torch tensors; returns a torch tensor on ``device``."""

    _NP = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(int64)": np.int64}

    def __init__(self, session, device: torch.device, out_dtype: torch.dtype) -> None:
        self.session = session
        self.names = [i.name for i in session.get_inputs()]
        self.np_types = [self._NP[i.type] for i in session.get_inputs()]
        self.output = session.get_outputs()[0].name
        self.device = device
        self.out_dtype = out_dtype

    def __call__(self, *tensors: torch.Tensor) -> torch.Tensor:
        feeds = {n: np.ascontiguousarray(t.detach().cpu().numpy(), dtype=ty)
                 for n, t, ty in zip(self.names, tensors, self.np_types, strict=True)}
        out = self.session.run([self.output], feeds)[0]
        return torch.from_numpy(out).to(device=self.device, dtype=self.out_dtype)


def _load_session(engine: Engine, providers: list[str], rebuild):
    """Open the engine's session; an engine ONNX Runtime cannot read is rebuilt once, with a message."""
    from onnxruntime.capi.onnxruntime_pybind11_state import Fail, InvalidGraph, InvalidProtobuf, NoSuchFile

    try:
        return _session(engine.files["onnx"], providers), engine
    except (Fail, InvalidGraph, InvalidProtobuf, NoSuchFile) as exc:
        log.warning("engine %s could not be loaded by onnxruntime (%s); rebuilding it", engine.folder,
                    str(exc).splitlines()[0][:160])
    engine = rebuild()
    try:
        return _session(engine.files["onnx"], providers), engine
    except (Fail, InvalidGraph, InvalidProtobuf, NoSuchFile) as exc:  # make_backend falls back to torch
        raise EngineLoadError(f"onnxruntime cannot load {engine.files['onnx']} even after a rebuild "
                              f"({str(exc).splitlines()[0][:160]})") from exc


def onnx_backend(components, device: torch.device, dtype: torch.dtype, *, width: int, height: int,
                 engines_dir=None, force: bool = False, **_: object) -> Backend:
    import onnxruntime as ort

    providers = ["CPUExecutionProvider"]
    if device.type == "cuda":
        if "CUDAExecutionProvider" not in ort.get_available_providers():
            raise UserError("--backend onnxruntime on CUDA needs onnxruntime-gpu (`pip install onnxruntime-gpu`); "
                            "or use --backend torch, or --device cpu")
        providers = ["CUDAExecutionProvider", *providers]
    elif device.type != "cpu":
        raise UserError(f"--backend onnxruntime runs on cpu or cuda, not {device.type}; use --backend torch")
    precision = onnx_precision(device, dtype)
    run_dtype = torch.float16 if precision == "fp16" else torch.float32
    if run_dtype != dtype:
        log.info("onnxruntime on %s runs %s (asked for %s)", device.type, precision, dtype)
    unet_e, dec_e = ensure_onnx_engines(components, device, dtype, width=width, height=height,
                                        engines_dir=engines_dir, force=force)

    def rebuild(part: str):
        return lambda: ensure_onnx_engines(components, device, dtype, width=width, height=height,
                                           engines_dir=engines_dir, force=True, parts=(part,))[0]

    unet_s, unet_e = _load_session(unet_e, providers, rebuild("unet"))
    dec_s, dec_e = _load_session(dec_e, providers, rebuild("decoder"))
    provider = unet_s.get_providers()[0]
    return Backend(
        name="onnxruntime",
        description=f"onnxruntime {ort.__version__} ({provider}, {precision}), engines {unet_e.folder.parent}",
        unet=OrtRunner(unet_s, device, run_dtype), decode=OrtRunner(dec_s, device, run_dtype),
        device=device, dtype=run_dtype)
