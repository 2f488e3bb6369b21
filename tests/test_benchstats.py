"""tools/benchstats.py: the paired ratio and its A/A control, on a clock the test controls."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
import benchstats  # noqa: E402


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0
        self.order: list[str] = []

    def call(self, name: str, seconds: float):
        def fn():
            self.order.append(name)
            self.now += seconds
        return fn


def test_ratio_median_and_control_on_a_known_clock(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(benchstats.time, "perf_counter", lambda: clock.now)
    # A takes 1 s, except one slow outlier; B takes 1.5 s
    slow = iter([1.0] * 3 + [9.0] + [1.0] * 100)
    a = lambda: (clock.order.append("a"), setattr(clock, "now", clock.now + next(slow)))  # noqa: E731
    res = benchstats.ratio_with_control(a, clock.call("b", 1.5), 9, warmup=1)
    assert res["ratio"]["median"] == 1.5  # the median ignores the outlier round
    assert res["aa"]["median"] == 1.0
    assert res["b_median_s"] == 1.5 and res["a_median_s"] == 1.0
    assert "1.500" in benchstats.fmt_ratio(res) and "A/A 1.000" in benchstats.fmt_ratio(res)


def test_order_rotates_so_no_side_always_runs_first(monkeypatch):
    clock = FakeClock()
    monkeypatch.setattr(benchstats.time, "perf_counter", lambda: clock.now)
    benchstats.ratio_with_control(clock.call("a", 1), clock.call("b", 1), 3, warmup=0)
    rounds = [clock.order[i:i + 3] for i in range(0, 9, 3)]
    assert [r[0] for r in rounds] == ["a", "b", "a"] and rounds[1] == ["b", "a", "a"]
    assert {tuple(r) for r in rounds} == {("a", "b", "a"), ("b", "a", "a"), ("a", "a", "b")}


def test_frame_stats():
    s = benchstats.frame_stats([0.01] * 99 + [0.05])
    assert s["frames"] == 100 and s["fps"] == pytest.approx(100 / 1.04, rel=1e-3)
    assert s["p50_ms"] == 10.0 and s["max_ms"] == 50.0 and 10.0 <= s["p99_ms"] <= 50.0
