"""Restarts a live thread's work after it raises, a bounded number of times, then stops the app.

Each worker thread (analysis, CLAP, renderer) runs its loop through :meth:`Supervisor.run`. An
exception is logged with its traceback and the loop is run again after a back-off (1 s, 2 s, 4 s,
...); the HUD shows "<NAME> RESTARTED" for a while. After ``restarts`` restarts the next exception
is final: it is kept in :attr:`Supervisor.error`, logged, and the stop Event is set (or
``on_give_up`` is called: the renderer hands its failure to the main thread, which shows it), so
the app quits and exits non-zero. A quit (the stop Event) ends the back-off at once.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable

log = logging.getLogger(__name__)
ALERT_S = 30.0  # how long the HUD shows that a thread was restarted
BACKOFF_S = 1.0  # the first restart's delay; it doubles with each restart


class Supervisor:
    def __init__(self, name: str, stop: threading.Event, *, restarts: int = 3, backoff_s: float | None = None,
                 max_backoff_s: float = 30.0, on_give_up: Callable[[BaseException], None] | None = None) -> None:
        self.name = name
        self.stop = stop
        self.max_restarts = int(restarts)
        self.backoff_s = BACKOFF_S if backoff_s is None else float(backoff_s)
        self.max_backoff_s = float(max_backoff_s)
        self.restarts = 0  # NB: read by the main thread (HUD, exit code)
        self.error: BaseException | None = None  # the final failure: the thread gave up and stopped the app
        self.last_error: BaseException | None = None
        self._alert_until = 0.0
        self.on_give_up = on_give_up  # the final failure goes here instead of setting the stop Event

    def run(self, body: Callable[[], None]) -> None:
        """Run ``body`` until it returns; after an exception run it again (bounded), then give up."""
        while True:
            try:
                body()
                return
            except Exception as exc:  # noqa: BLE001 - a thread's failure is reported, then retried or final
                self.last_error = exc
                if self.restarts >= self.max_restarts:
                    self._give_up(exc)
                    return
                self.restarts += 1
                wait = min(self.max_backoff_s, self.backoff_s * 2 ** (self.restarts - 1))
                log.error("the %s thread failed (%s: %s); restarting it in %.0f s (restart %d of %d)", self.name,
                          type(exc).__name__, exc, wait, self.restarts, self.max_restarts, exc_info=exc)
                self._alert_until = time.monotonic() + ALERT_S + wait
                if self.stop.wait(wait):
                    return
            except BaseException as exc:  # noqa: BLE001 - SystemExit and the like: never restarted
                self._give_up(exc)
                return

    def _give_up(self, exc: BaseException) -> None:
        self.error = exc
        log.error("the %s thread failed (%s: %s) after %d restart(s); the app stops", self.name, type(exc).__name__,
                  exc, self.restarts, exc_info=exc)
        if self.on_give_up is not None:
            self.on_give_up(exc)
        else:
            self.stop.set()

    def alert(self, now: float | None = None) -> str | None:
        """A HUD line while a restart is recent, or once the thread gave up; else None."""
        if self.error is not None:
            return f"{self.name.upper()} FAILED: {type(self.error).__name__}: {self.error}"
        if self.last_error is not None and (time.monotonic() if now is None else now) < self._alert_until:
            e = self.last_error
            return f"{self.name.upper()} RESTARTED ({self.restarts}/{self.max_restarts}): {type(e).__name__}: {e}"
        return None
