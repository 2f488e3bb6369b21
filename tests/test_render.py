"""End-to-end renders with --model tiny: streams, frame counts, sync with the sound, sidecar, plot."""

from __future__ import annotations

import json
from pathlib import Path

import av
import numpy as np
import pytest
from PIL import Image
from scipy.signal import ShortTimeFFT, get_window
from scipy.stats import pearsonr, spearmanr

from aadiff_live.analysis.envelope import centred_mean
from aadiff_live.audio.decode import load_audio
from aadiff_live.output.sidecar import read_frames

TINY = ["--model", "tiny", "--size", "64"]


def _hstep(img: np.ndarray) -> float:
    """Mean absolute difference between horizontally adjacent pixels (0-255): pixel noise is ~50."""
    return float(np.abs(np.diff(img, axis=1)).mean())


def _gray(img: np.ndarray) -> np.ndarray:
    return (np.asarray(img, dtype=np.float64) @ [0.299, 0.587, 0.114]).ravel()


def _streams(path: Path):
    with av.open(str(path)) as c:
        v = c.streams.video[0]
        a = c.streams.audio[0]
        n_video = sum(1 for _ in c.decode(v))
    with av.open(str(path)) as c:
        a = c.streams.audio[0]
        n_audio = sum(f.samples for f in c.decode(a))
        rate = a.rate
    with av.open(str(path)) as c:
        kinds = [s.type for s in c.streams]
        pix = c.streams.video[0].codec_context.pix_fmt
        codec = c.streams.video[0].codec_context.name
    return kinds, n_video, n_audio / rate, pix, codec


@pytest.fixture(scope="module")
def thunder_render(tmp_path_factory, audio_dir):
    from aadiff_live.cli import main

    out = tmp_path_factory.mktemp("thunder") / "thunder.mp4"
    frames = out.parent / "frames"
    code = main(["render", "--audio", str(audio_dir / "ibm_thunder.flac"), "--prompt",
                 "a city skyline in a thunderstorm", "--out", str(out), "--frames", str(frames), "--plot", *TINY])
    assert code == 0
    return out, frames


def test_thunder_mp4_streams_and_lengths(thunder_render, audio_dir):
    out, _ = thunder_render
    dur = load_audio(audio_dir / "ibm_thunder.flac").duration
    kinds, n_video, audio_s, pix, codec = _streams(out)
    assert sorted(kinds) == ["audio", "video"]
    assert codec == "h264" and pix == "yuv420p"
    assert abs(n_video - round(dur * 30)) <= 1
    assert abs(audio_s - dur) <= 1 / 30


def test_sidecar_and_plot(thunder_render):
    out, frames = thunder_render
    side = json.loads(Path(str(out) + ".json").read_text())
    s = side["settings"]
    assert s["fps"] == 30 and s["window"] == 5 and s["random_weights"] is True
    assert side["tokens"]["words"] and set(side["tokens"]["clap_scores"]) == {"city", "skyline", "thunderstorm"}
    n = side["n_frames"]
    f = read_frames(Path(str(out) + ".json"))
    for key in ("frame", "time", "raw", "smoothed", "weight", "rms_db"):
        assert len(f[key]) == n
    assert f["time"][1] == pytest.approx(1 / 30, abs=1e-5) and f["frame"] == list(range(n))
    assert len(list(frames.glob("frame_*.png"))) == n
    assert Path(str(out) + ".png").stat().st_size > 10_000


def test_frames_follow_the_sound(thunder_render, audio_dir):
    out, frames = thunder_render
    w = np.array(read_frames(Path(str(out) + ".json"))["weight"])
    imgs = [np.asarray(Image.open(p), dtype=np.float64) for p in sorted(frames.glob("frame_*.png"))]
    base = imgs[int(np.argmin(w))]
    mad = np.array([np.abs(im - base).mean() for im in imgs])
    assert pearsonr(mad, w - w.min())[0] >= 0.9
    # the lowest- and highest-weight frames differ visibly (the tiny model is legible)
    assert mad[int(np.argmax(w))] >= 8.0
    # soft fields, not pixel noise (about 50) nor blotches of latent noise (about 15)
    assert max(_hstep(im) for im in imgs) <= 12.0
    # the weights follow the raw STFT magnitude, computed here independently (scipy), smoothed by the same window
    a = load_audio(audio_dir / "ibm_thunder.flac")
    hop = a.samplerate // 30
    stft = ShortTimeFFT(get_window("hann", 2048), hop=hop, fs=a.samplerate)
    mag = np.abs(stft.stft(a.mono())).mean(axis=0)
    # frame i of the product covers [i/fps, (i+1)/fps); scipy's slice k is centred on k*hop
    ref = np.array([mag[min(len(mag) - 1, int(round(((i + 1) * hop - 1024) / hop)))] for i in range(len(w))])
    assert spearmanr(w, centred_mean(ref, 5))[0] >= 0.9


def test_a_door_slam_raises_the_weight_within_two_frames(cli, tmp_path, audio_dir):
    src = audio_dir / "sonicpi_perc_door.flac"
    out = tmp_path / "door.mp4"
    code, _, err = cli("render", "--audio", src, "--prompt", "a wooden door", "--tokens", "door", "--out", out, *TINY)
    assert code == 0, err
    w = np.array(read_frames(Path(str(out) + ".json"))["weight"])
    a = load_audio(src)
    mono = np.abs(a.mono())
    onset_t = np.flatnonzero(mono > 0.2 * mono.max())[0] / a.samplerate
    onset_frame = int(onset_t * 30)
    rise = np.flatnonzero(w > w.min() + 0.25 * (w.max() - w.min()))[0]
    assert abs(rise - onset_frame) <= 2


def test_click_in_silence_with_causal_window_never_anticipates(cli, tmp_path):
    import soundfile as sf

    sr = 22050
    x = np.zeros(sr * 2, dtype=np.float32)
    click_t = 1.21
    x[int(click_t * sr) : int(click_t * sr) + 64] = 0.9
    sf.write(tmp_path / "click.wav", x, sr)
    out = tmp_path / "click.mp4"
    code, _, err = cli("render", "--audio", tmp_path / "click.wav", "--prompt", "fire", "--out", out,
                       "--smoothing", "trailing", "--window", "3", *TINY)
    assert code == 0, err
    w = np.array(read_frames(Path(str(out) + ".json"))["weight"])
    assert np.flatnonzero(w > 0)[0] == int(click_t * 30)


@pytest.mark.parametrize("fmt,sr,channels", [("ogg", 48000, 1), ("flac", 22050, 2), ("wav", 16000, 1)])
def test_formats_and_rates(cli, tmp_path, fmt, sr, channels):
    import soundfile as sf

    t = np.arange(int(sr * 1.0)) / sr
    tone = (0.4 * np.sin(2 * np.pi * 330 * t) * (t > 0.5)).astype(np.float32)
    data = np.stack([tone] * channels, axis=1)
    src = tmp_path / f"tone.{fmt}"
    sf.write(src, data, sr)
    out = tmp_path / "tone.mp4"
    code, _, err = cli("render", "--audio", src, "--prompt", "a glowing tone", "--out", out, *TINY)
    assert code == 0, err
    kinds, n_video, audio_s, _, _ = _streams(out)
    assert n_video == 30 and abs(audio_s - 1.0) <= 1 / 30


def test_mp3_decodes(tmp_path):
    import soundfile as sf

    sr = 44100
    t = np.arange(int(sr * 3.0)) / sr
    sf.write(tmp_path / "tone.mp3", (0.3 * np.sin(2 * np.pi * 440 * t)).astype(np.float32), sr, format="MP3")
    a = load_audio(tmp_path / "tone.mp3")
    assert a.samplerate == 44100 and a.duration == pytest.approx(3.0, abs=0.1)
    assert np.abs(a.mono()).max() == pytest.approx(0.3, abs=0.05)


def test_silent_audio_renders_a_still_video(cli, tmp_path):
    import soundfile as sf

    sf.write(tmp_path / "silence.wav", np.zeros(16000, dtype=np.float32), 16000)
    out = tmp_path / "still.mp4"
    code, _, err = cli("render", "--audio", tmp_path / "silence.wav", "--prompt", "fire", "--out", out,
                       "--frames", tmp_path / "f", *TINY)
    assert code == 0 and "silent" in err
    imgs = [np.asarray(Image.open(p)) for p in sorted((tmp_path / "f").glob("*.png"))]
    assert len(imgs) == 30 and all(np.array_equal(imgs[0], im) for im in imgs)
    side = json.loads(Path(str(out) + ".json").read_text())
    assert side["timing_s"]["frames_rendered"] == 1  # equal weights render once


def test_image_base_animates_a_still(cli, tmp_path, audio_dir):
    rng = np.random.default_rng(0)
    for name, level in (("a.png", 40), ("b.png", 220)):
        Image.fromarray((rng.random((80, 120, 3)) * 30 + level).astype(np.uint8)).save(tmp_path / name)
    outs = {}
    for name in ("a.png", "b.png"):
        out = tmp_path / f"{name}.mp4"
        code, _, err = cli("render", "--audio", audio_dir / "sonicpi_perc_door.flac", "--prompt", "a door",
                           "--tokens", "door", "--image", tmp_path / name, "--strength", "0.5", "--out", out,
                           "--frames", tmp_path / name.replace(".png", ""), *TINY)
        assert code == 0, err
        outs[name] = [np.asarray(Image.open(p), dtype=float) for p in sorted((tmp_path / name.replace(".png", "")).glob("*.png"))]
    a, b = outs["a.png"], outs["b.png"]
    assert np.abs(a[0] - b[0]).mean() > 20  # the base decides the picture
    assert max(np.abs(f - a[0]).mean() for f in a) > 5  # and the sound moves it


def test_image_base_stays_recognisable(cli, tmp_path, audio_dir):
    """With --image the tiny model keeps the picture in quiet frames and departs from it in loud ones."""
    from PIL import ImageDraw

    pic = Image.new("RGB", (96, 64), (200, 220, 240))  # a house: sky, a dark wall, a red roof, a door, grass
    d = ImageDraw.Draw(pic)
    d.rectangle((0, 46, 96, 64), fill=(60, 140, 50))
    d.rectangle((28, 26, 68, 52), fill=(90, 60, 40))
    d.polygon([(22, 28), (48, 8), (74, 28)], fill=(190, 40, 30))
    d.rectangle((42, 36, 54, 52), fill=(250, 230, 120))
    pic.save(tmp_path / "house.png")
    out = tmp_path / "house.mp4"
    code, _, err = cli("render", "--audio", audio_dir / "sonicpi_perc_door.flac", "--prompt", "a door",
                       "--tokens", "door", "--image", tmp_path / "house.png", "--out", out, "--frames",
                       tmp_path / "f", *TINY)
    assert code == 0, err
    w = np.array(read_frames(Path(str(out) + ".json"))["weight"])
    frames = sorted((tmp_path / "f").glob("*.png"))
    from aadiff_live.rendering.pipeline import load_image

    ref = _gray(load_image(str(tmp_path / "house.png"), 64, 64))  # the picture as --image crops it
    quiet_img, loud_img = (np.asarray(Image.open(frames[int(f(w))]), dtype=np.float64) for f in (np.argmin, np.argmax))
    quiet, loud = (pearsonr(_gray(im), ref)[0] for im in (quiet_img, loud_img))
    assert quiet >= 0.6, quiet
    # loud frames depart from it: by 12/255 on average, and they look less like it (a high-contrast picture
    # such as this one keeps much of its correlation under a smooth field; a model that only changed the
    # picture's contrast, an earlier tiny model, moved it by 0.04 and 5/255)
    assert np.abs(loud_img - quiet_img).mean() >= 12.0
    assert loud <= quiet - 0.05, (quiet, loud)


def test_image_base_latents_are_the_noised_encoding(tiny_components, tmp_path):
    import torch

    from aadiff_live.backends import make_backend
    from aadiff_live.rendering.pipeline import Renderer, load_image

    Image.fromarray(np.random.default_rng(1).integers(0, 255, (64, 64, 3), dtype=np.uint8)).save(tmp_path / "p.png")
    backend = make_backend("torch", tiny_components, torch.device("cpu"), torch.float32)
    r = Renderer(tiny_components, backend, width=64, height=64, steps=2, image=str(tmp_path / "p.png"), strength=0.4)
    base = r.prepare("a door")
    assert len(base.timesteps) == 2  # --steps denoising steps actually run
    # 2 steps at strength 0.4: a 5-step trailing schedule (999, 799, 599, 399, 199) entered at its 4th step
    assert [int(t) for t in base.timesteps] == [399, 199]
    x = torch.from_numpy(load_image(str(tmp_path / "p.png"), 64, 64).copy()).permute(2, 0, 1)[None].float() / 127.5 - 1
    with torch.no_grad():
        init = tiny_components.vae.encode(x).latent_dist.mean * tiny_components.vae.config.scaling_factor
    noise = torch.randn(init.shape, generator=torch.Generator().manual_seed(0))
    # Euler's noising at timestep t, from the model's beta schedule (scaled_linear), not from the scheduler's code
    betas = np.linspace(0.00085 ** 0.5, 0.012 ** 0.5, 1000, dtype=np.float64) ** 2
    alpha_bar = float(np.cumprod(1.0 - betas)[399])
    expected = init + noise * ((1.0 - alpha_bar) / alpha_bar) ** 0.5
    torch.testing.assert_close(base.latents, expected, rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def demo_render(tmp_path_factory):
    """The first command of the README, smaller and at 10 fps, with its lossless frames."""
    import contextlib
    import io

    from aadiff_live.cli import main

    out = tmp_path_factory.mktemp("demo") / "demo.mp4"
    frames = out.parent / "frames"
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        code = main(["render", "--demo", "--out", str(out), "--size", "64", "--fps", "10", "--frames", str(frames)])
    assert code == 0, err.getvalue()
    side = json.loads(Path(str(out) + ".json").read_text())
    imgs = [np.asarray(Image.open(p), dtype=np.float64) for p in sorted(frames.glob("frame_*.png"))]
    return err.getvalue(), side, np.array(read_frames(Path(str(out) + ".json"))["weight"]), imgs


def test_demo_runs_without_download_and_says_what_it_is(demo_render):
    err, side, w, _imgs = demo_render
    assert "synthetic storm" in err and "random-weight" in err and "not imagery" in err and "demo picture" in err
    assert side["tokens"]["words"] == ["thunderstorm"]
    assert side["settings"]["image"] == "demo:sun-over-the-sea" and side["settings"]["random_weights"] is True
    # the demo's thunderclaps (1.0, 3.2, 4.0, 6.3 s) are where the weight peaks
    for clap in (1.0, 3.2, 6.3):
        k = int(clap * 10)
        assert w[k : k + 3].max() > np.median(w) + 0.3 * (w.max() - np.median(w))


def test_demo_frames_are_smooth_and_flash_with_the_claps(demo_render):
    _err, _side, w, imgs = demo_render
    assert len(imgs) == len(w)
    # soft colour fields over the demo picture, not pixel noise (the old tiny model: ~50/255)
    assert max(_hstep(im) for im in imgs) <= 12.0
    base = imgs[int(np.argmin(w))]
    mad = np.array([np.abs(im - base).mean() for im in imgs])
    assert mad[int(np.argmax(w))] >= 8.0  # the loudest frame visibly departs from the quietest
    assert pearsonr(mad, w - w.min())[0] >= 0.9  # and every frame follows the weight


def test_demo_picture_is_the_base(demo_render):
    from aadiff_live.audio.demo import demo_picture

    _err, _side, w, imgs = demo_render
    pic = _gray(demo_picture(64, 64))
    quiet, loud = (pearsonr(_gray(imgs[int(f(w))]), pic)[0] for f in (np.argmin, np.argmax))
    assert quiet >= 0.6 and loud <= quiet - 0.1, (quiet, loud)
