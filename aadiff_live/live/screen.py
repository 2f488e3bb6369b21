"""What the display shows in atlas mode: the atlas blend for a weight, cross-fading between atlases.

Owned by the display loop (one thread). The renderer thread publishes :class:`AtlasView` objects
(a complete atlas, or the first one while it fills); :meth:`AtlasScreen.offer` takes the newest,
:meth:`AtlasScreen.picture` gives the picture for a weight at a time: during a cross-fade
(``fade_s`` after a new atlas arrived) the blend of the old atlas's picture and the new one's. With
``--quantise`` a new atlas waits (the old one stays on screen) until its fade must start to be complete on the
next beat or bar line; one that arrives too late for a line takes the following one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from aadiff_live.live.messages import AtlasView
from aadiff_live.rendering.atlas import Lookup, blend_frames


@dataclass(frozen=True)
class Picture:
    image: np.ndarray  # [h, w, 3] uint8 (may be an atlas level's own array: do not write to it)
    view: AtlasView  # the atlas it comes from (the new one during a fade)
    lookup: Lookup
    fade: float | None  # during a cross-fade: the new atlas's share (0..1); None otherwise


class AtlasScreen:
    def __init__(self, fade_s: float, start_at: Callable[[float], float] | None = None) -> None:
        """``start_at(now)``: when a cross-fade to an atlas that arrived at ``now`` starts (``--quantise``: so that
        it is complete on the next beat or bar line); unset: at once."""
        self.fade_s = float(fade_s)
        self.start_at = start_at
        self.view: AtlasView | None = None  # the atlas on screen
        self.fading_from: AtlasView | None = None  # ... and the one it cross-fades from
        self.fade_start = 0.0
        self.pending: AtlasView | None = None  # a new atlas waiting for its line (--quantise)
        self.pending_start = 0.0

    def offer(self, view: AtlasView, now: float) -> None:
        """A new atlas from the renderer: shown at once if none is, else cross-faded to from ``now`` (or, with
        ``start_at``, from the time it gives)."""
        cur = self.view
        if cur is None or view.atlas is cur.atlas:
            self.view = view
            return
        if self.start_at is not None:
            if self.pending is None or view.atlas is not self.pending.atlas:
                self.pending_start = self.start_at(now)  # another change meanwhile: its own line
            self.pending = view
            return
        self._switch(view, now)

    def _switch(self, view: AtlasView, start: float) -> None:
        if self.fade_s > 0:
            self.fading_from, self.fade_start = self.view, start
        self.view = view

    def picture(self, weight: float | tuple[float, ...], now: float) -> Picture | None:
        """The picture for ``weight`` at ``now``; None while no level of the atlas on screen exists."""
        if self.pending is not None and now >= self.pending_start:
            self._switch(self.pending, self.pending_start)  # the fade counts from its planned start
            self.pending = None
        view = self.view
        if view is None:
            return None
        got = view.atlas.blend(weight)
        if got is None:
            return None
        image, look = got
        fade = None
        if self.fading_from is not None:
            a = (now - self.fade_start) / self.fade_s
            old = self.fading_from.atlas.blend(weight) if a < 1.0 else None
            if old is None:
                self.fading_from = None
            else:
                fade = float(max(0.0, a))
                image = blend_frames(old[0], image, fade)
        return Picture(image, view, look, fade)
