"""Shared fixtures: offline hub, dummy SDL, the recordings and model layouts under tests/data, tiny models.

Everything a test reads is in the repository (tests/data, listed with sources and licences in
tests/data/MANIFEST.md) or made in code."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
AUDIO = DATA / "audio"
CLIP_BPE = DATA / "models" / "bpe_simple_vocab_16e6.txt.gz"


@pytest.fixture(scope="session")
def audio_dir() -> Path:
    """The recordings in tests/data/audio (CC0 / CC BY, see tests/data/MANIFEST.md)."""
    return AUDIO


@pytest.fixture(scope="session")
def clip_bpe() -> Path:
    """OpenAI CLIP's byte-pair file (MIT), from which every CLIP vocab.json/merges.txt is derived."""
    return CLIP_BPE


@pytest.fixture(scope="session")
def model_layouts(tmp_path_factory) -> dict[str, Path]:
    """family -> a folder holding that checkpoint's configs and real tokenizers in the hub's
    diffusers layout, no weights (sd15, lcm, sd-turbo, sdxl-turbo: aadiff_live.models.architectures)."""
    from aadiff_live.models.architectures import FAMILIES, write_layout

    root = tmp_path_factory.mktemp("layouts")
    return {name: write_layout(name, root / name, CLIP_BPE) for name in FAMILIES}


@pytest.fixture(scope="session")
def tiny_components():
    from aadiff_live.models.loading import load_components

    return load_components("tiny")


@pytest.fixture()
def cli(capsys):
    """Run the CLI in-process: returns (exit code, stdout, stderr)."""
    from aadiff_live.cli import main

    def run(*args: str):
        code = main([str(a) for a in args])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def wait_until():
    """``wait_until(cond, timeout)``: poll ``cond`` every 10 ms; True once it holds, False after ``timeout`` s."""
    import time

    def wait(cond, timeout: float = 5.0) -> bool:
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if cond():
                return True
            time.sleep(0.01)
        return False

    return wait
