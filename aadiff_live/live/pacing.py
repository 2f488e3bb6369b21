"""When the display loop starts each refresh, so that the picture it shows is as fresh as it can be.

Without vsync the loop is paced by a timer at ``--display-fps``: a refresh starts every period and
is on screen as soon as it is drawn.

With vsync the flip waits for the screen. A loop that starts its next refresh right after a flip
returns blends a weight that then waits most of a refresh period (16.7 ms at 60 Hz) inside the
next flip before anyone sees it. :class:`Pacer` starts each refresh late instead ("late latching",
as games and VR compositors do): ``delay`` after the previous flip returned. It tunes ``delay``
from the gaps between flips, which show the screen's refreshes:

- a refresh that came late (its flip returned more than 0.5 ms after one screen period, the 10th
  percentile of recent gaps) moves the next ones earlier: by 3 ms when a screen refresh was missed
  (more than 1.5 periods), else by 0.5 ms; the delay then holds for a while (1 s after a miss);
- otherwise the delay grows: by a tenth of what the last flips waited beyond a small slack (their
  median duration minus the shortest flip of the last two seconds, i.e. the flip's own cost) when
  that shows a wait, else by 0.02 ms a refresh, probing towards the latest start that is on time.

So a refresh starts just early enough to be drawn before the screen's refresh, and the flip adds
little latency. A timer at ``--display-fps`` still bounds the rate (a 144 Hz screen shows 60 new
pictures a second at ``--display-fps 60``). ``live.late_latch: false`` keeps the plain loop: each
refresh starts right after the previous flip, which paces it.

Owned by the display loop's thread (NB: nothing here is shared).
"""

from __future__ import annotations

from collections import deque

import numpy as np

MIN_SLACK_S = 0.0015  # the least the flip is left to wait (scheduler wake-up jitter)
GAIN = 0.1  # the share of the flips' excess wait (median of the last WAIT_WINDOW) taken per refresh
WAIT_WINDOW = 15
PROBE_S = 0.00002  # the delay's growth per refresh when the flips show no wait
LATE_S = 0.0005  # a flip returning this much after one screen period came late ...
LATE_BACKOFF_S, LATE_HOLD_S = 0.0005, 0.25  # ... refreshes start this much earlier, held this long
MISS_GAPS = 1.5  # a flip returning this many screen periods after the last one missed a refresh ...
MISS_BACKOFF_S, MISS_HOLD_S = 0.003, 1.0  # ... refreshes start this much earlier, held this long
PLAIN_VSYNC_FPS = 55.0  # late_latch false: above this --display-fps the flip alone paces the loop


class Pacer:
    def __init__(self, display_fps: float, vsync: bool, late_latch: bool = True, history: int = 120) -> None:
        self.period = 1.0 / display_fps
        self.vsync = vsync
        self.late = vsync and late_latch
        self.next_t: float | None = None  # the timer: when the next refresh is due at --display-fps
        self.work_s: deque[float] = deque(maxlen=history)  # a refresh's start -> its flip called
        self.flip_s: deque[float] = deque(maxlen=history)  # flip called -> returned
        self.gaps: deque[float] = deque(maxlen=history)  # between flips started by the latch (or at once)
        self.delay = 0.0  # late latching: from a flip's return to the next refresh's start
        self.missed = 0  # screen refreshes missed (counted with late latching)
        self.behind = 0  # times the loop fell more than a period behind its timer (a slow refresh; /metrics)
        self._waited: deque[float] = deque(maxlen=WAIT_WINDOW)  # what the last flips waited for the screen
        self._last_return: float | None = None
        self._by_timer = False  # the current refresh's start was set by the timer, not the latch
        self._hold_until = 0.0

    # ------------------------------------------------------------------ what the screen says
    def screen_period(self) -> float:
        """The screen's refresh period as the flips show it (the 10th percentile of recent gaps)."""
        if len(self.gaps) < 10:
            return self.period
        return float(np.percentile(self.gaps, 10))

    def slack(self) -> float:
        """What the flip is left to wait: the refresh's own jitter (p95 - p50 of its work), at least 1.5 ms."""
        if len(self.work_s) < 10:
            return MIN_SLACK_S
        p50, p95 = np.percentile(self.work_s, (50, 95))
        return max(MIN_SLACK_S, float(p95 - p50))

    def refreshed(self, start: float, flip_call: float | None, flip_return: float | None) -> None:
        """One pass of the loop: it started at ``start`` and flipped (``flip_*`` None when nothing was shown)."""
        if flip_call is None or flip_return is None:
            self._last_return = None  # the next flip's gap says nothing about the screen
            return
        self.work_s.append(flip_call - start)
        self.flip_s.append(flip_return - flip_call)
        self._waited.append(self.flip_s[-1] - min(self.flip_s))
        last, self._last_return = self._last_return, flip_return
        if not self.late or last is None:
            return
        sp = self.screen_period()
        if not self._by_timer:  # the latch set this refresh's start: its gap tells whether it was on time
            gap = flip_return - last
            self.gaps.append(gap)
            if gap > MISS_GAPS * sp:
                self.missed += 1
                self._back_off(MISS_BACKOFF_S, flip_return + MISS_HOLD_S)
                return
            if gap > sp + LATE_S:
                self._back_off(LATE_BACKOFF_S, flip_return + LATE_HOLD_S)
                return
        if flip_return >= self._hold_until:
            excess = float(np.median(self._waited)) - self.slack()
            cap = max(0.0, sp - float(np.percentile(self.work_s, 95)) - MIN_SLACK_S)
            self.delay = min(cap, self.delay + max(PROBE_S, GAIN * excess))

    def _back_off(self, step: float, hold_until: float) -> None:
        self.delay = max(0.0, self.delay - step)
        self._hold_until = hold_until

    # ------------------------------------------------------------------ what to do next
    def wait_s(self, now: float) -> float:
        """Seconds to wait before the next refresh starts (0: start now)."""
        if self.next_t is None or self.next_t < now - self.period:
            self.behind += self.next_t is not None
            self.next_t = now  # the first refresh, or fell behind (a slow refresh): no burst to catch up
        else:
            self.next_t += self.period
        if not self.vsync:
            self._by_timer = True
            return max(0.0, self.next_t - now)
        if not self.late:  # the plain loop: the flip paces it near the screen's rate, else the timer (4 ms early)
            self._by_timer = self.period > 1 / PLAIN_VSYNC_FPS
            return max(0.0, self.next_t - now - 0.004) if self._by_timer else 0.0
        # the timer bounds the rate (half a screen period early is fine: the flip waits for the screen)
        timer = self.next_t - 0.5 * self.screen_period()
        latch = self._last_return + self.delay if self._last_return is not None else now
        self._by_timer = timer > latch
        return max(0.0, max(timer, latch) - now)
