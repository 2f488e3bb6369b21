"""The live app in a VJ rig: OSC and MIDI in, OSC out, scenes, video out (README "In a VJ rig").

:class:`Rig` owns the optional listeners and senders (nothing listens unless asked) and the
state they steer: the prompt, pinned words and seed the renderer should use, the scene, freeze.
The display loop calls :meth:`Rig.poll` once per iteration (changes taken from the inbox, newest
wins, applied in :func:`~aadiff_live.control.apply.apply_changes`) and :meth:`Rig.shown` for
every displayed frame (OSC out, video out).
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from aadiff_live.config import Config, parse_size
from aadiff_live.control.apply import KEEP, apply_changes
from aadiff_live.control.params import ControlInbox
from aadiff_live.control.settings import CcMap, SceneConfig, idle_params
from aadiff_live.errors import UserError
from aadiff_live.live.clap_thread import initial_words
from aadiff_live.tokens.words import content_words, parse_pinned, require_positions

if TYPE_CHECKING:
    from aadiff_live.control.midi import MidiInput
    from aadiff_live.control.osc import OscSender, OscServer
    from aadiff_live.live.app import LiveApp
    from aadiff_live.live.render_thread import Frame
    from aadiff_live.output.share import ShareThread

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RenderRequest:
    """What the renderer should draw: the whole desired state (a latest-value mailbox carries it)."""

    prompt: str
    words: tuple[str, ...] | None  # pinned words; None: CLAP chooses
    seed: int
    scene: str | None = None  # the scene these come from (recorded per frame)


class Rig:
    def __init__(self, cfg: Config, *, prompt: str, pinned: list[str] | None, has_clap: bool,
                 headless: bool, config_path: Path | None = None) -> None:
        self.cfg = cfg
        self.config_path = config_path or Path("config.yaml")  # where MIDI learn writes the mapping
        self.inbox = ControlInbox()
        self.scenes: list[SceneConfig] = list(cfg.scenes)
        self.request = RenderRequest(prompt, tuple(pinned) if pinned is not None else None, cfg.model.seed)
        self.has_clap = has_clap
        self.scene: tuple[int, str] | None = None  # (number, name) in effect
        self.frozen = False  # NB: set here, read by the display loop (headless freeze)
        env = cfg.envelope
        self.window, self.attack_ms, self.release_ms = env.window, env.attack_ms, env.release_ms
        self.app: LiveApp | None = None
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

                self.osc_in = OscServer(self.inbox, cfg.osc.host, cfg.osc.port)
                if cfg.osc.host not in ("127.0.0.1", "localhost", "::1"):
                    log.warning("OSC: listening on %s: anyone who can reach this machine on UDP port %d can "
                                "steer the show (README: In a VJ rig)", cfg.osc.host, self.osc_in.port)
            if cfg.osc.send:
                from aadiff_live.control.osc import OscSender

                self.osc_out = OscSender(cfg.osc.send)
            if cfg.midi.port:
                from aadiff_live.control.midi import MidiInput

                self.midi = MidiInput(cfg.midi.port, cfg.midi, self.inbox, smoothing=cfg.envelope.mode)
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

    def start(self, app: LiveApp) -> None:
        self.app = app
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
        apply_changes(self.inbox.take(), self, self.scenes, self.inbox)
        if self.midi is not None:
            learned = self.midi.learn.learned.get(timeout=0)
            if learned is not None:
                self._learned(*learned)

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
        if self.video_out is not None:
            self.video_out.post(image)

    def row(self, frame: Frame) -> dict[str, Any]:
        """Per-frame fields for the recording (the prompt is the frame's own): what a VJ changed, when."""
        app = self.app
        return {"gain": app.analysis.gain if app is not None else None, "scene": frame.scene}

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
        assert self.app is not None
        self.app.analysis.gain = float(gain)  # NB: read by the analysis thread per frame

    def set_envelope(self, **values: float) -> None:
        assert self.app is not None
        a = self.app.analysis
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
        assert self.app is not None
        tok, n_tokens = self.app.word_tokenizer, self.app.renderer.n_tokens
        try:
            if not new_prompt:
                raise UserError("the prompt is empty")
            if new_words is not None:
                new_words = tuple(parse_pinned(list(new_words), new_prompt) or ())
                require_positions(tok, new_prompt, list(new_words), n_tokens)
            elif not content_words(new_prompt):
                raise UserError("the prompt has no content words to weight")
            elif not initial_words(new_prompt, 1, tok):
                raise UserError("no word of the prompt lies inside the text encoder's 77-token window; shorten it")
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
            self.app.post_render_request(req)
        return None

    def set_freeze(self, on: bool) -> None:
        self.frozen = on
        if self.app is not None and self.app.display is not None:
            self.app.display.frozen = on

    def set_hud(self, on: bool) -> None:
        if self.app is not None and self.app.display is not None:
            self.app.display.hud = on

    def set_scene(self, number: int, scene: SceneConfig) -> None:
        self.scene = (number, scene.name)
