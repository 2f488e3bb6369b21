"""Which words are weighted: pinned by the user, or ranked by CLAP against the audio."""

from __future__ import annotations

import logging
from dataclasses import dataclass

import numpy as np

from aadiff_live.errors import UserError
from aadiff_live.tokens.words import (
    content_words,
    parse_pinned,
    reachable_scores,
    require_positions,
    token_positions,
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TokenChoice:
    words: list[str]
    scores: dict[str, float]  # CLAP scores of all content words (empty when pinned)
    positions: list[int]
    pinned: bool


def choose_tokens(prompt: str, tokenizer, *, pinned: str | list[str] | None, top_k: int, clap_model: str,
                  mono: np.ndarray, samplerate: int, template: str, ranker=None) -> TokenChoice:
    words = parse_pinned(pinned, prompt)
    scores: dict[str, float] = {}
    if words is None:
        candidates = content_words(prompt)
        if not candidates:
            raise UserError(f"the prompt \"{prompt}\" has no content words to weight; add a noun such as 'fire'")
        if ranker is None:
            from aadiff_live.tokens.clap import ClapRanker

            ranker = ClapRanker(clap_model)
        ranking = ranker.rank(mono, samplerate, candidates, template)
        scores = ranking.scores
        log.info("CLAP ranking (%s): %s", clap_model, ranking.table())
        usable = reachable_scores(tokenizer, prompt, scores, top_k, log=log)
        words = sorted(usable, key=lambda w: -usable[w])[:top_k]
        if not words:
            raise UserError(f"no word of the prompt \"{prompt}\" lies inside the text encoder's 77-token window; "
                            f"shorten the prompt")
        positions = token_positions(tokenizer, prompt, words)
    else:
        positions = require_positions(tokenizer, prompt, words)
    log.info("weighted word%s: %s%s", "s" if len(words) > 1 else "", ", ".join(words), " (pinned)" if pinned else "")
    return TokenChoice(words, scores, positions, pinned is not None)
