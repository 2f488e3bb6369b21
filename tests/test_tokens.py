"""Words, token positions, CLAP ranking (tiny CLAP, and one saved and loaded back)."""

from __future__ import annotations

import numpy as np
import pytest

from aadiff_live.errors import UserError
from aadiff_live.models.tiny import build_tiny_clap, tiny_clip_tokenizer
from aadiff_live.tokens.clap import ClapRanker
from aadiff_live.tokens.words import check_prompt, content_words, parse_pinned, token_positions


def test_content_words_drop_stopwords_and_duplicates():
    assert content_words("A city skyline in a Thunderstorm, the city!") == ["city", "skyline", "thunderstorm"]


def test_pinned_words_must_be_in_prompt():
    assert parse_pinned("Fire, smoke", "fire and smoke over hills") == ["fire", "smoke"]
    with pytest.raises(UserError, match="'rain' is not a word of the prompt"):
        parse_pinned("rain", "fire and smoke")
    with pytest.raises(UserError, match="empty"):
        check_prompt("   ")


def test_a_word_maps_to_all_its_tokens_and_occurrences():
    tok = tiny_clip_tokenizer()  # one token per character
    prompt = "fire, big fire"
    pos = token_positions(tok, prompt, ["fire"])
    # "fire," -> f i r e (1..4; the comma at 5 is not the word), "big" -> 6..8, "fire" -> 9..12
    assert pos == [1, 2, 3, 4, 9, 10, 11, 12]
    ids = tok(prompt).input_ids
    assert tok.convert_ids_to_tokens(ids[9:13]) == ["f", "i", "r", "e</w>"]


def test_positions_beyond_77_tokens_are_dropped():
    tok = tiny_clip_tokenizer()
    prompt = "x " * 80 + "fire"
    assert token_positions(tok, prompt, ["fire"]) == []


def _tone(seconds=3.0, sr=44100, f=440.0):
    t = np.arange(int(seconds * sr)) / sr
    return (0.3 * np.sin(2 * np.pi * f * t)).astype(np.float32), sr


def test_tiny_clap_ranks_all_words_deterministically():
    r = ClapRanker("tiny")
    mono, sr = _tone()
    a = r.rank(mono, sr, ["fire", "rain", "thunder"], "the sound of {word}")
    b = r.rank(mono, sr, ["fire", "rain", "thunder"], "the sound of {word}")
    assert a.scores == b.scores
    assert set(a.scores) == {"fire", "rain", "thunder"}
    assert all(-1.0 <= s <= 1.0 for s in a.scores.values())
    assert a.top(2) == sorted(a.scores, key=lambda w: -a.scores[w])[:2]
    noise = np.random.default_rng(0).standard_normal(sr * 3).astype(np.float32) * 0.3
    assert r.rank(noise, sr, ["fire", "rain", "thunder"]).scores != a.scores  # it listens


def test_clap_loads_from_a_local_folder(tmp_path):
    model, processor = build_tiny_clap()
    model.save_pretrained(tmp_path / "clap")
    processor.save_pretrained(tmp_path / "clap")
    loaded = ClapRanker(str(tmp_path / "clap"))
    mono, sr = _tone(seconds=1.5)
    ref = ClapRanker("tiny").rank(mono, sr, ["fire", "rain"])
    got = loaded.rank(mono, sr, ["fire", "rain"])
    assert got.scores == pytest.approx(ref.scores, abs=1e-5)


def test_missing_clap_model_says_how_to_get_it():
    with pytest.raises(UserError, match="download MODEL --clap nobody/no-such-clap"):
        ClapRanker("nobody/no-such-clap")
