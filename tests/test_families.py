"""Every model family through the same CLI, from folders built with tools/make_random_model.py
out of the real architectures and tokenizers (aadiff_live.models.architectures; shrunk widths, random weights: the
frames are noise; what is checked is the plumbing: schedulers, guidance, SDXL's two encoders,
token positions from the real tokenizer, ONNX export)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from aadiff_live.backends import make_backend
from aadiff_live.errors import UserError
from aadiff_live.models.loading import load_components
from aadiff_live.rendering.pipeline import Renderer
from aadiff_live.tokens.words import token_positions

PROMPT = "a forest with a wildfire, at night"
# family: (scheduler, steps, guidance)
FAMILIES = {
    "sd-turbo": ("EulerDiscreteScheduler", 1, 0.0),
    "sd15": ("PNDMScheduler", 25, 7.5),
    "lcm": ("LCMScheduler", 4, 0.0),
    "sdxl-turbo": ("EulerAncestralDiscreteScheduler", 1, 0.0),
}


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    # tiny convolutions on a shared 2-core machine: one thread is many times faster than two
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture(scope="module")
def folders(model_layouts, tmp_path_factory):
    from aadiff_live.models.random_model import write_random_model

    root = tmp_path_factory.mktemp("families")
    return {name: write_random_model(model_layouts[name], root / f"{name}-random", shrink=True) for name in FAMILIES}


def _wav(tmp_path):
    import soundfile as sf

    wav = tmp_path / "a.wav"
    sf.write(str(wav), 0.1 * np.random.default_rng(0).standard_normal(24000).astype(np.float32), 48000)
    return wav


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_renders_through_the_cli(family, folders, model_layouts, cli, tmp_path):
    from transformers import CLIPTokenizer

    scheduler, steps, guidance = FAMILIES[family]
    out = tmp_path / "v.mp4"
    code, _, err = cli("render", "--model", folders[family], "--audio", _wav(tmp_path), "--fps", "4", "--size", "64",
                       "--backend", "torch", "--prompt", PROMPT, "--tokens", "wildfire", "--out", out)
    assert code == 0, err
    assert "random weights" in err
    side = json.loads(out.with_name("v.mp4.json").read_text())
    s = side["settings"]
    assert (s["scheduler"], s["steps"], s["guidance"], s["random_weights"]) == (scheduler, steps, guidance, True)
    real = CLIPTokenizer.from_pretrained(str(model_layouts[family] / "tokenizer"))
    assert side["tokens"]["positions"] == token_positions(real, PROMPT, ["wildfire"]) == [5]
    assert side["n_frames"] == 2


def _renderer(folder, **kw):
    c = load_components(str(folder))
    backend = make_backend("torch", c, torch.device("cpu"), torch.float32)
    r = Renderer(c, backend, width=64, height=64, **kw)
    r.prepare(PROMPT)
    return c, r


@pytest.mark.parametrize("family", ["sd15", "lcm", "sdxl-turbo"])
def test_the_chosen_positions_move_the_picture(family, folders):
    _, r = _renderer(folders[family], steps=2)
    lo, one, hi = (r.render(w, [5]) for w in (0.0, 1.0, 3.0))
    assert np.abs(lo.astype(int) - hi.astype(int)).max() > 0
    np.testing.assert_array_equal(one, r.render(2.5, []))  # no positions: the unweighted picture...
    np.testing.assert_array_equal(one, r.render(1.0, [5]))  # ...which weight 1 also gives
    if r.cfg:  # SD 1.5 with guidance: only the conditional row is reweighted
        scale = r.token_scale([5], 2.0)
        assert scale.shape == (2, 77) and torch.all(scale[0] == 1) and scale[1, 5] == 2 and scale[1].sum() == 78


def test_sdxl_two_encoders_pooled_embeddings_and_time_ids(folders):
    c, r = _renderer(folders["sdxl-turbo"])
    assert c.text_encoder_2 is not None and c.tokenizer_2 is not None
    b = r.base
    d1, d2 = c.text_encoder.config.hidden_size, c.text_encoder_2.config.hidden_size
    assert b.embeddings.shape == (1, 77, d1 + d2) == (1, 77, c.unet.config.cross_attention_dim)
    text_embeds, time_ids = b.added
    assert text_embeds.shape == (1, c.text_encoder_2.config.projection_dim)
    assert time_ids.tolist() == [[64, 64, 0, 0, 64, 64]]
    # both halves come from their own encoder's penultimate layer
    ids = c.tokenizer_2(PROMPT, padding="max_length", max_length=77, return_tensors="pt").input_ids
    with torch.no_grad():
        h2 = c.text_encoder_2(ids, output_hidden_states=True).hidden_states[-2]
    torch.testing.assert_close(b.embeddings[..., d1:], h2)


def test_lcm_unet_gets_its_guidance_embedding(folders):
    from diffusers import LatentConsistencyModelPipeline

    from aadiff_live.backends.torch_backend import LCM_GUIDANCE, UNetWithScale, guidance_embedding
    from aadiff_live.models.attention import install_reweighting

    ref = LatentConsistencyModelPipeline.get_guidance_scale_embedding(None, torch.tensor([LCM_GUIDANCE - 1]), 16)
    torch.testing.assert_close(guidance_embedding(LCM_GUIDANCE, 16), ref)
    c = load_components(str(folders["lcm"]))
    assert c.unet.config.time_cond_proj_dim == 16
    install_reweighting(c.unet)
    assert UNetWithScale(c.unet).w_embedding.shape == (1, 16)


def test_vae_tiny_is_taesdxl_for_sdxl(folders):
    # offline, so the message names the autoencoder that was asked for
    with pytest.raises(UserError, match="'madebyollin/taesdxl'"):
        load_components(str(folders["sdxl-turbo"]), vae="tiny")
    with pytest.raises(UserError, match="'madebyollin/taesd'"):
        load_components(str(folders["sd15"]), vae="tiny")


def test_sdxl_onnx_export_takes_token_scale(folders, tmp_path):
    from aadiff_live.backends.onnx_backend import onnx_backend

    c, r = _renderer(folders["sdxl-turbo"])
    ref = [r.render(w, [5]) for w in (0.0, 2.0)]
    backend = onnx_backend(c, torch.device("cpu"), torch.float32, width=64, height=64, engines_dir=tmp_path)
    names = [i.name for i in backend.unet.session.get_inputs()]
    assert names == ["sample", "timestep", "encoder_hidden_states", "token_scale", "text_embeds", "time_ids"]
    r2 = Renderer(c, backend, width=64, height=64)
    r2.prepare(PROMPT)
    got = [r2.render(w, [5]) for w in (0.0, 2.0)]
    for a, b in zip(got, ref, strict=True):
        assert np.abs(a.astype(int) - b.astype(int)).max() <= 2
    assert np.abs(got[0].astype(int) - got[1].astype(int)).max() > 0
