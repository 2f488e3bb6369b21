"""--image --invert: null-text inversion (rendering/invert.py) as the base, cached; few-step models refused."""

from __future__ import annotations

import json
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from PIL import Image

from aadiff_live.errors import UserError
from aadiff_live.rendering import invert as inv

PROMPT = "a sun over the sea"


def ddim(steps: int = 10):
    from diffusers import DDIMScheduler

    s = DDIMScheduler(beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear", set_alpha_to_one=False,
                      steps_offset=1, clip_sample=False)
    s.set_timesteps(steps)
    return s


def denoiser(sched, seed: int = 0):
    """A stand-in UNet that denoises like a trained one (the optimal noise prediction for unit-variance Gaussian
    data) plus a text term, so guidance drifts the way it does in Stable Diffusion."""
    w = torch.randn(16, 4, generator=torch.Generator().manual_seed(seed)) * 0.3

    def unet(x, t, text):
        a = float(sched.alphas_cumprod[t])
        return (1 - a) ** 0.5 * x + torch.tanh(text.mean(1) @ w)[:, :, None, None]

    return unet


def guided_render(unet, sched, start, cond, nulls, guidance):
    x = start
    with torch.no_grad():
        for k, t in enumerate(sched.timesteps.tolist()):
            null = nulls[k:k + 1] if nulls.shape[0] > 1 else nulls
            out = unet(x, t, null) + guidance * (unet(x, t, cond) - unet(x, t, null))
            x = sched.step(out, t, x).prev_sample  # diffusers' DDIM, as the renderer steps
    return x


def test_null_text_brings_the_guided_render_back_to_the_photo():
    torch.manual_seed(0)
    sched = ddim()
    unet = denoiser(sched)
    z0, cond, null = torch.randn(1, 4, 8, 8), torch.randn(1, 77, 16), torch.randn(1, 77, 16)
    traj = inv.ddim_trajectory(unet, sched, z0, cond)
    err = lambda x: float(((x - z0) ** 2).mean())  # noqa: E731
    # DDIM inversion retraces itself without guidance; with guidance 7.5 the render drifts far from the photo
    assert err(guided_render(unet, sched, traj[-1], cond, null, 1.0)) < 0.01
    plain = err(guided_render(unet, sched, traj[-1], cond, null, 7.5))
    nulls, stats = inv.null_text(unet, sched, traj, cond, null, 7.5, progress=False)
    tuned = err(guided_render(unet, sched, traj[-1], cond, nulls, 7.5))
    assert nulls.shape == (10, 77, 16) and len(stats) == 10 and all(1 <= s["iterations"] <= 10 for s in stats)
    assert tuned < plain / 3, (plain, tuned)


def test_our_ddim_step_is_diffusers_ddim():
    sched = ddim(7)
    x, out = torch.randn(1, 4, 8, 8), torch.randn(1, 4, 8, 8)
    for t in sched.timesteps.tolist():
        np.testing.assert_allclose(inv.ddim_down(sched, out, t, x), sched.step(out, t, x).prev_sample, atol=1e-5)


@pytest.fixture(scope="module")
def sd15(model_layouts, tmp_path_factory):
    from aadiff_live.models.random_model import write_random_model

    return write_random_model(model_layouts["sd15"], tmp_path_factory.mktemp("sd15") / "sd15-random", shrink=True)


@pytest.fixture()
def photo(tmp_path):
    from aadiff_live.audio.demo import demo_picture

    Image.fromarray(demo_picture(96, 80)).save(tmp_path / "photo.png")
    return tmp_path / "photo.png"


@pytest.fixture()
def wav(tmp_path):
    import soundfile as sf

    sf.write(str(tmp_path / "a.wav"), (0.1 * np.random.default_rng(0).standard_normal(24000)).astype(np.float32), 48000)
    return tmp_path / "a.wav"


def test_the_renderer_steps_with_each_steps_null_embedding(sd15, photo):
    """The inversion is the base: the render at weight 1 runs the guided DDIM steps from the inverted latent with
    step k's optimised null embedding in the unconditional row."""
    from aadiff_live.backends import make_backend
    from aadiff_live.models.loading import load_components
    from aadiff_live.rendering.pipeline import Renderer

    c = load_components(str(sd15))
    r = Renderer(c, make_backend("torch", c, torch.device("cpu"), torch.float32), width=64, height=64, steps=3,
                 image=str(photo), invert=True, invert_cache=None)
    r.prepare(PROMPT)
    # DDIM in the renderer's own parts list: a renderer sharing the components (batch) keeps the model's scheduler
    assert type(r.c.scheduler).__name__ == "DDIMScheduler" and type(c.scheduler).__name__ == "PNDMScheduler"
    assert r.c.unet is c.unet and r.inversion is not None
    assert r.inversion.nulls.shape[0] == 3 and not r.inversion.stats["cached"]
    unet, cond = inv.torch_unet(c.unet), r._encode(PROMPT)[0]
    x = r.inversion.latent
    with torch.no_grad():
        for k, t in enumerate(r.c.scheduler.timesteps.tolist()):
            out_null, out_cond = unet(x, t, r.inversion.nulls[k:k + 1]), unet(x, t, cond)
            x = inv.ddim_down(r.c.scheduler, out_null + r.guidance * (out_cond - out_null), t, x)
    np.testing.assert_allclose(r.render_latents(1.0, [2]), x, atol=1e-4)
    # two frames in one batch: the same per-step embeddings per row
    np.testing.assert_allclose(r.render_latents_batch([1.0, 1.0], [2])[1:], x, atol=1e-4)
    # a new prompt keeps the photo's latent and null embeddings (an edit of the photo)
    r.prepare("a moon over the sea")
    assert r.base is not None and r.base.nulls is not None and torch.equal(r.base.latents, r.inversion.latent)


def test_cache_hit_skips_the_optimisation(sd15, photo, wav, tmp_path, cli, monkeypatch):
    monkeypatch.setenv("AADIFF_ENGINES", str(tmp_path / "engines"))
    args = ["render", "--model", sd15, "--size", "64", "--steps", "3", "--audio", wav, "--fps", "4", "--prompt", PROMPT,
            "--tokens", "sun", "--image", photo, "--invert"]
    code, _, err = cli(*args, "--out", tmp_path / "a.mp4", "--frames", tmp_path / "a")
    assert code == 0, err
    assert "null-text inversion" in err  # the progress bar
    (cached,) = (tmp_path / "engines" / "inversions").glob("*.pt")
    side = json.loads((tmp_path / "a.mp4.json").read_text())["settings"]
    assert side["invert"] and side["inversion"]["cached"] is False and side["strength"] is None
    assert side["scheduler"] == "DDIMScheduler"

    def no(*a, **k):
        raise AssertionError("the optimisation ran again")

    monkeypatch.setattr(inv, "null_text", no)
    code, _, err = cli(*args, "--out", tmp_path / "b.mp4", "--frames", tmp_path / "b")
    assert code == 0, err
    assert json.loads((tmp_path / "b.mp4.json").read_text())["settings"]["inversion"]["cached"] is True
    for a, b in zip(sorted((tmp_path / "a").glob("*.png")), sorted((tmp_path / "b").glob("*.png")), strict=True):
        np.testing.assert_array_equal(np.asarray(Image.open(a)), np.asarray(Image.open(b)))
    # another prompt is another inversion
    monkeypatch.undo()
    monkeypatch.setenv("AADIFF_ENGINES", str(tmp_path / "engines"))
    code, _, err = cli(*args[:-7], "--prompt", "a moon over the sea", "--tokens", "moon", "--image", photo, "--invert",
                       "--out", tmp_path / "c.mp4")
    assert code == 0, err
    assert len(list((tmp_path / "engines" / "inversions").glob("*.pt"))) == 2


def test_a_damaged_cache_file_is_computed_again(tmp_path, caplog):
    bad = tmp_path / "x.pt"
    bad.write_bytes(b"not a torch file")
    assert inv.load_cached(bad) is None and "damaged" in caplog.text


@pytest.mark.parametrize(("model", "extra", "needle"), [
    ("tiny", [], "--model tiny runs 2 steps without guidance"),
    ("stabilityai/sd-turbo", [], "few-step distilled model"),
    ("SimianLuo/LCM_Dreamshaper_v7", [], "few-step distilled model"),
    ("runwayml/stable-diffusion-v1-5", ["--guidance", "1"], "--guidance 1 turns guidance off"),
])
def test_few_step_models_say_use_strength(model, extra, needle, photo, wav, tmp_path, cli):
    code, _, err = cli("render", "--model", model, "--audio", wav, "--prompt", PROMPT, "--image", photo, "--invert",
                       "--out", tmp_path / "v.mp4", *extra)
    assert code == 2 and needle in err and "--strength instead" in err and err.count("\n") == 1, err


def test_the_loaded_model_is_checked_too():
    """A folder whose name says nothing: its scheduler or UNet shows an LCM; SDXL has two text encoders."""
    def comps(**kw):
        base = dict(name="my-model", is_tiny=False, scheduler=SimpleNamespace(), text_encoder_2=None,
                    unet=SimpleNamespace(config=SimpleNamespace(time_cond_proj_dim=None)))
        return SimpleNamespace(**{**base, **kw})

    inv.check_invertible(comps(), 25, 7.5)
    lcm = comps(unet=SimpleNamespace(config=SimpleNamespace(time_cond_proj_dim=256)))
    for c, steps, g, needle in ((lcm, 4, 7.5, "few-step"), (comps(), 25, 0.0, "guidance"), (comps(), 1, 7.5, "single"),
                                (comps(text_encoder_2=object()), 25, 5.0, "SD 1.x and 2.x")):
        with pytest.raises(UserError, match=needle):
            inv.check_invertible(c, steps, g)


def test_bad_images_are_one_line(tmp_path, wav, cli):
    (tmp_path / "junk.jpg").write_text("not a picture")
    Image.new("RGB", (8, 8)).save(tmp_path / "tiny.png")
    base = ["render", "--model", "runwayml/stable-diffusion-v1-5", "--audio", wav, "--prompt", PROMPT, "--out",
            tmp_path / "v.mp4"]
    for extra, needle in (([ "--image", tmp_path / "junk.jpg", "--invert"], "cannot read"),
                          (["--image", tmp_path / "tiny.png", "--invert"], "too small"),
                          (["--image", tmp_path / "none.jpg", "--invert"], "not found"),
                          (["--invert"], "--invert needs a photo")):
        code, _, err = cli(*base, *extra)
        assert code == 2 and needle in err and err.count("\n") == 1 and "Traceback" not in err, err


def test_live_takes_image_and_invert(tmp_path, wav, photo, sd15, monkeypatch):
    """Live: --image --invert builds the inverted base (from the cache a render left) and records the show."""
    from aadiff_live.config import load_config
    from aadiff_live.live.app import run_live

    bad = load_config(None, {"model": {"model": "stabilityai/sd-turbo", "invert": True}, "live": {"input": str(wav)}})
    with pytest.raises(UserError, match="--strength instead"):
        run_live(bad, prompt=PROMPT, no_display=True, image=str(photo))
    monkeypatch.setenv("AADIFF_ENGINES", str(tmp_path / "engines"))
    cfg = load_config(None, {"model": {"model": str(sd15), "size": "64", "steps": 2, "invert": True, "backend": "torch"},
                             "live": {"input": str(wav)}, "tokens": {"tokens": ["sun"]}, "atlas": {"levels": 3}})
    assert run_live(cfg, prompt=PROMPT, no_display=True, image=str(photo), record=str(tmp_path / "show.mp4")) == 0
    settings = json.loads((tmp_path / "show.mp4.json").read_text())["settings"]
    assert settings["invert"] and settings["image"] == str(photo) and settings["strength"] is None
    assert len(list((tmp_path / "engines" / "inversions").glob("*.pt"))) == 1
