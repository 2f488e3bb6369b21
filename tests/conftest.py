"""Shared fixtures: offline hub, dummy SDL, the recordings in ../shared/audio, tiny models."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("SDL_AUDIODRIVER", "dummy")
os.environ.setdefault("MPLBACKEND", "Agg")

REPO = Path(__file__).resolve().parents[1]
SHARED_AUDIO = REPO.parent / "shared" / "audio"
SHARED_MODELS = REPO.parent / "shared" / "models"


@pytest.fixture(scope="session")
def shared_audio() -> Path:
    if not (SHARED_AUDIO / "MANIFEST.tsv").is_file():
        pytest.fail(f"the recordings are missing: expected {SHARED_AUDIO} (../shared/audio beside the checkout)")
    return SHARED_AUDIO


@pytest.fixture(scope="session")
def real_models() -> Path:
    """The real checkpoints' configs and tokenizers (no weights) in ../shared/models."""
    if not (SHARED_MODELS / "MANIFEST.tsv").is_file():
        pytest.fail(f"the real model files are missing: expected {SHARED_MODELS} (../shared/models beside the checkout)")
    return SHARED_MODELS


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
