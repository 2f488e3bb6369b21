"""How well a picture follows its sound, from per-frame series (``aadiff-live evaluate``; docs: evaluate).

Plain numpy on series already measured: Pearson correlations that say None where they cannot be computed
(a constant series, fewer than 3 frames), the onsets of an envelope when a video carries no sound, and the lag
of the picture's change behind each onset.
"""

from __future__ import annotations

import numpy as np

MIN_FRAMES = 3
ENVELOPE_RISE = 0.25  # an envelope onset: the normalised envelope rises by at least this from one frame to the next


def pearson(a, b) -> float | None:
    """Pearson's r of two series over the frames where both are finite; None when fewer than 3 such frames or
    either is constant there."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    n = min(a.size, b.size)
    a, b = a[:n], b[:n]
    ok = np.isfinite(a) & np.isfinite(b)
    if ok.sum() < MIN_FRAMES:
        return None
    a, b = a[ok] - a[ok].mean(), b[ok] - b[ok].mean()
    den = float(np.sqrt((a * a).sum() * (b * b).sum()))
    if den <= 1e-12 * max(1.0, float(np.abs(a).max() * np.abs(b).max())):
        return None
    return float((a * b).sum() / den)


def abs_step(x) -> np.ndarray:
    """``|x[i] - x[i-1]|`` per frame, NaN for the first: how much a series changes into each frame."""
    x = np.asarray(x, dtype=np.float64)
    out = np.full(x.size, np.nan)
    out[1:] = np.abs(np.diff(x))
    return out


def envelope_onsets(times, normalised, rise: float = ENVELOPE_RISE) -> np.ndarray:
    """Onset times from the envelope alone (a video without sound): each frame where the normalised envelope
    starts rising by at least ``rise`` per frame."""
    t = np.asarray(times, dtype=np.float64)
    e = np.nan_to_num(np.asarray(normalised, dtype=np.float64))
    up = np.zeros(e.size, bool)
    up[1:] = np.diff(e) >= rise
    start = up & ~np.concatenate([[False], up[:-1]])
    return t[start]


def onset_lags(onsets, times, change, window_s: float) -> np.ndarray:
    """For each onset, when the largest ``change`` comes relative to it: ``times[k] - onset`` for the frame ``k``
    of the largest change from ``window_s / 2`` before the onset (a centred envelope moves the picture before the
    sound: a negative lag) to ``window_s`` after it, cut at the neighbouring onsets. ``change[k]`` is how much
    frame ``k`` differs from frame ``k - 1`` (NaN for frame 0); ``times[k]`` is when frame ``k`` starts. NaN for
    an onset with no frame to look at, or no change at all around it."""
    t = np.asarray(times, dtype=np.float64)
    c = np.asarray(change, dtype=np.float64)
    ons = np.sort(np.asarray(onsets, dtype=np.float64))
    out = np.full(ons.size, np.nan)
    for j, o in enumerate(ons):
        start = max(o - window_s / 2, (ons[j - 1] + o) / 2 if j else -np.inf)
        end = min(o + window_s, ons[j + 1] if j + 1 < ons.size else np.inf)
        first = max(int(np.searchsorted(t, start, side="right")) - 1, 1)  # the frame ``start`` falls in
        last = int(np.searchsorted(t, end, side="left"))
        window = c[first:last]
        if window.size == 0 or not np.any(np.nan_to_num(window) > 0):
            continue
        out[j] = t[first + int(np.nanargmax(window))] - o
    return out


def lag_summary(lags: np.ndarray) -> dict[str, float | int | None]:
    ok = np.asarray(lags, dtype=np.float64)
    ok = ok[np.isfinite(ok)]
    if ok.size == 0:
        return {"n": 0, "median_s": None, "mean_s": None, "p90_abs_s": None}
    return {"n": int(ok.size), "median_s": float(np.median(ok)), "mean_s": float(ok.mean()),
            "p90_abs_s": float(np.percentile(np.abs(ok), 90))}
