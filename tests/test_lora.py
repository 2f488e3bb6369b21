"""--lora: a random LoRA saved with diffusers and loaded back through the CLI's loader, fused."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aadiff_live.errors import UserError
from aadiff_live.models.loading import load_components
from aadiff_live.models.lora import parse_lora


@pytest.fixture(scope="module")
def sd15(model_layouts, tmp_path_factory):
    from aadiff_live.models.random_model import write_random_model

    torch.set_num_threads(1)
    return write_random_model(model_layouts["sd15"], tmp_path_factory.mktemp("m") / "sd15",
                              shrink=True)


def _random_lora(folder, out, scale):
    """A LoRA with random (non-zero) up and down matrices on the UNet's attention projections;
    returns the peft-adapted UNet's output at ``scale`` for reference."""
    from diffusers import StableDiffusionPipeline
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    c = load_components(str(folder))
    torch.manual_seed(7)
    c.unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"],
                                  init_lora_weights=False), adapter_name="style")
    with torch.no_grad():
        for name, p in c.unet.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.2)
    StableDiffusionPipeline.save_lora_weights(out, unet_lora_layers=get_peft_model_state_dict(c.unet, adapter_name="style"))
    c.unet.set_adapters(["style"], weights=[scale])
    return _unet_out(c.unet)


def _unet_out(unet):
    g = torch.Generator().manual_seed(0)
    x, e = torch.randn(1, 4, 8, 8, generator=g), torch.randn(1, 77, 32, generator=g)
    with torch.no_grad():
        return unet(x, torch.tensor([500]), encoder_hidden_states=e).sample


def test_parse_lora():
    assert parse_lora("latent-consistency/lcm-lora-sdv1-5") == ("latent-consistency/lcm-lora-sdv1-5", 1.0)
    assert parse_lora("/loras/ink.safetensors:0.6") == ("/loras/ink.safetensors", 0.6)
    assert parse_lora("C:/loras/ink.safetensors") == ("C:/loras/ink.safetensors", 1.0)


def test_random_lora_round_trip_is_fused_and_named(sd15, tmp_path):
    from aadiff_live.backends.onnx_backend import engine_specs

    ref = _random_lora(sd15, tmp_path / "lora", 0.5)
    base = load_components(str(sd15))
    fused = load_components(str(sd15), loras=[f"{tmp_path / 'lora'}:0.5"])
    torch.testing.assert_close(_unet_out(fused.unet), ref, rtol=1e-4, atol=1e-4)
    assert (_unet_out(base.unet) - ref).abs().max() > 1e-3  # the LoRA does change the UNet
    assert not any("lora" in n for n, _ in fused.unet.named_parameters())  # fused: plain weights again
    other = load_components(str(sd15), loras=[f"{tmp_path / 'lora'}:0.8"])
    ids = {engine_specs(c, width=64, height=64, precision="fp32")[0].identity for c in (base, fused, other)}
    assert len(ids) == 3  # engines are rebuilt for another LoRA or scale


def test_lora_through_the_cli(sd15, tmp_path, cli):
    import soundfile as sf

    _random_lora(sd15, tmp_path / "lora", 1.0)
    wav = tmp_path / "a.wav"
    sf.write(str(wav), 0.1 * np.random.default_rng(0).standard_normal(24000).astype(np.float32), 48000)
    out = tmp_path / "v.mp4"
    code, _, err = cli("render", "--model", sd15, "--lora", f"{tmp_path / 'lora'}:0.7", "--audio", wav, "--fps", "4",
                       "--size", "64", "--steps", "2", "--backend", "torch", "--prompt", "a wildfire",
                       "--tokens", "wildfire", "--out", out)
    assert code == 0, err
    side = json.loads(out.with_name("v.mp4.json").read_text())
    [lora] = side["settings"]["loras"]
    assert lora["source"] == str(tmp_path / "lora") and lora["scale"] == 0.7 and len(lora["fingerprint"]) == 16


def test_bad_lora_is_a_one_line_error(sd15, tmp_path):
    with pytest.raises(UserError, match="'nobody/no-lora' is neither a local file/folder nor in the Hugging Face"):
        load_components(str(sd15), loras=["nobody/no-lora"])
    (tmp_path / "bad.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(UserError, match=r"cannot load LoRA .*bad.safetensors"):
        load_components(str(sd15), loras=[str(tmp_path / "bad.safetensors")])
