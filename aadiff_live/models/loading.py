"""Load diffusion components from a hub id, the hub cache or a local folder (or ``tiny``).

The hub cache is tried first (no network); only on a miss is the hub asked. Failures become
one-line :class:`UserError` messages that say how to get the model. Transformers can return an
*empty* tokenizer offline without raising: the vocabulary is checked after loading.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aadiff_live.errors import UserError

log = logging.getLogger(__name__)
RANDOM_SD_TURBO = "random-sd-turbo"  # the full-size SD-Turbo architecture, random weights: for timing only


@dataclass
class Components:
    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler: Any
    name: str
    is_tiny: bool = False
    identity: str = ""  # hash of the model's configs (and source); names compiled engines
    extra: dict = field(default_factory=dict)


def _how_to_get(model: str) -> str:
    return (
        f"model '{model}' is neither a local folder nor in the Hugging Face cache, and the hub is not reachable; "
        f"on a machine with internet run `huggingface-cli download {model}` (or copy its folder here and pass "
        f"--model /path/to/folder), or try the pipeline with --model tiny"
    )


def _from_pretrained(cls, model: str, subfolder: str | None, **kw):
    """``cls.from_pretrained`` trying the local folder / hub cache first, then the hub."""
    args = {"subfolder": subfolder} if subfolder else {}
    if Path(model).is_dir():
        return cls.from_pretrained(model, **args, **kw)
    try:
        return cls.from_pretrained(model, **args, local_files_only=True, **kw)
    except (OSError, ValueError):
        pass
    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        raise OSError("offline")
    log.info("fetching %s/%s from the Hugging Face hub", model, subfolder or "")
    return cls.from_pretrained(model, **args, **kw)


def check_tokenizer(tokenizer, model: str) -> None:
    ids = tokenizer("a photo of fire", add_special_tokens=False).input_ids
    if len(tokenizer) < 10 or not ids:
        raise UserError(
            f"the tokenizer of '{model}' loaded empty (vocabulary of {len(tokenizer)}); its files are missing or "
            f"unreadable offline: download the model again (`huggingface-cli download {model}`)"
        )


def _public(v: Any) -> Any:
    """Configs made JSON-stable: private keys (``_use_default_values``, a set) dropped, sets sorted."""
    if isinstance(v, dict):
        return {str(k): _public(x) for k, x in v.items() if not str(k).startswith("_")}
    if isinstance(v, (set, frozenset)):
        return sorted(map(str, v))
    if isinstance(v, (list, tuple)):
        return [_public(x) for x in v]
    return v


def _identity(parts: list[Any]) -> str:
    """Stable across processes: names what the components were built from."""
    return hashlib.sha256(json.dumps(_public(parts), sort_keys=True, default=str).encode()).hexdigest()[:16]


def load_vae(vae: str, model: str, dtype):
    from diffusers import AutoencoderKL, AutoencoderTiny

    if vae in ("auto", "kl"):
        return _from_pretrained(AutoencoderKL, model, "vae", torch_dtype=dtype)
    if vae == "tiny":
        return _from_pretrained(AutoencoderTiny, "madebyollin/taesd", None, torch_dtype=dtype)
    # a hub id or folder of an AutoencoderTiny or AutoencoderKL
    cfg_cls = AutoencoderTiny if "taesd" in vae.lower() else AutoencoderKL
    return _from_pretrained(cfg_cls, vae, None, torch_dtype=dtype)


def load_components(model: str, *, dtype=None, vae: str = "auto", seed_tiny: int = 0) -> Components:
    """Load UNet, VAE, text encoder, tokenizer and scheduler for ``model``."""
    import torch

    dtype = dtype or torch.float32
    if model == "tiny":
        from aadiff_live.models.tiny import build_tiny_diffusion, build_tiny_vae_tiny

        parts = build_tiny_diffusion(seed_tiny)
        if vae == "tiny":
            parts["vae"] = build_tiny_vae_tiny(seed_tiny)
        if dtype != torch.float32:
            for k in ("unet", "vae", "text_encoder"):
                parts[k] = parts[k].to(dtype)
        ident = _identity(["tiny", seed_tiny, vae, dict(parts["unet"].config)])
        return Components(name="tiny", is_tiny=True, identity=ident, **parts)

    if model == RANDOM_SD_TURBO:
        from aadiff_live.models.fullsize import build_fullsize_sd_turbo

        parts = build_fullsize_sd_turbo(seed_tiny)
        if vae == "tiny":
            from diffusers import AutoencoderTiny

            torch.manual_seed(seed_tiny + 4)
            parts["vae"] = AutoencoderTiny().eval()  # type: ignore[attr-defined]
        if dtype != torch.float32:
            for k in ("unet", "vae", "text_encoder"):
                parts[k] = parts[k].to(dtype)
        return Components(name="sd-turbo-random", is_tiny=True, identity=f"random-sd-turbo-{seed_tiny}-{vae}", **parts)

    import diffusers
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    if Path(model).exists() and not Path(model).is_dir():
        raise UserError(f"--model {model} is a file; pass a model folder (with unet/, vae/, ...) or a hub id")
    try:
        sched_cfg = _from_pretrained(diffusers.EulerDiscreteScheduler, model, "scheduler").config
        sched_cls = getattr(diffusers, sched_cfg.get("_class_name", "EulerDiscreteScheduler"), None)
        if sched_cls is None:
            raise UserError(f"scheduler {sched_cfg.get('_class_name')} of '{model}' is unknown to this diffusers")
        scheduler = sched_cls.from_config(sched_cfg)
        tokenizer = _from_pretrained(CLIPTokenizer, model, "tokenizer")
        check_tokenizer(tokenizer, model)
        text_encoder = _from_pretrained(CLIPTextModel, model, "text_encoder", torch_dtype=dtype).eval()
        unet = _from_pretrained(UNet2DConditionModel, model, "unet", torch_dtype=dtype).eval()
        vae_model = load_vae(vae, model, dtype).eval()
    except UserError:
        raise
    except (OSError, ValueError) as exc:
        if Path(model).is_dir():
            raise UserError(
                f"model folder {model} is incomplete or unreadable ({str(exc).splitlines()[0][:160]}); it needs "
                f"unet/, vae/, text_encoder/, tokenizer/ and scheduler/ as diffusers saves them"
            ) from None
        raise UserError(_how_to_get(model)) from None
    ident = _identity([model, vae, dict(unet.config), dict(vae_model.config)])
    return Components(unet=unet, vae=vae_model, text_encoder=text_encoder, tokenizer=tokenizer,
                      scheduler=scheduler, name=model, identity=ident)


def save_components(c: Components, folder: str | Path) -> None:
    """Write components in the diffusers folder layout (loadable again with ``--model folder``)."""
    folder = Path(folder)
    c.unet.save_pretrained(folder / "unet")
    c.vae.save_pretrained(folder / "vae")
    c.text_encoder.save_pretrained(folder / "text_encoder")
    c.tokenizer.save_pretrained(folder / "tokenizer")
    c.scheduler.save_pretrained(folder / "scheduler")
