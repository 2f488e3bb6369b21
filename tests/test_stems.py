"""Stems (offline): a separator's stems each become a source; without Demucs, a one-line error."""

from __future__ import annotations

import sys

import numpy as np
import pytest

from aadiff_live.analysis.clip import analyse_clip
from aadiff_live.analysis.sources import STEMS, STEMS_INSTALL, sources_offline
from aadiff_live.audio.stream import ArraySource
from aadiff_live.config import Config
from aadiff_live.errors import UserError

SR = 44100


def test_without_demucs_a_stem_source_is_one_line_naming_the_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "demucs", None)
    monkeypatch.setitem(sys.modules, "demucs.apply", None)
    cfg = Config()
    with pytest.raises(UserError) as err:
        analyse_clip(ArraySource(np.zeros((SR, 1), np.float32), SR), cfg.envelope, sources=["low", "drums"])
    assert STEMS_INSTALL in str(err.value) and "\n" not in str(err.value)


def test_each_stem_is_a_source_through_a_random_separator():
    pytest.importorskip("demucs")
    import torch
    from demucs.hdemucs import HDemucs

    from aadiff_live.analysis.stems import separate

    torch.manual_seed(0)
    model = HDemucs(channels=4, sources=["drums", "bass", "other", "vocals"]).eval()  # random weights: no download
    rng = np.random.default_rng(0)
    t = np.arange(int(1.5 * SR)) / SR
    audio = (0.3 * np.sin(2 * np.pi * 110 * t) * (t > 0.5))[:, None] + 0.05 * rng.standard_normal((t.size, 2))
    cfg = Config()
    clip = analyse_clip(ArraySource(audio.astype(np.float32), SR), cfg.envelope, features=cfg.features,
                        sources=["low", *STEMS, "onset"], separator=model)
    frames = clip.sources
    assert frames is not None
    assert set(frames.values) == {"loudness", "low", "onset", *STEMS}
    stems, sr = separate(model, audio, SR)  # the same separator, run again: deterministic
    for name in STEMS:
        v = frames.values[name]
        assert v.shape == (clip.envelope.n_frames,) and 0 <= v.min() and v.max() <= 1
        alone = sources_offline(stems[name], sr, cfg.envelope, cfg.features, ["loudness"], n_frames=v.size)
        np.testing.assert_allclose(v, alone.values["loudness"], atol=1e-5)
        np.testing.assert_allclose(frames.raw[name], alone.raw["loudness"], rtol=1e-4, atol=1e-7)
    assert not np.allclose(frames.raw["drums"], frames.raw["vocals"])  # four stems, four different sources
    np.testing.assert_array_equal(frames.values["loudness"], clip.envelope.normalised)
