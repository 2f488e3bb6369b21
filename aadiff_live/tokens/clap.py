"""CLAP picks the prompt's words that best match the sound (docs/design.md §1.3).

Uses transformers' ``ClapModel``/``ClapProcessor``, which load the same LAION checkpoints as the
laion-clap package (``laion/clap-htsat-unfused`` by default) without its import-time downloads
and its torchvision pin.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np
import torch

from aadiff_live.errors import UserError
from aadiff_live.models.loading import ModelMissing, check_tokenizer, from_pretrained_cached

log = logging.getLogger(__name__)
CLAP_SR = 48000
DEFAULT_CLAP = "laion/clap-htsat-unfused"


def clap_model_for(in_process_random: bool, clap_model: str) -> str:
    """The CLAP checkpoint to load: the in-process random one when the diffusion model is built
    in-process with random weights (``tiny``, ``random-sd-turbo``) and the default CLAP was not
    changed, so that those need no download at all."""
    return "tiny" if in_process_random and clap_model == DEFAULT_CLAP else clap_model


@dataclass(frozen=True)
class Ranking:
    scores: dict[str, float]  # word -> cosine similarity with the audio

    def top(self, k: int) -> list[str]:
        return [w for w, _ in sorted(self.scores.items(), key=lambda kv: -kv[1])[:k]]

    def table(self) -> str:
        rows = sorted(self.scores.items(), key=lambda kv: -kv[1])
        return "  ".join(f"{w}={s:+.3f}" for w, s in rows)


def _pooled(out) -> torch.Tensor:
    return out.pooler_output if hasattr(out, "pooler_output") else out


class ClapRanker:
    def __init__(self, model_id: str, device: str = "cpu") -> None:
        self.model_id = model_id
        self.device = device
        if model_id == "tiny":
            from aadiff_live.models.tiny import build_tiny_clap

            self.model, self.processor = build_tiny_clap()
        else:
            from transformers import ClapModel, ClapProcessor

            try:
                self.processor = from_pretrained_cached(ClapProcessor, model_id, None)
                self.model = from_pretrained_cached(ClapModel, model_id, None).eval()
            except ModelMissing:
                raise UserError(
                    f"CLAP model '{model_id}' is neither a local folder nor in the Hugging Face cache, and the hub is "
                    f"not reachable; run `aadiff-live download MODEL --clap {model_id}` on a machine with internet, "
                    f"or pin the words with --tokens to skip CLAP"
                ) from None
            check_tokenizer(self.processor.tokenizer, model_id)
        self.model.to(device)
        fe = self.processor.feature_extractor
        self.chunk_s = float(getattr(fe, "nb_max_samples", CLAP_SR * 10)) / CLAP_SR
        self._text_cache: dict[str, torch.Tensor] = {}

    @torch.no_grad()
    def embed_audio(self, mono: np.ndarray, samplerate: int) -> torch.Tensor:
        """Mean embedding of the clip cut into CLAP-length chunks (deterministic: no random crop)."""
        import soxr

        x = soxr.resample(np.asarray(mono, dtype=np.float32), samplerate, CLAP_SR) if samplerate != CLAP_SR else mono
        n = int(self.chunk_s * CLAP_SR)
        chunks = [x[i : i + n] for i in range(0, max(1, len(x)), n)]
        chunks = [c for c in chunks if len(c) >= min(len(x), n // 4)] or [x]
        feats = self.processor.feature_extractor(
            [np.asarray(c, dtype=np.float32) for c in chunks], sampling_rate=CLAP_SR, return_tensors="pt",
            truncation="rand_trunc", padding="repeatpad",
        )
        emb = _pooled(self.model.get_audio_features(**{k: v.to(self.device) for k, v in feats.items()}))
        emb = torch.nn.functional.normalize(emb.float(), dim=-1).mean(0)
        return torch.nn.functional.normalize(emb, dim=-1)

    @torch.no_grad()
    def embed_texts(self, texts: list[str]) -> torch.Tensor:
        missing = [t for t in texts if t not in self._text_cache]
        if missing:
            tok = self.processor.tokenizer(missing, padding=True, return_tensors="pt")
            emb = _pooled(self.model.get_text_features(**{k: v.to(self.device) for k, v in tok.items()}))
            emb = torch.nn.functional.normalize(emb.float(), dim=-1)
            for t, e in zip(missing, emb, strict=True):
                self._text_cache[t] = e
        return torch.stack([self._text_cache[t] for t in texts])

    def rank(self, mono: np.ndarray, samplerate: int, words: list[str], template: str = "{word}") -> Ranking:
        if not words:
            raise UserError("the prompt has no content words for CLAP to rank; add nouns, or pin words with --tokens")
        audio = self.embed_audio(mono, samplerate)
        text = self.embed_texts([template.format(word=w) for w in words])
        scores = (text @ audio).tolist()
        return Ranking(dict(zip(words, (float(s) for s in scores), strict=True)))
