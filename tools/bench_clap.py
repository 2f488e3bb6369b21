"""CLAP as it really is, without a download: the full-size ClapModel of laion/clap-htsat-unfused
(transformers' ClapConfig defaults are that checkpoint's architecture; random weights), a RoBERTa
tokenizer that holds each word of the prompts as one token (as RoBERTa's 50k vocabulary holds these
common words: the real sequence lengths, within a token), transformers' ClapFeatureExtractor at the
LAION settings (48 kHz, 10 s chunks, rand_trunc for the unfused model), saved to a folder and
loaded back through ClapRanker (the CLI's loader); ranks a prompt's words on a 30 s clip (three
10 s chunks) and on the live window (5 s). Asserts the shapes; times one ranking on the CPU.

    python tools/bench_clap.py [--out docs/bench_clap.json]

Random weights: the scores are meaningless; the shapes and the cost are what is measured.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
import time
from pathlib import Path

import numpy as np

PROMPT_WORDS = ["forest", "wildfire", "night", "rain", "thunder", "city"]
TEMPLATE = "the sound of {word}"


def word_tokenizer(words: list[str]):
    """A byte-level RoBERTa tokenizer in which each of ``words`` (and the template's) is one token."""
    from transformers import RobertaTokenizer
    from transformers.convert_slow_tokenizer import bytes_to_unicode

    vocab: dict[str, int] = {}
    merges: list[tuple[str, str]] = []
    for t in ["<s>", "<pad>", "</s>", "<unk>", *bytes_to_unicode().values()]:
        vocab.setdefault(t, len(vocab))
    all_words = sorted({*words, *TEMPLATE.replace("{word}", "").split()})
    # after a space (GPT-2's space marker; its merges rank first), then at the start
    for piece in ["\u0120" + w for w in all_words] + all_words:
        for k in range(2, len(piece) + 1):
            if piece[:k] not in vocab:
                merges.append((piece[: k - 1], piece[k - 1]))
                vocab[piece[:k]] = len(vocab)
    vocab["<mask>"] = len(vocab)
    return RobertaTokenizer(vocab=vocab, merges=merges, model_max_length=77)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default="docs/bench_clap.json")
    p.add_argument("--repeats", type=int, default=3)
    a = p.parse_args()
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor

    from aadiff_live.backends.engines import cpu_name
    from aadiff_live.tokens.clap import CLAP_SR, ClapRanker

    cfg = ClapConfig()  # laion/clap-htsat-unfused: HTSAT audio tower, RoBERTa text tower, 512-d projection
    assert not cfg.audio_config.enable_fusion, "the unfused checkpoint"
    torch.manual_seed(0)
    model = ClapModel(cfg).eval()
    tok = word_tokenizer(PROMPT_WORDS)
    fe = ClapFeatureExtractor()  # LAION defaults: 48 kHz, 10 s, 64 mel bins
    assert (fe.sampling_rate, fe.nb_max_samples, fe.feature_size) == (48000, 480000, 64)
    n_params = sum(p.numel() for p in model.parameters())
    result: dict = {"machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "loadavg_1m_at_start": os.getloadavg()[0],
                                "torch_threads": torch.get_num_threads()},
                    "model": {"config": "laion/clap-htsat-unfused (transformers' ClapConfig defaults)", "params_millions": n_params / 1e6,
                              "tokenizer_vocab": len(tok)}}
    with tempfile.TemporaryDirectory(prefix="clap-random-") as tmp:
        model.save_pretrained(tmp)
        ClapProcessor(feature_extractor=fe, tokenizer=tok).save_pretrained(tmp)
        del model
        ranker = ClapRanker(tmp)  # the CLI's loading path
    assert ranker.chunk_s == 10.0
    rng = np.random.default_rng(0)
    for name, seconds, sr in (("clip_30s_44k1", 30.0, 44100), ("live_window_5s_48k", 5.0, 48000)):
        mono = (0.1 * rng.standard_normal(int(seconds * sr))).astype(np.float32)
        import soxr

        x = soxr.resample(mono, sr, CLAP_SR) if sr != CLAP_SR else mono
        n = int(ranker.chunk_s * CLAP_SR)
        chunks = [x[i : i + n] for i in range(0, len(x), n)]
        feats = ranker.processor.feature_extractor([c for c in chunks], sampling_rate=CLAP_SR, return_tensors="pt",
                                                   truncation="rand_trunc", padding="repeatpad")
        shape = list(feats["input_features"].shape)
        assert shape == [len(chunks), 1, 1001, 64], shape
        emb = ranker.embed_audio(mono, sr)
        assert emb.shape == (cfg.projection_dim,)
        times = []
        for _ in range(a.repeats):
            ranker._text_cache.clear()
            t0 = time.perf_counter()
            ranking = ranker.rank(mono, sr, PROMPT_WORDS, TEMPLATE)
            times.append(time.perf_counter() - t0)
        assert set(ranking.scores) == set(PROMPT_WORDS)
        result[name] = {"chunks": len(chunks), "input_features": shape, "audio_embedding": list(emb.shape),
                        "rank_s_min": round(min(times), 3), "rank_s_all": [round(t, 3) for t in times],
                        "words": len(PROMPT_WORDS)}
        print(name, json.dumps(result[name]), flush=True)
    from aadiff_live.output.sidecar import write_json_atomic

    result["machine"]["loadavg_1m_at_end"] = os.getloadavg()[0]
    write_json_atomic(Path(a.out), result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
