"""The value-scaling identity and the reweighting processor inside a UNet (docs/design.md §2)."""

from __future__ import annotations

import copy

import pytest
import torch
from diffusers.models.attention_processor import Attention, AttnProcessor2_0

from aadiff_live.models.attention import (
    ReweightAttnProcessor,
    explicit_reweighted_attention,
    install_reweighting,
)


def _split(t, heads):
    b, n, d = t.shape
    return t.view(b, n, heads, d // heads).transpose(1, 2)


@pytest.mark.parametrize("weights", [(0.0,), (2.5,), (-1.0, 3.0)])
def test_processor_equals_explicit_softmax_diag_c_v(weights):
    torch.manual_seed(0)
    attn = Attention(query_dim=16, cross_attention_dim=12, heads=2, dim_head=8).eval()
    x = torch.randn(2, 10, 16)
    ctx = torch.randn(2, 7, 12)
    c = torch.ones(2, 7)
    for i, w in enumerate(weights):
        c[1, 2 + i] = w
    out = ReweightAttnProcessor(cross=True)(attn, x, ctx, token_scale=c)
    q, k, v = _split(attn.to_q(x), 2), _split(attn.to_k(ctx), 2), _split(attn.to_v(ctx), 2)
    ref = explicit_reweighted_attention(q, k, v, c).transpose(1, 2).reshape(2, 10, 16)
    ref = attn.to_out[0](ref)
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-6)
    # and it is not the renormalised map: scaling a column really changes the output
    if any(w != 1 for w in weights):
        plain = ReweightAttnProcessor(cross=True)(attn, x, ctx, token_scale=torch.ones(2, 7))
        assert (plain[1] - out[1]).abs().max() > 1e-3
        torch.testing.assert_close(plain[0], out[0])  # the row with c = 1 is untouched


def test_self_attention_ignores_token_scale():
    torch.manual_seed(0)
    attn = Attention(query_dim=16, heads=2, dim_head=8).eval()
    x = torch.randn(1, 10, 16)
    a = ReweightAttnProcessor(cross=False)(attn, x, None, token_scale=torch.zeros(1, 10))
    b = AttnProcessor2_0()(attn, x)
    torch.testing.assert_close(a, b)


@torch.no_grad()
def test_weight_one_equals_unmodified_unet(tiny_components):
    from aadiff_live.backends.torch_backend import UNetWithScale

    plain = copy.deepcopy(tiny_components.unet)
    plain.set_attn_processor(AttnProcessor2_0())
    unet = copy.deepcopy(tiny_components.unet)
    install_reweighting(unet)
    wrapped = UNetWithScale(unet)
    torch.manual_seed(1)
    sample = torch.randn(2, 4, 16, 16)
    t = torch.tensor([999, 999])
    ehs = torch.randn(2, 77, 32)
    ref = plain(sample, t, encoder_hidden_states=ehs).sample
    ones = wrapped(sample, t, ehs, torch.ones(2, 77))
    torch.testing.assert_close(ones, ref, rtol=1e-5, atol=1e-5)
    # classifier-free guidance: only the conditional row is weighted
    c = torch.ones(2, 77)
    c[1, 3:6] = 2.5
    mixed = wrapped(sample, t, ehs, c)
    torch.testing.assert_close(mixed[0], ref[0], rtol=1e-5, atol=1e-5)
    assert (mixed[1] - ref[1]).abs().mean() > 1e-3


def test_install_counts_cross_attention_layers(tiny_components):
    unet = copy.deepcopy(tiny_components.unet)
    n_cross = install_reweighting(unet)
    procs = unet.attn_processors
    assert n_cross == sum(name.endswith("attn2.processor") for name in procs) > 0
    assert all(isinstance(p, ReweightAttnProcessor) for p in procs.values())
