"""The backends through the CLI: render with onnxruntime vs torch, build-engine, tensorrt missing."""

from __future__ import annotations

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import importlib.util

import numpy as np
import pytest
from PIL import Image

from aadiff_live.cli import main

RENDER = ["render", "--demo", "--size", "64", "--fps", "3"]


def _frames(folder):
    files = sorted(folder.glob("*.png"))
    assert files
    return [np.asarray(Image.open(f), dtype=np.float64) for f in files]


def test_render_onnxruntime_matches_torch(tmp_path, monkeypatch):
    monkeypatch.setenv("AADIFF_ENGINES", str(tmp_path / "engines"))
    for b in ("onnxruntime", "torch"):
        (tmp_path / b).mkdir()
        code = main([*RENDER, "--backend", b, "--out", str(tmp_path / b / "o.mp4"), "--frames", str(tmp_path / b / "f")])
        assert code == 0
    a, t = _frames(tmp_path / "onnxruntime" / "f"), _frames(tmp_path / "torch" / "f")
    assert len(a) == len(t)
    diffs = [np.abs(x - y).mean() for x, y in zip(a, t, strict=True)]
    assert np.mean(diffs) < 1.0  # under 1/255 on average
    assert max(np.abs(f - a[0]).mean() for f in a) > 1.0  # and the frames do move with the sound


def test_build_engine_command_then_reuse(tmp_path, capsys):
    # NB: the CLI installs its own log handler on stderr (so caplog sees nothing): read stderr
    args = ["build-engine", "--model", "tiny", "--size", "64", "--backend", "onnxruntime", "--engines", str(tmp_path)]
    assert main(args) == 0
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["tiny__decoder-kl__64x64__fp32__onnxruntime", "tiny__unet__64x64__fp32__onnxruntime"]
    first = capsys.readouterr()
    assert "tiny__unet__64x64" in first.out and "building engine" in first.err
    assert main(args) == 0
    again = capsys.readouterr().err
    assert "reusing" in again and "building" not in again
    # another size is another engine, never the 64x64 one
    assert main([*args[:4], "128", *args[5:]]) == 0
    assert "tiny__unet__128x128__fp32__onnxruntime" in {p.name for p in tmp_path.iterdir()}


def test_build_engine_torch_is_a_user_error(tmp_path, capsys):
    assert main(["build-engine", "--model", "tiny", "--size", "64", "--backend", "torch",
                 "--engines", str(tmp_path)]) == 2
    assert "needs no engine" in capsys.readouterr().err


@pytest.mark.skipif(importlib.util.find_spec("tensorrt") is not None, reason="tensorrt is installed here")
@pytest.mark.parametrize("command", ["render", "build-engine"])
def test_tensorrt_missing_exit_2_with_install_hint(tmp_path, capsys, command):
    (tmp_path / "o").mkdir()
    argv = ([*RENDER, "--out", str(tmp_path / "o" / "o.mp4")] if command == "render"
            else ["build-engine", "--model", "tiny", "--size", "64", "--engines", str(tmp_path)])
    assert main([*argv, "--backend", "tensorrt"]) == 2
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert last.startswith("aadiff-live: error:")
    assert "pip install --extra-index-url https://pypi.nvidia.com tensorrt" in last
