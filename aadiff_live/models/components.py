"""What a diffusion model is made of, as the renderer and the backends use it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

TEXT_TOKENS = 77  # CLIP's window: BOS, 75 prompt tokens, EOS; a prompt token at position >= 76 is cut off


@dataclass
class Components:
    unet: Any
    vae: Any
    text_encoder: Any
    tokenizer: Any
    scheduler: Any
    name: str
    is_tiny: bool = False
    extra: dict = field(default_factory=dict)
    tokenizer_2: Any = None  # SDXL: the second tokenizer and text encoder (with projection: pooled output)
    text_encoder_2: Any = None


def vae_scale_factor(vae: Any) -> int:
    """Pixels per latent along each side: 2 ** (number of resolution levels - 1) of the autoencoder."""
    cfg = vae.config
    levels = getattr(cfg, "decoder_block_out_channels", None)  # AutoencoderTiny (TAESD)
    if levels is None:
        levels = getattr(cfg, "block_out_channels", None)  # AutoencoderKL
    if not levels:
        raise ValueError(f"cannot tell the latent scale of {type(vae).__name__}: its config has neither "
                         f"decoder_block_out_channels (AutoencoderTiny) nor block_out_channels (AutoencoderKL)")
    return 2 ** (len(levels) - 1)


def text_length(tokenizer: Any) -> int:
    """Tokens per prompt the text encoder takes: the tokenizer's ``model_max_length``, except that
    transformers reports a huge placeholder when a tokenizer does not know it: CLIP's 77 then."""
    n = int(getattr(tokenizer, "model_max_length", TEXT_TOKENS))
    return TEXT_TOKENS if n > 1000 else n
