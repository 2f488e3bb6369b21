"""``aadiff-live [live]``: sound in, picture out, in real time (docs/design.md §4).

    capture (PortAudio callback or file feeder) --copy--> ring buffer
      analysis thread: 10 ms hop -> causal envelope -> AGC, gate, gain -> weight   (latest-value mailbox)
      CLAP thread: every few s, rank the prompt's words on the last few s          (latest-value mailbox)
    renderer thread: fills the frame atlas for the prompt, words and seed          (latest-value mailbox)
    main thread, at --display-fps: the atlas blend for the newest weight -> window and HUD (or headless),
      cross-fades to a new atlas, hands shown frames to the recorder thread
    (--levels 0: the renderer renders each new weight exactly and the main thread shows the newest frame)

This module builds the show and runs its life: :class:`LiveApp` builds every piece in its
constructor (the input and the control ports first, so their errors come before the slow model
load), :meth:`LiveApp.run` starts the threads, runs the display loop and shuts down. A refresh is
presented by :class:`~aadiff_live.live.present.Presenter`; faults and the exit code are kept by
:class:`~aadiff_live.live.health.Health`; keys, OSC and MIDI change the show through the
:class:`~aadiff_live.live.rig.Rig`. The messages the threads pass are in live/messages.py.

Every thread is non-daemon, watches one stop Event and is joined with a timeout at quit.
"""

from __future__ import annotations

import copy
import logging
import signal
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from aadiff_live.analysis.routes import LiveRoutes, route_smoothing
from aadiff_live.analysis.sources import live_window
from aadiff_live.config import Config
from aadiff_live.errors import UserError
from aadiff_live.live.analysis_thread import AnalysisThread
from aadiff_live.live.capture import Capture, FileCapture, open_capture
from aadiff_live.live.clap_thread import ClapThread
from aadiff_live.live.health import Health
from aadiff_live.live.messages import AtlasView, Frame, RenderRequest, WeightSample, WordChoice
from aadiff_live.live.pacing import Pacer
from aadiff_live.live.present import Presenter
from aadiff_live.live.render_thread import RenderThread
from aadiff_live.live.rig import Envelope, Rig
from aadiff_live.live.routing import beat_locked_sources, live_routes, point
from aadiff_live.live.tempo import LiveTempo
from aadiff_live.live.watchdog import StallWatchdog
from aadiff_live.mailbox import Mailbox
from aadiff_live.rendering.atlas import check_fits, default_batch
from aadiff_live.tokens.choose import initial_words, require_content_words
from aadiff_live.tokens.words import (
    check_prompt,
    content_words,
    parse_pinned,
    reachable_scores,
    require_positions,
    route_groups,
)

log = logging.getLogger(__name__)
JOIN_S = 1.0
FILE_TAIL_S = 0.3  # after a file input ends, let the last frames through
LATENCY_BUDGET_MS = 45.0
GIL_SWITCH_S = 0.001


@dataclass(frozen=True)
class RigLink:
    """What the rig may change in the running show (implements :class:`~aadiff_live.live.rig.Show`)."""

    envelope: Envelope
    tokenizer: Any
    n_tokens: int
    post: Callable[[RenderRequest], None]
    show_hud: Callable[[bool], None]
    propose_tempo: Callable[[float], str | None]


class LiveApp:
    """Builds the show (in the constructor) and runs it (:meth:`run`); :func:`run_live` is the command."""

    def __init__(self, cfg: Config, *, prompt: str, no_display: bool, duration: float | None,
                 record: str | None, monitor: bool, prebuilt=None, stats_out: dict | None = None,
                 config_path: Path | None = None, image: str | None = None) -> None:
        self.cfg = cfg
        self.image = image
        self.prompt = check_prompt(prompt)
        self.duration = duration
        self.record = record
        self.stats_out = stats_out
        self.pinned = parse_pinned(cfg.tokens.tokens, self.prompt)
        routes = live_routes(cfg, self.prompt)  # each routed word its own weight from its source
        self.routes = LiveRoutes(routes) if routes else None
        self.auto = cfg.routes == "auto"  # CLAP gives each band its word, live
        if self.pinned is None and self.routes is None:
            require_content_words(self.prompt)
        if duration is not None and duration <= 0:
            raise UserError("--duration must be positive (seconds)")
        if record:
            from aadiff_live.output.video import check_writable

            check_writable(Path(record), "--record")
        if image is not None and not Path(image).is_file():
            raise UserError(f"image {image} not found; check the path passed to --image")
        if prebuilt is None:
            from aadiff_live.rendering.build import check_image_args

            check_image_args(cfg, image)
        self.stop = threading.Event()
        self.running = threading.Event()  # set while the display loop runs with every thread started (tests, tools)
        live, tcfg, acfg = cfg.live, cfg.tokens, cfg.atlas
        # the input first: a missing device is reported before a model is loaded
        self.capture: Capture = open_capture(live.input, samplerate=live.samplerate, blocksize=live.blocksize,
                                             ring_seconds=max(live.clap_window_s * 2 + 2.0, 8.0), monitor=monitor,
                                             loop=live.loop, wait_s=live.wait_for_device_s)
        # the tempo (a Link session, MIDI clock for the --midi port) before the model loads too
        if cfg.tempo.quantise != "off" and cfg.tempo.source == "off":
            raise UserError(f"--quantise {cfg.tempo.quantise} lands changes on the beat, but --tempo is off; use "
                            "--tempo audio, midi or link, or --quantise off")
        if cfg.tempo.quantise != "off" and not cfg.atlas.levels:
            raise UserError(f"--quantise {cfg.tempo.quantise} holds a new atlas until its line, and --levels 0 has no "
                            "atlas; drop --levels 0 or --quantise")
        sr = self.capture.ring.samplerate
        self.tempo = LiveTempo(cfg.tempo, hz=live.analysis_hz, samplerate=sr, n_fft=live_window(sr, cfg.envelope),
                               names=beat_locked_sources(cfg), midi_port=cfg.midi.port,
                               in_use=cfg.tempo.quantise != "off")
        # OSC, MIDI and video out next (no listener unless asked): a missing port is reported before a model loads
        self.rig = Rig(cfg, prompt=self.prompt, pinned=self.pinned, has_clap=self.pinned is None and not routes,
                       headless=no_display, config_path=config_path, routes=self.routes,
                       route_words=content_words(self.prompt) if self.auto else (), midi_clock=self.tempo.midi)
        self.web = None
        self.web_feed = None
        try:
            if cfg.web.listen is not None:  # the page's port next: a port in use is reported before the model loads
                from aadiff_live.live.web_feed import open_web

                self.web = open_web(cfg.web, self.rig.inbox, record=record, recording_files=self._recording_files,
                                    started=lambda: self.web_feed.started if self.web_feed is not None else None)
            self.clap_model: str | None = None
            self.ranker = None
            if self.pinned is None and (self.routes is None or self.auto):  # CLAP first: a missing CLAP checkpoint is reported before the slow model load
                from aadiff_live.models.loading import IN_PROCESS_RANDOM
                from aadiff_live.tokens.clap import ClapRanker, clap_model_for

                random = prebuilt[0].is_tiny if prebuilt is not None else cfg.model.model in IN_PROCESS_RANDOM
                self.clap_model = clap_model_for(random, tcfg.clap_model)
                self.ranker = ClapRanker(self.clap_model)
            if prebuilt is not None:
                self.components, self.renderer = prebuilt
            else:
                from aadiff_live.rendering.build import build_renderer

                self.components, self.renderer = build_renderer(cfg, self.prompt, image)
            # the main thread's own tokenizer copy, to check typed prompts (the renderer thread owns the original)
            self.word_tokenizer = copy.deepcopy(self.components.tokenizer)
            if self.pinned is not None:
                require_positions(self.word_tokenizer, self.prompt, self.pinned, self.renderer.n_tokens)
            if self.routes is not None and self.auto:  # the first words: the ones inside the 77-token window
                ok = list(reachable_scores(self.word_tokenizer, self.prompt,
                                           dict.fromkeys(content_words(self.prompt), 0.0), 0))
                if len(ok) < len(routes):
                    raise UserError(f"--route auto: {len(ok)} word(s) of the prompt lie inside the text encoder's "
                                    f"window, fewer than the {len(routes)} bands to route; shorten the prompt")
                self.routes.set_words(ok[:len(routes)])
            if self.routes is not None:
                route_groups(self.word_tokenizer, self.prompt, self.routes.words, self.renderer.n_tokens)
                words = self.routes.words
                log.info("routes: %s", "; ".join(f"{r.label} (w in [{r.w_min:g}, {r.w_max:g}], gain {r.gain:g})"
                                                 for r in self.routes.routes))
            else:
                words = self.pinned or initial_words(self.prompt, tcfg.top_k, self.word_tokenizer)
            if self.ranker is not None:
                log.info("CLAP (%s) re-ranks the words every %.0f s on the last %.0f s; until then: %s",
                         self.clap_model, live.clap_every_s, live.clap_window_s, ", ".join(words))
            else:
                log.info("weighted word%s: %s (pinned)", "s" if len(words) > 1 else "", ", ".join(words))
            self.levels = acfg.levels
            self.grid_levels = acfg.levels_2 if len(routes) == 2 else acfg.levels_3
            if self.levels:
                shape = (self.grid_levels,) * len(routes) if len(routes) > 1 else (self.levels,)
                check_fits(shape, self.renderer.width, self.renderer.height, acfg.mb)
            self._build_threads(words)
            self.display = None
            if not no_display:
                from aadiff_live.live.display import Display

                self.display = Display(self.renderer.width, self.renderer.height, window_size=live.window_size,
                                       fullscreen=live.fullscreen, display=live.display, hud=live.hud,
                                       vsync=live.vsync)
            self.health = Health(self.watchdog, analysis=self.analysis, render_thread=self.render_thread,
                                 clap=self.clap, recorder=self.recorder, more_alerts=self._more_alerts)
            # with vsync each refresh starts just before the screen's (live/pacing.py); else a timer at --display-fps
            self.pacer = Pacer(live.display_fps, vsync=self.display is not None and self.display.vsync,
                               late_latch=live.late_latch)
            self.present = Presenter(cfg, levels=self.levels, display=self.display, rig=self.rig,
                                     capture=self.capture, analysis=self.analysis, render_thread=self.render_thread,
                                     recorder=self.recorder, health=self.health, weights=self.weights,
                                     frames=self.frames, views=self.views, random_weights=self.components.is_tiny,
                                     stop=self.stop, routes=self.routes, tempo=self.tempo)
            if self.web is not None:
                from aadiff_live.live.web_feed import WebFeed

                self.web_feed = WebFeed(self.web.board, self.web.preview, preview_fps=cfg.web.preview_fps,
                                        presenter=self.present, analysis=self.analysis, capture=self.capture,
                                        rig=self.rig, render_thread=self.render_thread, health=self.health,
                                        recorder=self.recorder, routes=self.routes)
                self.present.on_shown = self.web_feed.shown
        except BaseException:
            self.rig.close()
            if self.web is not None:
                self.web.close()
            raise

    def _build_threads(self, words: list[str]) -> None:
        cfg, live, acfg, tcfg = self.cfg, self.cfg.live, self.cfg.atlas, self.cfg.tokens
        ring = self.capture.ring
        self.weights: Mailbox[WeightSample] = Mailbox()
        self.choices: Mailbox[WordChoice] = Mailbox()
        self.requests: Mailbox[RenderRequest] = Mailbox()
        self.frames: Mailbox[Frame] = Mailbox()
        self.views: Mailbox[AtlasView] = Mailbox()
        osc_out = self.rig.osc_out
        self.analysis = AnalysisThread(ring, cfg.envelope, live, self.weights, self.stop, features=cfg.features,
                                       smoothing_for=route_smoothing(cfg.envelope, self.routes.routes)
                                       if self.routes is not None else None,
                                       on_hop=(lambda s: osc_out.send_sources(s.sources, s.onsets))
                                       if osc_out is not None else None, tempo=self.tempo)
        if osc_out is not None:
            self.tempo.on_beat = osc_out.send_beat  # /aadiff/beat and /aadiff/bpm, from the analysis thread
        analysis = self.analysis
        self.watchdog = StallWatchdog(live.stall_s)
        self.clap: ClapThread | None = None
        if self.ranker is not None:
            auto = self.routes if self.auto else None  # --route auto: each band ranked on its own sound
            self.clap = ClapThread(ring, self.ranker, self.prompt, top_k=tcfg.top_k, every_s=live.clap_every_s,
                                   window_s=live.clap_window_s, margin=live.clap_hysteresis,
                                   template=tcfg.text_template, out=self.choices, stop=self.stop,
                                   tokenizer=self.components.tokenizer, retry_max_s=live.clap_retry_max_s,
                                   restarts=live.thread_restarts,
                                   bands={r.source: cfg.features.bands[r.source] for r in auto.routes}
                                   if auto is not None else None, words=auto.words if auto is not None else ())
        self.render_thread = RenderThread(self.components, self.renderer, prompt=self.prompt, words=words,
                                          pinned=self.pinned is not None, top_k=tcfg.top_k, weights=self.weights,
                                          choices=self.choices, requests=self.requests, frames=self.frames,
                                          stop=self.stop, levels=self.levels, atlas_mb=acfg.mb,
                                          batch=acfg.batch or default_batch(self.renderer.backend), views=self.views,
                                          w_range=lambda: (analysis.w_min, analysis.w_max),
                                          newest_weight=self._newest_point, watchdog=self.watchdog,
                                          restarts=live.thread_restarts, routes=self.routes,
                                          grid_levels=self.grid_levels, routes_follow_clap=self.auto)
        if self.levels and acfg.prefill_scenes:
            seed = cfg.model.seed
            self.render_thread.prefill = [RenderRequest(s.prompt, tuple(s.words) if s.words else None,
                                                        s.seed if s.seed is not None else seed, s.name)
                                          for s in self.rig.scenes]
        self.recorder = None
        if self.record:
            from aadiff_live.live.recorder import Recorder

            seg = live.segment_minutes
            self.recorder = Recorder(self.record, ring, cfg.envelope.fps, self.renderer.width,
                                     self.renderer.height, self.stop, segment_s=seg * 60.0 if seg else None,
                                     settings=self._settings)

    def _newest_point(self) -> float | tuple[float, ...] | None:
        """For the renderer's fill order: the newest weight (or the routes' weight vector)."""
        s = self.analysis.latest
        if s is None:
            return None
        return s.weight if self.routes is None else point(self.routes, s)

    def _recording_files(self) -> list:
        """For /metrics (the web thread): the recording's files, finished ones first."""
        r = self.recorder
        if r is None:
            return []
        cur = r.current_path
        return [*list(r.closed), *([cur] if cur is not None else [])]

    def threads(self) -> list[threading.Thread]:
        ts: list[threading.Thread] = [self.analysis, self.render_thread]
        if self.clap is not None:
            ts.append(self.clap)
        if self.recorder is not None:
            ts.append(self.recorder)
        return ts

    # ------------------------------------------------------------------ what the rig may change (RigLink)
    def _post_render_request(self, req: RenderRequest) -> None:
        """From the display thread (via the rig): the renderer's new prompt / words / seed; CLAP ranks a new prompt."""
        self.requests.put(req)
        if self.clap is not None:
            self.clap.set_prompt(req.prompt)

    def _more_alerts(self) -> list[str]:
        """The rig's alerts (a failed video output) and the tempo's (a clock lost: freewheeling)."""
        tempo = self.tempo.alert(time.monotonic())
        return self.rig.alerts() + ([tempo] if tempo else [])

    def _show_hud(self, on: bool) -> None:
        if self.display is not None:
            self.display.hud = on

    # ------------------------------------------------------------------ main loop
    def _loop(self) -> str:
        """Until quit; returns why it stopped. Each pass is one display refresh."""
        start = time.monotonic()
        file_end: float | None = None
        pacer = self.pacer
        while True:
            if self.stop.is_set():
                return "stopped"
            if self.render_thread.failed.is_set():
                return "renderer failed"
            now = time.monotonic()
            self.health.check_stall(now)
            self.tempo.check(now)
            if self.duration is not None and now - start >= self.duration:
                return "duration reached"
            if self.capture.finished.is_set():
                file_end = file_end or now
                if now - file_end >= FILE_TAIL_S:
                    return "input file ended"
            if self.display is not None:
                act = self.display.poll()
                if act.quit:
                    return "quit"
                self.rig.keys(act)
                if act.new_prompt is not None:
                    self.display.message = self.rig.type_prompt(act.new_prompt)
            self.rig.poll()  # OSC, MIDI, scene keys, the web page: newest of each, once per iteration
            if self.web_feed is not None:
                self.web_feed.tick(now, running=True, display_late=self.pacer.behind)
            if not self.levels:
                self.present.refresh(1 / 60 if self.display is not None else 0.1)
                continue
            if self.display is not None:
                self.display.flipped = None
            self.present.refresh(0.0)
            flipped = self.display.flipped if self.display is not None else None
            pacer.refreshed(now, *(flipped or (None, None)))  # now: this pass began (events, OSC included)
            wait = pacer.wait_s(time.monotonic())
            if wait > 0:
                self.stop.wait(wait)

    def _shutdown(self) -> list[str]:
        self.stop.set()
        self.capture.stop()
        self.rig.close()
        if self.web is not None:
            self.web.close()
        stuck = []
        deadline = time.monotonic() + JOIN_S
        for t in self.threads():
            if t.is_alive() or t.ident is not None:
                t.join(timeout=max(0.05, deadline - time.monotonic()))
                if t.is_alive():
                    stuck.append(t.name)
        if stuck:
            log.warning("thread(s) still running 1 s after quit: %s; waiting for them", ", ".join(stuck))
            for t in self.threads():
                t.join(timeout=30.0)
                if t.is_alive():
                    log.error("thread %s did not stop; the process exits when it does", t.name)
        return stuck

    def _settings(self) -> dict:
        e, m, live = self.cfg.envelope, self.cfg.model, self.cfg.live
        r = self.renderer
        return {
            "prompt": self.prompt, "input": self.capture.description, "live": True, "image": self.image,
            "invert": r.invert, "strength": m.strength if self.image is not None and not r.invert else None,
            "fps": e.fps, "window": e.window, "smoothing": self.analysis.mode, "attack_ms": e.attack_ms,
            "release_ms": e.release_ms, "w_min": e.w_min, "w_max": e.w_max, "gain": self.analysis.gain,
            "n_fft": e.n_fft, "agc_release_s": live.agc_release_s, "gate_db": live.gate_db,
            "model": self.components.name, "random_weights": self.components.is_tiny, "steps": r.steps,
            "guidance": r.guidance, "seed": m.seed, "width": r.width, "height": r.height,
            "backend": r.backend.description, "clap_model": self.clap_model,
            "pinned": self.pinned, "top_k": self.cfg.tokens.top_k, "clap_every_s": live.clap_every_s,
            "clap_window_s": live.clap_window_s, "clap_hysteresis": live.clap_hysteresis,
            "positions": list(self.render_thread.positions), "words": list(self.render_thread.words),
            "levels": self.levels, "atlas_mb": self.cfg.atlas.mb, "display_fps": live.display_fps,
            "analysis_hz": live.analysis_hz, "fade_s": live.fade_s, **self.tempo.settings(),
            "route_auto": self.auto,
            "routes": [{"source": r.source, "word": r.word, "w_min": r.w_min, "w_max": r.w_max, "gain": r.gain,
                        "attack_ms": r.attack_ms, "release_ms": r.release_ms}
                       for r in (self.routes.routes if self.routes is not None else ())],
            "grid": [self.grid_levels] * len(self.routes.routes) if self.routes and len(self.routes.routes) > 1
            else None,
            **self.rig.settings(),
        }

    def run(self) -> int:
        """Start the threads, run the display loop until quit, shut down; the exit code (docs: live.health)."""
        if isinstance(self.capture, FileCapture) and self.duration is None and not self.capture.loop:
            log.info("stops when the file ends%s", f" ({self.capture.duration:.1f} s)"
                     if self.capture.duration is not None else "")
        reason = "not started"
        started = time.monotonic()
        old_term = None
        if threading.current_thread() is threading.main_thread():
            old_term = signal.signal(signal.SIGTERM, lambda *_: self.stop.set())
        threads_started = time.monotonic()  # ~ the renderer's start, from which atlas_fill_s counts
        # the renderer's Python code between torch calls holds the GIL: hand it over every 1 ms (default 5 ms), so
        # the display and analysis threads wait at most that long for it
        switch = sys.getswitchinterval()
        sys.setswitchinterval(GIL_SWITCH_S)
        try:
            for t in self.threads():
                t.start()
            self.rig.start(RigLink(self.analysis, self.word_tokenizer, self.renderer.n_tokens,
                                   self._post_render_request, self._show_hud, self.tempo.propose))
            if self.web is not None:
                self.web.preview.start()
                self.web.start()
            self.capture.start()
            started = time.monotonic()
            self.running.set()
            log.info("live: %s%s", "headless" if self.display is None else "window open (H: HUD, Q: quit)",
                     f", recording to {self.record}" if self.record else "")
            reason = self._loop()
        except KeyboardInterrupt:
            reason = "Ctrl-C"
        finally:
            self.running.clear()
            failure = self.health.renderer_failure()
            if failure is not None:
                self.present.show_fault(failure + " - quitting")
            summary, finish_failed = self._finish(reason, started, switch, old_term)
        if self.stats_out is not None:
            self.stats_out.update(summary)
            self.stats_out["latencies_s"] = list(self.present.stats.latency)
            self.stats_out["shown_s"] = [t - threads_started for t in self.present.stats.shown_at]  # as atlas_fill_s
            self.stats_out["latency_split_s"] = {k: list(v) for k, v in self.present.stats.split.items()}
        lat_m, lat_p = summary["latency_ms_median"], summary["latency_ms_p95"]
        log.info("stopped (%s): %d frames shown at %.1f fps, audio-to-photon latency median %s, p95 %s "
                 "(budget %.0f ms)", reason, summary["frames_shown"], summary["fps"],
                 "-" if lat_m is None else f"{lat_m:.0f} ms", "-" if lat_p is None else f"{lat_p:.0f} ms",
                 LATENCY_BUDGET_MS)
        return self.health.exit_code(finish_failed=finish_failed, record=self.record)

    def _finish(self, reason: str, started: float, switch: float, old_term) -> tuple[dict, bool]:
        """Stop and join the threads, close the recording and the window, restore SIGTERM; (the summary, whether
        finishing the recording failed)."""
        stuck = self._shutdown()
        sys.setswitchinterval(switch)
        rt = self.render_thread
        summary: dict = {**self.present.stats.summary(), "frames_rendered": rt.n_rendered,
                         "render_busy_s": rt.busy_s, "run_s": time.monotonic() - started,
                         "stopped_by": reason, "threads_stuck": stuck, "input_overflows": self.capture.overflows,
                         "weights_replaced_unrendered": self.weights.dropped, "levels": self.levels,
                         "atlas_fill_s": rt.first_fill_s,
                         "stale_audio_skipped_s": self.analysis.skipped / self.capture.ring.samplerate,
                         "render_stalls": self.health.render_stalls, "tempo_freewheels": self.tempo.freewheels}
        finish_failed = False
        try:
            if self.recorder is not None:
                self.recorder.finish(summary)
        except Exception as exc:  # noqa: BLE001 - reported through the exit code; the rest still closes
            log.error("finishing the recording failed: %s: %s", type(exc).__name__, exc)
            finish_failed = True
        finally:
            try:
                if self.display is not None:
                    self.display.close()
            finally:
                if old_term is not None:
                    signal.signal(signal.SIGTERM, old_term)
        return summary, finish_failed


def run_live(cfg: Config, *, prompt: str, no_display: bool = False, duration: float | None = None,
             record: str | None = None, monitor: bool = False, prebuilt=None, stats_out: dict | None = None,
             config_path: Path | None = None, image: str | None = None) -> int:
    """The ``live`` command. ``prebuilt=(components, renderer)`` skips loading (benchmarks);
    ``stats_out`` receives the summary (fps, latency percentiles)."""
    app = LiveApp(cfg, prompt=prompt, no_display=no_display, duration=duration, record=record, monitor=monitor,
                  prebuilt=prebuilt, stats_out=stats_out, config_path=config_path, image=image)
    return app.run()
