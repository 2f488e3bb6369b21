"""Drum patterns made in code, with their beat times known exactly (beat-tracking tests and benchmarks).

A bar of four beats: a kick on beats 1 and 3 (and the "and" of 3 in ``busy`` patterns), a snare on
2 and 4, a closed hi-hat on every eighth note; ``swing`` delays every off-beat eighth by that share of
an eighth (0.33: a triplet feel). The tempo may change once, at a bar line.
"""

from __future__ import annotations

import numpy as np


def _kick(sr: int) -> np.ndarray:
    t = np.arange(int(0.25 * sr)) / sr
    f = 50.0 + 100.0 * np.exp(-t / 0.03)
    return (np.sin(2 * np.pi * np.cumsum(f) / sr) * np.exp(-t / 0.12)).astype(np.float32)


def _snare(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.2 * sr)) / sr
    body = 0.4 * np.sin(2 * np.pi * 190.0 * t) * np.exp(-t / 0.05)
    return (body + 0.6 * rng.standard_normal(t.size) * np.exp(-t / 0.06)).astype(np.float32)


def _hat(sr: int, rng: np.random.Generator) -> np.ndarray:
    t = np.arange(int(0.05 * sr)) / sr
    noise = np.diff(rng.standard_normal(t.size + 1))  # a first difference: mostly high frequencies
    return (0.25 * noise * np.exp(-t / 0.012)).astype(np.float32)


def beat_grid(bpm: float, seconds: float, change_at_bar: int | None = None, bpm2: float | None = None) -> np.ndarray:
    """The beat times (s) of ``seconds`` of music at ``bpm`` (then ``bpm2`` from bar ``change_at_bar``)."""
    beats = []
    t, k = 0.0, 0
    while t < seconds:
        beats.append(t)
        tempo = bpm2 if (change_at_bar is not None and bpm2 is not None and k >= 4 * change_at_bar) else bpm
        t += 60.0 / tempo
        k += 1
    return np.array(beats)


def drum_pattern(bpm: float, seconds: float, sr: int = 44100, *, swing: float = 0.0, busy: bool = False,
                 change_at_bar: int | None = None, bpm2: float | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """``(mono float32 audio, beat times in s)``."""
    rng = np.random.default_rng(seed)
    beats = beat_grid(bpm, seconds, change_at_bar, bpm2)
    out = np.zeros(int(seconds * sr) + sr, dtype=np.float32)
    kick, snare = _kick(sr), _snare(sr, rng)

    def put(sound: np.ndarray, t: float, gain: float = 1.0) -> None:
        i = int(round(t * sr))
        if 0 <= i < out.size:
            j = min(out.size, i + sound.size)
            out[i:j] += gain * sound[:j - i]

    for k, t in enumerate(beats):
        nxt = beats[k + 1] if k + 1 < beats.size else t + (beats[k] - beats[k - 1] if k else 60.0 / bpm)
        half = (nxt - t) / 2
        pos = k % 4
        if pos in (0, 2):
            put(kick, t)
        else:
            put(snare, t, 0.8)
        if busy and pos == 2:
            put(kick, t + half, 0.7)
        put(_hat(sr, rng), t, 0.9)
        put(_hat(sr, rng), t + half * (1.0 + swing), 0.6)
    audio = out[:int(seconds * sr)]
    return audio / max(1e-9, float(np.max(np.abs(audio)))) * 0.8, beats
