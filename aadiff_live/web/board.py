"""Where the display thread leaves the show's state for the web thread: one latest snapshot, many readers.

The display loop publishes a new :class:`Snapshot` a few times a second (one attribute store: the
web thread always reads a whole one, never a half-written one) and reads whether a page asked for the
preview lately. Nothing here blocks or locks.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

PREVIEW_WANTED_S = 3.0  # a preview request keeps the display handing out pictures this long


@dataclass(frozen=True)
class Snapshot:
    """The show's state at ``time`` (monotonic s): ``status`` is plain JSON data (the page's and the metrics')."""

    time: float
    running: bool
    status: dict[str, Any] = field(default_factory=dict)


class Board:
    def __init__(self) -> None:
        self.snapshot: Snapshot | None = None  # NB: written by the display thread, read by the web thread
        self.preview_wanted_until = 0.0  # NB: written by the web thread, read by the display thread

    def publish(self, snapshot: Snapshot) -> None:
        self.snapshot = snapshot

    def want_preview(self) -> None:
        self.preview_wanted_until = time.monotonic() + PREVIEW_WANTED_S

    def preview_wanted(self, now: float) -> bool:
        return now < self.preview_wanted_until
