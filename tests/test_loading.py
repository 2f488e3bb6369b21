"""The real loading path: a tiny model saved to a folder / the hub cache and loaded back."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch

from aadiff_live.backends import make_backend
from aadiff_live.errors import UserError
from aadiff_live.models.loading import check_tokenizer, load_components, save_components
from aadiff_live.rendering.pipeline import Renderer


def _frame(components, weight=1.5):
    backend = make_backend("torch", components, torch.device("cpu"), torch.float32)
    r = Renderer(components, backend, width=64, height=64, steps=2, guidance=0.0)
    r.prepare("a storm over the sea")
    return r.render(weight, [5, 6, 7, 8, 9])


@pytest.fixture(scope="module")
def saved_tiny(tmp_path_factory):
    folder = tmp_path_factory.mktemp("tiny-model")
    save_components(load_components("tiny"), folder)
    return folder


def test_local_folder_round_trip(saved_tiny):
    ref = _frame(load_components("tiny"))
    loaded = load_components(str(saved_tiny))
    assert not loaded.is_tiny and loaded.name == str(saved_tiny)
    np.testing.assert_array_equal(_frame(loaded), ref)


def test_a_standard_model_loads_and_runs_as_diffusers_runs_it(tmp_path):
    """Nothing of the tiny model's construction reaches real checkpoints: a default-initialised diffusers
    model saved to a folder loads with every weight untouched and renders, at weight 1, what diffusers'
    own StableDiffusionPipeline renders from the same starting noise."""
    from diffusers import AutoencoderKL, StableDiffusionPipeline, UNet2DConditionModel
    from transformers import CLIPTextModel

    from aadiff_live.models.loading import Components

    tiny = load_components("tiny")
    torch.manual_seed(5)
    plain = Components(unet=UNet2DConditionModel.from_config(tiny.unet.config).eval(),
                       vae=AutoencoderKL.from_config(tiny.vae.config).eval(),
                       text_encoder=CLIPTextModel(tiny.text_encoder.config).eval(), tokenizer=tiny.tokenizer,
                       scheduler=tiny.scheduler, name="plain")
    save_components(plain, tmp_path)
    loaded = load_components(str(tmp_path))
    for a, b in ((plain.unet, loaded.unet), (plain.vae, loaded.vae), (plain.text_encoder, loaded.text_encoder)):
        sa, sb = a.state_dict(), b.state_dict()
        assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    frame = _frame(loaded, weight=1.0)
    pipe = StableDiffusionPipeline(vae=plain.vae, text_encoder=plain.text_encoder, tokenizer=plain.tokenizer,
                                   unet=plain.unet, scheduler=type(loaded.scheduler).from_config(loaded.scheduler.config),
                                   safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    pipe.set_progress_bar_config(disable=True)
    noise = torch.randn((1, 4, 16, 16), generator=torch.Generator().manual_seed(0))  # the Renderer's, seed 0
    ref = pipe("a storm over the sea", height=64, width=64, num_inference_steps=2, guidance_scale=0.0,
               latents=noise, output_type="np").images[0]
    assert np.abs(frame.astype(np.float64) - ref * 255).max() <= 1.0


def test_hub_cache_layout_loads_offline(saved_tiny, tmp_path, monkeypatch):
    _hub_cache(saved_tiny, tmp_path, monkeypatch)
    loaded = load_components("someone/tiny-sd")
    np.testing.assert_array_equal(_frame(loaded), _frame(load_components("tiny")))


def test_unreachable_model_says_how_to_get_it():
    with pytest.raises(UserError, match=r"aadiff-live download nobody/nothing"):
        load_components("nobody/nothing")


def test_incomplete_folder_is_named(tmp_path):
    (tmp_path / "unet").mkdir()
    with pytest.raises(UserError, match="incomplete or unreadable"):
        load_components(str(tmp_path))


def test_empty_tokenizer_is_detected():
    from transformers import CLIPTokenizer

    empty = CLIPTokenizer(vocab={"<|startoftext|>": 0, "<|endoftext|>": 1}, merges=[])
    with pytest.raises(UserError, match="loaded empty"):
        check_tokenizer(empty, "some/model")


def test_engine_identity_is_stable_across_processes():
    import subprocess
    import sys

    code = ("from aadiff_live.backends.engines import part_identity; from aadiff_live.models.loading import "
            "load_components; print(part_identity(load_components('tiny').unet))")
    ids = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout for _ in range(2)}
    assert len(ids) == 1 and len(ids.pop().strip()) == 33  # config hash - weights fingerprint


def _hub_cache(saved, tmp_path, monkeypatch, repo_name="models--someone--tiny-sd"):
    """The layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<rev>/...}."""
    rev = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / repo_name
    shutil.copytree(saved, repo / "snapshots" / rev)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(rev)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hub"))
    return repo / "snapshots" / rev


def test_corrupt_cached_file_keeps_its_cause(saved_tiny, tmp_path, monkeypatch):
    """A damaged file in the hub cache was reported as 'neither local nor in the cache'."""
    snap = _hub_cache(saved_tiny, tmp_path, monkeypatch)
    weights = snap / "unet" / "diffusion_pytorch_model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])  # a download cut short
    with pytest.raises(UserError) as e:
        load_components("someone/tiny-sd")
    msg = str(e.value)
    assert "\n" not in msg and "neither a local folder" not in msg
    assert "unet/" in msg and str(weights) in msg and "damaged" in msg
    assert "hf download someone/tiny-sd --force-download" in msg


def test_incomplete_cached_download_names_the_missing_part(saved_tiny, tmp_path, monkeypatch):
    snap = _hub_cache(saved_tiny, tmp_path, monkeypatch)
    shutil.rmtree(snap / "vae")
    with pytest.raises(UserError, match=r"has no vae/ \(an incomplete download\)"):
        load_components("someone/tiny-sd")


def test_corrupt_file_in_a_folder_keeps_its_cause(saved_tiny, tmp_path):
    folder = tmp_path / "m"
    shutil.copytree(saved_tiny, folder)
    (folder / "text_encoder" / "config.json").write_text("{not json")
    with pytest.raises(UserError) as e:
        load_components(str(folder))
    msg = str(e.value)
    assert "text_encoder/" in msg and str(folder / "text_encoder" / "config.json") in msg and "valid JSON" in msg


def test_missing_clap_is_reported_before_the_diffusion_model_loads(cli, tmp_path, monkeypatch):
    import soundfile as sf

    import aadiff_live.models.loading as loading

    def no_load(*a, **k):
        raise AssertionError("the diffusion model was loaded before CLAP was checked")

    monkeypatch.setattr(loading, "load_components", no_load)
    wav = tmp_path / "a.wav"
    sf.write(str(wav), np.zeros(4800, np.float32), 48000)
    for args in (("render", "--audio", wav, "--out", tmp_path / "v.mp4"), ("live", "--input", wav, "--no-display")):
        code, _, err = cli(*args, "--model", "someone/big-model", "--clap-model", "nobody/no-clap", "--prompt", "a fire")
        assert code == 2, err
        assert "CLAP model 'nobody/no-clap'" in err.strip().splitlines()[-1]


def test_tiny_vae_on_the_tiny_model_warns_that_it_drops_the_picture(caplog):
    from aadiff_live.models.loading import load_components

    with caplog.at_level("WARNING", logger="aadiff_live.models.loading"):
        load_components("tiny")
    assert not caplog.records  # the tiny KL VAE keeps the picture: nothing to say
    with caplog.at_level("WARNING", logger="aadiff_live.models.loading"):
        load_components("tiny", vae="tiny")
    assert "drops the base picture" in caplog.text
