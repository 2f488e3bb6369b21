"""The window (pygame, main thread): the picture scaled to the window, a HUD, and the keys.

Keys: F fullscreen, H HUD, + / - gain, [ / ] window size, Space freeze, P type a new prompt
(Enter applies it without a restart, Esc cancels), 1-9 scenes, L MIDI learn, T tap tempo (proposed to a Link
session), Esc / Q quit. pygame is imported here only,
when a window is asked for.
"""

from __future__ import annotations

import logging
import os
import time
import warnings
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from aadiff_live.errors import UserError

log = logging.getLogger(__name__)
GAIN_STEP = 1.25
BEAT_BOX = 10  # px: the height of the HUD's beat boxes
SIZE_STEP = 64


@dataclass
class HudInfo:
    fps: float = 0.0
    render_ms: float = 0.0
    atlas: str = ""  # "atlas 12/33", or "exact" (--levels 0)
    latency_ms: float | None = None
    latency_split_ms: tuple[float, ...] | None = None  # sound -> weight, -> blend, -> flip (medians, ms)
    level_db: float = -120.0
    gate_db: float = -120.0  # the gate marked on the level meter (the app passes live.gate_db)
    words: tuple[str, ...] = ()
    weight: float = 0.0
    gain: float = 1.0
    input_status: str = ""
    prompt: str = ""
    frozen: bool = False
    notes: list[str] = field(default_factory=list)
    alerts: list[str] = field(default_factory=list)  # faults the show goes on through: drawn in red
    routes: list[tuple[str, float, float]] = field(default_factory=list)  # (source → word, weight, 0..1 in range)
    tempo: tuple[str, float, float] | None = None  # (BPM and source, beat position, beats per bar); None: --tempo off


@dataclass
class Actions:
    """What the user asked for since the last call (the display loop applies it through the rig's control path)."""

    quit: bool = False
    gain_factor: float = 1.0
    toggle_freeze: bool = False  # Space
    hud: bool | None = None  # H: show (True) or hide (False) the HUD
    new_prompt: str | None = None
    scene: int | None = None  # keys 1-9
    learn: bool = False  # L: MIDI learn, next parameter
    tap: bool = False  # T: tap tempo (proposed to a Link session)


class Display:
    def __init__(self, width: int, height: int, *, window_size: int, fullscreen: bool, display: int,
                 hud: bool, title: str = "aadiff-live", vsync: bool = False) -> None:
        os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
        try:
            import pygame
        except ImportError:
            raise UserError("pygame is not installed; pip install pygame, or run with --no-display") from None
        self.pg = pygame
        pygame.display.init()
        pygame.font.init()
        n = pygame.display.get_num_displays()
        if display >= n:
            raise UserError(f"--display {display}: only {n} display(s) found (0..{n - 1}); pass a smaller index")
        self.display_index = display
        self.aspect = width / height
        self.window_size = window_size
        self.fullscreen = fullscreen
        self.hud = hud  # NB: changed through the rig's control path (H, OSC, MIDI)
        self.typing: str | None = None  # the prompt being typed (P), or None
        self.message: str | None = None  # a fault to show (renderer crash, bad prompt)
        self.title = title
        self.want_vsync = vsync
        self.vsync = False  # whether the flip waits for the screen's refresh (the window system offered it)
        self._open()
        self.font = pygame.font.Font(None, 20)
        self.big = pygame.font.Font(None, 28)
        self.picture: Any = None  # the last frame as a pygame Surface
        self._scaled: Any = None  # ((window w, h), scaled surface, position)
        self.picture_size = (width, height)
        self.flipped: tuple[float, float] | None = None  # the last flip: (called, returned), monotonic s

    def _window_px(self) -> tuple[int, int]:
        if self.aspect >= 1:
            return self.window_size, max(64, round(self.window_size / self.aspect))
        return max(64, round(self.window_size * self.aspect)), self.window_size

    def _open(self) -> None:
        pg = self.pg
        if self.fullscreen:
            size, flags = pg.display.get_desktop_sizes()[self.display_index], pg.FULLSCREEN
        else:
            size, flags = self._window_px(), pg.RESIZABLE
        self.vsync = False
        if self.want_vsync:  # SDL syncs the flip only through a renderer: pygame's SCALED (same size, scaled by SDL)
            try:
                with warnings.catch_warnings():  # "no fast renderer available": said in the log line below
                    warnings.simplefilter("ignore")
                    self.screen = pg.display.set_mode(size, flags | pg.SCALED, display=self.display_index, vsync=1)
                self.vsync = True
            except pg.error as exc:
                log.info("no vsync here (%s): the display loop is paced by a timer", exc)
        if not self.vsync:
            self.screen = pg.display.set_mode(size, flags, display=self.display_index)
        pg.display.set_caption(self.title)

    def close(self) -> None:
        self.pg.display.quit()
        self.pg.font.quit()

    # ------------------------------------------------------------------ events
    def poll(self) -> Actions:
        pg = self.pg
        act = Actions()
        for ev in pg.event.get():
            if ev.type == pg.QUIT:
                act.quit = True
            elif ev.type == pg.VIDEORESIZE and not self.fullscreen:
                self.window_size = max(ev.w, ev.h) if self.aspect >= 1 else ev.h
            elif self.typing is not None:
                self._typing_event(ev, act)
            elif ev.type == pg.KEYDOWN:
                self._key(ev, act)
        return act

    def _typing_event(self, ev, act: Actions) -> None:
        pg = self.pg
        if ev.type == pg.TEXTINPUT:
            self.typing = (self.typing or "") + ev.text
        elif ev.type == pg.KEYDOWN:
            if ev.key in (pg.K_RETURN, pg.K_KP_ENTER):
                text = (self.typing or "").strip()
                self.typing = None
                pg.key.stop_text_input()
                if text:
                    act.new_prompt = text
            elif ev.key == pg.K_ESCAPE:
                self.typing = None
                pg.key.stop_text_input()
            elif ev.key == pg.K_BACKSPACE:
                self.typing = (self.typing or "")[:-1]

    def _key(self, ev, act: Actions) -> None:
        pg = self.pg
        k = ev.key
        if k in (pg.K_ESCAPE, pg.K_q):
            act.quit = True
        elif k == pg.K_f:
            self.fullscreen = not self.fullscreen
            self._open()
        elif k == pg.K_h:
            act.hud = not (self.hud if act.hud is None else act.hud)
        elif k in (pg.K_PLUS, pg.K_EQUALS, pg.K_KP_PLUS):
            act.gain_factor *= GAIN_STEP
        elif k in (pg.K_MINUS, pg.K_KP_MINUS):
            act.gain_factor /= GAIN_STEP
        elif k in (pg.K_LEFTBRACKET, pg.K_RIGHTBRACKET) and not self.fullscreen:
            step = SIZE_STEP if k == pg.K_RIGHTBRACKET else -SIZE_STEP
            self.window_size = max(128, self.window_size + step)
            self._open()
        elif k == pg.K_SPACE:
            act.toggle_freeze = not act.toggle_freeze
        elif k == pg.K_p:
            self.typing = ""
            pg.key.start_text_input()
        elif pg.K_1 <= k <= pg.K_9:
            act.scene = k - pg.K_0
        elif k == pg.K_l:
            act.learn = True
        elif k == pg.K_t:
            act.tap = True

    # ------------------------------------------------------------------ drawing
    def set_picture(self, image: np.ndarray) -> None:
        self.picture = self.pg.surfarray.make_surface(np.ascontiguousarray(image.swapaxes(0, 1)))
        self._scaled = None

    def _scaled_picture(self, sw: int, sh: int):
        """The picture scaled to the window, kept until the picture or the window size changes."""
        if self._scaled is None or self._scaled[0] != (sw, sh):
            pw, ph = self.picture_size
            scale = min(sw / pw, sh / ph)
            size = (max(1, round(pw * scale)), max(1, round(ph * scale)))
            surf = self.pg.transform.smoothscale(self.picture, size) if size != (pw, ph) else self.picture
            self._scaled = ((sw, sh), surf, ((sw - size[0]) // 2, (sh - size[1]) // 2))
        return self._scaled[1], self._scaled[2]

    def draw(self, hud: HudInfo) -> None:
        pg = self.pg
        sw, sh = self.screen.get_size()
        self.screen.fill((0, 0, 0))
        if self.picture is not None:
            surf, at = self._scaled_picture(sw, sh)
            self.screen.blit(surf, at)
        if self.hud:
            self._draw_hud(hud)
        if self.typing is not None:
            self._banner(f"new prompt: {self.typing}_   (Enter applies, Esc cancels)", (20, 20, 60))
        if self.message:
            self._banner(self.message, (120, 0, 0), y=sh // 2 - 20)
        called = time.monotonic()
        pg.display.flip()
        self.flipped = (called, time.monotonic())

    def _banner(self, text: str, colour, y: int | None = None) -> None:
        sw, sh = self.screen.get_size()
        surf = self.big.render(text, True, (255, 255, 255))
        y = sh - 40 if y is None else y
        box = self.pg.Surface((sw, surf.get_height() + 12), self.pg.SRCALPHA)
        box.fill((*colour, 220))
        self.screen.blit(box, (0, y - 6))
        self.screen.blit(surf, (10, y))

    def _draw_hud(self, h: HudInfo) -> None:
        pg = self.pg
        lines = hud_text(h)
        surfs = [self.font.render(t, True, (255, 255, 255)) for t in lines]
        bars = [self.font.render(f"{label}  {w:.2f}", True, (255, 255, 255)) for label, w, _ in h.routes]
        width = max(s.get_width() for s in surfs + bars) + 20
        height = (sum(s.get_height() + 2 for s in surfs) + 36 + sum(s.get_height() + 12 for s in bars)
                  + (BEAT_BOX + 6 if h.tempo is not None else 0))
        box = pg.Surface((width, height), pg.SRCALPHA)
        box.fill((0, 0, 0, 160))
        self.screen.blit(box, (6, 6))
        y = 12
        for s in surfs:
            self.screen.blit(s, (14, y))
            y += s.get_height() + 2
        # level meter: -80..0 dBFS, the gate marked
        x0, w, bh = 14, width - 28, 12
        frac = lambda db: min(1.0, max(0.0, (db + 80.0) / 80.0))  # noqa: E731
        pg.draw.rect(self.screen, (60, 60, 60), (x0, y + 6, w, bh))
        colour = (80, 200, 80) if h.level_db >= h.gate_db else (120, 120, 120)
        pg.draw.rect(self.screen, colour, (x0, y + 6, round(w * frac(h.level_db)), bh))
        gx = x0 + round(w * frac(h.gate_db))
        pg.draw.line(self.screen, (230, 180, 40), (gx, y + 3), (gx, y + 6 + bh + 2), 2)
        y += bh + 14
        for surf, (_, _, share) in zip(bars, h.routes, strict=True):  # one bar per route: its weight in its range
            self.screen.blit(surf, (x0, y))
            y += surf.get_height() + 2
            pg.draw.rect(self.screen, (60, 60, 60), (x0, y, w, 8))
            pg.draw.rect(self.screen, (90, 160, 230), (x0, y, round(w * share), 8))
            y += 10
        if h.tempo is not None:
            self._draw_beat(x0, y + 2, w, *h.tempo[1:])
        sw, _ = self.screen.get_size()
        y = 12
        for alert in (["NO INPUT"] if h.input_status == "no input" else []) + list(h.alerts):
            surf = self.big.render(alert[:80], True, (255, 80, 80))
            self.screen.blit(surf, (sw - surf.get_width() - 12, y))
            y += surf.get_height() + 4

    def _draw_beat(self, x0: int, y: int, w: int, beats: float, quantum: float) -> None:
        """One box per beat of the bar, the current one lit and filling with the beat's phase."""
        pg = self.pg
        n = max(1, int(quantum))
        box = min(BEAT_BOX * 2, max(6, (w - 4 * (n - 1)) // n))
        current = int(beats % n) if beats >= 0 else -1
        phase = beats % 1.0
        for k in range(n):
            x = x0 + k * (box + 4)
            pg.draw.rect(self.screen, (60, 60, 60), (x, y, box, BEAT_BOX))
            if k == current:
                lit = (240, 200, 60) if k == 0 else (90, 160, 230)
                pg.draw.rect(self.screen, lit, (x, y, max(1, round(box * (1.0 - phase))), BEAT_BOX))

    def picture_with_hud(self, image: np.ndarray, hud: HudInfo) -> np.ndarray:
        """``image`` with the HUD drawn over it at its own size (for --output-hud): a copy, the window untouched."""
        pg = self.pg
        surf = pg.surfarray.make_surface(np.ascontiguousarray(image.swapaxes(0, 1)))
        screen, self.screen = self.screen, surf
        try:
            self._draw_hud(hud)
        finally:
            self.screen = screen
        return np.ascontiguousarray(pg.surfarray.array3d(surf).swapaxes(0, 1))

    def save(self, path: str) -> None:
        self.pg.image.save(self.screen, path)


def hud_text(h: HudInfo) -> list[str]:
    """The HUD's lines of text (the level meter, route bars and alerts are drawn beside them)."""
    lat = "-" if h.latency_ms is None else f"{h.latency_ms:.0f} ms"
    if h.latency_ms is not None and h.latency_split_ms is not None:
        lat += " (sound {:.0f} + wait {:.0f} + flip {:.0f})".format(*h.latency_split_ms)
    return [
        f"{h.fps:5.1f} fps   audio-to-photon {lat}   {h.atlas}   render {h.render_ms:.0f} ms"
        + ("/level" if h.atlas.startswith("atlas") else ""),
        f"words: {', '.join(h.words) or '-'}   weight {h.weight:.2f}   gain x{h.gain:.2f}",
        f"input: {h.input_status}" + ("   FROZEN" if h.frozen else ""),
        f"prompt: {h.prompt[:70]}",
        *h.notes,
        *([h.tempo[0]] if h.tempo is not None else []),
    ]
