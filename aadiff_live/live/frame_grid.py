"""Which display refreshes go into a constant-rate recording (docs/recording.md).

The display refreshes at its own rate (30, 50, 60, 144 Hz, with jitter, and stalls now and then);
a recording is a video at exactly ``fps`` frames a second. :class:`FrameGrid` lays a fixed grid of
slots over time (slot ``k`` at ``t0 + k / fps``) and gives every slot the refresh nearest its time.
The grid lies on the recording's own frame times: ``origin + n / fps`` (``origin``: the recording's
time 0, its first sound sample), ``t0`` the one of them nearest the first refresh. (A grid started
at the first refresh lies up to half a slot off the file's frames; rounding onto them then shifts
every picture by up to half a slot against the sound, and skips the refresh shown on the frame's
time for one half a slot away.) Without an origin, ``t0`` is the first refresh. The first refresh takes
slot 0 at once (so a picture frozen after it is recorded). A slot is decided as soon as a refresh at or after its time arrives (at
most one refresh late). When the display stalls for longer than a slot, the slots it missed repeat
the nearest refresh and are marked ``held`` (and counted); a refresh that comes a little early or
late moves nothing else, so the picture never judders by a whole refresh as a "one period since
the last pick" rule does.

At the end (:meth:`FrameGrid.flush`) the last refresh also takes the next slot when it is nearer that
slot than the refresh that would have followed it (one refresh interval later) would have been: a
60 Hz show that stops on the refresh half-way between two 30 fps slots leaves the next slot out
rather than filling it with a picture shown half a slot before it.

Pure and single-threaded: the main thread offers every refresh, the recorder gets the picks.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
GAPS = 8  # the display's refresh interval at the end: the median of this many last gaps between refreshes


@dataclass(frozen=True)
class Pick(Generic[T]):
    slot: int  # index on the grid
    time: float  # the slot's time (t0 + slot / fps): where the frame goes in the video
    shown: float  # when the picked refresh was shown
    item: T
    held: bool  # the same refresh as the slot before (the display stalled)


class FrameGrid(Generic[T]):
    def __init__(self, fps: float, origin: float | None = None) -> None:
        if fps <= 0:
            raise ValueError("fps must be positive")
        self.period = 1.0 / float(fps)
        self.origin = origin  # the slots lie on origin + n / fps (may be set until the first offer)
        self.t0: float | None = None
        self.next_slot = 0
        self.held = 0  # slots that repeated a refresh (counted for the summary)
        self._prev: tuple[int, float, T] | None = None  # the newest refresh: (id, time, item)
        self._last_pick_id = -1
        self._n = 0
        self._gaps: deque[float] = deque(maxlen=GAPS)  # the last gaps between refreshes

    def slot_time(self, k: int) -> float:
        assert self.t0 is not None
        return self.t0 + k * self.period

    def offer(self, t: float, item: T) -> list[Pick[T]]:
        """A refresh shown at ``t`` (non-decreasing); the slots it decides, in order."""
        rid = self._n
        self._n += 1
        first = self.t0 is None
        if first:
            o = self.origin
            self.t0 = t if o is None else o + round((t - o) / self.period) * self.period
        picks = list(self._decide(rid, t, item))
        if first and not picks:  # slot 0 lies (up to half a slot) after the first refresh: nothing came before it
            picks = [self._pick(self.slot_time(0), rid, t, item)]
        if self._prev is not None:
            self._gaps.append(t - self._prev[1])
        self._prev = (rid, t, item)
        return picks

    def _decide(self, rid: int, t: float, item: T) -> Iterator[Pick[T]]:
        while self.slot_time(self.next_slot) <= t:
            s = self.slot_time(self.next_slot)
            prev = self._prev
            if prev is not None and s - prev[1] <= t - s:  # the refresh before the slot is nearer (ties: earlier)
                yield self._pick(s, prev[0], prev[1], prev[2])
            else:
                yield self._pick(s, rid, t, item)

    def _pick(self, s: float, rid: int, shown: float, item: T) -> Pick[T]:
        held = rid == self._last_pick_id
        self.held += held
        self._last_pick_id = rid
        pick = Pick(self.next_slot, s, shown, item, held)
        self.next_slot += 1
        return pick

    def refresh_interval(self) -> float:
        """The display's refresh interval: the median of the last gaps (a slot before the second refresh)."""
        if not self._gaps:
            return self.period
        g = sorted(self._gaps)
        return g[len(g) // 2]

    def flush(self) -> list[Pick[T]]:
        """At the end: the next slot, if the last refresh is its nearest, i.e. no farther from it than the refresh
        that would have come next (one refresh interval later) and than half a slot, and not yet picked (the show
        stopped: no stall to repeat it for)."""
        prev = self._prev
        if prev is None or prev[0] == self._last_pick_id:
            return []
        reach = min(self.period, self.refresh_interval()) / 2
        if self.slot_time(self.next_slot) - prev[1] > reach:
            return []
        return [self._pick(self.slot_time(self.next_slot), prev[0], prev[1], prev[2])]
