"""One display refresh: the picture for the newest weight, the HUD, the recording's rows, the numbers.

The main thread's display loop (live/app.py) calls :meth:`Presenter.refresh` once per refresh
(``--display-fps``). In atlas mode it takes the newest :class:`AtlasView` and weight, asks the
:class:`AtlasScreen` for the blend (cross-fading to a new atlas) and shows it; with ``--levels 0``
it shows the renderer's newest exact :class:`Frame`. Showing a frame puts it in the window (with
the HUD), hands it to the rig (OSC out, video out), counts it in :class:`Stats` (fps, the
audio-to-photon latency) and gives it to the recorder at the video rate, not the refresh rate.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np

from aadiff_live.config import Config
from aadiff_live.live.messages import SPLIT, AtlasView, Frame, WeightSample, latency_split
from aadiff_live.live.routing import hud_bars, point, route_row
from aadiff_live.live.screen import AtlasScreen
from aadiff_live.mailbox import Mailbox

if TYPE_CHECKING:
    from aadiff_live.analysis.routes import LiveRoutes
    from aadiff_live.live.analysis_thread import AnalysisThread
    from aadiff_live.live.capture import Capture
    from aadiff_live.live.display import Display, HudInfo
    from aadiff_live.live.health import Health
    from aadiff_live.live.recorder import Recorder
    from aadiff_live.live.render_thread import RenderThread
    from aadiff_live.live.rig import Rig
    from aadiff_live.live.tempo import LiveTempo

HUD_IDLE_S = 0.1  # with no new picture, the HUD (level meter, status) is still redrawn this often

class Stats:
    """Rolling numbers for the HUD and a bounded history for the summary (no growth over a long set)."""

    def __init__(self, history: int = 20000) -> None:
        self.shown: deque[float] = deque(maxlen=240)
        self.latency: deque[float] = deque(maxlen=history)
        self.shown_at: deque[float] = deque(maxlen=history)  # display time of each latency (benchmarks: steady state)
        self.recent_latency: deque[float] = deque(maxlen=30)
        self.rendered_latency: deque[float] = deque(maxlen=history)  # frames rendered for their weight
        self.split: dict[str, deque[float]] = {k: deque(maxlen=history) for k in SPLIT}
        self.recent_split: dict[str, deque[float]] = {k: deque(maxlen=30) for k in SPLIT}
        self.n_shown = 0
        self.first_shown: float | None = None
        self.last_shown: float | None = None

    def add(self, shown: float, latency: float | None, rendered: bool = True,
            split: dict[str, float] | None = None) -> None:
        """A frame shown; ``latency`` None when no newer sound exists (after a file input's end); ``split``:
        :func:`latency_split`'s parts."""
        self.shown.append(shown)
        self.n_shown += 1
        self.first_shown = shown if self.first_shown is None else self.first_shown
        self.last_shown = shown
        if latency is None:
            return
        if rendered:
            self.rendered_latency.append(latency)
        self.latency.append(latency)
        self.shown_at.append(shown)
        self.recent_latency.append(latency)
        for k in SPLIT if split else ():
            v = split[k + "_s"]  # type: ignore[index]
            self.split[k].append(v)
            self.recent_split[k].append(v)

    def recent_split_ms(self) -> tuple[float, ...] | None:
        """The HUD's split: the median of each part over the last 30 frames (ms)."""
        if not all(self.recent_split.values()):
            return None
        return tuple(float(np.median(self.recent_split[k])) * 1000 for k in SPLIT)

    def fps(self, now: float) -> float:
        recent = [t for t in self.shown if now - t <= 1.0]
        if len(recent) < 2:
            return 0.0
        return (len(recent) - 1) / max(1e-6, recent[-1] - recent[0])

    def summary(self) -> dict:
        lat = np.asarray(self.latency, dtype=np.float64)
        rl = np.asarray(self.rendered_latency, dtype=np.float64)
        span = (self.last_shown or 0.0) - (self.first_shown or 0.0)
        return {
            "frames_shown": self.n_shown,
            "fps": (self.n_shown - 1) / span if self.n_shown > 1 and span > 0 else 0.0,
            "latency_ms_median": float(np.median(lat) * 1000) if lat.size else None,
            "latency_ms_p95": float(np.percentile(lat, 95) * 1000) if lat.size else None,
            # frames whose picture was rendered for them (the others reused an identical picture)
            "rendered_latency_ms_median": float(np.median(rl) * 1000) if rl.size else None,
            "rendered_latency_ms_p95": float(np.percentile(rl, 95) * 1000) if rl.size else None,
            # the split's own percentiles (they do not add up to the total's: each part has its own worst frames)
            "latency_split_ms": {k: {"p50": float(np.median(v) * 1000), "p95": float(np.percentile(v, 95) * 1000)}
                                 for k, v in ((k, np.asarray(d, dtype=np.float64)) for k, d in self.split.items())
                                 if v.size},
        }


def atlas_row(frame: Frame) -> dict:
    """The recording's per-frame atlas fields: the two levels, the blend factor, exact or blend, the fade."""
    look = frame.lookup
    if look is None:
        return {"exact": True}
    if look.cells:  # a grid atlas: the cells blended and their shares
        return {"exact": look.exact, "cells": list(look.cells), "shares": [round(c, 6) for c in look.coeffs],
                "stand_in": look.stand_in, "fade": frame.fade}
    return {"exact": look.exact, "levels": [look.lo, look.hi], "blend": look.t, "stand_in": look.stand_in,
            "fade": frame.fade}


class Presenter:
    """Owned by the main thread (NB: nothing here is touched by another thread)."""

    def __init__(self, cfg: Config, *, levels: int, display: Display | None, rig: Rig, capture: Capture,
                 analysis: AnalysisThread, render_thread: RenderThread, recorder: Recorder | None, health: Health,
                 weights: Mailbox[WeightSample], frames: Mailbox[Frame], views: Mailbox[AtlasView],
                 random_weights: bool, stop: threading.Event, routes: LiveRoutes | None = None,
                 tempo: LiveTempo | None = None) -> None:
        self.cfg = cfg
        self.levels = levels
        self.display = display
        self.rig = rig
        self.capture = capture
        self.analysis = analysis
        self.render_thread = render_thread
        self.recorder = recorder
        self.health = health
        self.weights, self.frames, self.views = weights, frames, views
        self.random_weights = random_weights
        self.stop = stop
        self.routes = routes  # routed words: the display looks the atlas up at their weight vector
        self.stats = Stats()
        self.tempo = tempo if tempo is not None and tempo.on else None  # the HUD's beat, the rows' beat and bar
        t = cfg.tempo
        quantised = self.tempo is not None and t.quantise != "off"
        # atlas mode: what is on screen; with --quantise a new atlas waits for its beat or bar line
        self.screen = AtlasScreen(cfg.live.fade_s, start_at=(lambda now: tempo.change_start(
            now, t.quantise, t.lookahead_ms / 1000.0, cfg.live.fade_s)) if quantised and tempo is not None else None)
        self.sample: WeightSample | None = None  # the newest weight
        self._picture_key: tuple | None = None  # what the window shows (skip re-uploading the same picture)
        self._last_hud = 0.0
        self.on_shown: Callable[[np.ndarray, float], None] | None = None  # --web: the page's preview (live/web_feed.py)

    # ------------------------------------------------------------------ one refresh
    def refresh(self, exact_wait: float) -> None:
        """Atlas mode: the blend for the newest weight; ``--levels 0``: the newest exact frame (waiting up to
        ``exact_wait`` s for one)."""
        if self.levels:
            self._refresh_atlas()
        else:
            self._refresh_exact(exact_wait)

    def _refresh_exact(self, wait: float) -> None:
        frame = self.frames.get(timeout=wait)
        if frame is not None and not self.rig.frozen:
            self._show(frame, frame.image, True)
        else:
            self._idle_hud()

    def _refresh_atlas(self) -> None:
        now = time.monotonic()
        view = self.views.get(timeout=0)
        if view is not None:
            self.screen.offer(view, now)
        sample = self.weights.get(timeout=0)
        if sample is not None:
            self.sample = sample
        sample = self.sample
        at = (sample.weight if self.routes is None else point(self.routes, sample)) if sample is not None else 0.0
        pic = self.screen.picture(at, now) if sample is not None and not self.rig.frozen else None
        if pic is None or sample is None:  # nothing rendered yet, no sound yet, or frozen
            self._idle_hud()
            return
        look, v = pic.lookup, pic.view
        key = (id(v.atlas), look.lo, look.hi, look.t, look.cells, look.coeffs, pic.fade)
        new_picture = key != self._picture_key
        self._picture_key = key
        frame = Frame(pic.image, sample, v.words, v.prompt, 0.0, v.scene, look, pic.fade, ready_time=time.monotonic())
        self._show(frame, pic.image, new_picture)

    def _show(self, frame: Frame, image: np.ndarray, new_picture: bool) -> None:
        """Put ``frame`` on screen (window, video outputs, recording) and count it."""
        if self.display is not None:
            if new_picture:
                self.display.set_picture(image)
            hud = self.hud(time.monotonic())
            self.display.draw(hud)
            self._last_hud = time.monotonic()
            if self.cfg.video_out.hud and self.rig.video_out is not None:
                image = self.display.picture_with_hud(image, hud)
        shown = time.monotonic()
        latency = shown - frame.sample.capture_time
        # after a file input's end no newer sound exists: the age of the last sound is not a latency
        self.stats.add(shown, None if self.capture.finished.is_set() else latency,
                       frame.render_s > 0 or frame.lookup is not None, latency_split(frame, shown))
        self.rig.shown(frame, latency, image)
        if self.on_shown is not None:
            self.on_shown(image, shown)
        if self.recorder is not None:  # every refresh: the recorder's frame grid picks the video's frames
            routes = route_row(self.routes, frame.sample) if self.routes is not None else {}
            beat = self.tempo.row(shown) if self.tempo is not None else {}
            self.recorder.add(frame, shown, {**self.rig.row(frame), **atlas_row(frame), **routes, **beat})

    def _idle_hud(self) -> None:
        if self.display is not None and time.monotonic() - self._last_hud > HUD_IDLE_S:
            self.display.draw(self.hud(time.monotonic()))  # keep the level meter and status moving
            self._last_hud = time.monotonic()

    # ------------------------------------------------------------------ the HUD
    def hud(self, now: float) -> HudInfo:
        from aadiff_live.live.display import HudInfo

        s = self.analysis.latest
        lat = self.stats.recent_latency
        notes = self.rig.hud_lines()
        if self.random_weights:
            notes.append("random weights (--model tiny): abstract fields, not imagery")
        rt = self.render_thread
        return HudInfo(fps=self.stats.fps(now), render_ms=rt.last_render_s * 1000, atlas=self.atlas_status(),
                       latency_ms=float(np.median(lat)) * 1000 if lat else None,
                       latency_split_ms=self.stats.recent_split_ms(),
                       level_db=s.rms_db if s else -120.0, gate_db=self.cfg.live.gate_db, words=tuple(rt.words),
                       weight=s.weight if s else 0.0, gain=self.analysis.gain, input_status=self.capture.status,
                       prompt=rt.prompt, frozen=self.rig.frozen, notes=notes, alerts=self.health.alerts(),
                       routes=hud_bars(self.routes, s) if self.routes is not None else [],
                       tempo=self.tempo.status(now) if self.tempo is not None else None)

    def atlas_status(self) -> str:
        """``atlas 12/33`` (the atlas being filled); ``, next 5/33`` while a new one fills behind the one on screen."""
        if not self.levels:
            return "exact"
        cur = self.screen.view
        target = self.render_thread.target
        if cur is None:
            return f"atlas {target.atlas.n_filled}/{self.levels}" if target is not None else "atlas filling"
        out = f"atlas {cur.atlas.n_filled}/{self.levels}"
        if target is not None and target.atlas is not cur.atlas:
            out += f", next {target.atlas.n_filled}/{self.levels}"
        return out

    def show_fault(self, message: str, seconds: float = 2.0) -> None:
        """Keep ``message`` on the window for ``seconds`` (or until it is closed) before the app quits."""
        if self.display is None:
            return
        self.display.message = message
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self.display.poll().quit:
                break
            self.display.draw(self.hud(time.monotonic()))
            self.stop.wait(0.05)
