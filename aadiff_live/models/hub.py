"""The Hugging Face hub and its local cache: what is cached, whether the hub is reachable, which
weight files a folder holds. Shared by the loader and ``aadiff-live download`` (no model is loaded here)."""

from __future__ import annotations

import os
import re
from pathlib import Path

VARIANT = re.compile(r"\.(fp16|bf16|non_ema|ema|fp32)\.|\.index\.(fp16|bf16|non_ema|ema)\.json$")
WEIGHT_SUFFIXES = (".safetensors", ".bin")


def offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes", "on")


def cached_snapshot(model: str) -> Path | None:
    """The hub cache's snapshot folder of ``model`` (no network), or None when it has none."""
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(model, local_files_only=True))
    except Exception:  # noqa: BLE001 - not cached, or not a valid repo id
        return None


def failure_cause(exc: BaseException) -> str:
    """``Type: first line`` of an exception, for one-line messages (which file, which error)."""
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text[:300]}" if text else type(exc).__name__


def network_failure(exc: BaseException) -> bool:
    """Whether ``exc`` (or what caused it) says the hub could not be reached."""
    names = {"LocalEntryNotFoundError", "OfflineModeIsEnabled", "ConnectError", "ConnectTimeout", "TimeoutException",
             "ReadTimeout", "ConnectionError", "NameResolutionError"}
    seen: BaseException | None = exc
    while seen is not None:
        if type(seen).__name__ in names or "couldn't connect" in str(seen).lower():
            return True
        seen = seen.__cause__ or seen.__context__
    return False


def variant_of(name: str) -> str | None:
    m = VARIANT.search(name)
    return None if m is None else (m.group(1) or m.group(2))


def fp16_variant(model: str, part: str) -> bool:
    """Whether ``part`` of ``model`` (a folder, the hub cache, else the hub's file list) has fp16 weights."""
    for root in (Path(model) if Path(model).is_dir() else None, cached_snapshot(model)):
        if root is not None and (root / part).is_dir():
            return any(variant_of(p.name) == "fp16" and p.name.endswith(WEIGHT_SUFFIXES) for p in (root / part).iterdir())
    if Path(model).is_dir() or offline():
        return False
    try:
        from huggingface_hub import list_repo_files

        return any(f.startswith(part + "/") and f.endswith(WEIGHT_SUFFIXES) and variant_of(f) == "fp16"
                   for f in list_repo_files(model))
    except Exception:  # noqa: BLE001 - unreachable: the loader says so with its own message
        return False
