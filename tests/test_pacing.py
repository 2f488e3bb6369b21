"""The display loop's pacing (live/pacing.py) against simulated screens, on a simulated clock.

Two kinds of vsync: a throttle (the flip returns at least one period after the previous one, as
Xvfb does) and a fixed refresh grid (a real screen: the flip returns at the first refresh its picture
made in time). Late latching must cut what the flip waits (the latency it adds) without missing
refreshes; the plain loop (``late_latch: false``, the loop before it) waits most of a period.
"""

from __future__ import annotations

import math

import numpy as np

from aadiff_live.live.pacing import MISS_BACKOFF_S, Pacer

PERIOD = 1 / 60


def throttle(period: float, cost: float):
    last = [0.0]

    def flip(call: float) -> float:
        ret = max(call + cost, last[0] + period)
        last[0] = ret
        return ret

    return flip


def grid(period: float, cost: float):
    """Refreshes at k * period; a picture flipped ``cost`` before one is shown at it, else at the next."""
    def flip(call: float) -> float:
        return math.ceil((call + cost) / period) * period

    return flip


def run(pacer: Pacer, flip, n: int = 3000, work=lambda i: 0.001) -> dict:
    """``n`` refreshes: wait what the pacer says, work, flip. Returns per refresh: start -> photon, gaps."""
    now = 0.0
    latency, gaps, waits = [], [], []
    last_ret = None
    for i in range(n):
        now += pacer.wait_s(now)
        start = now
        call = start + work(i)
        ret = flip(call)
        pacer.refreshed(start, call, ret)
        latency.append(ret - start)
        waits.append(ret - call)
        if last_ret is not None:
            gaps.append(ret - last_ret)
        last_ret = ret
        now = ret
    tail = slice(n // 2, None)  # after it settled (a screen without jitter takes ~15 s: the delay probes)
    return {"latency": np.array(latency[tail]), "gaps": np.array(gaps[tail]), "waits": np.array(waits[tail])}


def test_late_latching_cuts_the_flip_wait_on_a_throttled_screen():
    cost = 0.0035  # the flip's own work (Xvfb: ~4 ms for a 768-px window)
    late = run(Pacer(60, vsync=True), throttle(PERIOD, cost))
    plain = run(Pacer(60, vsync=True, late_latch=False), throttle(PERIOD, cost))
    assert np.median(plain["waits"]) > 0.012  # the plain loop: the flip waits most of a period
    assert np.median(late["waits"]) < cost + 0.004  # late: the flip's own cost and a little slack
    assert np.median(late["latency"]) < np.median(plain["latency"]) - 0.008
    # and the screen is still fed every period: no refresh lost to the later start
    assert np.median(late["gaps"]) == np.float64(np.median(plain["gaps"])) or abs(np.median(late["gaps"]) - PERIOD) < 5e-4
    assert np.mean(late["gaps"] > 1.5 * PERIOD) < 0.01


def test_late_latching_on_a_refresh_grid_misses_almost_nothing():
    pacer = Pacer(60, vsync=True)
    rng = np.random.default_rng(0)
    got = run(pacer, grid(PERIOD, 0.002), n=1800, work=lambda i: 0.001 + 0.0005 * rng.random())
    assert np.median(got["latency"]) < 0.008  # plain: ~16 ms (the next refresh after a flip that just returned)
    assert np.mean(got["gaps"] > 1.5 * PERIOD) < 0.02  # missed refreshes stay rare
    plain = run(Pacer(60, vsync=True, late_latch=False), grid(PERIOD, 0.002), n=600)
    assert np.median(plain["latency"]) > 0.014


def test_a_missed_refresh_starts_the_next_ones_earlier():
    pacer = Pacer(60, vsync=True)
    run(pacer, throttle(PERIOD, 0.0035), n=600)
    settled = pacer.delay
    assert settled > 0.005
    start = 100.0  # a refresh whose flip returns two periods after the previous one: a missed refresh
    last_ret = pacer._last_return  # noqa: SLF001 - the simulation's own bookkeeping
    pacer.refreshed(last_ret + 0.001, last_ret + 0.02, last_ret + 2 * PERIOD + 0.001)
    assert pacer.missed == 1 and abs(pacer.delay - (settled - MISS_BACKOFF_S)) < 1e-9
    del start


def test_without_vsync_a_timer_paces_at_display_fps():
    pacer = Pacer(50, vsync=False)
    now, starts = 0.0, []
    for _ in range(100):
        now += pacer.wait_s(now)
        starts.append(now)
        pacer.refreshed(now, now + 0.002, now + 0.003)  # a flip that does not wait
        now += 0.003
    assert np.allclose(np.diff(starts), 1 / 50)


def test_a_faster_screen_still_gets_display_fps():
    """A 144 Hz screen with --display-fps 60: refreshes 60 times a second, not 144."""
    got = run(Pacer(60, vsync=True), grid(1 / 144, 0.001), n=600)
    fps = 1 / np.mean(got["gaps"])
    assert 55 < fps < 75, fps


def test_the_hud_says_where_the_latency_goes():
    from aadiff_live.live.display import HudInfo, hud_text

    line = hud_text(HudInfo(fps=60, latency_ms=16.2, latency_split_ms=(5.2, 4.7, 6.1), atlas="atlas 33/33"))[0]
    assert "audio-to-photon 16 ms (sound 5 + wait 5 + flip 6)" in line
    assert "(sound" not in hud_text(HudInfo(fps=60, latency_ms=16.2))[0]  # no split yet: the total alone
