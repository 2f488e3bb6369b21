"""Benchmark statistics shared by the tools/bench*.py scripts.

A ratio of two timings is measured with paired, alternating calls: each round runs A, B and A
again back to back (the order rotating every round), the ratios B/A and A/A are taken per round,
and the median of each is reported with its quartiles. The A/A control is the noise floor: a B/A
of 1.02 means something only where A/A reads about 1.00 with quartiles narrower than that.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def _timed(fn: Callable[[], object], sync: Callable[[], None] | None) -> float:
    if sync is not None:
        sync()
    t0 = time.perf_counter()
    fn()
    if sync is not None:
        sync()
    return time.perf_counter() - t0


def call_times(fn: Callable[[int], object], n: int, *, warmup: int = 0) -> list[float]:
    """Seconds of each of ``n`` calls ``fn(i)`` (after ``warmup`` untimed calls ``fn(-1)``); ``fn`` must
    include its own device synchronisation (e.g. a copy of the frame to the host)."""
    for _ in range(warmup):
        fn(-1)
    out = []
    for i in range(n):
        t0 = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - t0)
    return out


def ratio_with_control(fa: Callable[[], object], fb: Callable[[], object], pairs: int, *, warmup: int = 1,
                       sync: Callable[[], None] | None = None, before_a: Callable[[], None] | None = None,
                       before_b: Callable[[], None] | None = None) -> dict:
    """``B/A`` with its A/A control, from ``pairs`` rounds of three calls: A, B and A again.

    The order of the three calls rotates every round, so neither side always runs first or
    after the other. Per round: ``b/a`` and ``a'/a``; reported: the median of each and its
    quartiles, and each side's median and fastest seconds. ``sync`` waits for the device (CUDA)
    around each timed call; ``before_*`` run untimed before each call (e.g. switching attention
    processors).
    """
    calls = [("a", before_a, fa), ("b", before_b, fb), ("a2", before_a, fa)]
    for _ in range(warmup):
        for _name, before, fn in calls:
            if before is not None:
                before()
            fn()
    times: dict[str, list[float]] = {"a": [], "b": [], "a2": []}
    for i in range(pairs):
        k = i % 3
        for name, before, fn in calls[k:] + calls[:k]:
            if before is not None:
                before()
            times[name].append(_timed(fn, sync))
    ab = sorted(b / a for a, b in zip(times["a"], times["b"], strict=True))
    aa = sorted(b / a for a, b in zip(times["a"], times["a2"], strict=True))
    return {"pairs": pairs, "ratio": _summary(ab), "aa": _summary(aa),
            "a_median_s": round(statistics.median(times["a"] + times["a2"]), 6),
            "b_median_s": round(statistics.median(times["b"]), 6),
            "a_min_s": round(min(times["a"] + times["a2"]), 6), "b_min_s": round(min(times["b"]), 6)}


def ratio_summary(a: list[float], b: list[float], a2: list[float]) -> dict:
    """``B/A`` and the ``A'/A`` control of any paired per-round figure (fps, a latency), as
    :func:`ratio_with_control` reports timings: the median of each ratio and its quartiles."""
    ab = sorted(y / x for x, y in zip(a, b, strict=True))
    aa = sorted(y / x for x, y in zip(a, a2, strict=True))
    return {"pairs": len(a), "ratio": _summary(ab), "aa": _summary(aa)}


def _summary(sorted_ratios: list[float]) -> dict:
    return {"median": round(statistics.median(sorted_ratios), 4), "q1": round(_quantile(sorted_ratios, 0.25), 4),
            "q3": round(_quantile(sorted_ratios, 0.75), 4)}


def fmt_ratio(r: dict) -> str:
    """``1.004 [0.991-1.012] (A/A 1.000 [0.988-1.010])``: median [quartiles] and the control beside it."""
    a, c = r["ratio"], r["aa"]
    return (f"{a['median']:.3f} [{a['q1']:.3f}-{a['q3']:.3f}] "
            f"(A/A {c['median']:.3f} [{c['q1']:.3f}-{c['q3']:.3f}])")


def _quantile(sorted_values: list[float], q: float) -> float:
    if len(sorted_values) == 1:
        return sorted_values[0]
    return statistics.quantiles(sorted_values, n=100, method="inclusive")[max(0, min(98, round(q * 100) - 1))]


def frame_stats(seconds: list[float]) -> dict:
    """Frames/s over the whole run and per-frame p50/p99/max in milliseconds."""
    s = sorted(seconds)
    total = sum(s)
    pct = statistics.quantiles(s, n=100, method="inclusive") if len(s) > 1 else [s[0]] * 99
    return {"frames": len(s), "fps": round(len(s) / total, 2) if total else None,
            "p50_ms": round(statistics.median(s) * 1000, 3), "p99_ms": round(pct[98] * 1000, 3),
            "max_ms": round(s[-1] * 1000, 3)}
