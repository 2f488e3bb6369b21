"""The live app in a VJ rig: OSC and MIDI in, OSC out, scenes, video out (README "In a VJ rig").

:class:`Rig` owns the optional listeners and senders (nothing listens unless asked) and the
state they steer: the prompt, pinned words and seed the renderer should use, the scene, freeze.
It is the one control path: OSC and MIDI (through the inbox) and the window's keys (directly,
from the display loop) all end in its :class:`~aadiff_live.control.apply.Target` methods. The
display loop calls :meth:`Rig.poll` once per iteration (changes taken from the inbox, newest
wins, applied in :func:`~aadiff_live.control.apply.apply_changes`) and :meth:`Rig.shown` for
every displayed frame (OSC out, video out). The rig reaches the running show only through the
:class:`Show` it is handed at :meth:`Rig.start`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from aadiff_live.analysis.clock import TapTempo
from aadiff_live.config import Config, parse_size
from aadiff_live.control.apply import KEEP, apply_changes
from aadiff_live.control.params import PARAMS, ControlInbox
from aadiff_live.control.settings import CcMap, SceneConfig, idle_params
from aadiff_live.errors import UserError
from aadiff_live.live.messages import Frame, RenderRequest
from aadiff_live.tokens.choose import check_words, initial_words
from aadiff_live.tokens.words import parse_pinned, route_groups, split_words

if TYPE_CHECKING:
    from aadiff_live.analysis.clock import MidiClock
    from aadiff_live.analysis.routes import LiveRoutes
    from aadiff_live.control.midi import MidiInput
    from aadiff_live.control.osc import OscSender, OscServer
    from aadiff_live.live.display import Actions
    from aadiff_live.output.share import ShareThread

log = logging.getLogger(__name__)


class Envelope(Protocol):
    """The weight's live parameters (the analysis thread, live/analysis_thread.py, reads them per frame)."""

    gain: float
    w_min: float
    w_max: float
    mode: str
    smoother: Any

    def make_smoother(self, window: int, attack_ms: float, release_ms: float) -> Any: ...


class Show(Protocol):
    """What the rig may change in the running show; the app hands one to :meth:`Rig.start`."""

    @property
    def envelope(self) -> Envelope: ...

    @property
    def tokenizer(self) -> Any:
        """The main thread's copy of the diffusion tokenizer, to check prompts and words."""

    @property
    def n_tokens(self) -> int: ...

    @property
    def post(self) -> Callable[[RenderRequest], None]:
        """Hands a new render request to the renderer (and a new prompt to CLAP)."""

    @property
    def show_hud(self) -> Callable[[bool], None]:
        """Shows or hides the window's HUD (nothing headless)."""

    @property
    def propose_tempo(self) -> Callable[[float], str | None]:
        """Proposes a tempo to the Link session; why not (another tempo source), or None."""


class Rig:
    def __init__(self, cfg: Config, *, prompt: str, pinned: list[str] | None, has_clap: bool,
                 headless: bool, config_path: Path | None = None, routes: LiveRoutes | None = None,
                 route_words: Sequence[str] = (), midi_clock: MidiClock | None = None) -> None:
        """``route_words``: the words OSC may steer a route of (default: the routes' own); ``midi_clock``: fed the
        --midi port's clock messages (--tempo midi)."""
        self.midi_clock = midi_clock
        self.taps = TapTempo()  # the T key
        self.cfg = cfg
        self.routes = routes  # routed words: OSC steers each one's gain and range, OSC out sends each one's weight
        self.route_words = list(route_words) or (routes.words if routes is not None else [])
        self.config_path = config_path or Path("config.yaml")  # where MIDI learn writes the mapping
        self.inbox = ControlInbox()
        self.scenes: list[SceneConfig] = list(cfg.scenes)
        self.request = RenderRequest(prompt, tuple(pinned) if pinned is not None else None, cfg.model.seed)
        self.has_clap = has_clap
        self.scene: tuple[int, str] | None = None  # (number, name) in effect
        self.frozen = False  # the one owner of freeze (keys, OSC, MIDI); read by the display loop
        env = cfg.envelope
        self.window, self.attack_ms, self.release_ms = env.window, env.attack_ms, env.release_ms
        self.show: Show | None = None  # handed over at start()
        self.osc_in: OscServer | None = None
        self.osc_out: OscSender | None = None
        self.midi: MidiInput | None = None
        self.video_out: ShareThread | None = None
        self._out_stop = threading.Event()  # the video-out thread's own: it stops after the last frame is shown
        out = cfg.video_out
        if out.hud and headless:
            raise UserError("--output-hud needs the window (the HUD is drawn there); drop --no-display or --output-hud")
        self._open(headless)

    # ------------------------------------------------------------------ set-up (before the model loads: errors come fast)
    def _open(self, headless: bool) -> None:
        cfg = self.cfg
        try:
            if cfg.osc.port is not None:
                from aadiff_live.control.osc import OscServer

                self.osc_in = OscServer(self.inbox, cfg.osc.host, cfg.osc.port,
                                        route_words=self.route_words)
                if cfg.osc.host not in ("127.0.0.1", "localhost", "::1"):
                    log.warning("OSC: listening on %s: anyone who can reach this machine on UDP port %d can "
                                "steer the show (README: In a VJ rig)", cfg.osc.host, self.osc_in.port)
            if cfg.osc.send:
                from aadiff_live.control.osc import OscSender

                self.osc_out = OscSender(cfg.osc.send)
            if cfg.midi.port:
                from aadiff_live.control.midi import MidiInput

                self.midi = MidiInput(cfg.midi.port, cfg.midi, self.inbox, smoothing=cfg.envelope.mode,
                                      clock=self.midi_clock)
            if cfg.video_out.targets:
                from aadiff_live.output.share import ShareThread, open_share

                w, h = parse_size(cfg.model.size)
                shares = []
                try:
                    for spec in cfg.video_out.targets:
                        shares.append(open_share(spec, w, h, cfg.envelope.fps))
                except BaseException:
                    for s in shares:
                        s.close()
                    raise
                self.video_out = ShareThread(shares, self._out_stop)
        except BaseException:
            self.close()
            raise

    def start(self, show: Show) -> None:
        self.show = show
        if self.osc_in is not None:
            self.osc_in.start()
        if self.video_out is not None:
            self.video_out.start()

    def close(self) -> None:
        if self.video_out is not None:
            self._out_stop.set()
            if self.video_out.is_alive():
                self.video_out.join(timeout=1.0)
            elif self.video_out.ident is None:
                for s in self.video_out.shares:
                    s.close()
        if self.osc_in is not None:
            self.osc_in.close()
        if self.midi is not None:
            self.midi.close()

    # ------------------------------------------------------------------ per display iteration
    def poll(self) -> None:
        apply_changes(self.inbox.take(), self, self.scenes, self.inbox, routes=self.routes)
        if self.midi is not None:
            learned = self.midi.learn.learned.get(timeout=0)
            if learned is not None:
                self._learned(*learned)

    # ------------------------------------------------------------------ the window's keys (display loop)
    def keys(self, act: Actions) -> None:
        """Gain (+/-), freeze (Space), HUD (H), scenes (1-9) and MIDI learn (L), through the same path as OSC
        and MIDI."""
        if act.gain_factor != 1.0:
            assert self.show is not None
            self.set_gain(float(np.clip(self.show.envelope.gain * act.gain_factor, 0.0, PARAMS["gain"].hi)))
            log.info("gain x%.2f", self.show.envelope.gain)
        if act.toggle_freeze:
            self.set_freeze(not self.frozen)
        if act.hud is not None:
            self.set_hud(act.hud)
        if act.scene is not None:
            self.inbox.put("scene", act.scene)
        if act.learn:
            self.learn_key()
        if act.tap:
            self.tap_tempo(time.monotonic())

    def tap_tempo(self, now: float) -> None:
        """T: from the third tap on, the taps' tempo is proposed (to a Link session; said why not otherwise)."""
        bpm = self.taps.tap(now)
        if bpm is None:
            return
        bpm = float(np.clip(bpm, PARAMS["tempo"].lo, PARAMS["tempo"].hi))
        err = self.set_tempo(bpm)
        if err is not None:
            log.warning("tap tempo %.1f BPM not proposed: %s", bpm, err)
        else:
            log.info("tap tempo: %.1f BPM", bpm)

    def type_prompt(self, text: str) -> str | None:
        """A prompt typed in the window (P ... Enter): None, or why it was rejected (shown in the window)."""
        err = self.set_render(prompt=text.strip())
        if err is not None:
            log.warning("new prompt rejected: %s", err)
        return err

    # ------------------------------------------------------------------ MIDI learn (L)
    def learn_key(self) -> None:
        if self.midi is None:
            log.warning("MIDI learn (L) needs a MIDI input: start with --midi NAME")
            return
        param = self.midi.learn.next()
        log.info("MIDI learn: %s", f"move a knob for '{param}'" if param else "off")

    def _learned(self, cc: int, mapping: CcMap) -> None:
        from aadiff_live.control.midi import write_mapping

        table = self.cfg.midi.cc
        for old in [k for k, m in table.items() if m.param == mapping.param and k != cc]:
            del table[old]  # one knob per parameter: learning moves it
        table[cc] = mapping  # NB: read by rtmidi's thread (one dict store)
        try:
            backup = write_mapping(self.config_path, table)
        except OSError as exc:
            log.error("MIDI learn: CC %d -> %s works now, but writing %s failed (%s)", cc, mapping.param,
                      self.config_path, exc)
            return
        log.info("MIDI learn: CC %d -> %s (%g..%g), written to %s%s", cc, mapping.param, mapping.min, mapping.max,
                 self.config_path, f" (the file as it was, with its comments: {backup})" if backup else "")

    def shown(self, frame: Frame, latency_s: float, image: np.ndarray) -> None:
        if self.osc_out is not None:
            s = frame.sample
            self.osc_out.send_frame(envelope=s.normalised, weight=s.weight, level_db=s.rms_db,
                                    latency_ms=latency_s * 1000.0, words=frame.words)
            if self.routes is not None:
                self.osc_out.send_weights(dict(zip(self.routes.words, self.routes.weights(s.sources), strict=True)))
        if self.video_out is not None:
            self.video_out.post(image)

    def row(self, frame: Frame) -> dict[str, Any]:
        """Per-frame fields for the recording (the prompt is the frame's own): what a VJ changed, when."""
        return {"gain": self.show.envelope.gain if self.show is not None else None, "scene": frame.scene}

    def settings(self) -> dict[str, Any]:
        """For the sidecar's settings."""
        return {"osc_in": f"{self.osc_in.host}:{self.osc_in.port}" if self.osc_in is not None else None,
                "osc_send": self.cfg.osc.send, "midi_port": self.midi.name if self.midi is not None else None,
                "video_out": [s.label for s in self.video_out.shares] if self.video_out is not None else [],
                "scenes": [s.name for s in self.scenes]}

    def hud_lines(self) -> list[str]:
        out = []
        if self.midi is not None and self.midi.learn.param is not None:
            out.append(f"MIDI learn: move a knob for '{self.midi.learn.param}' (L: next parameter)")
        if self.scene is not None:
            out.append(f"scene {self.scene[0]}: {self.scene[1]}")
        return out

    def alerts(self) -> list[str]:
        """Faults the show carries on through (red on the HUD)."""
        if self.video_out is None:
            return []
        return [f"VIDEO OUT {label} FAILED: {err}" for label, err in list(self.video_out.failed.items())]

    # ------------------------------------------------------------------ Target (control/apply.py)
    def set_gain(self, gain: float) -> None:
        assert self.show is not None
        self.show.envelope.gain = float(gain)  # NB: read by the analysis thread per frame

    def set_envelope(self, **values: float) -> None:
        assert self.show is not None
        a = self.show.envelope
        if "w_min" in values:
            a.w_min = float(values["w_min"])  # NB: read by the analysis thread per frame
        if "w_max" in values:
            a.w_max = float(values["w_max"])
        idle = idle_params(a.mode)
        unused = [k for k in values if k in idle]
        if unused:
            log.info("%s kept, but smoothing is '%s': it takes effect under %s", "/".join(unused), a.mode,
                     "--smoothing trailing" if a.mode != "trailing" else "--smoothing attack-release")
        if "window_ms" in values:
            values["window"] = max(1, round(values["window_ms"] * self.cfg.envelope.fps / 1000.0))
        new = False
        for key in ("window", "attack_ms", "release_ms"):
            if key in values and values[key] != getattr(self, key):
                setattr(self, key, int(values[key]) if key == "window" else float(values[key]))
                new = True
        if new:
            # a new smoother object, swapped in whole (one attribute store): the analysis thread uses it next frame
            a.smoother = a.make_smoother(self.window, self.attack_ms, self.release_ms)

    def set_render(self, *, prompt: str | None = None, words: Any = KEEP, seed: int | None = None,
                   scene: str | None = None) -> str | None:
        cur = self.request
        new_prompt = cur.prompt if prompt is None else prompt.strip()
        if words is KEEP:
            new_words = cur.words
            if new_words is not None and prompt is not None:
                try:  # keep the pinned words if the new prompt still has them
                    parse_pinned(list(new_words), new_prompt)
                except UserError:
                    new_words = None
        else:
            new_words = tuple(words) if words is not None else None
        assert self.show is not None
        tok = self.show.tokenizer
        try:
            if not new_prompt:
                raise UserError("the prompt is empty")
            checked = check_words(tok, new_prompt, list(new_words) if new_words is not None else None,
                                  self.show.n_tokens)
            if self.routes is not None:  # the routed words must stay in the prompt
                have = {w.norm for w in split_words(new_prompt)}
                missing = [w for w in self.routes.words if w not in have]
                if missing:
                    raise UserError(f"the prompt must keep the routed word(s) {', '.join(missing)}")
                route_groups(tok, new_prompt, self.routes.words, self.show.n_tokens, flag="routes")
            new_words = tuple(checked) if checked is not None else None
        except UserError as exc:
            return str(exc).removeprefix("--tokens: ")
        if new_words is None and not self.has_clap:
            log.warning("CLAP is not running (started with --tokens): weighting the prompt's first word")
            new_words = tuple(initial_words(new_prompt, 1, tok))
        if scene is None and prompt is not None and new_prompt != cur.prompt:
            self.scene = None  # a prompt typed or sent leaves the scene; words or seed changes stay in it
        label = scene if scene is not None else (self.scene[1] if self.scene else None)
        req = RenderRequest(new_prompt, new_words, cur.seed if seed is None else int(seed), label)
        if req.words != cur.words:
            log.info("words: %s", f"{', '.join(req.words)} (pinned)" if req.words is not None else "CLAP chooses")
        if req != cur:
            self.request = req
            self.show.post(req)
        return None

    def set_freeze(self, on: bool) -> None:
        self.frozen = bool(on)

    def set_hud(self, on: bool) -> None:
        if self.show is not None:
            self.show.show_hud(bool(on))

    def set_scene(self, number: int, scene: SceneConfig) -> None:
        self.scene = (number, scene.name)

    def set_tempo(self, bpm: float) -> str | None:
        assert self.show is not None
        return self.show.propose_tempo(bpm)
