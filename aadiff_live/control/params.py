"""What a VJ rig may change while the show runs: the parameter table, its checks, and the inbox.

OSC, MIDI and the keys all end in :class:`ControlInbox`: a keyed latest-value mailbox. A source
thread (the OSC server, the MIDI callback) only checks a value and stores it under its name;
the display loop takes everything once per frame. A flood of messages therefore costs one dict
store each and coalesces (newest wins): the display never sees more than one change per name
per frame. A value may also be held until it settles (``settle_s``: a knob that rebuilds the atlas
acts once it comes to rest, not on every tick of its travel). A message that fails a check is dropped with one log line (rate-limited, so a flood
of bad messages cannot flood the log either).
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

MAX_TEXT = 1000  # characters of a prompt or a word list (77 CLIP tokens are far fewer)
SEED_MAX = 2**32 - 1
GAIN_MAX = 100.0  # the highest gain keys, MIDI, OSC and scenes may set


@dataclass(frozen=True)
class Param:
    name: str
    kind: str  # OSC type tag: 'f' float, 'i' int, 's' string
    lo: float | None = None
    hi: float | None = None
    help: str = ""

    @property
    def address(self) -> str:
        return f"/aadiff/{self.name}"


PARAMS: dict[str, Param] = {p.name: p for p in (
    Param("gain", "f", 0.0, GAIN_MAX, "multiplies the normalised envelope"),
    Param("w_min", "f", -10.0, 10.0, "token weight in silence"),
    Param("w_max", "f", -10.0, 10.0, "token weight at full loudness"),
    Param("window_ms", "f", 0.0, 10000.0, "trailing smoothing window (smoothing 'trailing')"),
    Param("attack_ms", "f", 0.0, 10000.0, "attack time constant (smoothing 'attack-release')"),
    Param("release_ms", "f", 0.0, 60000.0, "release time constant (smoothing 'attack-release')"),
    Param("prompt", "s", help="a new prompt (latents kept)"),
    Param("words", "s", help="comma-separated words of the prompt to pin; empty: CLAP chooses again"),
    Param("scene", "i", 1, 99, "switch to scene N (1 = the first in config.yaml)"),
    Param("seed", "i", 0, SEED_MAX, "seed of the shared initial noise (new base)"),
    Param("freeze", "i", 0, 1, "1 holds the picture, 0 lets it move"),
    Param("hud", "i", 0, 1, "1 shows the HUD, 0 hides it"),
    Param("tempo", "f", 20.0, 999.0, "propose a tempo (BPM) to the Link session (--tempo link)"),
)}


class ControlError(ValueError):
    """A control message that is ignored (the text says why)."""


def check_value(name: str, args: tuple[Any, ...]) -> float | int | str:
    """The single argument of a message to ``name``, checked against the table; else ControlError."""
    p = PARAMS.get(name)
    if p is None:
        raise ControlError(f"unknown parameter '{name}'")
    if len(args) != 1:
        raise ControlError(f"{p.address} takes one argument ({p.kind}), got {len(args)}")
    v = _coerce(p, args[0])
    if isinstance(v, str):
        if len(v) > MAX_TEXT:
            raise ControlError(f"{p.address}: {len(v)} characters, more than {MAX_TEXT}")
        return v
    if v != v or (p.lo is not None and v < p.lo) or (p.hi is not None and v > p.hi):
        raise ControlError(f"{p.address}: {v} is outside {_fmt(p.lo)}..{_fmt(p.hi)}")
    return v


_KIND = {"f": "a float (f)", "i": "an int (i)", "s": "a string (s)"}


def _coerce(p: Param, v: Any) -> float | int | str:
    """Controllers send what they send (TouchOSC: floats; a toggle: True/False): an integer parameter takes a
    whole float (2.0 -> 2) or, for a 0..1 switch, a boolean; a float parameter takes an int. Else ControlError."""
    if p.kind == "s":
        if isinstance(v, str):
            return v
    elif isinstance(v, bool):
        if p.kind == "i" and p.lo == 0 and p.hi == 1:
            return int(v)
    elif p.kind == "f" and isinstance(v, int | float):
        return float(v)
    elif p.kind == "i" and isinstance(v, int):
        return v
    elif p.kind == "i" and isinstance(v, float):
        if v.is_integer():
            return int(v)
        raise ControlError(f"{p.address} takes a whole number, got {v:g} (not a whole number)")
    raise ControlError(f"{p.address} takes {_KIND[p.kind]}, got {type(v).__name__}")


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:g}"


class IgnoredLog:
    """One log line per ignored message, at most ``per_second`` a second; the rest counted in one line."""

    def __init__(self, per_second: int = 10, clock=time.monotonic) -> None:
        self.per_second = per_second
        self.clock = clock
        self._lock = threading.Lock()
        self._window = -1.0
        self._shown = 0
        self._suppressed = 0
        self.total = 0
        self.last: tuple[float, str, str] | None = None  # (when, source, why) of the newest (the web page shows it)

    def _roll(self, now: float) -> None:
        if now - self._window >= 1.0:
            if self._suppressed:
                log.warning("%d more control messages ignored in the last second", self._suppressed)
            self._window, self._shown, self._suppressed = now, 0, 0

    def flush(self) -> None:
        """Say how many were left unsaid once their second is over (called per frame; cheap)."""
        if self._suppressed:
            with self._lock:
                self._roll(self.clock())

    def __call__(self, source: str, reason: str) -> None:
        with self._lock:
            self.total += 1
            now = self.clock()
            self.last = (now, source, reason)
            self._roll(now)
            if self._shown < self.per_second:
                self._shown += 1
                log.warning("%s: ignored: %s", source, reason)
            else:
                self._suppressed += 1


class ControlInbox:
    """Keyed latest-value mailbox: ``put`` from any thread, ``take`` (all pending, newest each) per frame."""

    def __init__(self, clock=time.monotonic) -> None:
        self._lock = threading.Lock()
        self.clock = clock
        self._pending: dict[str, Any] = {}
        self._due: dict[str, float] = {}  # name -> when its pending value may be taken (held until it settles)
        self.received = 0  # NB: counted by the source threads, read by tests and the summary
        self.coalesced = 0  # values replaced by a newer one before the display took them
        self.ignored = IgnoredLog()

    def put(self, name: str, value: Any, settle_s: float = 0.0) -> None:
        """Store ``value`` (newest wins); ``settle_s`` > 0: hold it until no newer value came for that long."""
        due = self.clock() + settle_s if settle_s > 0 else None
        with self._lock:
            self.received += 1
            if name in self._pending:
                self.coalesced += 1
            self._pending[name] = value
            if due is None:
                self._due.pop(name, None)
            else:
                self._due[name] = due

    def offer(self, source: str, name: str, args: tuple[Any, ...], settle_s: float = 0.0) -> bool:
        """Check and store; a message that fails a check is logged and dropped. True if stored."""
        try:
            value = check_value(name, args)
        except ControlError as exc:
            self.ignored(source, str(exc))
            return False
        self.put(name, value, settle_s)
        return True

    def take(self) -> dict[str, Any]:
        """Everything pending, except values still settling."""
        with self._lock:
            if not self._due:
                out, self._pending = self._pending, {}
            else:
                now = self.clock()
                out = {k: v for k, v in self._pending.items() if self._due.get(k, now) <= now}
                for k in out:
                    del self._pending[k]
                    self._due.pop(k, None)
        self.ignored.flush()
        return out
