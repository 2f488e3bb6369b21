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


def test_hub_cache_layout_loads_offline(saved_tiny, tmp_path, monkeypatch):
    # the layout huggingface_hub writes: models--org--name/{refs/main, snapshots/<rev>/...}
    rev = "0123456789abcdef0123456789abcdef01234567"
    repo = tmp_path / "hub" / "models--someone--tiny-sd"
    shutil.copytree(saved_tiny, repo / "snapshots" / rev)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(rev)
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import huggingface_hub.constants as hc

    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "hub"))
    loaded = load_components("someone/tiny-sd")
    np.testing.assert_array_equal(_frame(loaded), _frame(load_components("tiny")))


def test_unreachable_model_says_how_to_get_it():
    with pytest.raises(UserError, match=r"huggingface-cli download nobody/nothing"):
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


def test_identity_is_stable_across_processes():
    import subprocess
    import sys

    code = "from aadiff_live.models.loading import load_components; print(load_components('tiny').identity)"
    ids = {subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout for _ in range(2)}
    assert len(ids) == 1 and len(ids.pop().strip()) == 16
