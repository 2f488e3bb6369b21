"""Recordings at an exact constant rate: the fixed-grid frame picker (live/frame_grid.py)."""

from __future__ import annotations

import numpy as np
import pytest

from aadiff_live.live.frame_grid import FrameGrid


def run(refreshes: np.ndarray, fps: float = 30.0) -> tuple[list, FrameGrid]:
    grid: FrameGrid[int] = FrameGrid(fps)
    picks = []
    for i, t in enumerate(refreshes):
        picks += grid.offer(float(t), i)
    return picks, grid


@pytest.mark.parametrize("hz", [30, 50, 60, 144])
def test_evenly_spaced_nominal_count_at_any_display_rate_with_jitter(hz):
    rng = np.random.default_rng(hz)
    seconds, fps = 10.0, 30.0
    period = 1 / hz
    # each refresh a little early or late (up to 20 % of a refresh), as a compositor delivers them
    t = np.arange(int(seconds * hz)) * period + rng.uniform(-0.2, 0.2, int(seconds * hz)) * period
    t = np.maximum.accumulate(t)
    picks, grid = run(t, fps)
    assert abs(len(picks) - seconds * fps) <= 1  # the nominal count: 300 frames for 10 s
    times = np.array([p.time for p in picks])
    np.testing.assert_allclose(np.diff(times), 1 / fps, atol=1e-9)  # evenly spaced, exactly
    assert [p.slot for p in picks] == list(range(len(picks)))
    # each slot got the refresh nearest its time: within half a refresh (plus the jitter)
    assert max(abs(p.shown - p.time) for p in picks) <= 0.7 * period
    if hz >= fps:
        assert grid.held == 0  # no stall: nothing repeated
    items = [p.item for p in picks]
    assert len(set(items)) == len(items) if hz >= fps else True


def test_the_old_rule_judders_and_the_grid_does_not():
    """60 Hz with jitter: 'one period since the last pick' loses one slot in three; the grid none."""
    rng = np.random.default_rng(0)
    t = np.arange(600) / 60 + rng.uniform(-0.002, 0.002, 600)
    last, kept = -1e9, []
    for x in t:  # the rule the recorder used before
        if x - last >= 0.999 / 30:
            kept.append(x)
            last = x
    old_gaps = np.diff(kept)
    assert np.mean(old_gaps > 1.25 / 30) > 0.1  # the judder the grid removes
    picks, _ = run(t)
    shown = np.array([p.shown for p in picks])
    assert np.mean(np.diff(shown) > 1.25 / 30) == 0
    assert len(picks) >= 299


def test_a_stalled_display_repeats_the_nearest_refresh_and_counts_it():
    t = list(np.arange(0, 1, 1 / 60)) + list(1.5 + np.arange(0, 1, 1 / 60))  # a 0.5 s stall
    picks, grid = run(np.array(t))
    times = np.array([p.time for p in picks])
    np.testing.assert_allclose(np.diff(times), 1 / 30, atol=1e-9)  # no gap in the video
    held = [p for p in picks if p.held]
    assert grid.held == len(held) and 13 <= len(held) <= 15  # ~0.5 s of slots at 30 fps repeat a picture
    assert all(p.item in (59, 60) for p in held)  # the last refresh before the stall or the first after


def test_flush_gives_the_last_slot_only_when_its_refresh_is_nearest():
    grid: FrameGrid[int] = FrameGrid(30)
    for i in range(4):
        grid.offer(i / 30 - 0.001 * (i > 0), i)  # the last refresh comes just before its slot
    assert [p.slot for p in grid.flush()] == [3]
    grid2: FrameGrid[int] = FrameGrid(30)
    grid2.offer(0.0, 0)
    grid2.offer(0.01, 1)
    assert grid2.flush() == []  # slot 1 (33 ms) is nearer a refresh still to come



def test_flush_at_the_show_end_leaves_a_slot_the_next_refresh_would_have_taken():
    """A 60 Hz show recorded at 30 fps stops on the refresh half-way between two slots (the file input ended).

    The refresh that would have followed lands on the next slot, so the last one is not that slot's nearest:
    flush leaves the slot out instead of filling it with a picture shown half a slot (16.5 ms) before it."""
    t = [i / 60 for i in range(10)]  # even refreshes on slots 0..4, odd ones half-way between two slots
    t[-1] += 0.0002  # as measured at the end of a file input: the last refresh 16.5 ms before slot 5
    picks, grid = run(np.array(t))
    assert [p.slot for p in picks] == [0, 1, 2, 3, 4] and max(abs(p.shown - p.time) for p in picks) < 1e-9
    assert grid.flush() == []
    # the show stops just before a slot: that refresh is the slot's nearest (the next one comes 13 ms after it)
    picks, grid = run(np.array([*t[:-1], 10 / 60 - 0.003]))
    assert [(p.slot, p.item) for p in grid.flush()] == [(5, 9)]
    # a 30 Hz display, its last refresh 12 ms before the slot (the next would come 21 ms after it): flushed
    picks, grid = run(np.array([0.0, 1 / 30, 2 / 30, 3 / 30 - 0.012]))
    assert [(p.slot, p.item) for p in grid.flush()] == [(3, 3)]


def test_slots_lie_on_the_recordings_frame_times_whatever_the_display_phase():
    """With an origin (the recording's first sound sample) slot k is at origin + n / fps for whole n, so the frame
    at each of the file's frame times is the refresh nearest it, even for a display half a slot out of phase."""
    origin = 100.0
    for phase in (0.0, 0.007, 1 / 60 - 0.0002, 1 / 60 + 0.0002, 0.03):
        t = origin + 0.5 + phase + np.arange(120) / 60  # a 60 Hz display starting 0.5 s after the first sound
        grid: FrameGrid[int] = FrameGrid(30, origin=origin)
        picks = []
        for i, x in enumerate(t):
            picks += grid.offer(float(x), i)
        n = np.array([(p.time - origin) * 30 for p in picks])
        np.testing.assert_allclose(n, np.round(n), atol=1e-6)  # on the file's frame times
        assert picks[0].item == 0 and abs(picks[0].shown - picks[0].time) <= 0.5 / 30  # the first at once
        nearest = [float(np.min(np.abs(t - p.time))) for p in picks[1:]]  # of all refreshes, to each frame time
        np.testing.assert_allclose([abs(p.shown - p.time) for p in picks[1:]], nearest, atol=1e-9)
        assert max(nearest) <= 0.5 / 60 + 1e-9 and grid.held == 0  # within half a refresh, none repeated
