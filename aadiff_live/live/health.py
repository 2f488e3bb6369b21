"""The show's health: what went wrong while it goes on, and the exit code at the end (docs/design.md §4).

A failure during a show is loud while the show goes on where that is possible: :meth:`Health.alerts`
gives the HUD's red lines (a failed recording, CLAP failing, a thread restarted, the renderer
stalled, a video output gone), :meth:`Health.check_stall` logs a renderer stall once when it starts
and once when it ends, and :meth:`Health.exit_code` logs everything that went wrong and makes the
exit code 1 if anything did.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # types only: the recorder (PyAV) and CLAP are imported when they are used
    from aadiff_live.live.analysis_thread import AnalysisThread
    from aadiff_live.live.clap_thread import ClapThread
    from aadiff_live.live.recorder import Recorder
    from aadiff_live.live.render_thread import RenderThread
    from aadiff_live.live.supervisor import Supervisor
    from aadiff_live.live.watchdog import StallWatchdog

log = logging.getLogger(__name__)


class Health:
    """Owned by the main thread; reads the other threads' fault fields (each marked ``NB`` where it is set)."""

    def __init__(self, watchdog: StallWatchdog, *, analysis: AnalysisThread, render_thread: RenderThread,
                 clap: ClapThread | None, recorder: Recorder | None, more_alerts: Callable[[], list[str]]) -> None:
        self.watchdog = watchdog
        self.analysis = analysis
        self.render_thread = render_thread
        self.clap = clap
        self.recorder = recorder
        self.more_alerts = more_alerts  # the rig's (a video output that failed)
        self.stalled = False  # the renderer has not made progress for live.stall_s (RENDER STALLED)
        self.render_stalls = 0

    def supervisors(self) -> list[Supervisor]:
        return [t.supervisor for t in (self.analysis, self.clap, self.render_thread) if t is not None]

    def alerts(self) -> list[str]:
        """Faults the show carries on through, for the HUD (red) and the soak tool."""
        out = []
        if self.recorder is not None and self.recorder.alert:
            out.append(self.recorder.alert)
        if self.clap is not None and self.clap.alert:
            out.append(self.clap.alert)
        out += [a for a in (s.alert() for s in self.supervisors()) if a]
        fast = self.render_thread.renderer.alert  # NB: set by the renderer thread (a compile that fell back)
        if fast:
            out.append(fast)
        now = time.monotonic()
        if self.watchdog.stalled(now):
            out.append(f"RENDER STALLED: no progress for {self.watchdog.silent_s(now):.0f} s")
        out += self.more_alerts()
        return out

    def check_stall(self, now: float) -> None:
        """Log a renderer stall once when it starts and once when it ends (the HUD shows it meanwhile)."""
        stalled = self.watchdog.stalled(now)
        if stalled and not self.stalled:
            self.render_stalls += 1
            log.error("RENDER STALLED: the renderer made no progress for %.0f s (live.stall_s %g)",
                      self.watchdog.silent_s(now), self.watchdog.stall_s)
        elif self.stalled and not stalled:
            log.warning("the renderer is making progress again")
        self.stalled = stalled

    def renderer_failure(self) -> str | None:
        """Why the renderer gave up (after its restarts), or None while it works."""
        if not self.render_thread.failed.is_set():
            return None
        err = self.render_thread.error
        return f"renderer failed: {type(err).__name__}: {err}"

    def thread_faults(self) -> list[str]:
        """What went wrong in the analysis, CLAP and renderer threads during the show (each makes the exit code 1)."""
        sups = self.supervisors()
        out = [f"the {s.name} thread was restarted {s.restarts} time(s) (last: {type(s.last_error).__name__}: "
               f"{s.last_error})" for s in sups if s.restarts and s.error is None]
        out += [f"the {s.name} thread failed: {type(s.error).__name__}: {s.error}" for s in sups
                if s.error is not None and s.name != "renderer"]  # the renderer's is reported as "renderer failed"
        if self.clap is not None and self.clap.total_failures:
            e = self.clap.last_error
            out.append(f"CLAP ranking failed {self.clap.total_failures} time(s) (last: {type(e).__name__}: {e}); "
                       f"the words were kept meanwhile")
        return out

    def exit_code(self, *, finish_failed: bool, record: str | None) -> int:
        """Log every fault of the show that ended (each once) and return 1 if there was any, else 0."""
        code = 0
        if self.stalled:
            log.error("the renderer was still stalled when the show stopped (%.0f s without progress); exit code 1",
                      self.watchdog.silent_s(time.monotonic()))
            code = 1
        for fault in self.thread_faults():
            log.error("%s; exit code 1", fault)
            code = 1
        if finish_failed:  # already logged where it happened
            code = 1
        if self.recorder is not None and self.recorder.error is not None:
            err = self.recorder.error
            log.error("the recording failed during the show (%d time(s); last: %s: %s); exit code 1",
                      self.recorder.failures, type(err).__name__, err)
            code = 1
        failure = self.renderer_failure()
        if failure is not None:
            log.error("%s; the app stopped%s", failure, f" (the recording so far is in {record})" if record else "")
            code = 1
        return code
