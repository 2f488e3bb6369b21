"""``aadiff-live download MODEL [--clap ID] [--vae tiny]``: everything a gig needs, fetched once,
so that the show itself runs offline (from the Hugging Face cache, which the loader tries first).

Only what the renderer loads is fetched: ``model_index.json``, the scheduler, tokenizer(s), text
encoder(s), UNet and VAE in safetensors (no safety checker, no single-file checkpoints, no
``.bin`` where safetensors exist); for a GPU the fp16 variant where the repo has one (half the
download). huggingface_hub shows a progress bar per file.
"""

from __future__ import annotations

import logging
from pathlib import Path

from aadiff_live.errors import UserError
from aadiff_live.models.hub import WEIGHT_SUFFIXES, failure_cause, network_failure, variant_of

log = logging.getLogger(__name__)
PARTS = ("scheduler", "tokenizer", "tokenizer_2", "text_encoder", "text_encoder_2", "unet", "vae")
WEIGHT_PARTS = ("text_encoder", "text_encoder_2", "unet", "vae")
_SMALL = (".json", ".txt", ".model")


def _pick_weights(files: list[str], fp16: bool) -> list[str]:
    """One folder's weight files: safetensors over .bin, the fp16 variant when asked and present,
    else the plain (variant-less) files."""
    for ext in WEIGHT_SUFFIXES:
        cand = [f for f in files if f.endswith(ext) or (f.endswith(".json") and ext + ".index" in f)]
        if not any(f.endswith(ext) for f in cand):
            continue
        if fp16 and any(variant_of(f) == "fp16" and f.endswith(ext) for f in cand):
            return [f for f in cand if variant_of(f) == "fp16"]
        return [f for f in cand if variant_of(f) is None]
    return []


def diffusers_files(repo_files: list[str], fp16: bool) -> list[str]:
    """The files of a diffusers-layout repo that the renderer loads."""
    keep = [f for f in repo_files if f == "model_index.json"]
    for part in PARTS:
        inside = [f for f in repo_files if f.startswith(part + "/") and f.count("/") == 1]
        keep += [f for f in inside if f.endswith(_SMALL) and ".index" not in f]
        if part in WEIGHT_PARTS:
            keep += _pick_weights(inside, fp16)
    return keep


def plain_files(repo_files: list[str]) -> list[str]:
    """A transformers/diffusers single-model repo (CLAP, TAESD): configs, tokenizer, weights."""
    top = [f for f in repo_files if "/" not in f]
    return [f for f in top if f.endswith(_SMALL)] + _pick_weights(top, fp16=False)


def _fetch(repo: str, patterns: list[str], what: str) -> Path:
    from huggingface_hub import snapshot_download
    from huggingface_hub.utils import enable_progress_bars

    enable_progress_bars()
    log.info("downloading %s %s: %d file(s)", what, repo, len(patterns))
    return Path(snapshot_download(repo, allow_patterns=patterns))


def _repo_files(repo: str) -> list[str]:
    from huggingface_hub import list_repo_files

    try:
        return list(list_repo_files(repo))
    except Exception as exc:  # noqa: BLE001

        if network_failure(exc):
            raise UserError(f"the Hugging Face hub is not reachable to download '{repo}' ({failure_cause(exc)}); run "
                            f"`aadiff-live download` on a machine with internet, then copy ~/.cache/huggingface") from None
        raise UserError(f"cannot list '{repo}' on the Hugging Face hub ({failure_cause(exc)}); check the id "
                        f"(private or gated models need `hf auth login`)") from None


def download(model: str, *, clap: str | None, vae: str = "auto", fp16: bool = False,
             clip: str | None = None) -> dict[str, Path]:
    """Fetch ``model`` (diffusers layout), the CLAP checkpoint, the tiny VAE and the CLIP model of
    ``evaluate`` if asked; return where each landed in the cache."""
    from aadiff_live.models.loading import IN_PROCESS_RANDOM, TAESD, TAESDXL

    if model in IN_PROCESS_RANDOM or Path(model).is_dir():
        raise UserError(f"--model {model} needs no download (built in-process or a local folder); pass a hub id")
    files = _repo_files(model)
    if "model_index.json" not in files:
        raise UserError(f"'{model}' has no model_index.json: not a diffusers-layout pipeline; pass one such as "
                        f"stabilityai/sd-turbo")
    chosen = diffusers_files(files, fp16)
    variant = "fp16" if fp16 and any(variant_of(f) == "fp16" for f in chosen) else "plain"
    out = {model: _fetch(model, chosen, f"model ({variant} weights)")}
    if vae == "tiny":
        tiny = TAESDXL if any(f.startswith("text_encoder_2/") for f in files) else TAESD
        out[tiny] = _fetch(tiny, plain_files(_repo_files(tiny)), "tiny VAE")
    elif vae not in ("auto", "kl"):
        out[vae] = _fetch(vae, plain_files(_repo_files(vae)), "VAE")
    if clap:
        out[clap] = _fetch(clap, plain_files(_repo_files(clap)), "CLAP")
    if clip and clip != "tiny":
        out[clip] = _fetch(clip, plain_files(_repo_files(clip)), "CLIP (evaluate)")
    return out
