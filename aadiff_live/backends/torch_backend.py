"""The torch backend (CPU fp32/bf16, CUDA fp16 with fused attention, MPS)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from aadiff_live.backends.base import Backend
from aadiff_live.backends.hardware import importable
from aadiff_live.errors import UserError
from aadiff_live.models.attention import has_reweighting, install_reweighting

LCM_GUIDANCE = 8.5  # LCM pipelines' default: the guidance an LCM UNet is told (time_cond_proj_dim), not CFG


def guidance_embedding(w: float, dim: int) -> torch.Tensor:
    """``[1, dim]``: the embedding of guidance ``w`` that LCM UNets take as ``timestep_cond``
    (diffusers' ``LatentConsistencyModelPipeline.get_guidance_scale_embedding`` of ``w - 1``)."""
    x = torch.tensor([(w - 1.0) * 1000.0])
    half = dim // 2
    freqs = torch.exp(torch.arange(half, dtype=torch.float32) * -(torch.log(torch.tensor(10000.0)) / (half - 1)))
    emb = x[:, None] * freqs[None, :]
    emb = torch.cat([torch.sin(emb), torch.cos(emb)], dim=1)
    return torch.nn.functional.pad(emb, (0, 1)) if dim % 2 == 1 else emb


class UNetWithScale(torch.nn.Module):
    """``(sample, timestep, encoder_hidden_states, token_scale[, text_embeds, time_ids]) -> noise``:
    the graph that is exported. SDXL UNets (``addition_embed_type="text_time"``) also take the
    pooled text embeddings and time ids; an LCM UNet (``time_cond_proj_dim``) gets its guidance
    embedding as a constant. ``unet`` must carry the reweighting processors already
    (:func:`~aadiff_live.models.attention.install_reweighting`, which changes it in place): this
    wrapper changes nothing in the UNet it is given."""

    def __init__(self, unet) -> None:
        super().__init__()
        if not has_reweighting(unet):
            raise ValueError("UNetWithScale needs a UNet with the reweighting processors: call "
                             "aadiff_live.models.attention.install_reweighting(unet) first")
        self.unet = unet
        self.sdxl = getattr(unet.config, "addition_embed_type", None) == "text_time"
        dim = getattr(unet.config, "time_cond_proj_dim", None)
        w = guidance_embedding(LCM_GUIDANCE, int(dim)) if dim else torch.zeros(0)
        self.w_embedding: torch.Tensor
        self.register_buffer("w_embedding", w.to(next(unet.parameters()).dtype), persistent=False)

    def forward(self, sample, timestep, encoder_hidden_states, token_scale, text_embeds=None, time_ids=None):
        kw: dict[str, Any] = {}
        if self.w_embedding.numel():
            kw["timestep_cond"] = self.w_embedding.to(sample.dtype).expand(sample.shape[0], -1)
        if self.sdxl:
            kw["added_cond_kwargs"] = {"text_embeds": text_embeds, "time_ids": time_ids}
        return self.unet(sample, timestep, encoder_hidden_states=encoder_hidden_states,
                         cross_attention_kwargs={"token_scale": token_scale}, return_dict=False, **kw)[0]


class Decoder(torch.nn.Module):
    """``latents -> image`` in [-1, 1] for AutoencoderKL and AutoencoderTiny alike."""

    def __init__(self, vae) -> None:
        super().__init__()
        self.vae = vae

    def forward(self, latents):
        return self.vae.decode(latents, return_dict=False)[0]


def _move_in_place(module, device: torch.device, dtype: torch.dtype):
    """``module.to`` (in place) only when something changes (diffusers warns on every cast call)."""
    p = next(module.parameters())
    if p.device != device or p.dtype != dtype:
        module = module.to(device=device, dtype=dtype)
    return module


def compile_default(device: torch.device) -> bool:
    """``--compile`` unset: on for CUDA when Triton (torch.compile's GPU code generator) is installed."""
    return device.type == "cuda" and importable("triton")


def torch_backend(components, device: torch.device, dtype: torch.dtype, compile: bool | None = None) -> Backend:
    """``compile``: on CUDA, ``torch.compile`` the UNet and the decoder and let the renderer capture
    them as CUDA graphs (static buffers; the first frame takes about a minute). ``None``: on for CUDA.

    The torch backend runs the components' own modules: it moves ``components.unet`` and ``.vae`` to
    ``device``/``dtype`` and installs the reweighting processors in the UNet, in place (no second copy
    of the weights)."""
    install_reweighting(_move_in_place(components.unet, device, dtype))
    unet = UNetWithScale(components.unet).eval()
    decoder = Decoder(_move_in_place(components.vae, device, dtype)).eval()
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
                   graphs=bool(compile), eager_unet=unet if compile else None,
                   eager_decode=decoder if compile else None)
