"""Renderer thread: newest weight (+ newest words, + a new prompt, words or seed if asked) -> frame.

Only this thread touches the renderer and the diffusion tokenizer after start-up. Each frame
carries the capture time of the audio it reflects. A quit interrupts a render between UNet/VAE
blocks (forward pre-hooks that raise once the stop Event is set), so even a multi-second CPU
frame does not hold the app open.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from aadiff_live.live.clap_thread import WordChoice, initial_words
from aadiff_live.live.rig import RenderRequest
from aadiff_live.live.ring import WeightSample
from aadiff_live.mailbox import Mailbox
from aadiff_live.tokens.words import token_positions

log = logging.getLogger(__name__)


class RenderCancelled(Exception):
    """Raised inside a render when the app is quitting."""


@dataclass(frozen=True)
class Frame:
    image: np.ndarray  # [h, w, 3] uint8
    sample: WeightSample  # the analysis frame it reflects (weight, level, capture time)
    words: tuple[str, ...]
    prompt: str
    render_s: float  # 0 when the picture was reused (same weight, words and prompt)
    ready_time: float  # monotonic s when the frame was ready
    scene: str | None = None  # the scene whose prompt / words / seed it was rendered with


@contextmanager
def cancellable(modules, stop: threading.Event):
    """Forward pre-hooks on ``modules`` that abort a running render once ``stop`` is set."""

    def hook(_module, _args):
        if stop.is_set():
            raise RenderCancelled

    handles = [m.register_forward_pre_hook(hook) for m in modules if hasattr(m, "register_forward_pre_hook")]
    try:
        yield
    finally:
        for h in handles:
            h.remove()


# modules whose forward a quit can interrupt: fine-grained enough that a full-size CPU frame stops in
# well under a second (a whole UNet block can take longer than that)
_CANCEL_POINTS = frozenset({"ResnetBlock2D", "Transformer2DModel", "Attention", "Downsample2D", "Upsample2D"})


def _blocks(components) -> list:
    out: list = []
    for root in (components.unet, getattr(components.vae, "decoder", None)):
        if root is None or not hasattr(root, "modules"):
            continue
        out.extend(m for m in root.modules() if type(m).__name__ in _CANCEL_POINTS)
    return out


class RenderThread(threading.Thread):
    def __init__(self, components, renderer, *, prompt: str, words: list[str], pinned: bool, top_k: int,
                 weights: Mailbox[WeightSample], choices: Mailbox[WordChoice], requests: Mailbox[RenderRequest],
                 frames: Mailbox[Frame], stop: threading.Event) -> None:
        super().__init__(name="renderer", daemon=False)
        self.components = components
        self.renderer = renderer
        self.prompt = prompt
        self.words = list(words)
        self.pinned = pinned
        self.top_k = top_k
        self.weights, self.choices, self.requests, self.frames = weights, choices, requests, frames
        self.last_choice: WordChoice | None = None  # CLAP's newest, kept while words are pinned
        self.scene: str | None = None
        self.stop_event = stop
        self.error: BaseException | None = None  # NB: read by the main thread after `failed` is set
        self.failed = threading.Event()
        self.n_rendered = 0
        self.last_render_s = 0.0  # NB: read by the HUD
        self.busy_s = 0.0  # total seconds spent rendering
        self.positions = self._positions()

    def _positions(self) -> list[int]:
        return token_positions(self.components.tokenizer, self.prompt, self.words)

    def _apply_request(self, req: RenderRequest) -> bool:
        """A new prompt (latents kept), pinned words (or back to CLAP) or seed (a new base); True if changed."""
        changed = False
        new_seed = req.seed != self.renderer.seed
        if req.prompt != self.prompt or new_seed:
            t0 = time.perf_counter()
            if new_seed:
                self.renderer.seed = req.seed
                self.renderer.base = None  # the base noise is drawn again from the new seed
            self.renderer.prepare(req.prompt)
            self.prompt = req.prompt
            log.info("prompt: \"%s\", seed %d (prepared in %.2f s)", req.prompt, req.seed, time.perf_counter() - t0)
            changed = True
        if req.words is not None:
            words = list(req.words)
        elif self.last_choice is not None and self.last_choice.prompt == self.prompt:
            words = list(self.last_choice.words)
        elif self.pinned or changed:
            words = initial_words(self.prompt, self.top_k, self.components.tokenizer)
        else:
            words = self.words
        self.pinned = req.words is not None
        self.scene = req.scene
        if words != self.words:
            self.words = words
            changed = True
        return changed

    def _take_updates(self) -> bool:
        """Apply a new request (prompt, words, seed) and CLAP's newest words; True if anything changed."""
        changed = False
        choice = self.choices.get(timeout=0)
        if choice is not None:
            self.last_choice = choice
        req = self.requests.get(timeout=0)
        if req is not None:
            changed = self._apply_request(req)
        if choice is not None and not self.pinned and choice.prompt == self.prompt and list(choice.words) != self.words:
            self.words = list(choice.words)
            changed = True
        if changed:
            self.positions = self._positions()
        return changed

    def run(self) -> None:
        last_key = None
        image: np.ndarray | None = None
        try:
            with cancellable(_blocks(self.components), self.stop_event):
                while not self.stop_event.is_set():
                    sample = self.weights.get(timeout=0.1)
                    if sample is None:
                        continue
                    self._take_updates()
                    key = (sample.weight, tuple(self.positions), self.prompt)
                    render_s = 0.0
                    if key != last_key or image is None:
                        t0 = time.perf_counter()
                        image = self.renderer.render(sample.weight, self.positions)
                        render_s = time.perf_counter() - t0
                        self.last_render_s = render_s
                        self.busy_s += render_s
                        self.n_rendered += 1
                        last_key = key
                    self.frames.put(Frame(image, sample, tuple(self.words), self.prompt, render_s, time.monotonic(),
                                           self.scene))
        except RenderCancelled:
            log.debug("render cancelled at quit")
        except BaseException as exc:  # noqa: BLE001 - handed to the main thread, which shows it and quits
            self.error = exc
            log.exception("the renderer failed")
            self.failed.set()
