"""Prompt-to-prompt reweighting as value scaling (docs/design.md §2).

Reweighting multiplies columns of the cross-attention map without renormalising:
``A' = softmax(QK^T/sqrt(d)) diag(c)``. Since ``A' V = A (diag(c) V)``, it equals scaling the
chosen tokens' value vectors, so fused attention (SDPA, flash kernels) still applies and ``c``
is an ordinary tensor input (``token_scale``, shape ``[batch, tokens]``) of the graph: prompts
and weights change every frame with no rebuild or re-export.
"""

from __future__ import annotations

from contextlib import contextmanager

import torch
import torch.nn.functional as F


class ReweightAttnProcessor:
    """Attention processor (the shape of diffusers' ``AttnProcessor2_0``) with a token scale.

    ``cross`` is fixed at install time: self-attention layers ignore ``token_scale``;
    cross-attention layers multiply the value vectors of the text tokens by it. The scale is
    passed explicitly with every call (``cross_attention_kwargs={"token_scale": c}``); nothing
    counts calls to work out which layer or step it is in.
    """

    def __init__(self, cross: bool) -> None:
        self.cross = cross

    def __call__(
        self,
        attn,
        hidden_states: torch.Tensor,
        encoder_hidden_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        temb: torch.Tensor | None = None,
        token_scale: torch.Tensor | None = None,
    ) -> torch.Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            batch, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(batch, channel, height * width).transpose(1, 2)
        context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        batch, seq_len, _ = context.shape
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, seq_len, batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            context = hidden_states
        elif attn.norm_cross:
            context = attn.norm_encoder_hidden_states(context)
        key = attn.to_k(context)
        value = attn.to_v(context)
        if self.cross and token_scale is not None:
            value = value * token_scale.to(value.dtype)[:, :, None]
        inner = key.shape[-1]
        head_dim = inner // attn.heads
        query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        out = F.scaled_dot_product_attention(query, key, value, attn_mask=attention_mask, dropout_p=0.0)
        out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim).to(query.dtype)
        out = attn.to_out[0](out)
        out = attn.to_out[1](out)
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(batch, channel, height, width)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


def has_reweighting(unet) -> bool:
    """Whether every attention layer of ``unet`` has a :class:`ReweightAttnProcessor`."""
    procs = unet.attn_processors
    return bool(procs) and all(isinstance(p, ReweightAttnProcessor) for p in procs.values())


def install_reweighting(unet) -> int:
    """Give every attention layer of ``unet`` a :class:`ReweightAttnProcessor` (in place); return how
    many are cross-attention. With ``token_scale`` absent or all ones they compute what diffusers'
    default processor computes."""
    procs = {}
    n_cross = 0
    for name in unet.attn_processors:
        cross = name.endswith("attn2.processor")
        n_cross += cross
        procs[name] = ReweightAttnProcessor(cross=cross)
    unet.set_attn_processor(procs)
    return n_cross


@contextmanager
def reweighting_installed(unet):
    """``unet`` with the reweighting processors for the duration of the block; its previous processors
    are put back afterwards (an export of a UNet that other code shares)."""
    before = unet.attn_processors
    install_reweighting(unet)
    try:
        yield unet
    finally:
        unet.set_attn_processor(before)


def explicit_reweighted_attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, c: torch.Tensor) -> torch.Tensor:
    """Reference formula ``softmax(QK^T/sqrt(d)) diag(c) V`` with the map materialised (for tests)."""
    attn = torch.softmax(q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5, dim=-1)
    return (attn * c[:, None, None, :]) @ v
