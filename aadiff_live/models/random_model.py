"""A model folder in diffusers layout with random weights, built from a real checkpoint's configs.

``CONFIG_FOLDER`` is a hub repo's small files (``model_index.json``, ``unet/config.json``,
``tokenizer/vocab.json``, ...): a real checkpoint's, or those that
:func:`aadiff_live.models.architectures.write_layout` writes for SD 1.5, LCM Dreamshaper v7, SD-Turbo
and SDXL-Turbo. Full size: the real architecture (for timing: speed does not depend
on the weights' values). ``shrink``: the same classes, block types, schedulers and real
tokenizers with small widths and depths (for tests: seconds per frame). Either way the weights
are random and the picture is noise, never imagery.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path
from typing import Any

import torch

from aadiff_live.errors import UserError

log = logging.getLogger(__name__)
RANDOM_NOTE_FILE = "RANDOM_WEIGHTS.txt"
TEXT_PARTS = ("text_encoder", "text_encoder_2")
TOKENIZER_PARTS = ("tokenizer", "tokenizer_2")
# shrunk sizes: small, but every layer type the real model has is there
S_TEXT = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4, projection_dim=32)
S_UNET_WIDTH = (32, 64, 64, 64)
S_VAE_WIDTH = (16, 32, 32, 32)
S_TIME_DIM = 8


def _json(path: Path) -> dict:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path} not found; CONFIG_FOLDER must hold a hub repo's configs in diffusers layout") from None
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read {path} ({exc}); pass a folder with a hub repo's configs") from None


def _shrink_text(cfg) -> None:
    for k, v in S_TEXT.items():
        setattr(cfg, k, v)


def _shrink_unet(cfg: dict, cross_dim: int, pooled_dim: int | None) -> dict:
    n = len(cfg["block_out_channels"])
    cfg = dict(cfg)
    cfg["block_out_channels"] = list(S_UNET_WIDTH[:n]) + [S_UNET_WIDTH[-1]] * max(0, n - len(S_UNET_WIDTH))
    cfg["layers_per_block"] = 1
    cfg["norm_num_groups"] = 8
    for key in ("attention_head_dim", "num_attention_heads"):
        v = cfg.get(key)
        if isinstance(v, list):
            cfg[key] = [2] * len(v)
        elif v is not None:
            cfg[key] = 2
    tl = cfg.get("transformer_layers_per_block")
    cfg["transformer_layers_per_block"] = [1] * len(tl) if isinstance(tl, list) else 1
    cfg["cross_attention_dim"] = cross_dim
    if cfg.get("time_cond_proj_dim"):
        cfg["time_cond_proj_dim"] = 16
    if cfg.get("addition_embed_type") == "text_time":
        # SDXL: 6 time ids of S_TIME_DIM each, plus the pooled text embedding
        cfg["addition_time_embed_dim"] = S_TIME_DIM
        cfg["projection_class_embeddings_input_dim"] = 6 * S_TIME_DIM + int(pooled_dim or 0)
    return cfg


def _shrink_vae(cfg: dict) -> dict:
    cfg = dict(cfg)
    n = len(cfg["block_out_channels"])
    cfg["block_out_channels"] = list(S_VAE_WIDTH[:n])
    cfg["layers_per_block"] = 1
    cfg["norm_num_groups"] = 8
    return cfg


def build_random_parts(config_dir: str | Path, *, shrink: bool = False, seed: int = 0,
                       dtype: torch.dtype = torch.float32) -> dict[str, Any]:
    """Every part named in ``model_index.json`` that the renderer uses, with random weights."""
    import diffusers
    import transformers
    from transformers import CLIPTextConfig, CLIPTokenizer

    src = Path(config_dir)
    index = _json(src / "model_index.json")
    parts: dict[str, Any] = {}
    text_dims: list[int] = []
    pooled_dim = None
    for k, name in enumerate(TEXT_PARTS):
        if name not in index or index[name][0] is None:
            continue
        cfg = CLIPTextConfig.from_pretrained(str(src / name))
        if shrink:
            _shrink_text(cfg)
        cls = getattr(transformers, index[name][1])
        torch.manual_seed(seed + 10 + k)
        parts[name] = cls(cfg).to(dtype).eval()
        text_dims.append(cfg.hidden_size)
        if index[name][1] == "CLIPTextModelWithProjection":
            pooled_dim = cfg.projection_dim
    for name in TOKENIZER_PARTS:
        if name in index and index[name][0] is not None:
            parts[name] = CLIPTokenizer.from_pretrained(str(src / name))
    unet_cfg = diffusers.UNet2DConditionModel.load_config(str(src / "unet"))
    if shrink:
        unet_cfg = _shrink_unet(unet_cfg, sum(text_dims), pooled_dim)
    vae_cls = getattr(diffusers, index["vae"][1])
    vae_cfg = vae_cls.load_config(str(src / "vae"))
    if shrink:
        vae_cfg = _shrink_vae(vae_cfg)
    default = torch.get_default_dtype()
    try:
        # built directly in ``dtype`` (a full-size SDXL UNet is 10 GB in float32)
        torch.set_default_dtype(dtype)
        torch.manual_seed(seed + 1)
        parts["unet"] = diffusers.UNet2DConditionModel.from_config(unet_cfg).eval()
        torch.manual_seed(seed + 2)
        parts["vae"] = vae_cls.from_config(vae_cfg).eval()
    finally:
        torch.set_default_dtype(default)
    sched_cfg = _json(src / "scheduler" / "scheduler_config.json")
    sched_cls = getattr(diffusers, str(sched_cfg.get("_class_name", "")), None)
    if sched_cls is None:
        raise UserError(f"scheduler {sched_cfg.get('_class_name')} in {src} is unknown to this diffusers")
    parts["scheduler"] = sched_cls.from_config(sched_cfg)
    parts["model_index"] = index
    return parts


def write_random_model(config_dir: str | Path, out: str | Path, *, shrink: bool = False, seed: int = 0,
                       source: str | None = None) -> Path:
    """Write :func:`build_random_parts` to ``out`` in diffusers layout (loadable with ``--model out``);
    ``source`` names the architecture in the note the folder carries (default: ``config_dir``)."""
    src, out = Path(config_dir), Path(out)
    parts = build_random_parts(src, shrink=shrink, seed=seed)
    out.mkdir(parents=True, exist_ok=True)
    index = dict(parts.pop("model_index"))
    index["scheduler"] = ["diffusers", type(parts["scheduler"]).__name__]
    for name, part in parts.items():
        if name in TOKENIZER_PARTS:  # the real tokenizer files, byte for byte
            shutil.copytree(src / name, out / name, dirs_exist_ok=True)
        else:
            part.save_pretrained(str(out / name))
    for name, value in list(index.items()):
        if isinstance(value, list) and value and value[0] is not None and name not in parts:
            index[name] = [None, None]  # safety checker, feature extractor: not written, not used
    (out / "model_index.json").write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    (out / RANDOM_NOTE_FILE).write_text(
        f"Random weights ({'shrunk' if shrink else 'full size'}, seed {seed}) built from the configs of {source or src}.\n"
        "It draws noise, not pictures: never present its output as imagery.\n", encoding="utf-8")
    return out
