"""Run a live app while another thread watches it (tests, benchmarks, the soak): one harness for all.

``run_watched(app, watch)`` runs ``app.run()`` in the calling thread and ``watch()`` in another,
started once the show is on (``app.running``): the watcher samples what it wants and stops the
app (``app.stop.set()``) when it has seen enough. Whatever ``watch`` raises (a failed assert) stops
the app and is raised again here, after the app has shut down; the watcher is always joined.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

STARTED_POLL_S = 0.05  # the watcher looks this often whether the show is on, or already over


def wait_started(app: Any) -> bool:
    """Block until every thread of ``app`` runs (True) or it stopped first (False)."""
    while not app.running.wait(STARTED_POLL_S):
        if app.stop.is_set():
            return False
    return True


def run_watched(app: Any, watch: Callable[[], None], *cleanup: Callable[[], None]) -> int:
    """``app.run()`` here, ``watch()`` beside it; ``cleanup`` callables run once the app has returned (e.g. to
    release a render a test holds up). Returns the app's exit code; re-raises the watcher's exception."""
    failed: list[BaseException] = []

    def watcher() -> None:
        try:
            if wait_started(app):
                watch()
        except BaseException as exc:  # noqa: BLE001 - handed to the caller, after the app has stopped
            failed.append(exc)
            app.stop.set()

    w = threading.Thread(target=watcher, name="watch-live")
    w.start()
    try:
        code = app.run()
    finally:
        for c in cleanup:
            c()
        app.stop.set()
        w.join()
    if failed:
        raise failed[0]
    return code
