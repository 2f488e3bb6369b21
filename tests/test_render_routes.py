"""render with routes: kicks move one word, hi-hats another, through a grid atlas that matches --exact."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
from PIL import Image

from aadiff_live.output.sidecar import read_frames
from aadiff_live.rendering.pipeline import Renderer

SR = 32000
PROMPT = "thunder and rain over a dark sea"
TINY = ["--model", "tiny", "--size", "64", "--prompt", PROMPT]
KICKS = [0.3, 1.1, 2.0, 3.4, 4.1, 5.0, 6.2, 7.0]
HATS = [0.7, 1.6, 2.6, 2.9, 3.8, 4.7, 5.0, 5.9, 6.7, 7.5]  # one hat on a kick (5.0): both words at once


def kicks_and_hats(seconds: float = 8.0) -> tuple[np.ndarray, np.ndarray]:
    """Kicks (60 Hz, 120 ms decay) and hi-hats (6-10 kHz noise, 40 ms decay) at known, different times."""
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    kick, hat = np.zeros_like(t), np.zeros_like(t)
    noise = sosfilt(butter(4, [6000, 10000], btype="bandpass", fs=SR, output="sos"), rng.standard_normal(t.size))
    noise /= np.abs(noise).max()
    for k in KICKS:
        d = t[t >= k] - k
        kick[t >= k] += np.sin(2 * np.pi * 60 * d) * np.exp(-d / 0.12)
    for h in HATS:
        d = t[t >= h] - h
        hat[t >= h] += noise[t >= h] * np.exp(-d / 0.04)
    return 0.5 * kick, 0.3 * hat


def per_frame_rms(x: np.ndarray, fps: float, n: int) -> np.ndarray:
    hop = int(SR / fps)
    return np.array([np.sqrt(np.mean(x[i * hop:(i + 1) * hop] ** 2)) for i in range(n)])


def frames_of(folder) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p), dtype=np.float64) for p in sorted(folder.glob("frame_*.png"))])


@pytest.fixture(scope="module")
def kh_wav(tmp_path_factory):
    kick, hat = kicks_and_hats()
    path = tmp_path_factory.mktemp("kh") / "kicks_hats.wav"
    sf.write(str(path), (kick + hat).astype(np.float32), SR)
    return path, kick, hat


def test_kicks_drive_thunder_hats_drive_rain_and_the_grid_matches_exact(tmp_path, kh_wav, cli):
    path, kick, hat = kh_wav
    fps = 10
    runs = {}
    for name, extra in (("grid", []), ("exact", ["--exact"])):
        out = tmp_path / f"{name}.mp4"
        code, _, err = cli("render", "--audio", path, "--out", out, "--frames", tmp_path / name, "--fps", fps,
                           "--window", "1", "--route", "low=thunder", "--route", "high=rain", *TINY, *extra)
        assert code == 0, err
        runs[name] = (frames_of(tmp_path / name), json.loads((tmp_path / f"{name}.mp4.json").read_text()))
    (fg, sg), (fe, se) = runs["grid"], runs["exact"]
    rows = read_frames(tmp_path / "grid.mp4.json")
    n = sg["n_frames"]
    assert n == 8 * fps and fg.shape == fe.shape
    # each word follows its own sound and not the other
    kr, hr = per_frame_rms(kick, fps, n), per_frame_rms(hat, fps, n)
    thunder, rain = (np.array(rows["weights"][w]) for w in ("thunder", "rain"))
    r = lambda a, b: float(np.corrcoef(a, b)[0, 1])  # noqa: E731
    assert r(thunder, kr) >= 0.9 and r(thunder, hr) <= 0.2, (r(thunder, kr), r(thunder, hr))
    assert r(rain, hr) >= 0.9 and r(rain, kr) <= 0.2, (r(rain, hr), r(rain, kr))
    assert set(rows["sources"]) == {"loudness", "low", "high"}
    assert [(x["source"], x["word"]) for x in sg["settings"]["routes"]] == [("low", "thunder"), ("high", "rain")]
    # both words at once (the kick and hat at 5.0 s): a frame inside the grid, not on an axis
    pos = np.array(rows["grid_position"])
    assert pos.shape == (n, 2) and np.any((pos[:, 0] > 0.5) & (pos[:, 1] > 0.5))
    # the grid atlas: at most 9x9 renders, the same picture as --exact within 1/255 on average
    assert sg["settings"]["grid"] == [9, 9] and sg["renders"] <= 81 < se["renders"] + 81
    diff = np.abs(fg - fe)
    assert diff.mean() <= 1.0 and np.percentile(diff, 99.9) <= 12, (diff.mean(), np.percentile(diff, 99.9))
    # and the picture moves with the sound (not a still frame)
    assert np.abs(fg[np.argmax(thunder)] - fg[0]).mean() > 1.0


def test_one_route_is_todays_one_axis_atlas(tmp_path, kh_wav, cli):
    """--route loudness=WORD is a pinned word on the loudness envelope: the same frames as --tokens WORD."""
    path, _, _ = kh_wav
    outs = {}
    for name, extra in (("route", ["--route", "loudness=sea"]), ("tokens", ["--tokens", "sea"])):
        out = tmp_path / f"{name}.mp4"
        code, _, err = cli("render", "--audio", path, "--out", out, "--frames", tmp_path / name, "--fps", "10",
                           *TINY, *extra)
        assert code == 0, err
        outs[name] = (frames_of(tmp_path / name), json.loads((tmp_path / f"{name}.mp4.json").read_text()))
    (fr, sr_), (ft, _) = outs["route"], outs["tokens"]
    np.testing.assert_array_equal(fr, ft)
    assert sr_["settings"]["grid"] is None and sr_["levels"] == 33
    np.testing.assert_allclose(read_frames(tmp_path / "route.mp4.json")["weights"]["sea"],
                               read_frames(tmp_path / "tokens.mp4.json")["weight"], atol=1e-9)


def test_a_long_clip_costs_at_most_the_grid(tmp_path, monkeypatch, cli):
    rng = np.random.default_rng(3)
    t = np.arange(30 * SR) / SR
    low = np.sin(2 * np.pi * 80 * t) * (0.5 + 0.5 * np.sin(2 * np.pi * 0.31 * t))
    high = rng.standard_normal(t.size) * 0.2 * (0.5 + 0.5 * np.sin(2 * np.pi * 0.53 * t + 1.0))
    from scipy.signal import butter, sosfilt

    high = sosfilt(butter(4, 4000, btype="highpass", fs=SR, output="sos"), high)
    sf.write(str(tmp_path / "long.wav"), (0.3 * low + high).astype(np.float32), SR)
    rows: list = []
    real = Renderer.render_batch

    def counting(self, weights, positions, profile=False):
        rows.extend(weights)
        return real(self, weights, positions, profile)

    monkeypatch.setattr(Renderer, "render_batch", counting)
    code, _, err = cli("render", "--audio", tmp_path / "long.wav", "--out", tmp_path / "long.mp4", "--fps", "15",
                       "--levels-2", "5", "--route", "low=thunder", "--route", "high=rain", *TINY)
    assert code == 0, err
    side = json.loads((tmp_path / "long.mp4.json").read_text())
    weights = read_frames(tmp_path / "long.mp4.json")["weights"]
    points = np.stack([weights[w] for w in ("thunder", "rain")], axis=1)
    assert len(np.unique(points, axis=0)) > 300  # the weight vectors keep changing
    assert len(rows) == side["renders"] <= 25 and len(set(rows)) == len(rows)
    assert all(len(p) == 2 for p in rows)


@pytest.mark.parametrize("args,needle", [
    (["--route", "sub=thunder"], "--route sub=thunder: unknown source 'sub'"),
    (["--route", "low=fire"], "'fire' is not a word of the prompt"),
    (["--route", "low=thunder", "--route", "high=thunder"], "'thunder' is on two routes"),
    (["--route", "low=thunder", "--route", "mid=rain", "--route", "high=sea", "--route", "onset=dark"],
     "at most 3 words"),
    (["--route", "low=thunder", "--tokens", "rain"], "--tokens and --route"),
])
def test_bad_routes_fail_before_the_model_loads(tmp_path, kh_wav, cli, monkeypatch, args, needle):
    import aadiff_live.rendering.build as build

    def no_model(*a, **k):
        raise AssertionError("the model loaded before the routes were checked")

    monkeypatch.setattr(build, "load_model", no_model)
    code, _, err = cli("render", "--audio", kh_wav[0], "--out", tmp_path / "x.mp4", *TINY, *args)
    assert code == 2 and err.strip().count("\n") == 0 and needle in err, err


def test_route_auto_gives_each_band_its_own_word(tmp_path, kh_wav, cli):
    code, _, err = cli("render", "--audio", kh_wav[0], "--out", tmp_path / "auto.mp4", "--fps", "5", "--route", "auto",
                       "--levels-3", "2", *TINY)
    assert code == 0, err
    side = json.loads((tmp_path / "auto.mp4.json").read_text())
    routes = side["settings"]["routes"]
    words = [r["word"] for r in routes]
    assert [r["source"] for r in routes] == ["low", "mid", "high"] and len(set(words)) == 3
    assert set(words) <= {"thunder", "rain", "dark", "sea"}
    scores = side["settings"]["route_auto_scores"]
    assert set(scores) == {"low", "mid", "high"} and set(scores["low"]) == {"thunder", "rain", "dark", "sea"}
    assert side["settings"]["grid"] == [2, 2, 2] and side["renders"] <= 8
    assert set(read_frames(tmp_path / "auto.mp4.json")["weights"]) == set(words)
    assert "--route auto (CLAP on each band's own sound): low → " in err
