"""``--lora ID_OR_PATH[:SCALE]`` (repeatable): style LoRAs, or LCM-LoRA (turns an SD 1.5 / SDXL
checkpoint into a 4-step model), loaded with diffusers' LoRA loader (peft) and fused into the
weights before anything is exported or compiled, so every backend runs them at no cost per frame.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from aadiff_live.errors import UserError

log = logging.getLogger(__name__)


def parse_lora(spec: str) -> tuple[str, float]:
    """``"id_or_path[:scale]"`` -> (source, scale); the scale defaults to 1."""
    spec = spec.strip()
    source, sep, tail = spec.rpartition(":")
    if sep and source:
        try:
            return source, float(tail)
        except ValueError:
            pass  # a colon that is part of the path
    if not spec:
        raise UserError("--lora is empty; pass a hub id or a folder/file, optionally with :SCALE (e.g. my/lora:0.8)")
    return spec, 1.0


def is_lcm_lora(source: str) -> bool:
    return "lcm" in Path(source).name.lower() or "lcm-lora" in source.lower()


def _pipeline(c):
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    if c.text_encoder_2 is not None:
        return StableDiffusionXLPipeline(vae=c.vae, text_encoder=c.text_encoder, text_encoder_2=c.text_encoder_2,
                                         tokenizer=c.tokenizer, tokenizer_2=c.tokenizer_2, unet=c.unet,
                                         scheduler=c.scheduler)
    return StableDiffusionPipeline(vae=c.vae, text_encoder=c.text_encoder, tokenizer=c.tokenizer, unet=c.unet,
                                   scheduler=c.scheduler, safety_checker=None, feature_extractor=None,
                                   requires_safety_checker=False)


def _load(pipe, source: str, name: str) -> None:
    from aadiff_live.models.hub import failure_cause as _cause
    from aadiff_live.models.hub import offline as _offline

    path = Path(source)
    kw: dict = {}
    if path.is_file():
        kw = {"weight_name": path.name}
        source = str(path.parent)
    try:
        if path.exists():
            pipe.load_lora_weights(source, adapter_name=name, **kw)
            return
        try:
            pipe.load_lora_weights(source, adapter_name=name, local_files_only=True)
            return
        except Exception as exc:  # noqa: BLE001 - not cached: the hub, unless offline
            if _offline():
                raise UserError(f"LoRA '{source}' is neither a local file/folder nor in the Hugging Face cache "
                                f"({_cause(exc)}); run `hf download {source}` on a machine with internet") from None
        pipe.load_lora_weights(source, adapter_name=name)
    except UserError:
        raise
    except Exception as exc:  # noqa: BLE001 - peft/diffusers/safetensors errors: keep the cause
        raise UserError(f"cannot load LoRA '{source}' into this model ({_cause(exc)}); check that it was trained "
                        f"for this base model (SD 1.5, SDXL, ...)") from None


def apply_loras(c, specs: list[str]) -> list[dict]:
    """Load every LoRA into ``c``'s UNet and text encoder(s), fuse them at their scales, drop the
    adapters (plain weights again); an LCM-LoRA also switches the scheduler to ``LCMScheduler``.
    Returns what was applied (for the identity and the sidecar)."""
    if not specs:
        return []
    try:
        import peft  # noqa: F401
    except ImportError:
        raise UserError("--lora needs the peft package (`pip install peft`)") from None
    pipe = _pipeline(c)
    applied: list[dict[str, Any]] = []
    names: list[str] = []
    scales: list[float] = []
    for i, spec in enumerate(specs):
        source, scale = parse_lora(spec)
        name = f"lora{i}"
        _load(pipe, source, name)
        names.append(name)
        scales.append(scale)
        applied.append({"source": source, "scale": scale})
        log.info("LoRA %s at scale %g", source, scale)
    pipe.set_adapters(names, adapter_weights=scales)
    pipe.fuse_lora(adapter_names=names, lora_scale=1.0)
    pipe.unload_lora_weights()
    if any(is_lcm_lora(str(a["source"])) for a in applied) and type(c.scheduler).__name__ != "LCMScheduler":
        from diffusers import LCMScheduler

        c.scheduler = LCMScheduler.from_config(c.scheduler.config)
        log.info("LCM-LoRA: LCMScheduler, 4 steps by default")
    return applied
