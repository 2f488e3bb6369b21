"""Prompt words: which are content words, and where each sits in the diffusion tokenizer's sequence."""

from __future__ import annotations

import re

from aadiff_live.errors import UserError

STOPWORDS = frozenset(
    """a an the of in on at to by for with from into onto over under and or but nor so as is are was were be
    been being it its this that these those there here very some any each every all no not my your our their his
    her him them they we you i me us while during above below between through up down out off than then just
    like""".split()
)
_WORD = re.compile(r"[\w'-]+", re.UNICODE)


def normalise_word(word: str) -> str:
    return word.strip().strip(".,;:!?\"'()[]{}").lower()


def content_words(prompt: str) -> list[str]:
    """The prompt's distinct content words in order (stopwords and numbers dropped)."""
    seen: list[str] = []
    for w in _WORD.findall(prompt):
        n = normalise_word(w)
        if n and n not in STOPWORDS and not n.isdigit() and n not in seen:
            seen.append(n)
    return seen


def check_prompt(prompt: str) -> str:
    p = (prompt or "").strip()
    if not p:
        raise UserError("the prompt is empty; pass --prompt \"a city skyline in a thunderstorm\"")
    return p


def parse_pinned(tokens: str | list[str] | None, prompt: str) -> list[str] | None:
    """``--tokens word[,word]``: every word must be in the prompt."""
    if tokens is None:
        return None
    items = tokens.split(",") if isinstance(tokens, str) else list(tokens)
    words = [normalise_word(t) for t in items if normalise_word(t)]
    if not words:
        raise UserError("--tokens is empty; pass words of the prompt, e.g. --tokens fire,smoke")
    in_prompt = {normalise_word(w) for w in _WORD.findall(prompt)}
    for w in words:
        if w not in in_prompt:
            raise UserError(f"--tokens: '{w}' is not a word of the prompt \"{prompt}\"; pick words that appear in it")
    return words


def token_positions(tokenizer, prompt: str, words: list[str], max_length: int = 77) -> list[int]:
    """Positions (with BOS at 0) of every token of every occurrence of ``words`` in ``prompt``.

    The prompt is walked word by word (as prompt-to-prompt does), each word tokenized alone, so a
    word split into several tokens gets all of them. Positions past the truncation are dropped.
    """
    targets = {normalise_word(w) for w in words}
    positions: list[int] = []
    cursor = 1  # after BOS
    for raw in prompt.split():
        ids = tokenizer(raw, add_special_tokens=False).input_ids
        if normalise_word(raw) in targets:
            positions.extend(range(cursor, cursor + len(ids)))
        cursor += len(ids)
    return [p for p in positions if p < max_length - 1]
