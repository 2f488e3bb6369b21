"""Renderer thread: fills the frame atlas for the current prompt, words and seed (docs/design.md §7).

With an atlas (``atlas.levels`` > 0, the default) this thread never renders for a weight: it
renders the atlas's levels, several per UNet call, the level nearest the newest weight first, then
coarse to fine, and publishes the atlas (an :class:`AtlasView`) for the display loop, which blends
two levels for the newest weight at every refresh and never waits for a render. A typed prompt,
CLAP's new words or a new seed make a new atlas: it fills in the background while the one on screen
stays, and is published when complete (the display then cross-fades to it). An :class:`AtlasCache`
keeps recent atlases within the memory cap, so going back to a recent prompt or word is instant.
The first atlas is published at once: until it is complete the nearest rendered level stands in.

With ``--levels 0`` it renders every new weight exactly, as a :class:`Frame` (the per-frame path).

Only this thread touches the renderer and the diffusion tokenizer after start-up. A quit
interrupts a render between UNet/VAE blocks (forward pre-hooks that raise once the stop Event is
set), so even a multi-second CPU frame does not hold the app open.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import replace

import numpy as np

from aadiff_live.analysis.routes import LiveRoutes
from aadiff_live.live.messages import AtlasView, Frame, RenderRequest, WeightSample, WordChoice
from aadiff_live.live.supervisor import Supervisor
from aadiff_live.live.watchdog import StallWatchdog
from aadiff_live.mailbox import Mailbox
from aadiff_live.rendering.atlas import (
    Atlas,
    AtlasCache,
    AtlasKey,
    Axis,
    atlas_key,
    fill,
    grid_key,
    grid_label,
    render_positions,
)
from aadiff_live.tokens.choose import initial_words
from aadiff_live.tokens.words import route_groups, token_positions

log = logging.getLogger(__name__)


class RenderCancelled(Exception):
    """Raised inside a render when the app is quitting."""


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


def _lower_priority(niceness: int = 5) -> None:
    """Let the display, analysis and capture threads run first when the CPU is short (Linux: per thread)."""
    try:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), os.getpriority(os.PRIO_PROCESS, 0) + niceness)
    except (AttributeError, OSError) as exc:  # not Linux, or not allowed: the show goes on at one priority
        log.debug("renderer priority unchanged: %s", exc)


class RenderThread(threading.Thread):
    def __init__(self, components, renderer, *, prompt: str, words: list[str], pinned: bool, top_k: int,
                 weights: Mailbox[WeightSample], choices: Mailbox[WordChoice], requests: Mailbox[RenderRequest],
                 frames: Mailbox[Frame], stop: threading.Event, levels: int, atlas_mb: float, batch: int,
                 views: Mailbox[AtlasView] | None = None, w_range: Callable[[], tuple[float, float]],
                 newest_weight: Callable[[], float | tuple[float, ...] | None] = lambda: None,
                 watchdog: StallWatchdog, restarts: int, routes: LiveRoutes | None = None, grid_levels: int,
                 routes_follow_clap: bool = False) -> None:
        """``levels``, ``atlas_mb``, ``batch``: ``Config.atlas``; ``w_range``: the envelope's weight range now;
        ``restarts``: ``live.thread_restarts``; ``watchdog``: beaten after each piece of work and while idle.

        ``routes``: each routed word its own weight (docs/design.md §1.6): the words are the routes' (CLAP's
        choice is not used), the atlas has one axis per route over that route's range (a grid of ``grid_levels``
        per axis from two routes on), and ``newest_weight`` gives a weight vector."""
        super().__init__(name="renderer", daemon=False)
        self.components = components
        self.renderer = renderer
        self.prompt = prompt
        self.words = list(routes.words if routes is not None else words)
        self.pinned = pinned
        self.top_k = top_k
        self.routes = routes  # NB: its gains and ranges are changed by the control thread (OSC)
        self.grid_levels = int(grid_levels)
        self.routes_follow_clap = routes_follow_clap  # --route auto: CLAP's choice is each route's word
        self.groups: list[list[int]] = []  # with routes: each routed word's token positions in the prompt
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
        self.levels = int(levels)
        self.batch = max(1, int(batch))
        self.cache = AtlasCache(atlas_mb) if self.levels > 0 else None
        self.views = views if views is not None else Mailbox()
        self.w_range = w_range
        self.newest_weight = newest_weight
        self.target: AtlasView | None = None  # NB: read by the HUD: the atlas being filled (or complete)
        self.shown: AtlasView | None = None  # the last one published
        self.first_fill_s: float | None = None  # NB: read at the end: start-up to the first complete atlas
        self.prefill: list[RenderRequest] = []  # scenes whose atlases fill ahead while idle (set by the app)
        self.n_prefilled = 0  # levels rendered ahead for scenes
        self._prefill_positions: dict[RenderRequest, list[int]] = {}
        self.idle = threading.Event()  # set while every level of the current atlas exists (tests, benchmarks)
        self._t0 = time.monotonic()
        self.watchdog = watchdog  # beaten after each piece of work and while idle
        self.supervisor = Supervisor("renderer", stop, restarts=restarts, on_give_up=self._give_up)

    def _positions(self) -> list[int]:
        if self.routes is not None:  # the union, for display; each route's own positions are in the atlas key
            self.groups = route_groups(self.components.tokenizer, self.prompt, self.routes.words)
            return sorted({p for g in self.groups for p in g})
        return token_positions(self.components.tokenizer, self.prompt, self.words)

    def _key(self, prompt: str, positions: list[int]) -> AtlasKey:
        """The atlas for ``prompt``: one axis over the envelope's range, or one per route over its own range."""
        if self.routes is None:
            return atlas_key(self.renderer, prompt, positions, self.levels, *self.w_range())
        levels = self.levels if len(self.routes.routes) == 1 else self.grid_levels
        axes = [Axis(tuple(g), lo, hi, levels) for g, (lo, hi) in zip(self.groups, self.routes.ranges(), strict=True)]
        return grid_key(self.renderer, prompt, axes)

    def _apply_request(self, req: RenderRequest) -> bool:
        """A new prompt (latents kept), pinned words (or back to CLAP) or seed (a new base); True if changed."""
        changed = False
        if req.prompt != self.prompt or req.seed != self.renderer.seed:
            t0 = time.perf_counter()
            self.renderer.prepare(req.prompt, seed=req.seed)  # a new seed: a new base
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
        if self.routes is not None:  # routed words stay whatever CLAP hears or a scene names (but --route auto)
            if (self.routes_follow_clap and choice is not None and choice.prompt == self.prompt
                    and len(choice.words) == len(self.routes.routes)):
                self.routes.set_words(choice.words)
            words = self.routes.words
            changed = changed or words != self.words
            self.words = words
        elif choice is not None and not self.pinned and choice.prompt == self.prompt and list(choice.words) != self.words:
            self.words = list(choice.words)
            changed = True
        if changed:
            self.positions = self._positions()
        return changed

    def run(self) -> None:
        self._t0 = time.monotonic()
        _lower_priority()
        self.supervisor.run(self._run)  # an exception: restarted (bounded), then handed to the main thread

    def _run(self) -> None:
        try:
            with cancellable(_blocks(self.components), self.stop_event):
                if self.levels > 0:
                    self._run_atlas()
                else:
                    self._run_exact()
        except RenderCancelled:
            log.debug("render cancelled at quit")

    def _give_up(self, exc: BaseException) -> None:
        self.error = exc  # the main thread shows it and quits
        self.failed.set()

    # ------------------------------------------------------------------ atlas mode
    def _view(self) -> AtlasView:
        """The atlas for the current prompt, words, seed and weight range (from the cache, or new and empty)."""
        assert self.cache is not None
        key = self._key(self.prompt, self.positions)
        cur = self.target
        if cur is not None and cur.atlas.key == key and cur.scene == self.scene and cur.words == tuple(self.words):
            return cur
        pinned = [self.shown.atlas.key] if self.shown is not None else []
        atlas = self.cache.get(key, pinned=pinned)  # the same atlas when only the scene name or words' order changed
        if cur is None or atlas is not cur.atlas:
            ranges = " x ".join(f"[{a.w_lo:g}, {a.w_hi:g}]" for a in key.axes)
            log.info("atlas: %s levels over w in %s for \"%s\" (%s)%s", grid_label(key.shape), ranges, self.prompt,
                     ", ".join(self.words), "" if atlas.n_filled == 0 else f", {atlas.n_filled} levels kept")
        return AtlasView(atlas, tuple(self.words), self.prompt, tuple(self.positions), self.scene)

    def _publish_if_ready(self, view: AtlasView) -> None:
        """Hand ``view`` to the display: the first at once; a new atlas when complete; at once if it is the same
        atlas (a new scene name) or the one on screen is itself still incomplete (start-up: no point finishing an
        atlas for words that CLAP has already dropped) and the new one has a level to show."""
        shown, atlas = self.shown, view.atlas
        if view is shown:
            return
        if shown is None or atlas.complete or atlas is shown.atlas or (not shown.atlas.complete and atlas.n_filled):
            self.shown = view
            self.views.put(view)

    def step_atlas(self) -> bool:
        """One pass: take updates, publish a ready atlas, fill one batch; False when there was nothing to render."""
        self._take_updates()
        view = self.target = self._view()
        atlas = view.atlas
        self._publish_if_ready(view)
        todo = atlas.missing(self.newest_weight(), self.batch)
        if not todo:
            if self.first_fill_s is None:
                self.first_fill_s = time.monotonic() - self._t0
                log.info("atlas complete: %d levels in %.1f s", atlas.n_levels, self.first_fill_s)
            return self._prefill_step()
        self._render_into(atlas, render_positions(atlas.key), todo)
        self._publish_if_ready(view)
        return True

    def _update_waiting(self) -> bool:
        return self.stop_event.is_set() or self.requests.qsize() > 0 or self.choices.qsize() > 0

    def _count(self, seconds: float, n: int) -> None:
        """``n`` frames rendered in ``seconds`` (the HUD's time per frame, the summary's totals)."""
        self.last_render_s = seconds / max(1, n)
        self.busy_s += seconds
        self.n_rendered += n

    def _render_into(self, atlas: Atlas, positions: list[int] | list[list[int]], levels: list[int]) -> int:
        t0 = time.perf_counter()
        n = fill(atlas, lambda ws: self.renderer.render_batch(ws, positions), levels)
        self._count(time.perf_counter() - t0, n)
        return n

    def _prefill_step(self) -> bool:
        """With every level on screen rendered: fill the next scene's atlas ahead (until it is complete or
        something new comes), so that switching to it is instant. Only into free room of the memory cap: a
        prefill never evicts an atlas. False when there is nothing (more) to prefill."""
        assert self.cache is not None
        if self.routes is not None:  # scenes name words, routes name theirs: nothing to fill ahead
            return False
        w_lo, w_hi = self.w_range()
        for req in self.prefill:
            positions = self._scene_positions(req)
            if not positions:
                continue
            key = replace(atlas_key(self.renderer, req.prompt, positions, self.levels, w_lo, w_hi), seed=int(req.seed))
            atlas = self.cache.peek(key)
            if atlas is not None and atlas.complete:
                continue
            if atlas is None:
                if not self.cache.room_for(key):
                    return False
                atlas = self.cache.get(key)
            with self.renderer.borrowed(req.prompt, req.seed):
                while not atlas.complete and not self._update_waiting():
                    self.n_prefilled += self._render_into(atlas, positions, atlas.missing(None, self.batch))
            if atlas.complete:
                log.info("scene %s: atlas ready ahead (%d levels)", req.scene, atlas.n_levels)
            return True
        return False

    def _scene_positions(self, req: RenderRequest) -> list[int]:
        got = self._prefill_positions.get(req)
        if got is None:
            tok = self.components.tokenizer
            words = list(req.words) if req.words is not None else initial_words(req.prompt, self.top_k, tok)
            got = self._prefill_positions[req] = token_positions(tok, req.prompt, words)
        return got

    def _run_atlas(self) -> None:
        while not self.stop_event.is_set():
            self.watchdog.beat()
            if self.step_atlas():
                self.idle.clear()
            else:
                self.idle.set()
                self.stop_event.wait(0.02)  # every level exists: look for a new prompt, words or seed

    # ------------------------------------------------------------------ exact mode (--levels 0)
    def _run_exact(self) -> None:
        last_key = None
        image: np.ndarray | None = None
        while not self.stop_event.is_set():
            self.watchdog.beat()
            sample = self.weights.get(timeout=0.1)
            if sample is None:
                continue
            self._take_updates()
            # routes: each routed word's own weight at its own positions
            w: float | tuple[float, ...] = sample.weight
            positions: list[int] | list[list[int]] = self.positions
            if self.routes is not None:
                w, positions = self.routes.weights(sample.sources), self.groups
            key = (w, str(positions), self.prompt)
            render_s = 0.0
            if key != last_key or image is None:
                t0 = time.perf_counter()
                image = self.renderer.render(w, positions)
                render_s = time.perf_counter() - t0
                self._count(render_s, 1)
                last_key = key
            self.frames.put(Frame(image, sample, tuple(self.words), self.prompt, render_s, self.scene,
                                   ready_time=time.monotonic()))
