"""Offline render through the frame atlas: close to --exact, and a long clip costs at most L renders."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from aadiff_live.output.sidecar import read_frames
from aadiff_live.rendering.pipeline import Renderer

TINY = ["--model", "tiny", "--size", "64", "--prompt", "a door in a storm", "--tokens", "door"]


def _frames(folder) -> np.ndarray:
    return np.stack([np.asarray(Image.open(p), dtype=np.float64) for p in sorted(folder.glob("frame_*.png"))])


def test_atlas_render_matches_exact_render(tmp_path, audio_dir, cli):
    clip = audio_dir / "sonicpi_perc_door.flac"
    runs = {}
    for name, extra in (("atlas", []), ("exact", ["--exact"])):
        out = tmp_path / f"{name}.mp4"
        code, _, err = cli("render", "--audio", clip, "--out", out, "--frames", tmp_path / name, "--fps", "15",
                           *TINY, *extra)
        assert code == 0, err
        runs[name] = (_frames(tmp_path / name), json.loads((tmp_path / f"{name}.mp4.json").read_text()))
    (fa, sa), (fe, se) = runs["atlas"], runs["exact"]
    assert fa.shape == fe.shape and fa.shape[0] == sa["n_frames"] > 30
    diff = np.abs(fa - fe)
    assert diff.mean() <= 0.5, diff.mean()  # within 0.5/255 on average (lossless PNG frames)
    assert se["levels"] == 0 and sa["levels"] == 33 and sa["settings"]["levels"] == 33
    assert sa["renders"] <= 33 and se["renders"] > sa["renders"]
    # per frame: the two levels and the blend factor, consistent with the weight
    f = read_frames(tmp_path / "atlas.mp4.json")
    lo, hi = np.array(f["levels"], dtype=float).T
    t, w = (np.array(f[k], dtype=float) for k in ("blend", "weight"))
    assert not any(f["exact"]) and all(read_frames(tmp_path / "exact.mp4.json")["exact"])
    w_lo, w_hi = sa["settings"]["atlas_range"]
    step = (w_hi - w_lo) / 32
    np.testing.assert_allclose(w_lo + step * (lo + t * (hi - lo)), np.clip(w, w_lo, w_hi), atol=1e-5)
    assert np.all((hi == lo) | (hi == lo + 1)) and np.all((t >= 0) & (t < 1))
    assert np.any(t > 0.1) and np.any(t == 0)  # real blends, and exact levels (silence is w_min)


def test_long_render_costs_at_most_levels_renders(tmp_path, monkeypatch, cli):
    import soundfile as sf

    sr = 16000
    rng = np.random.default_rng(1)
    t = np.arange(40 * sr) / sr
    x = (0.3 * (0.5 + 0.5 * np.sin(2 * np.pi * 0.37 * t)) * rng.standard_normal(t.size)).astype(np.float32)
    sf.write(str(tmp_path / "long.wav"), x, sr)
    rows = []
    real = Renderer.render_batch

    def counting(self, weights, positions, profile=False):
        rows.extend(weights)
        return real(self, weights, positions, profile)

    monkeypatch.setattr(Renderer, "render_batch", counting)
    out = tmp_path / "long.mp4"
    code, _, err = cli("render", "--audio", tmp_path / "long.wav", "--out", out, "--levels", "9", *TINY)
    assert code == 0, err
    side = json.loads((tmp_path / "long.mp4.json").read_text())
    assert side["n_frames"] == 1200
    assert len(np.unique(read_frames(tmp_path / "long.mp4.json")["weight"])) > 1000  # the weights keep changing
    assert len(rows) == side["renders"] <= 9 and len(set(rows)) == len(rows)


def test_too_many_levels_for_the_cap_is_a_one_line_error(tmp_path, audio_dir, cli):
    code, _, err = cli("render", "--audio", audio_dir / "sonicpi_perc_door.flac", "--out", tmp_path / "x.mp4",
                       "--levels", "65", "--atlas-mb", "0.5", *TINY)
    assert code == 2
    assert err.strip().count("\n") == 0 and "at most 42 levels fit" in err, err  # before the model loads


@pytest.mark.parametrize("flag,value,cause", [("--levels", "-1", "Input should be greater than or equal to 0"),
                                              ("--atlas-batch", "0", "Input should be greater than or equal to 1")])
def test_bad_atlas_flags(tmp_path, cli, flag, value, cause):
    code, _, err = cli("render", "--demo", "--out", tmp_path / "x.mp4", flag, value)
    assert code == 2 and err.strip().splitlines() == [f"aadiff-live: error: {flag}: {cause}"], err
