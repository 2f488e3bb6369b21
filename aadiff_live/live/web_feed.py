"""What the display loop hands the web page (``--web``): a status snapshot a few times a second, the history
of the last minute, and the newest shown picture for the preview while a page watches.

Owned by the main thread (NB: it reads only what the main thread owns, or single fields the other threads
mark ``NB``). Its cost per refresh is one comparison of times; a snapshot (the HUD's own figures, the
latency quantiles, a copy of the history) is built :data:`PUBLISH_HZ` times a second; the JPEG is encoded
on the preview thread (web/preview.py), never here.
"""

from __future__ import annotations

import itertools
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aadiff_live.web.board import Board, Snapshot

if TYPE_CHECKING:
    from aadiff_live.analysis.routes import LiveRoutes
    from aadiff_live.control.params import ControlInbox
    from aadiff_live.live.analysis_thread import AnalysisThread
    from aadiff_live.live.capture import Capture
    from aadiff_live.live.display import HudInfo
    from aadiff_live.live.health import Health
    from aadiff_live.live.present import Presenter
    from aadiff_live.live.recorder import Recorder
    from aadiff_live.live.render_thread import RenderThread
    from aadiff_live.live.rig import Rig
    from aadiff_live.web.preview import PreviewEncoder
    from aadiff_live.web.server import WebServer
    from aadiff_live.web.settings import WebConfig

PUBLISH_HZ = 5.0
HISTORY_HZ = 10.0
HISTORY_S = 60.0
LATENCY_FRAMES = 600  # the latency quantiles are over this many of the newest frames
REFUSED_SHOWN_S = 30.0  # a refused control stays on the page this long


def _r(x: float | None, nd: int = 3) -> float | None:
    return None if x is None or not np.isfinite(x) else round(float(x), nd)


class WebFeed:
    def __init__(self, board: Board, preview: PreviewEncoder, *, preview_fps: float, presenter: Presenter,
                 analysis: AnalysisThread, capture: Capture, rig: Rig, render_thread: RenderThread, health: Health,
                 recorder: Recorder | None, routes: LiveRoutes | None) -> None:
        self.board, self.preview = board, preview
        self.preview_period = 1.0 / preview_fps
        self.presenter, self.analysis, self.capture, self.rig = presenter, analysis, capture, rig
        self.render_thread, self.health, self.recorder, self.routes = render_thread, health, recorder, routes
        self.history: deque[list[float]] = deque(maxlen=int(HISTORY_S * HISTORY_HZ))
        self.started: float | None = None  # NB: read by the web thread (uptime)
        self._next_publish = 0.0
        self._next_history = 0.0
        self._next_preview = 0.0

    # ------------------------------------------------------------------ per refresh (display thread)
    def shown(self, image: np.ndarray, now: float) -> None:
        """A picture was shown: the preview thread gets it if a page watches and the preview is due."""
        if now >= self._next_preview and self.board.preview_wanted(now):
            self._next_preview = now + self.preview_period
            self.preview.post(image)  # a reference: shown pictures are never written to afterwards

    def tick(self, now: float, *, running: bool, display_late: int) -> None:
        if self.started is None:
            self.started = now
        if now >= self._next_history:
            self._next_history = now + 1.0 / HISTORY_HZ
            s = self.analysis.latest
            if s is not None:
                weights = self.routes.weights(s.sources) if self.routes is not None else [s.weight]
                self.history.append([round(now - self.started, 2), round(float(s.normalised), 4),
                                     *(round(float(w), 4) for w in weights)])
        if now >= self._next_publish or not running:
            self._next_publish = now + 1.0 / PUBLISH_HZ
            self.board.publish(Snapshot(now, running, self.status(now, display_late)))

    # ------------------------------------------------------------------ the snapshot
    def tempo(self, now: float, hud: HudInfo) -> dict[str, Any]:
        """BPM (None until the tempo is known, and with --tempo off) and the HUD's tempo line."""
        tempo = self.presenter.tempo
        reading = tempo.reading(now) if tempo is not None else None
        return {"bpm": _r(reading.bpm, 1) if reading is not None else None,
                "tempo": hud.tempo[0].strip() if hud.tempo else None}

    def status(self, now: float, display_late: int) -> dict[str, Any]:
        hud = self.presenter.hud(now)
        stats = self.presenter.stats
        lat = np.fromiter(itertools.islice(reversed(stats.latency), LATENCY_FRAMES), dtype=np.float64)
        rt, rig, an = self.render_thread, self.rig, self.analysis
        ignored = rig.inbox.ignored
        last = ignored.last
        routes = [{"label": label, "weight": _r(w), "fill": _r(f)} for label, w, f in hud.routes]
        rec = None
        if self.recorder is not None:
            r = self.recorder
            cur = r.current_path
            rec = {"path": str(cur) if cur is not None else None, "segments": len(r.closed) + (cur is not None),
                   "alert": r.alert}
        words = list(self.routes.words) if self.routes is not None else list(hud.words)
        return {
            "running": True,
            "prompt": hud.prompt, "words": words, "weight": _r(hud.weight), "routes": routes,
            "gain": _r(hud.gain), "w_min": _r(an.w_min), "w_max": _r(an.w_max),
            "seed": rig.request.seed, "scene": rig.scene[1] if rig.scene else None,
            "scenes": [s.name for s in rig.scenes], "frozen": hud.frozen,
            "fps": _r(hud.fps, 1), "render_ms": _r(hud.render_ms, 1), "atlas": hud.atlas,
            "latency_ms_p50": _r(float(np.percentile(lat, 50)) * 1000, 1) if lat.size else None,
            "latency_ms_p95": _r(float(np.percentile(lat, 95)) * 1000, 1) if lat.size else None,
            "level_db": _r(hud.level_db, 1), "gate_db": _r(hud.gate_db, 1),
            "input": self.capture.description, "input_status": hud.input_status,
            **self.tempo(now, hud),
            "alerts": list(hud.alerts), "notes": list(hud.notes),
            "recording": rec, "preview_fps": round(1.0 / self.preview_period, 2),
            "refused": f"{last[1]}: {last[2]}" if last is not None and now - last[0] < REFUSED_SHOWN_S else None,
            "history": list(self.history),
            "history_labels": ["envelope", *(words if self.routes is not None else ["weight"])],
            "counters": {
                "frames_shown": stats.n_shown, "display_late": display_late,
                "recording_dropped": self.recorder.dropped if self.recorder is not None else 0,
                "renders": rt.n_rendered, "render_stalls": self.health.render_stalls,
                "thread_restarts": {s.name: s.restarts for s in self.health.supervisors()},
                "input_overflows": self.capture.overflows,
                "controls_received": rig.inbox.received, "controls_refused": ignored.total,
            },
            "time_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        }


def open_web(wcfg: WebConfig, inbox: ControlInbox, *, record: str | None,
             recording_files: Callable[[], list[Path]], started: Callable[[], float | None]) -> WebServer:
    """The web server for ``web.listen`` (bound now, started with the show), with its board and preview thread."""
    from aadiff_live.web.preview import PreviewEncoder
    from aadiff_live.web.server import WebServer
    from aadiff_live.web.settings import parse_listen

    host, port = parse_listen(wcfg.listen or "0")
    return WebServer(Board(), inbox, host=host, port=port, token=wcfg.token, preview=PreviewEncoder(),
                     record_dir=Path(record).resolve().parent if record else None,
                     recording_files=recording_files, started=started)
