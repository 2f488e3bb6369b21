"""The published checkpoints' architectures, written out in the hub's diffusers layout (no weights).

Tests and benchmarks must build, load and tokenize models the way SD 1.5, LCM Dreamshaper v7,
SD-Turbo and SDXL-Turbo do, on machines that cannot download them. This module holds those
architectures' hyper-parameters (layer widths and depths, block types, text towers, schedulers,
the tokenizers' special tokens) as this project's own data, and :func:`write_layout` writes them
as a hub repo's small files (``model_index.json``, ``unet/config.json``, ``tokenizer/vocab.json``,
...) into a folder, from which :mod:`aadiff_live.models.random_model` builds random weights.

The CLIP tokenizer's ``vocab.json`` and ``merges.txt`` are derived, as OpenAI's CLIP does it, from
its byte-pair file ``bpe_simple_vocab_16e6.txt.gz`` (MIT licence, OpenAI), which the caller passes
(the repository keeps a copy under ``tests/data/models/``). The result equals the hub's files of
every family here byte for byte.
"""

from __future__ import annotations

import gzip
import json
from pathlib import Path
from typing import Any

CLIP_VOCAB_SIZE = 49408
_N_MERGES = CLIP_VOCAB_SIZE - 256 * 2 - 2  # 48894: the byte tokens, their end-of-word forms, 2 specials
_SPECIAL = ("<|startoftext|>", "<|endoftext|>")

# text towers: OpenAI CLIP ViT-L/14 (SD 1.x, SDXL's first), OpenCLIP ViT-H/14 (SD 2.x: the
# penultimate layer, hence 23 layers), OpenCLIP ViT-bigG/14 (SDXL's second, with projection)
CLIP_L = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              hidden_act="quick_gelu", projection_dim=768)
OPENCLIP_H = dict(hidden_size=1024, intermediate_size=4096, num_hidden_layers=23, num_attention_heads=16,
                  hidden_act="gelu", projection_dim=512)
OPENCLIP_BIGG = dict(hidden_size=1280, intermediate_size=5120, num_hidden_layers=32, num_attention_heads=20,
                     hidden_act="gelu", projection_dim=1280)

_SD_DOWN = ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"]
_SD_UP = ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"]
_UNET_COMMON = dict(act_fn="silu", center_input_sample=False, downsample_padding=1, flip_sin_to_cos=True, freq_shift=0,
                    in_channels=4, out_channels=4, layers_per_block=2, mid_block_scale_factor=1, norm_eps=1e-05,
                    norm_num_groups=32)
SD15_UNET = dict(_UNET_COMMON, block_out_channels=[320, 640, 1280, 1280], attention_head_dim=8,
                 cross_attention_dim=768, down_block_types=_SD_DOWN, up_block_types=_SD_UP, sample_size=64)
SD2_UNET = dict(_UNET_COMMON, block_out_channels=[320, 640, 1280, 1280], attention_head_dim=[5, 10, 20, 20],
                cross_attention_dim=1024, down_block_types=_SD_DOWN, up_block_types=_SD_UP, sample_size=64,
                use_linear_projection=True)
LCM_UNET = dict(SD15_UNET, sample_size=96, time_cond_proj_dim=256)  # guidance embedded (w) as a time condition
SDXL_UNET = dict(_UNET_COMMON, block_out_channels=[320, 640, 1280], attention_head_dim=[5, 10, 20],
                 cross_attention_dim=2048, down_block_types=["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
                 up_block_types=["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"], sample_size=64,
                 transformer_layers_per_block=[1, 2, 10], use_linear_projection=True, addition_embed_type="text_time",
                 addition_time_embed_dim=256, projection_class_embeddings_input_dim=2816)
_KL_VAE = dict(act_fn="silu", block_out_channels=[128, 256, 512, 512], down_block_types=["DownEncoderBlock2D"] * 4,
               up_block_types=["UpDecoderBlock2D"] * 4, in_channels=3, out_channels=3, latent_channels=4,
               layers_per_block=2, norm_num_groups=32)
_BETAS = dict(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", num_train_timesteps=1000)
PNDM = dict(_BETAS, _class_name="PNDMScheduler", set_alpha_to_one=False, skip_prk_steps=True, steps_offset=1,
            clip_sample=False)
LCM = dict(_BETAS, _class_name="LCMScheduler", original_inference_steps=50, prediction_type="epsilon",
           set_alpha_to_one=True, steps_offset=0, timestep_spacing="leading", clip_sample=False)
EULER_TRAILING = dict(_BETAS, _class_name="EulerDiscreteScheduler", prediction_type="epsilon",
                      timestep_spacing="trailing", steps_offset=1, interpolation_type="linear", use_karras_sigmas=False)
EULER_A_TRAILING = dict(_BETAS, _class_name="EulerAncestralDiscreteScheduler", prediction_type="epsilon",
                        timestep_spacing="trailing", steps_offset=1)


def _family(pipeline: str, unet: dict, vae: dict, scheduler: dict, text: list[tuple[str, dict]],
            pads: list[str]) -> dict[str, Any]:
    return {"pipeline": pipeline, "unet": unet, "vae": vae, "scheduler": scheduler, "text": text, "pads": pads}


# family name -> its parts; ``pads``: each tokenizer's pad token (OpenCLIP's are "!", id 0)
FAMILIES: dict[str, dict[str, Any]] = {
    "sd15": _family("StableDiffusionPipeline", SD15_UNET, dict(_KL_VAE, sample_size=512), PNDM,
                    [("CLIPTextModel", CLIP_L)], ["<|endoftext|>"]),
    "lcm": _family("LatentConsistencyModelPipeline", LCM_UNET, dict(_KL_VAE, sample_size=768, scaling_factor=0.18215),
                   LCM, [("CLIPTextModel", CLIP_L)], ["<|endoftext|>"]),
    "sd-turbo": _family("StableDiffusionPipeline", SD2_UNET, dict(_KL_VAE, sample_size=768), EULER_TRAILING,
                        [("CLIPTextModel", OPENCLIP_H)], ["!"]),
    "sdxl-turbo": _family("StableDiffusionXLPipeline", SDXL_UNET,
                          dict(_KL_VAE, sample_size=1024, scaling_factor=0.13025, force_upcast=True), EULER_A_TRAILING,
                          [("CLIPTextModel", CLIP_L), ("CLIPTextModelWithProjection", OPENCLIP_BIGG)],
                          ["<|endoftext|>", "!"]),
}


def clip_bpe_files(bpe_gz: str | Path) -> tuple[str, str]:
    """``(vocab.json, merges.txt)`` text of the CLIP tokenizer, from OpenAI's ``bpe_simple_vocab_16e6.txt.gz``."""
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    lines = gzip.decompress(Path(bpe_gz).read_bytes()).decode("utf-8").split("\n")
    merges = [tuple(m.split()) for m in lines[1 : _N_MERGES + 1]]
    chars = list(bytes_to_unicode().values())
    tokens = [*chars, *(c + "</w>" for c in chars), *("".join(m) for m in merges), *_SPECIAL]
    vocab = {t: i for i, t in enumerate(tokens)}
    assert len(vocab) == CLIP_VOCAB_SIZE, len(vocab)
    vocab_json = json.dumps(vocab, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    merges_txt = "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges)
    return vocab_json, merges_txt


def _dump(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _text_config(cls: str, tower: dict) -> dict:
    return dict(tower, architectures=[cls], model_type="clip_text_model", vocab_size=CLIP_VOCAB_SIZE,
                max_position_embeddings=77, layer_norm_eps=1e-05, attention_dropout=0.0, dropout=0.0,
                initializer_factor=1.0, initializer_range=0.02, bos_token_id=0, eos_token_id=2, pad_token_id=1)


def _tokenizer_config(pad: str) -> dict:
    return {"tokenizer_class": "CLIPTokenizer", "model_max_length": 77, "do_lower_case": True, "errors": "replace",
            "add_prefix_space": False, "bos_token": _SPECIAL[0], "eos_token": _SPECIAL[1], "unk_token": _SPECIAL[1],
            "pad_token": pad}


def write_layout(family: str, out: str | Path, bpe_gz: str | Path) -> Path:
    """Write ``family``'s configs and tokenizers (no weights) to ``out`` in the hub's diffusers layout."""
    if family not in FAMILIES:
        raise ValueError(f"unknown family {family!r}; one of {', '.join(FAMILIES)}")
    f, out = FAMILIES[family], Path(out)
    vocab_json, merges_txt = clip_bpe_files(bpe_gz)
    index: dict[str, Any] = {"_class_name": f["pipeline"], "scheduler": ["diffusers", f["scheduler"]["_class_name"]],
                             "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"]}
    for k, ((cls, tower), pad) in enumerate(zip(f["text"], f["pads"], strict=True)):
        suffix = f"_{k + 1}" if k else ""
        index[f"text_encoder{suffix}"] = ["transformers", cls]
        index[f"tokenizer{suffix}"] = ["transformers", "CLIPTokenizer"]
        _dump(out / f"text_encoder{suffix}" / "config.json", _text_config(cls, tower))
        tok = out / f"tokenizer{suffix}"
        tok.mkdir(parents=True, exist_ok=True)
        (tok / "vocab.json").write_text(vocab_json, encoding="utf-8")
        (tok / "merges.txt").write_text(merges_txt, encoding="utf-8")
        _dump(tok / "tokenizer_config.json", _tokenizer_config(pad))
        _dump(tok / "special_tokens_map.json", {"bos_token": _SPECIAL[0], "eos_token": _SPECIAL[1],
                                                "unk_token": _SPECIAL[1], "pad_token": pad})
    _dump(out / "model_index.json", index)
    _dump(out / "unet" / "config.json", dict(f["unet"], _class_name="UNet2DConditionModel"))
    _dump(out / "vae" / "config.json", dict(f["vae"], _class_name="AutoencoderKL"))
    _dump(out / "scheduler" / "scheduler_config.json", f["scheduler"])
    return out
