"""Full-size SD-Turbo architecture with random weights, for timing (docs/design.md §6).

Speed does not depend on the weights' values, so benchmarks build the real architecture
(SD 2.x UNet, KL VAE, OpenCLIP-H text encoder) in-process without downloading anything. The
result draws noise, not pictures: never present its output as the product's imagery.
"""

from __future__ import annotations

from typing import Any

import torch

from aadiff_live.models.components import Components


def build_fullsize_sd_turbo(seed: int = 0) -> dict:
    """UNet, VAE, text encoder, tokenizer, scheduler of SD-Turbo's shapes; same keys as
    :func:`aadiff_live.models.tiny.build_tiny_diffusion`. About 1.3 B parameters in float32."""
    from diffusers import AutoencoderKL, EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from aadiff_live.models.tiny import tiny_clip_tokenizer

    tokenizer = tiny_clip_tokenizer()
    torch.manual_seed(seed)
    text_encoder = CLIPTextModel(
        CLIPTextConfig(
            vocab_size=max(len(tokenizer), 49408), hidden_size=1024, intermediate_size=4096,
            num_hidden_layers=23, num_attention_heads=16, max_position_embeddings=77, hidden_act="gelu",
            projection_dim=512, bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
    ).eval()
    torch.manual_seed(seed + 1)
    unet: Any = UNet2DConditionModel(
        sample_size=96, in_channels=4, out_channels=4, layers_per_block=2,
        block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=1024, attention_head_dim=(5, 10, 20, 20), use_linear_projection=True,
        norm_num_groups=32, act_fn="silu", flip_sin_to_cos=True, freq_shift=0,
    )
    unet.eval()
    torch.manual_seed(seed + 2)
    vae: Any = AutoencoderKL(
        in_channels=3, out_channels=3, latent_channels=4, block_out_channels=(128, 256, 512, 512),
        down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        layers_per_block=2, norm_num_groups=32, sample_size=768, scaling_factor=0.18215,
    )
    vae.eval()
    scheduler = EulerDiscreteScheduler(
        num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
        prediction_type="epsilon", timestep_spacing="trailing",
    )
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "scheduler": scheduler}


def fullsize_components(seed: int = 0, vae: str = "auto", dtype: torch.dtype | None = None) -> Components:
    """The full-size SD-Turbo architecture with random weights as :class:`Components` (``--model
    random-sd-turbo``, the benchmarks): named so that the renderer picks SD-Turbo's schedule (1 step,
    no guidance), flagged ``is_tiny`` (random weights: noise, not pictures; the tiny CLAP stands in).
    ``vae="tiny"``: a random TAESD instead of the KL VAE."""
    parts = build_fullsize_sd_turbo(seed)
    if vae == "tiny":
        from diffusers import AutoencoderTiny

        torch.manual_seed(seed + 4)
        parts["vae"] = AutoencoderTiny().eval()  # type: ignore[attr-defined]
    if dtype is not None and dtype != torch.float32:
        for k in ("unet", "vae", "text_encoder"):
            parts[k] = parts[k].to(dtype)
    return Components(name="sd-turbo-random", is_tiny=True, **parts)
