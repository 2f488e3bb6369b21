"""Load diffusion components from a hub id, the hub cache or a local folder (or ``tiny``).

The hub cache is tried first (no network); only on a miss is the hub asked. Failures become
one-line :class:`UserError` messages that say how to get the model. Transformers can return an
*empty* tokenizer offline without raising: the vocabulary is checked after loading.
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

from aadiff_live.errors import UserError
from aadiff_live.models.components import Components
from aadiff_live.models.hub import cached_snapshot, failure_cause, fp16_variant, network_failure, offline

log = logging.getLogger(__name__)
RANDOM_SD_TURBO = "random-sd-turbo"  # the full-size SD-Turbo architecture, random weights: for timing only
IN_PROCESS_RANDOM = ("tiny", RANDOM_SD_TURBO)  # built in-process with random weights, no download


def _how_to_get(model: str) -> str:
    return (
        f"model '{model}' is neither a local folder nor in the Hugging Face cache, and the hub is not reachable; "
        f"on a machine with internet run `aadiff-live download {model}` (or copy its folder here and pass "
        f"--model /path/to/folder), or try the pipeline with --model tiny"
    )


def download_command(model: str) -> str:
    return f"hf download {model}"


class ModelMissing(UserError):
    """Neither a local folder nor in the hub cache, and the hub is not reachable."""


def from_pretrained_cached(cls, model: str, subfolder: str | None, method: str = "from_pretrained", **kw):
    """``cls.from_pretrained`` from a local folder, else the hub cache (no network), else the hub.

    A failure keeps its cause (which file, which error) unless the model is really missing
    (:class:`ModelMissing`: not local, not cached, hub not reachable), which says how to get it.
    """
    args = {"subfolder": subfolder} if subfolder else {}
    load = getattr(cls, method)
    part = f"{subfolder}/ of " if subfolder else ""
    if Path(model).is_dir():
        try:
            return load(model, **args, **kw)
        except Exception as exc:  # noqa: BLE001 - safetensors/json errors are not OSError
            raise UserError(f"cannot load {part}model folder {model}: it is incomplete or unreadable ({failure_cause(exc)}); "
                            f"it needs unet/, vae/, text_encoder/, tokenizer/ and scheduler/ as diffusers saves them"
                            ) from None
    try:
        return load(model, **args, local_files_only=True, **kw)
    except Exception as exc:  # noqa: BLE001
        local_exc = exc
    snapshot = cached_snapshot(model)
    if snapshot is not None and (not subfolder or (snapshot / subfolder).is_dir()):
        # it is in the cache, and still did not load: the cached copy is damaged, say how and where
        raise UserError(f"cannot load {part}'{model}' from the Hugging Face cache ({snapshot}): {failure_cause(local_exc)}; "
                        f"the cached copy is damaged: download it again (`{download_command(model)} "
                        f"--force-download`)") from None
    if offline():
        if snapshot is not None:
            raise UserError(f"the cached copy of '{model}' ({snapshot}) has no {subfolder}/ (an incomplete download) "
                            f"and HF_HUB_OFFLINE is set; on a machine with internet run "
                            f"`aadiff-live download {model}`") from None
        raise ModelMissing(_how_to_get(model))
    log.info("fetching %s/%s from the Hugging Face hub", model, subfolder or "")
    try:
        return load(model, **args, **kw)
    except Exception as exc:  # noqa: BLE001
        if type(exc).__name__ in ("RepositoryNotFoundError", "GatedRepoError"):
            raise UserError(f"'{model}' is not a model on the Hugging Face hub that this machine may read "
                            f"({failure_cause(exc)}); check the id (private or gated models need `hf auth login`)") from None
        if network_failure(exc):
            raise ModelMissing(_how_to_get(model)) from None
        raise UserError(f"cannot load {part}'{model}' from the Hugging Face hub: {failure_cause(exc)}") from None


def check_tokenizer(tokenizer, model: str) -> None:
    ids = tokenizer("a photo of fire", add_special_tokens=False).input_ids
    if len(tokenizer) < 10 or not ids:
        raise UserError(
            f"the tokenizer of '{model}' loaded empty (vocabulary of {len(tokenizer)}); its files are missing or "
            f"unreadable offline: download the model again (`{download_command(model)} --force-download`)"
        )


TAESD = "madebyollin/taesd"
TAESDXL = "madebyollin/taesdxl"


def load_vae(vae: str, model: str, dtype, sdxl: bool = False, kw: dict | None = None):
    """``auto``/``kl``: the model's KL VAE; ``tiny``: TAESD (TAESDXL for SDXL); else a hub id or folder."""
    from diffusers import AutoencoderKL, AutoencoderTiny

    if vae in ("auto", "kl"):
        return from_pretrained_cached(AutoencoderKL, model, "vae", **(kw or {"torch_dtype": dtype}))
    if vae == "tiny":
        return from_pretrained_cached(AutoencoderTiny, TAESDXL if sdxl else TAESD, None, torch_dtype=dtype)
    # a hub id or folder of an AutoencoderTiny or AutoencoderKL
    cfg_cls = AutoencoderTiny if "taesd" in vae.lower() else AutoencoderKL
    return from_pretrained_cached(cfg_cls, vae, None, torch_dtype=dtype)


def model_index(model: str) -> dict:
    """The pipeline's ``model_index.json`` (which parts, which classes); ``{}`` when it has none."""
    from diffusers import DiffusionPipeline

    try:
        return dict(from_pretrained_cached(DiffusionPipeline, model, None, method="load_config"))
    except ModelMissing:
        raise
    except UserError:
        return {}  # no model_index.json (a folder written part by part): an SD 1.x/2.x layout


def load_components(model: str, *, dtype=None, vae: str = "auto", seed_tiny: int = 0,
                    loras: list[str] | None = None) -> Components:
    """Load UNet, VAE, text encoder(s), tokenizer(s) and scheduler for ``model``; ``loras``
    (``ID_OR_PATH[:SCALE]``) are fused into the weights, and named in every engine's identity."""
    c = _load_components(model, dtype=dtype, vae=vae, seed_tiny=seed_tiny)
    if loras:
        from aadiff_live.models.lora import apply_loras

        applied = [dict(a, fingerprint=_lora_fingerprint(a)) for a in apply_loras(c, list(loras))]
        c.extra["loras"] = applied  # in the sidecar and, with the files' hash, in every engine's identity
    return c


def _lora_fingerprint(applied: dict) -> str:
    """Content hash of a local LoRA file or folder's safetensors ("" for a hub id: its id names it)."""
    path = Path(applied["source"])
    files = sorted(path.rglob("*.safetensors")) if path.is_dir() else [path] if path.is_file() else []
    digest = hashlib.sha256()
    for f in files:
        digest.update(f.read_bytes())
    return digest.hexdigest()[:16] if files else ""


def _load_components(model: str, *, dtype=None, vae: str = "auto", seed_tiny: int = 0) -> Components:
    import torch

    dtype = dtype or torch.float32
    if model == "tiny":
        from aadiff_live.models.tiny import build_tiny_diffusion, build_tiny_vae_tiny

        parts = build_tiny_diffusion(seed_tiny)
        if vae == "tiny":
            parts["vae"] = build_tiny_vae_tiny(seed_tiny)
            log.warning("--vae tiny with --model tiny: a random TAESD, which drops the base picture and draws "
                        "fine random texture (for timing the TAESD path); leave --vae out to see the picture")
        if dtype != torch.float32:
            for k in ("unet", "vae", "text_encoder"):
                parts[k] = parts[k].to(dtype)
        return Components(name="tiny", is_tiny=True, **parts)

    if model == RANDOM_SD_TURBO:
        from aadiff_live.models.fullsize import fullsize_components

        return fullsize_components(seed_tiny, vae=vae, dtype=dtype)

    import diffusers
    import transformers
    from diffusers import UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTokenizer

    if Path(model).exists() and not Path(model).is_dir():
        raise UserError(f"--model {model} is a file; pass a model folder (with unet/, vae/, ...) or a hub id")
    index = model_index(model)
    # the config as saved: instantiating a class first would rename it (every scheduler became Euler)
    sched_cfg = dict(from_pretrained_cached(diffusers.EulerDiscreteScheduler, model, "scheduler", method="load_config"))
    sched_cls = getattr(diffusers, sched_cfg.get("_class_name", "EulerDiscreteScheduler"), None)
    if sched_cls is None:
        raise UserError(f"scheduler {sched_cfg.get('_class_name')} of '{model}' is unknown to this diffusers")
    scheduler = sched_cls.from_config(sched_cfg)
    tokenizer = from_pretrained_cached(CLIPTokenizer, model, "tokenizer")
    check_tokenizer(tokenizer, model)
    def weights(part: str) -> dict:
        # on a GPU (float16) the fp16 variant where the repo has one: half the download and the memory
        if dtype == torch.float16:

            if fp16_variant(model, part):
                return {"torch_dtype": dtype, "variant": "fp16"}
        return {"torch_dtype": dtype}

    text_encoder = from_pretrained_cached(CLIPTextModel, model, "text_encoder", **weights("text_encoder")).eval()
    tokenizer_2 = text_encoder_2 = None
    te2 = index.get("text_encoder_2") or [None, None]
    if te2[0] is not None:  # SDXL
        tokenizer_2 = from_pretrained_cached(CLIPTokenizer, model, "tokenizer_2")
        check_tokenizer(tokenizer_2, model)
        te2_cls = getattr(transformers, te2[1] or "CLIPTextModelWithProjection")
        text_encoder_2 = from_pretrained_cached(te2_cls, model, "text_encoder_2", **weights("text_encoder_2")).eval()
    unet = from_pretrained_cached(UNet2DConditionModel, model, "unet", **weights("unet")).eval()
    vae_model = load_vae(vae, model, dtype, sdxl=text_encoder_2 is not None, kw=weights("vae")).eval()
    extra = {"force_zeros_for_empty_prompt": bool(index.get("force_zeros_for_empty_prompt", False)),
             "random_weights": Path(model).is_dir() and (Path(model) / "RANDOM_WEIGHTS.txt").is_file()}
    if extra["random_weights"]:
        log.warning("%s has random weights (tools/make_random_model.py): it draws noise, not pictures", model)
    return Components(unet=unet, vae=vae_model, text_encoder=text_encoder, tokenizer=tokenizer,
                      scheduler=scheduler, name=model, extra=extra,
                      tokenizer_2=tokenizer_2, text_encoder_2=text_encoder_2)


def save_components(c: Components, folder: str | Path) -> None:
    """Write components in the diffusers folder layout (loadable again with ``--model folder``)."""
    folder = Path(folder)
    c.unet.save_pretrained(folder / "unet")
    c.vae.save_pretrained(folder / "vae")
    c.text_encoder.save_pretrained(folder / "text_encoder")
    c.tokenizer.save_pretrained(folder / "tokenizer")
    c.scheduler.save_pretrained(folder / "scheduler")
    if c.text_encoder_2 is not None:
        c.text_encoder_2.save_pretrained(folder / "text_encoder_2")
        c.tokenizer_2.save_pretrained(folder / "tokenizer_2")
