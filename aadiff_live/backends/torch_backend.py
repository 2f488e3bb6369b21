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


def compile_default(device: torch.device) -> bool:
    """``--compile`` unset: on for CUDA when Triton (torch.compile's GPU code generator) is installed."""
    from aadiff_live.backends.engines import _importable

    return device.type == "cuda" and _importable("triton")


def torch_backend(components, device: torch.device, dtype: torch.dtype, compile: bool | None = None) -> Backend:
    """``compile``: on CUDA, ``torch.compile`` the UNet and the decoder and let the renderer capture
    them as CUDA graphs (static buffers; the first frame takes about a minute). ``None``: on for CUDA."""
    unet = UNetWithScale(_move(components.unet, device, dtype)).eval()
    decoder = Decoder(_move(components.vae, device, dtype)).eval()
    prec = {torch.float32: "fp32", torch.float16: "fp16", torch.bfloat16: "bf16"}[dtype]
    desc = f"torch {torch.__version__} on {device.type} ({prec})"
    if compile and device.type != "cuda":
        raise UserError("--compile (torch.compile + CUDA graphs) is for CUDA GPUs; drop it or pass --no-compile")
    if compile is None:
        compile = compile_default(device)
    unet_fn: Callable[..., torch.Tensor] = unet
    decode_fn: Callable[..., torch.Tensor] = decoder
    if compile:
        # inductor's default mode (no autotuning: a minute, not ten; no CUDA graphs of its own); the
        # renderer captures each whole call (static shapes and buffers, token_scale written in place),
        # so a new weight needs no recapture
        unet_fn = torch.compile(unet, dynamic=False)
        decode_fn = torch.compile(decoder, dynamic=False)
        desc += ", torch.compile + CUDA graphs (--no-compile: eager)"
    return Backend(name="torch", description=desc, unet=unet_fn, decode=decode_fn, device=device, dtype=dtype,
                   graphs=bool(compile))
