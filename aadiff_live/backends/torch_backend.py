"""The torch backend (CPU fp32/bf16, CUDA fp16 with fused attention, MPS)."""

from __future__ import annotations

from collections.abc import Callable

import torch

from aadiff_live.backends.base import Backend
from aadiff_live.errors import UserError
from aadiff_live.rendering.attention import install_reweighting


class UNetWithScale(torch.nn.Module):
    """``(sample, timestep, encoder_hidden_states, token_scale) -> noise``: the graph that is exported."""

    def __init__(self, unet) -> None:
        super().__init__()
        self.unet = unet
        install_reweighting(unet)

    def forward(self, sample, timestep, encoder_hidden_states, token_scale):
        return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states,
                         cross_attention_kwargs={"token_scale": token_scale}, return_dict=False)[0]


class Decoder(torch.nn.Module):
    """``latents -> image`` in [-1, 1] for AutoencoderKL and AutoencoderTiny alike."""

    def __init__(self, vae) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, latents):
        return self.vae.decode(latents, return_dict=False)[0]


def _move(module, device: torch.device, dtype: torch.dtype):
    """``module.to`` only when something changes (diffusers warns on every cast call)."""
    p = next(module.parameters())
    if p.device != device or p.dtype != dtype:
        module = module.to(device=device, dtype=dtype)
    return module


def torch_backend(components, device: torch.device, dtype: torch.dtype, compile_unet: bool = False) -> Backend:
    """``compile_unet``: on CUDA, ``torch.compile`` the UNet (first frames take minutes to compile)."""
    unet = UNetWithScale(_move(components.unet, device, dtype)).eval()
    decoder = Decoder(_move(components.vae, device, dtype)).eval()
    prec = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]
    desc = f"torch {torch.__version__} on {device.type} ({prec})"
    runner: torch.nn.Module | Callable[..., torch.Tensor] = unet
    if compile_unet:
        if device.type != "cuda":
            raise UserError("torch.compile of the UNet is offered on CUDA only; drop the compile option")
        # "max-autotune" includes CUDA graphs: shapes are fixed per run (batch 1 or 2, one size)
        runner = torch.compile(unet, mode="max-autotune", fullgraph=False, dynamic=False)
        desc += ", torch.compile (untested in CI)"
    return Backend(name="torch", description=desc, unet=runner, decode=decoder, device=device, dtype=dtype)
