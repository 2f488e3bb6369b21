"""The UNet as diffusers runs it, for the benchmarks' "plain" side (tools/bench.py, tools/bench_gpu.py).

``PlainUNet(unet)`` is called without ``token_scale``; ``set_plain(unet)`` installs diffusers' own
attention processor (``AttnProcessor2_0``) in place of ours, so the plain side runs no reweighting code.
"""

from __future__ import annotations

import torch


class PlainUNet(torch.nn.Module):
    """``(sample, timestep, encoder_hidden_states) -> noise``, the UNet called the way diffusers calls it."""

    def __init__(self, unet) -> None:
        super().__init__()
        self.unet = unet

    def forward(self, sample, timestep, encoder_hidden_states):
        return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states, return_dict=False)[0]


def set_plain(unet) -> None:
    """diffusers' own attention processor on every attention layer of ``unet`` (in place)."""
    from diffusers.models.attention_processor import AttnProcessor2_0

    unet.set_attn_processor(AttnProcessor2_0())
