"""One home for what the renderer and the ONNX export both read off the components."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from aadiff_live.models.components import TEXT_TOKENS, text_length, vae_scale_factor


def _vae(**config):
    return SimpleNamespace(config=SimpleNamespace(**config))


def test_vae_scale_factor_kl_tiny_and_unknown():
    assert vae_scale_factor(_vae(block_out_channels=(128, 256, 512, 512), down_block_types=("D",) * 4)) == 8
    assert vae_scale_factor(_vae(block_out_channels=(32, 64))) == 2
    assert vae_scale_factor(_vae(encoder_block_out_channels=(64,) * 3, decoder_block_out_channels=(64,) * 3)) == 4
    # no silent default (the renderer used to assume 8 and the ONNX export to raise AttributeError)
    with pytest.raises(ValueError, match="neither decoder_block_out_channels"):
        vae_scale_factor(_vae(latent_channels=4))


def test_vae_scale_factor_of_the_real_tiny_autoencoders(tiny_components):
    from aadiff_live.models.tiny import build_tiny_vae_tiny

    assert vae_scale_factor(tiny_components.vae) == 4  # KL, three levels: 64 px -> 16 latents
    assert vae_scale_factor(build_tiny_vae_tiny(0)) == 4  # AutoencoderTiny, three levels


def test_text_length():
    assert TEXT_TOKENS == 77
    assert text_length(SimpleNamespace(model_max_length=77)) == 77
    assert text_length(SimpleNamespace(model_max_length=64)) == 64
    assert text_length(SimpleNamespace(model_max_length=int(1e30))) == 77  # transformers' "unknown"
    assert text_length(SimpleNamespace()) == 77
