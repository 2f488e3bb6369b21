"""Prompt words: one rule for what a word is, shared by pinning (``--tokens``), CLAP's candidates
and token positions; and where each word sits in the diffusion tokenizer's sequence.

A word is a run of letters/digits, with inner apostrophes or hyphens (``don't``, ``sci-fi``);
everything else (spaces, ``,``, ``/``, ``!``) separates words. ``"a forest fire/smoke, at night"``
has the words ``a forest fire smoke at night``. Positions come from tokenizing the whole prompt
once, as the text encoder sees it, and taking every token whose characters lie inside the word:
so punctuation next to a word is never counted as the word, a word split into several BPE tokens
gets all of them, and a literal ``!`` that SD 2.x's tokenizer turns into its pad id changes
nothing.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aadiff_live.errors import UserError
from aadiff_live.models.components import TEXT_TOKENS

STOPWORDS = frozenset(
    """a an the of in on at to by for with from into onto over under and or but nor so as is are was were be
    been being it its this that these those there here very some any each every all no not my your our their his
    her him them they we you i me us while during above below between through up down out off than then just
    like""".split()
)
_WORD = re.compile(r"\w+(?:['\u2019-]\w+)*", re.UNICODE)


@dataclass(frozen=True)
class Word:
    text: str  # as typed
    norm: str  # lower-case: what words are compared by
    start: int  # character span in the prompt
    end: int


def split_words(text: str) -> list[Word]:
    """Every word of ``text`` with its character span (the one word rule)."""
    return [Word(m.group(), m.group().lower(), m.start(), m.end()) for m in _WORD.finditer(text)]


def normalise_word(word: str) -> str:
    """The form words are compared by; a string that is not exactly one word gives ``""``."""
    words = split_words(word.strip())
    return words[0].norm if len(words) == 1 else ""


def content_words(prompt: str) -> list[str]:
    """The prompt's distinct content words in order (stopwords and numbers dropped): CLAP's candidates."""
    seen: list[str] = []
    for w in split_words(prompt):
        if w.norm not in STOPWORDS and not w.norm.isdigit() and w.norm not in seen:
            seen.append(w.norm)
    return seen


def check_prompt(prompt: str) -> str:
    p = (prompt or "").strip()
    if not p:
        raise UserError("the prompt is empty; pass --prompt \"a city skyline in a thunderstorm\"")
    return p


def parse_pinned(tokens: str | list[str] | None, prompt: str) -> list[str] | None:
    """``--tokens word[,word]``: every word must be a word of the prompt (by :func:`split_words`)."""
    if tokens is None:
        return None
    items = tokens.split(",") if isinstance(tokens, str) else list(tokens)
    words: list[str] = []
    for item in items:
        for w in split_words(item):
            if w.norm not in words:
                words.append(w.norm)
    if not words:
        raise UserError("--tokens is empty; pass words of the prompt, e.g. --tokens fire,smoke")
    in_prompt = {w.norm for w in split_words(prompt)}
    for word in words:
        if word not in in_prompt:
            raise UserError(f"--tokens: '{word}' is not a word of the prompt \"{prompt}\"; pick words that appear in it")
    return words


def _token_spans(tokenizer, prompt: str) -> list[tuple[int, int]]:
    """Character span of every token of ``prompt`` (no BOS/EOS), in order."""
    try:
        enc = tokenizer(prompt, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
        spans = [(int(a), int(b)) for a, b in enc["offset_mapping"]]
        if len(spans) == len(enc["input_ids"]):
            return spans
    except (NotImplementedError, KeyError, TypeError, ValueError):
        pass
    # tokenizers without offsets: count the tokens of growing prefixes cut at word boundaries
    spans = []
    done = 0
    for w in split_words(prompt):
        before = len(tokenizer(prompt[: w.start], add_special_tokens=False, verbose=False).input_ids)
        upto = len(tokenizer(prompt[: w.end], add_special_tokens=False, verbose=False).input_ids)
        spans.extend([(-1, -1)] * (before - done))
        spans.extend([(w.start, w.end)] * (upto - before))
        done = upto
    return spans


def _key(word: str) -> str:
    return normalise_word(word) or word.strip().lower()


def word_positions(tokenizer, prompt: str, words: list[str]) -> dict[str, list[int]]:
    """For each word (by its normal form): the positions (BOS at 0) of every token of every
    occurrence in ``prompt``, including positions beyond the text window (see :func:`in_window`)."""
    out: dict[str, list[int]] = {_key(w): [] for w in words}
    spans = _token_spans(tokenizer, prompt)
    for w in split_words(prompt):
        if w.norm in out:
            out[w.norm].extend(i + 1 for i, (a, b) in enumerate(spans) if b > a and a < w.end and b > w.start)
    return out


def in_window(positions: list[int], n_tokens: int = TEXT_TOKENS) -> list[int]:
    """Positions the text encoder sees: before the EOS of a truncated ``n_tokens`` sequence."""
    return sorted(p for p in positions if p < n_tokens - 1)


def token_positions(tokenizer, prompt: str, words: list[str], n_tokens: int = TEXT_TOKENS) -> list[int]:
    """All positions of ``words`` inside the text window, sorted (empty if none is there)."""
    found = word_positions(tokenizer, prompt, words)
    return in_window(sorted({p for ps in found.values() for p in ps}), n_tokens)


def why_no_positions(word: str, all_positions: list[int], n_tokens: int = TEXT_TOKENS) -> str:
    """Why ``word`` has no position in the window (for messages)."""
    if all_positions:
        return (f"'{word}' starts at token {min(all_positions)}, beyond the text encoder's {n_tokens}-token window "
                f"(prompt tokens 1..{n_tokens - 2})")
    return f"'{word}' maps to no token of the diffusion model's tokenizer"


def require_positions(tokenizer, prompt: str, words: list[str], n_tokens: int = TEXT_TOKENS,
                      flag: str = "--tokens") -> list[int]:
    """Positions of pinned ``words``; a one-line error if any of them has none in the window."""
    return sorted({p for g in route_groups(tokenizer, prompt, words, n_tokens, flag) for p in g})


def route_groups(tokenizer, prompt: str, words: list[str], n_tokens: int = TEXT_TOKENS,
                 flag: str = "--route") -> list[list[int]]:
    """Each word's own positions inside the window (one group per routed word, in order); a one-line error
    naming ``flag`` if a word has none there."""
    found = word_positions(tokenizer, prompt, words)
    groups = []
    for w in words:
        ps = found[_key(w)]
        if not in_window(ps, n_tokens):
            raise UserError(f"{flag}: {why_no_positions(_key(w), ps, n_tokens)}; shorten the prompt or move the word "
                            f"nearer its start")
        groups.append(in_window(ps, n_tokens))
    return groups


def reachable_scores(tokenizer, prompt: str, scores: dict[str, float], top_k: int, n_tokens: int = TEXT_TOKENS,
                     log=None, warned: set[str] | None = None) -> dict[str, float]:
    """CLAP's ``scores`` restricted to the words that have token positions in the window, so that
    its choice falls back to the next word that has some. A word that would have been among the
    ``top_k`` is warned about on ``log`` (once per word when a ``warned`` set is kept)."""
    found = word_positions(tokenizer, prompt, list(scores))
    ok = {w: s for w, s in scores.items() if in_window(found[_key(w)], n_tokens)}
    best = sorted(scores, key=lambda w: -scores[w])[:top_k]
    for w in best:
        if w not in ok and log is not None and (warned is None or w not in warned):
            log.warning("CLAP's word %s; the next word that has some is weighted instead",
                        why_no_positions(w, found[_key(w)], n_tokens))
            if warned is not None:
                warned.add(w)
    return ok
