"""MIDI in (``--midi NAME``) with mido and python-rtmidi: knobs (CC) set parameters, pads (notes) switch scenes.

The mapping comes from ``midi:`` in config.yaml (:class:`MidiConfig`). rtmidi calls
:meth:`MidiInput._on_message` on its own thread; it maps the message and stores the value in
the :class:`ControlInbox` (newest wins), nothing more. A knob on a parameter that starts a new
atlas (seed, scene) is held until it comes to rest (``midi.settle_ms`` after its last tick), so a
sweep of the knob builds one atlas, not one per tick. With ``--tempo midi`` the port's clock messages (24 a
beat, start, stop, continue) go to the show's :class:`~aadiff_live.analysis.clock.MidiClock` with their arrival
time. mido is imported only when MIDI is used.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any, Protocol

from aadiff_live.control.params import PARAMS, ControlInbox
from aadiff_live.control.settings import (
    DEFAULT_CC,
    MIDI_PARAMS,
    REBUILD_PARAMS,
    CcMap,
    MidiConfig,
    idle_params,
)
from aadiff_live.errors import UserError
from aadiff_live.mailbox import Mailbox

log = logging.getLogger(__name__)
CLOCK_TYPES = frozenset({"clock", "start", "stop", "continue"})  # MIDI clock: to the tempo, never to the inbox


class ClockFeed(Protocol):
    """What takes the port's clock messages (:class:`aadiff_live.analysis.clock.MidiClock`)."""

    def feed(self, msg: Any, t: float) -> bool: ...


class MidiMapper:
    """mido message -> [(parameter, args)] by the configured mapping (no I/O: testable with plain messages)."""

    def __init__(self, cfg: MidiConfig) -> None:
        self.cfg = cfg

    def map(self, msg: Any) -> list[tuple[str, tuple[Any, ...]]]:
        ch = getattr(msg, "channel", None)
        if self.cfg.channel is not None and ch is not None and ch + 1 != self.cfg.channel:
            return []
        if msg.type == "control_change":
            m = self.cfg.cc.get(msg.control)
            return [] if m is None else [(m.param, (cc_value(m, msg.value),))]
        if msg.type == "note_on" and msg.velocity > 0:
            scene = self.cfg.notes.get(msg.note)
            return [] if scene is None else [("scene", (scene,))]
        return []


def cc_value(m: CcMap, value: int) -> float | int:
    """CC 0..127 onto ``m.min``..``m.max``; integer parameters are rounded (freeze: 64 and up is 1)."""
    x = m.min + (m.max - m.min) * min(127, max(0, int(value))) / 127.0
    return int(round(x)) if PARAMS[m.param].kind == "i" else float(x)


def _mido():
    try:
        import mido
    except ImportError:
        raise UserError("MIDI needs mido and python-rtmidi: pip install mido python-rtmidi") from None
    return mido


def input_names(flag: str = "") -> list[str]:
    mido = _mido()
    try:
        return list(mido.get_input_names())
    except Exception as exc:  # noqa: BLE001 - rtmidi raises its own SystemError when there is no MIDI system
        raise UserError(f"{flag}no MIDI system on this machine ({str(exc).strip().rstrip('.')}); on Linux the "
                        "ALSA sequencer (/dev/snd/seq, kernel module snd-seq) must be present") from None


def print_ports() -> int:
    """``aadiff-live midi-ports``."""
    names = input_names()
    if not names:
        print("no MIDI input ports (plug a controller in, or start a virtual port)")
    for i, n in enumerate(names):
        print(f"{i:3d}  {n}")
    return 0


def find_port(part: str, names: list[str]) -> str:
    hits = [n for n in names if part.lower() in n.lower()]
    if not hits:
        listed = "; ".join(names) if names else "none"
        raise UserError(f"--midi {part!r}: no MIDI input port matches (ports: {listed}); "
                        "pass part of one of these names (`aadiff-live midi-ports`)")
    return hits[0]


class MidiLearn:
    """The learn key (L): arm a parameter, the next knob moved is mapped to it; L again: the next parameter."""

    def __init__(self, cfg: MidiConfig) -> None:
        self.cfg = cfg
        self.param: str | None = None  # NB: set by the display thread, read by rtmidi's thread
        self.learned: Mailbox[tuple[int, CcMap]] = Mailbox()  # rtmidi's thread -> the display loop

    def next(self) -> str | None:
        """None -> the first parameter -> ... -> the last -> None (learn off)."""
        order = list(MIDI_PARAMS)
        i = order.index(self.param) + 1 if self.param in order else 0
        self.param = order[i] if i < len(order) else None
        return self.param

    def range_for(self, param: str) -> CcMap:
        """The range a learned knob covers: the one already mapped for this parameter, else the default's."""
        for m in (*self.cfg.cc.values(), *DEFAULT_CC.values()):
            if m.param == param:
                return CcMap(param=param, min=m.min, max=m.max)
        p = PARAMS[param]
        lo = float(p.lo if p.lo is not None else 0.0)
        return CcMap(param=param, min=lo, max=float(min(p.hi if p.hi is not None else 1.0, lo + 8.0)))

    def offer(self, msg: Any) -> bool:
        """From rtmidi's thread: True if ``msg`` was taken for learning (not to be applied as a value)."""
        param = self.param
        if param is None or msg.type != "control_change":
            return False
        self.param = None
        self.learned.put((int(msg.control), self.range_for(param)))
        return True


def write_mapping(path: Path, cc: dict[int, CcMap]) -> Path | None:
    """Write ``midi.cc`` into the YAML config at ``path`` (created if missing). The file as it was, with its
    comments, is kept as ``PATH.bak``. The backup (or None when the file is new)."""
    import yaml

    data: dict[str, Any] = {}
    backup = None
    if path.is_file():
        text = path.read_text(encoding="utf-8")
        data = yaml.safe_load(text) or {}
        backup = path.with_name(path.name + ".bak")
        backup.write_text(text, encoding="utf-8")
    midi = data.setdefault("midi", {}) or {}
    data["midi"] = midi
    midi["cc"] = {k: v.model_dump() for k, v in sorted(cc.items())}
    tmp = path.with_name(f".{path.name}.partial")
    tmp.write_text(yaml.safe_dump(data, sort_keys=False, allow_unicode=True), encoding="utf-8")
    tmp.replace(path)
    return backup


class MidiInput:
    """An open input port feeding the inbox; ``close`` at quit."""

    def __init__(self, part: str, cfg: MidiConfig, inbox: ControlInbox, smoothing: str | None = None,
                 clock: ClockFeed | None = None) -> None:
        """``clock``: fed the port's clock, start, stop and continue messages (``--tempo midi``)."""
        mido = _mido()
        self.clock = clock
        self.now = time.monotonic  # the arrival time of a clock message (tests set their own)
        self.name = find_port(part, input_names(f"--midi {part!r}: "))
        self.mapper = MidiMapper(cfg)
        self.learn = MidiLearn(cfg)
        self.inbox = inbox
        self.received = 0
        try:
            self.port = mido.open_input(self.name, callback=self._on_message)
        except Exception as exc:  # noqa: BLE001 - rtmidi's errors are not typed
            raise UserError(f"--midi: cannot open {self.name!r} ({exc})") from None
        log.info("MIDI: %s (%d knobs, %d pads mapped)", self.name, len(cfg.cc), len(cfg.notes))
        idle = [f"CC {n} ({m.param})" for n, m in sorted(cfg.cc.items())
                if smoothing is not None and m.param in idle_params(smoothing)]
        if idle:
            log.warning("MIDI: %s change nothing with smoothing '%s' (map them to something else: L, MIDI learn)",
                        ", ".join(idle), smoothing)

    def _on_message(self, msg: Any) -> None:
        # NB: runs on rtmidi's thread; only maps and stores
        self.received += 1
        if msg.type in CLOCK_TYPES:
            if self.clock is not None:
                self.clock.feed(msg, self.now())
            return
        if self.learn.offer(msg):
            return
        settle = self.mapper.cfg.settle_ms / 1000.0 if msg.type == "control_change" else 0.0
        for name, args in self.mapper.map(msg):
            self.inbox.offer("midi", name, args, settle if name in REBUILD_PARAMS else 0.0)

    def close(self) -> None:
        self.port.close()
