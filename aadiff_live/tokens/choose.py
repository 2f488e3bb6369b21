"""Which words are weighted: pinned by the user, or ranked by CLAP against the audio.

Offline (:func:`choose_tokens`) once per clip; live, :func:`initial_words` until CLAP has heard
enough, then CLAP's ranking through :class:`Hysteresis` (live/clap_thread.py). The checks every
path shares: :func:`require_content_words`, :func:`check_words`.
"""

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


def require_content_words(prompt: str) -> list[str]:
    """The prompt's content words (the candidates to weight); a UserError when it has none."""
    words = content_words(prompt)
    if not words:
        raise UserError(f"the prompt \"{prompt}\" has no content words to weight; add a noun such as 'fire'")
    return words


def initial_words(prompt: str, top_k: int, tokenizer=None) -> list[str]:
    """Until CLAP has heard enough: the prompt's first content words (with a ``tokenizer``: the
    first that have token positions)."""
    words = content_words(prompt)
    if tokenizer is not None:
        usable = reachable_scores(tokenizer, prompt, dict.fromkeys(words, 0.0), 0)
        words = [w for w in words if w in usable]
    return words[:top_k]


def check_words(tokenizer, prompt: str, words: list[str] | None, n_tokens: int) -> list[str] | None:
    """The words to weight in ``prompt``, checked: pinned ``words`` (as the prompt spells them), or None
    (CLAP chooses) when some content word has token positions; a UserError naming what is wrong."""
    if words is not None:
        words = parse_pinned(list(words), prompt) or []
        require_positions(tokenizer, prompt, words, n_tokens)
        return words
    require_content_words(prompt)
    if not initial_words(prompt, 1, tokenizer):
        raise UserError(f"no word of the prompt \"{prompt}\" lies inside the text encoder's 77-token window; "
                        f"shorten the prompt")
    return None


class Hysteresis:
    """Keep the current top-k words unless the new top-k's mean score beats theirs by ``margin``."""

    def __init__(self, top_k: int, margin: float) -> None:
        self.top_k = int(top_k)
        self.margin = float(margin)
        self.current: list[str] | None = None

    def reset(self) -> None:
        self.current = None

    def update(self, scores: dict[str, float]) -> tuple[list[str], bool]:
        """(words now chosen, whether they changed)."""
        best = [w for w, _ in sorted(scores.items(), key=lambda kv: -kv[1])[: self.top_k]]
        cur = self.current
        if cur is None or any(w not in scores for w in cur):
            self.current = best
            return best, cur != best
        if set(best) == set(cur):
            return cur, False
        mean = lambda ws: sum(scores[w] for w in ws) / len(ws)  # noqa: E731
        if mean(best) > mean(cur) + self.margin:
            self.current = best
            return best, True
        return cur, False


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
        candidates = require_content_words(prompt)
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
