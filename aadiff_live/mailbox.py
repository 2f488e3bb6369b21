"""The latest-value mailbox that every thread hand-over uses (audio analysis, CLAP, renderer, control, outputs).

A reader always gets the newest value and nothing piles up: ``put`` replaces an unread value (the
pattern of sounddevice's ``rec_gui.py`` example, ``Queue(maxsize=1)``).
"""

from __future__ import annotations

import queue
from typing import Generic, TypeVar

T = TypeVar("T")


class Mailbox(Generic[T]):
    """Latest-value mailbox: ``put`` never blocks and replaces an unread value (newest wins)."""

    def __init__(self) -> None:
        self._q: queue.Queue[T] = queue.Queue(maxsize=1)
        self.dropped = 0  # values replaced before anyone read them

    def put(self, value: T) -> None:
        while True:
            try:
                self._q.put_nowait(value)
                return
            except queue.Full:
                try:
                    self._q.get_nowait()
                    self.dropped += 1
                except queue.Empty:
                    pass  # the reader took it in between: try again

    def get(self, timeout: float | None = None) -> T | None:
        """The newest value, waiting up to ``timeout`` s (None: wait forever); None if nothing came."""
        try:
            return self._q.get(timeout=timeout) if timeout != 0 else self._q.get_nowait()
        except queue.Empty:
            return None

    def qsize(self) -> int:
        return self._q.qsize()
