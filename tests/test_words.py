"""One word rule for pinning, CLAP's candidates and token positions, checked with the real CLIP
BPE tokenizers of SD 1.5, SD 2.1-base (pads with ``!``) and SDXL (two tokenizers)."""

from __future__ import annotations

import json
import logging
import threading

import numpy as np
import pytest

from aadiff_live.errors import UserError
from aadiff_live.tokens.choose import choose_tokens
from aadiff_live.tokens.clap import Ranking
from aadiff_live.tokens.words import (
    content_words,
    parse_pinned,
    reachable_scores,
    require_positions,
    split_words,
    token_positions,
    word_positions,
)

# name: (family, tokenizer folder); SD 2.x's tokenizer is SD-Turbo's
TOKENIZERS = {
    "sd15": ("sd15", "tokenizer"),
    "sd21": ("sd-turbo", "tokenizer"),
    "sdxl": ("sdxl-turbo", "tokenizer"),
    "sdxl_2": ("sdxl-turbo", "tokenizer_2"),
}
LONG = "a quiet valley " + "with tall green trees and " * 20 + "a wildfire"  # 'wildfire' at token 105


@pytest.fixture(scope="module")
def clip_tokenizers(model_layouts):
    from transformers import CLIPTokenizer

    toks = {k: CLIPTokenizer.from_pretrained(str(model_layouts[fam] / sub)) for k, (fam, sub) in TOKENIZERS.items()}
    assert all(len(t) == 49408 for t in toks.values())
    return toks


def _tokens_at(tok, prompt, positions):
    ids = tok(prompt).input_ids
    return [tok.convert_ids_to_tokens(ids[p]) for p in positions]


@pytest.mark.parametrize("name", list(TOKENIZERS))
def test_punctuation_is_not_part_of_the_word(clip_tokenizers, name):
    tok = clip_tokenizers[name]
    prompt = "a forest with a wildfire, at night"
    assert token_positions(tok, prompt, ["wildfire"]) == [5]
    assert _tokens_at(tok, prompt, [5, 6]) == ["wildfire</w>", ",</w>"]
    # the case: "/" separates words for pinning and for positions alike
    prompt = "a forest fire/smoke at night"
    assert parse_pinned("fire", prompt) == ["fire"]
    assert token_positions(tok, prompt, ["fire"]) == [3]
    assert token_positions(tok, prompt, ["smoke"]) == [5]


@pytest.mark.parametrize("name", list(TOKENIZERS))
def test_repeated_and_multi_token_words(clip_tokenizers, name):
    tok = clip_tokenizers[name]
    prompt = "fire over Reykjavik, fire!"
    pos = word_positions(tok, prompt, ["fire", "Reykjavik"])
    n = len(pos["reykjavik"])
    assert n >= 2 and pos["reykjavik"] == list(range(3, 3 + n))  # several BPE tokens, all of them weighted
    assert pos["fire"] == [1, 4 + n]  # both occurrences; the comma at 3 + n is not the word
    pieces = _tokens_at(tok, prompt, pos["reykjavik"])
    assert "".join(pieces).replace("</w>", "") == "reykjavik"
    assert _tokens_at(tok, prompt, pos["fire"]) == ["fire</w>", "fire</w>"]


def test_sd2_bang_is_the_pad_id_and_changes_no_position(clip_tokenizers):
    sd15, sd21 = clip_tokenizers["sd15"], clip_tokenizers["sd21"]
    prompt = "a storm! fire at night!"
    ids = sd21(prompt).input_ids
    assert sd21.pad_token == "!" and ids.count(sd21.pad_token_id) == 2  # literal '!' -> the pad id, inside
    assert sd15.pad_token_id not in sd15(prompt).input_ids[:-1]
    for tok in (sd15, sd21, clip_tokenizers["sdxl_2"]):
        assert token_positions(tok, prompt, ["fire"]) == [4]
        assert token_positions(tok, prompt, ["night"]) == [6]


def test_sdxl_tokenizers_share_positions(clip_tokenizers):
    for prompt in ("a forest with a wildfire, at night", "fire over Reykjavik, fire!", LONG):
        words = content_words(prompt)
        assert word_positions(clip_tokenizers["sdxl"], prompt, words) == word_positions(
            clip_tokenizers["sdxl_2"], prompt, words)


def test_a_pinned_word_beyond_the_window_is_a_one_line_error(clip_tokenizers):
    tok = clip_tokenizers["sd15"]
    assert word_positions(tok, LONG, ["wildfire"])["wildfire"] == [105]
    with pytest.raises(UserError, match=r"'wildfire' starts at token 105, beyond the text encoder's 77-token window"):
        require_positions(tok, LONG, ["wildfire"])
    assert require_positions(tok, LONG, ["valley"]) == [3]
    # a word that straddles the edge keeps the part that is inside
    edge = "x " * 74 + "reykjavik"
    assert token_positions(tok, edge, ["reykjavik"]) == [75]


def test_one_word_rule():
    assert [w.norm for w in split_words("A sci-fi city's neon, rain/fog (night)!")] == [
        "a", "sci-fi", "city's", "neon", "rain", "fog", "night"]
    assert content_words("a forest fire/smoke at night") == ["forest", "fire", "smoke", "night"]
    assert parse_pinned("fire/smoke", "a forest fire/smoke at night") == ["fire", "smoke"]
    with pytest.raises(UserError, match="'fir' is not a word of the prompt"):
        parse_pinned("fir", "a forest fire")


class FakeRanker:
    def __init__(self, scores):
        self.scores = scores

    def rank(self, mono, samplerate, words, template="{word}"):
        assert set(words) <= set(self.scores)
        return Ranking({w: self.scores[w] for w in words})


def test_clap_choice_beyond_the_window_falls_back_with_a_warning(clip_tokenizers, caplog):
    tok = clip_tokenizers["sd15"]
    ranker = FakeRanker({"quiet": 0.1, "valley": 0.2, "tall": 0.0, "green": 0.0, "trees": 0.3, "wildfire": 0.9})
    with caplog.at_level(logging.WARNING):
        choice = choose_tokens(LONG, tok, pinned=None, top_k=1, clap_model="fake", mono=np.zeros(100),
                               samplerate=48000, template="{word}", ranker=ranker)
    assert choice.words == ["trees"] and choice.positions == token_positions(tok, LONG, ["trees"])
    assert choice.scores["wildfire"] == 0.9  # the sidecar keeps CLAP's whole ranking
    assert "'wildfire' starts at token 105" in caplog.text and "next word" in caplog.text
    # the shared filter: everything inside the window stays, warned once per word with a set
    warned: set[str] = set()
    assert set(reachable_scores(tok, LONG, ranker.scores, 1, warned=warned, log=logging.getLogger("x"))) == {
        "quiet", "valley", "tall", "green", "trees"}
    assert warned == {"wildfire"}


def test_live_clap_thread_falls_back_too(clip_tokenizers, caplog):
    from aadiff_live.live.clap_thread import ClapThread
    from aadiff_live.live.ring import RingBuffer
    from aadiff_live.mailbox import Mailbox

    ring = RingBuffer(capacity=48000 * 3, channels=1, samplerate=48000)
    ring.write(np.zeros((48000 * 2, 1), np.float32), 0.0)
    ranker = FakeRanker({"quiet": 0.1, "valley": 0.2, "tall": 0.0, "green": 0.0, "trees": 0.3, "wildfire": 0.9})
    t = ClapThread(ring, ranker, LONG, top_k=1, every_s=1.0, window_s=2.0, margin=0.0, template="{word}",
                   out=Mailbox(), stop=threading.Event(), tokenizer=clip_tokenizers["sd15"],
                   retry_max_s=60.0, restarts=3)
    with caplog.at_level(logging.WARNING):
        first = t.rank_once()
        second = t.rank_once()
    assert first is not None and first.words == ["trees"] and second.words == ["trees"]
    assert caplog.text.count("'wildfire' starts at token 105") == 1  # warned once, not every ranking


def _wav(tmp_path, seconds=0.5):
    import soundfile as sf

    wav = tmp_path / "a.wav"
    sf.write(str(wav), 0.1 * np.random.default_rng(0).standard_normal(int(48000 * seconds)).astype(np.float32), 48000)
    return wav


def test_render_pins_a_word_inside_punctuation(cli, tmp_path):
    """``--prompt "a forest fire/smoke at night" --tokens fire``: was accepted with positions []."""
    from aadiff_live.models.tiny import tiny_clip_tokenizer

    out = tmp_path / "v.mp4"
    prompt = "a forest fire/smoke at night"
    code, _, err = cli("render", "--audio", _wav(tmp_path), "--model", "tiny", "--size", "64", "--fps", "4",
                       "--prompt", prompt, "--tokens", "fire", "--out", out)
    assert code == 0, err
    side = json.loads(out.with_name("v.mp4.json").read_text())
    tok = tiny_clip_tokenizer()  # one token per character
    pos = side["tokens"]["positions"]
    assert pos == [8, 9, 10, 11]  # a=1, forest=2..7 (spaces are no tokens)
    assert "".join(_tokens_at(tok, prompt, pos)).replace("</w>", "") == "fire"


def test_render_and_live_reject_a_pinned_word_beyond_the_window(cli, tmp_path):
    prompt = "a valley " + "with trees " * 10 + "and fire"  # tiny tokenizer: one token per character
    wav = _wav(tmp_path)
    for args in (("render", "--audio", wav, "--out", tmp_path / "v.mp4"), ("live", "--input", wav, "--no-display")):
        code, _, err = cli(*args, "--model", "tiny", "--size", "64", "--prompt", prompt, "--tokens", "fire")
        last = err.strip().splitlines()[-1]
        assert code == 2 and "Traceback" not in err, err
        assert last.startswith("aadiff-live: error: --tokens: 'fire' starts at token 101, beyond") and "77-token" in last
    assert not (tmp_path / "v.mp4").exists()
