"""RENDER STALLED: notices when the renderer thread stops making progress.

The renderer thread calls :meth:`StallWatchdog.beat` whenever it finishes a piece of work (a
frame, atlas levels) and whenever it waits with nothing to do; a renderer that is busy on one
render for longer than ``stall_s`` seconds, or hangs (a driver that never returns, a deadlock),
stops beating. The main thread asks :meth:`StallWatchdog.stalled` and shows "RENDER STALLED" on
the HUD (red) and in the log, once per stall.
"""

from __future__ import annotations

import time


class StallWatchdog:
    def __init__(self, stall_s: float) -> None:
        """``stall_s``: ``live.stall_s``."""
        self.stall_s = float(stall_s)
        self._last: float | None = None  # NB: written by the renderer thread, read by the main thread

    def beat(self, now: float | None = None) -> None:
        """The renderer made progress, or is waiting with nothing to do."""
        self._last = time.monotonic() if now is None else now

    def silent_s(self, now: float) -> float:
        """Seconds since the last beat (0 before the first)."""
        last = self._last
        return 0.0 if last is None else max(0.0, now - last)

    def stalled(self, now: float) -> bool:
        """No beat for more than ``stall_s`` seconds (never before the first beat)."""
        return self.silent_s(now) > self.stall_s
