"""``aadiff-live [live]``: sound in, picture out, in real time (docs/design.md §4).

    capture (PortAudio callback or file feeder) --copy--> ring buffer
      analysis thread: 10 ms hop -> causal envelope -> AGC, gate, gain -> weight   (latest-value mailbox)
      CLAP thread: every few s, rank the prompt's words on the last few s          (latest-value mailbox)
    renderer thread: fills the frame atlas for the prompt, words and seed          (latest-value mailbox)
    main thread, at --display-fps: the atlas blend for the newest weight -> window and HUD (or headless),
      cross-fades to a new atlas, hands shown frames to the recorder thread
    (--levels 0: the renderer renders each new weight exactly and the main thread shows the newest frame)

Every thread is non-daemon, watches one stop Event and is joined with a timeout at quit.
"""

from __future__ import annotations

import copy
import logging
import signal
import sys
import threading
import time
from collections import deque
from pathlib import Path

import numpy as np

from aadiff_live.config import Config
from aadiff_live.errors import UserError
from aadiff_live.live.analysis_thread import AnalysisThread
from aadiff_live.live.capture import Capture, FileCapture, open_capture
from aadiff_live.live.clap_thread import ClapThread, WordChoice, initial_words
from aadiff_live.live.render_thread import AtlasView, Frame, RenderThread
from aadiff_live.live.rig import RenderRequest, Rig
from aadiff_live.live.ring import WeightSample
from aadiff_live.live.screen import AtlasScreen
from aadiff_live.live.watchdog import StallWatchdog
from aadiff_live.mailbox import Mailbox
from aadiff_live.rendering.atlas import check_fits, default_batch
from aadiff_live.tokens.words import check_prompt, content_words, parse_pinned, require_positions

log = logging.getLogger(__name__)
JOIN_S = 1.0
FILE_TAIL_S = 0.3  # after a file input ends, let the last frames through
LATENCY_BUDGET_MS = 45.0
GIL_SWITCH_S = 0.001


class Stats:
    """Rolling numbers for the HUD and a bounded history for the summary (no growth over a long set)."""

    def __init__(self, history: int = 20000) -> None:
        self.shown: deque[float] = deque(maxlen=240)
        self.latency: deque[float] = deque(maxlen=history)
        self.shown_at: deque[float] = deque(maxlen=history)  # display time of each latency (benchmarks: steady state)
        self.recent_latency: deque[float] = deque(maxlen=30)
        self.rendered_latency: deque[float] = deque(maxlen=history)  # frames rendered for their weight
        self.n_shown = 0
        self.first_shown: float | None = None
        self.last_shown: float | None = None

    def add(self, shown: float, latency: float | None, rendered: bool = True) -> None:
        """A frame shown; ``latency`` None when no newer sound exists (after a file input's end)."""
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
        }


class LiveApp:
    """Wires the threads together; :func:`run_live` is the command."""

    def __init__(self, cfg: Config, *, prompt: str, no_display: bool, duration: float | None,
                 record: str | None, monitor: bool, prebuilt=None, stats_out: dict | None = None,
                 config_path: Path | None = None) -> None:
        self.cfg = cfg
        self.config_path = config_path  # the config file in use (MIDI learn writes there; None: ./config.yaml)
        self.prompt = check_prompt(prompt)
        self.no_display = no_display
        self.duration = duration
        self.record = record
        self.monitor = monitor
        self.prebuilt = prebuilt
        self.stats_out = stats_out
        self.stop = threading.Event()
        self.stats = Stats()
        self.screen = AtlasScreen(cfg.live.fade_s)  # atlas mode: what is on screen (NB: display thread only)
        self.sample: WeightSample | None = None  # the newest weight
        self._picture_key: tuple | None = None  # what the window shows (skip re-uploading the same picture)
        self._last_recorded = -1e9
        self._record_period = 0.999 / cfg.envelope.fps  # recordings keep the video rate, not the refresh rate
        self._last_hud = 0.0
        self.stalled = False  # the renderer has not made progress for live.stall_s (RENDER STALLED)
        self.render_stalls = 0
        self.pinned = parse_pinned(cfg.tokens.tokens, self.prompt)
        if self.pinned is None and not content_words(self.prompt):
            raise UserError(f"the prompt \"{self.prompt}\" has no content words to weight; add a noun such as 'fire'")
        if duration is not None and duration <= 0:
            raise UserError("--duration must be positive (seconds)")
        if record:
            from aadiff_live.output.video import check_writable

            check_writable(Path(record), "--record")

    # ------------------------------------------------------------------ set-up
    def _build(self) -> None:
        live = self.cfg.live
        ring_s = max(self.cfg.live.clap_window_s * 2 + 2.0, 8.0)
        # the input first: a missing device is reported before a model is loaded
        self.capture: Capture = open_capture(live.input, samplerate=live.samplerate, blocksize=live.blocksize,
                                             ring_seconds=ring_s, monitor=self.monitor, loop=live.loop,
                                             wait_s=live.wait_for_device_s)
        # OSC, MIDI and video out next (no listener unless asked): a missing port is reported before a model loads
        self.rig = Rig(self.cfg, prompt=self.prompt, pinned=self.pinned, has_clap=self.pinned is None,
                       headless=self.no_display, config_path=self.config_path)
        tcfg = self.cfg.tokens
        self.ranker = None
        if self.pinned is None:  # CLAP first: a missing CLAP checkpoint is reported before the slow model load
            from aadiff_live.models.loading import IN_PROCESS_RANDOM
            from aadiff_live.tokens.clap import ClapRanker, clap_model_for

            random = self.prebuilt[0].is_tiny if self.prebuilt is not None else self.cfg.model.model in IN_PROCESS_RANDOM
            self.clap_model = clap_model_for(random, tcfg.clap_model)
            self.ranker = ClapRanker(self.clap_model)
        if self.prebuilt is not None:
            self.components, self.renderer = self.prebuilt
        else:
            from aadiff_live.rendering.build import build_renderer

            self.components, self.renderer = build_renderer(self.cfg, self.prompt)
        # the main thread's own tokenizer copy, to check typed prompts (the renderer thread owns the original)
        self.word_tokenizer = copy.deepcopy(self.components.tokenizer)
        if self.pinned is not None:
            require_positions(self.word_tokenizer, self.prompt, self.pinned, self.renderer.n_tokens)
        words = self.pinned or initial_words(self.prompt, tcfg.top_k, self.word_tokenizer)
        if self.ranker is not None:
            log.info("CLAP (%s) re-ranks the words every %.0f s on the last %.0f s; until then: %s", self.clap_model,
                     live.clap_every_s, live.clap_window_s, ", ".join(words))
        else:
            log.info("weighted word%s: %s (pinned)", "s" if len(words) > 1 else "", ", ".join(words))
        ring = self.capture.ring
        self.weights: Mailbox[WeightSample] = Mailbox()
        self.choices: Mailbox[WordChoice] = Mailbox()
        self.requests: Mailbox[RenderRequest] = Mailbox()
        self.frames: Mailbox[Frame] = Mailbox()
        self.views: Mailbox[AtlasView] = Mailbox()
        osc_out = self.rig.osc_out
        self.analysis = AnalysisThread(ring, self.cfg.envelope, live, self.weights, self.stop, features=self.cfg.features,
                                       on_hop=osc_out.send_sources if osc_out is not None else None)
        acfg = self.cfg.atlas
        self.levels = acfg.levels
        if self.levels:
            check_fits(self.levels, self.renderer.width, self.renderer.height, acfg.mb)
        analysis = self.analysis
        self.watchdog = StallWatchdog(live.stall_s)
        self.clap = None
        if self.ranker is not None:
            self.clap = ClapThread(ring, self.ranker, self.prompt, top_k=tcfg.top_k, every_s=live.clap_every_s,
                                   window_s=live.clap_window_s, margin=live.clap_hysteresis,
                                   template=tcfg.text_template, out=self.choices, stop=self.stop,
                                   tokenizer=self.components.tokenizer, retry_max_s=live.clap_retry_max_s,
                                   restarts=live.thread_restarts)
        self.render_thread = RenderThread(self.components, self.renderer, prompt=self.prompt, words=words,
                                          pinned=self.pinned is not None, top_k=tcfg.top_k, weights=self.weights,
                                          choices=self.choices, requests=self.requests, frames=self.frames,
                                          stop=self.stop, levels=self.levels, atlas_mb=acfg.mb,
                                          batch=acfg.batch or default_batch(self.renderer.backend), views=self.views,
                                          w_range=lambda: (analysis.w_min, analysis.w_max),
                                          newest_weight=lambda: analysis.latest.weight if analysis.latest else None,
                                          watchdog=self.watchdog, restarts=live.thread_restarts)
        if self.levels and acfg.prefill_scenes:
            seed = self.cfg.model.seed
            self.render_thread.prefill = [RenderRequest(s.prompt, tuple(s.words) if s.words else None,
                                                        s.seed if s.seed is not None else seed, s.name)
                                          for s in self.rig.scenes]
        self.display = None
        if not self.no_display:
            from aadiff_live.live.display import Display

            self.display = Display(self.renderer.width, self.renderer.height, window_size=live.window_size,
                                   fullscreen=live.fullscreen, display=live.display, hud=live.hud, vsync=live.vsync)
        self.recorder = None
        if self.record:
            from aadiff_live.live.recorder import Recorder

            seg = live.segment_minutes
            self.recorder = Recorder(self.record, ring, self.cfg.envelope.fps, self.renderer.width,
                                     self.renderer.height, self.stop, segment_s=seg * 60.0 if seg else None,
                                     settings=self._settings)

    def threads(self) -> list[threading.Thread]:
        ts: list[threading.Thread] = [self.analysis, self.render_thread]
        if self.clap is not None:
            ts.append(self.clap)
        if self.recorder is not None:
            ts.append(self.recorder)
        return ts

    # ------------------------------------------------------------------ prompt typed in the window, OSC, MIDI, scenes
    def set_prompt(self, text: str) -> str | None:
        """Validate and hand a new prompt to the renderer and CLAP; an error message, or None."""
        err = self.rig.set_render(prompt=text.strip())
        if err is not None:
            log.warning("new prompt rejected: %s", err)
        return err

    def post_render_request(self, req: RenderRequest) -> None:
        """From the display thread (via the rig): the renderer's new prompt / words / seed; CLAP ranks a new prompt."""
        self.requests.put(req)
        if self.clap is not None:
            self.clap.set_prompt(req.prompt)

    # ------------------------------------------------------------------ main loop
    def _hud(self, now: float):
        from aadiff_live.live.display import HudInfo

        s = self.analysis.latest
        lat = self.stats.recent_latency
        notes = self.rig.hud_lines()
        if self.components.is_tiny:
            notes.append("random weights (--model tiny): abstract fields, not imagery")
        rt = self.render_thread
        return HudInfo(fps=self.stats.fps(now), render_ms=rt.last_render_s * 1000, atlas=self._atlas_status(),
                       latency_ms=float(np.median(lat)) * 1000 if lat else None,
                       level_db=s.rms_db if s else -120.0, gate_db=self.cfg.live.gate_db, words=tuple(rt.words),
                       weight=s.weight if s else 0.0, gain=self.analysis.gain, input_status=self.capture.status,
                       prompt=rt.prompt, frozen=self._frozen(), notes=notes, alerts=self.alerts())

    def _atlas_status(self) -> str:
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

    def _frozen(self) -> bool:
        return self.display.frozen if self.display is not None else self.rig.frozen

    def alerts(self) -> list[str]:
        """Faults the show carries on through, for the HUD (red) and the soak tool."""
        out = []
        if self.recorder is not None and self.recorder.alert:
            out.append(self.recorder.alert)
        if self.clap is not None and self.clap.alert:
            out.append(self.clap.alert)
        out += [a for a in (s.alert() for s in self._supervisors()) if a]
        now = time.monotonic()
        if self.watchdog.stalled(now):
            out.append(f"RENDER STALLED: no progress for {self.watchdog.silent_s(now):.0f} s")
        out += self.rig.alerts()
        return out

    def _check_stall(self, now: float) -> None:
        """Log a renderer stall once when it starts and once when it ends (the HUD shows it meanwhile)."""
        stalled = self.watchdog.stalled(now)
        if stalled and not self.stalled:
            self.render_stalls += 1
            log.error("RENDER STALLED: the renderer made no progress for %.0f s (live.stall_s %g)",
                      self.watchdog.silent_s(now), self.watchdog.stall_s)
        elif self.stalled and not stalled:
            log.warning("the renderer is making progress again")
        self.stalled = stalled

    def _supervisors(self) -> list:
        return [t.supervisor for t in (self.analysis, self.clap, self.render_thread) if t is not None]

    def _thread_faults(self) -> list[str]:
        """What went wrong in the analysis, CLAP and renderer threads during the show (each makes the exit code 1)."""
        out = [f"the {s.name} thread was restarted {s.restarts} time(s) (last: {type(s.last_error).__name__}: "
               f"{s.last_error})" for s in self._supervisors() if s.restarts and s.error is None]
        out += [f"the {s.name} thread failed: {type(s.error).__name__}: {s.error}" for s in self._supervisors()
                if s.error is not None and s.name != "renderer"]  # the renderer's is reported as "renderer failed"
        if self.clap is not None and self.clap.total_failures:
            e = self.clap.last_error
            out.append(f"CLAP ranking failed {self.clap.total_failures} time(s) (last: {type(e).__name__}: {e}); "
                       f"the words were kept meanwhile")
        return out

    def _loop(self) -> str:
        """Until quit; returns why it stopped. Each pass is one display refresh."""
        start = time.monotonic()
        file_end: float | None = None
        self._last_hud = 0.0
        period = 1.0 / self.cfg.live.display_fps
        next_t = start
        while True:
            if self.stop.is_set():
                return "stopped"
            if self.render_thread.failed.is_set():
                return "renderer failed"
            now = time.monotonic()
            self._check_stall(now)
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
                if act.gain_factor != 1.0:
                    self.analysis.gain = float(np.clip(self.analysis.gain * act.gain_factor, 0.0, 100.0))
                    log.info("gain x%.2f", self.analysis.gain)
                if act.new_prompt is not None:
                    self.display.message = self.set_prompt(act.new_prompt)
                if act.scene is not None:
                    self.rig.inbox.put("scene", act.scene)
                if act.learn:
                    self.rig.learn_key()
            self.rig.poll()  # OSC, MIDI, scene keys: newest of each, once per iteration
            if not self.levels:
                self._refresh_exact(1 / 60 if self.display is not None else 0.1)
                continue
            self._refresh_atlas()
            # pace to --display-fps; with vsync the flip itself waits for the screen's refresh
            next_t += period
            now = time.monotonic()
            if next_t < now - period:
                next_t = now  # fell behind (a slow refresh): no burst to catch up
            vsynced = self.display is not None and self.display.vsync
            wait = next_t - now - (0.004 if vsynced else 0.0)
            if wait > 0 and not (vsynced and period < 1 / 55):
                self.stop.wait(wait)

    def _show(self, frame: Frame, image: np.ndarray, new_picture: bool) -> None:
        """Put ``frame`` on screen (window, video outputs, recording) and count it."""
        if self.display is not None:
            if new_picture:
                self.display.set_picture(image)
            hud = self._hud(time.monotonic())
            self.display.draw(hud)
            self._last_hud = time.monotonic()
            if self.cfg.video_out.hud and self.rig.video_out is not None:
                image = self.display.picture_with_hud(image, hud)
        shown = time.monotonic()
        latency = shown - frame.sample.capture_time
        # after a file input's end no newer sound exists: the age of the last sound is not a latency
        self.stats.add(shown, None if self.capture.finished.is_set() else latency,
                       frame.render_s > 0 or frame.lookup is not None)
        self.rig.shown(frame, latency, image)
        if self.recorder is not None and shown - self._last_recorded >= self._record_period:
            self._last_recorded = shown
            self.recorder.add(frame, shown, {**self.rig.row(frame), **_atlas_row(frame)})

    def _idle_hud(self) -> None:
        if self.display is not None and time.monotonic() - self._last_hud > 0.1:
            self.display.draw(self._hud(time.monotonic()))  # keep the level meter and status moving
            self._last_hud = time.monotonic()

    def _refresh_exact(self, wait: float) -> None:
        """``--levels 0``: show the renderer's newest exact frame when one comes."""
        frame = self.frames.get(timeout=wait)
        if frame is not None and not self._frozen():
            self._show(frame, frame.image, True)
        else:
            self._idle_hud()

    def _refresh_atlas(self) -> None:
        """One refresh: the atlas blend for the newest weight (cross-fading from the previous atlas)."""
        now = time.monotonic()
        view = self.views.get(timeout=0)
        if view is not None:
            self.screen.offer(view, now)
        sample = self.weights.get(timeout=0)
        if sample is not None:
            self.sample = sample
        sample = self.sample
        pic = self.screen.picture(sample.weight, now) if sample is not None and not self._frozen() else None
        if pic is None or sample is None:  # nothing rendered yet, no sound yet, or frozen
            self._idle_hud()
            return
        look, v = pic.lookup, pic.view
        key = (id(v.atlas), look.lo, look.hi, look.t, pic.fade)
        new_picture = key != self._picture_key
        self._picture_key = key
        frame = Frame(pic.image, sample, v.words, v.prompt, 0.0, now, v.scene, look, pic.fade)
        self._show(frame, pic.image, new_picture)

    def _show_fault(self, message: str, seconds: float = 2.0) -> None:
        if self.display is None:
            return
        self.display.message = message
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            if self.display.poll().quit:
                break
            self.display.draw(self._hud(time.monotonic()))
            self.stop.wait(0.05)

    def _shutdown(self) -> list[str]:
        self.stop.set()
        self.capture.stop()
        self.rig.close()
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
            "prompt": self.prompt, "input": self.capture.description, "live": True,
            "fps": e.fps, "window": e.window, "smoothing": self.analysis.mode, "attack_ms": e.attack_ms,
            "release_ms": e.release_ms, "w_min": e.w_min, "w_max": e.w_max, "gain": self.analysis.gain,
            "n_fft": e.n_fft, "agc_release_s": live.agc_release_s, "gate_db": live.gate_db,
            "model": self.components.name, "random_weights": self.components.is_tiny, "steps": r.steps,
            "guidance": r.guidance, "seed": m.seed, "width": r.width, "height": r.height,
            "backend": r.backend.description, "clap_model": getattr(self, "clap_model", None),
            "pinned": self.pinned, "top_k": self.cfg.tokens.top_k, "clap_every_s": live.clap_every_s,
            "clap_window_s": live.clap_window_s, "clap_hysteresis": live.clap_hysteresis,
            "positions": list(self.render_thread.positions), "words": list(self.render_thread.words),
            "levels": self.levels, "atlas_mb": self.cfg.atlas.mb, "display_fps": live.display_fps,
            "analysis_hz": live.analysis_hz, "fade_s": live.fade_s,
            **self.rig.settings(),
        }

    def run(self) -> int:
        try:
            self._build()
        except BaseException:
            if getattr(self, "rig", None) is not None:
                self.rig.close()
            raise
        if isinstance(self.capture, FileCapture) and self.duration is None and not self.capture.loop:
            log.info("stops when the file ends (%.1f s)", self.capture.duration)
        reason = "not started"
        code = 0
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
            self.rig.start(self)
            self.capture.start()
            started = time.monotonic()
            log.info("live: %s%s", "headless" if self.display is None else "window open (H: HUD, Q: quit)",
                     f", recording to {self.record}" if self.record else "")
            reason = self._loop()
        except KeyboardInterrupt:
            reason = "Ctrl-C"
        finally:
            finish_failed = False
            failed = self.render_thread.failed.is_set()
            if failed:
                err = self.render_thread.error
                msg = f"renderer failed: {type(err).__name__}: {err}"
                self._show_fault(msg + " - quitting")
            stuck = self._shutdown()
            sys.setswitchinterval(switch)
            summary = {**self.stats.summary(), "frames_rendered": self.render_thread.n_rendered,
                       "render_busy_s": self.render_thread.busy_s, "run_s": time.monotonic() - started,
                       "stopped_by": reason, "threads_stuck": stuck, "input_overflows": self.capture.overflows,
                       "weights_replaced_unrendered": self.weights.dropped, "levels": self.levels,
                       "atlas_fill_s": self.render_thread.first_fill_s,
                       "stale_audio_skipped_s": self.analysis.skipped / self.capture.ring.samplerate,
                       "render_stalls": self.render_stalls}
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
        if self.stats_out is not None:
            self.stats_out.update(summary)
            self.stats_out["latencies_s"] = list(self.stats.latency)
            self.stats_out["shown_s"] = [t - threads_started for t in self.stats.shown_at]  # same clock as atlas_fill_s
        lat_m, lat_p = summary["latency_ms_median"], summary["latency_ms_p95"]
        log.info("stopped (%s): %d frames shown at %.1f fps, audio-to-photon latency median %s, p95 %s "
                 "(budget %.0f ms)", reason, summary["frames_shown"], summary["fps"],
                 "-" if lat_m is None else f"{lat_m:.0f} ms", "-" if lat_p is None else f"{lat_p:.0f} ms",
                 LATENCY_BUDGET_MS)
        if self.stalled:
            log.error("the renderer was still stalled when the show stopped (%.0f s without progress); exit code 1",
                      self.watchdog.silent_s(time.monotonic()))
            code = 1
        for fault in self._thread_faults():
            log.error("%s; exit code 1", fault)
            code = 1
        if finish_failed:
            code = 1
        if self.recorder is not None and self.recorder.error is not None:
            err = self.recorder.error
            log.error("the recording failed during the show (%d time(s); last: %s: %s); exit code 1",
                      self.recorder.failures, type(err).__name__, err)
            code = 1
        if failed:
            log.error("%s; the app stopped%s", msg, f" (the recording so far is in {self.record})"
                      if self.record else "")
            code = 1
        return code


def _atlas_row(frame: Frame) -> dict:
    """The recording's per-frame atlas fields: the two levels, the blend factor, exact or blend, the fade."""
    look = frame.lookup
    if look is None:
        return {"exact": True}
    return {"exact": look.exact, "levels": [look.lo, look.hi], "blend": look.t, "stand_in": look.stand_in,
            "fade": frame.fade}


def run_live(cfg: Config, *, prompt: str, no_display: bool = False, duration: float | None = None,
             record: str | None = None, monitor: bool = False, prebuilt=None, stats_out: dict | None = None,
             config_path: Path | None = None) -> int:
    """The ``live`` command. ``prebuilt=(components, renderer)`` skips loading (benchmarks);
    ``stats_out`` receives the summary (fps, latency percentiles)."""
    app = LiveApp(cfg, prompt=prompt, no_display=no_display, duration=duration, record=record, monitor=monitor,
                  prebuilt=prebuilt, stats_out=stats_out, config_path=config_path)
    return app.run()
