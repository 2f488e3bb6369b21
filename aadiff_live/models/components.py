"""What a diffusion model is made of, as the renderer and the backends use it."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


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
    tokenizer_2: Any = None  # SDXL: the second tokenizer and text encoder (with projection: pooled output)
    text_encoder_2: Any = None
