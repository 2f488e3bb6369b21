"""Audio input devices (PortAudio, through sounddevice): list them, resolve ``--input``, and wait for
one that is not there yet (``--wait-for-device``: a USB interface that appears after the app starts at boot)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from aadiff_live.errors import UserError

log = logging.getLogger(__name__)
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".m4a", ".aac", ".opus", ".aiff", ".aif")
WAIT_FIRST_S = 0.5  # --wait-for-device: the first look again after this long, doubling ...
WAIT_MAX_S = 5.0  # ... up to this
WAIT_SAY_EVERY_S = 30.0  # a "still waiting" line this often


class DeviceMissing(UserError):
    """The input device asked for is not in the device list (it may appear later: --wait-for-device)."""


class DeviceTimeout(UserError):
    """The input device did not appear within --wait-for-device: exit code 3, which a service restarts on
    (unlike 2, a mistake in the command line that a restart would only repeat)."""

    exit_code = 3


@dataclass(frozen=True)
class InputDevice:
    index: int
    name: str
    channels: int
    default_samplerate: float
    is_default: bool


def sounddevice_module():
    """``import sounddevice``, with a one-line error if the PortAudio library is missing."""
    try:
        import sounddevice as sd
    except OSError:
        raise UserError(
            "the PortAudio library is not installed; install it (Debian/Ubuntu: apt-get install libportaudio2, "
            "macOS: brew install portaudio) or use a sound file as --input"
        ) from None
    return sd


def list_inputs() -> list[InputDevice]:
    sd = sounddevice_module()
    try:
        devices = sd.query_devices()
        default_in = sd.default.device[0]
    except sd.PortAudioError as exc:
        raise DeviceMissing(f"cannot list audio devices ({exc}); check that your sound system is running") from None
    if default_in is None or default_in < 0:
        default_in = -1
    out = []
    for d in devices:
        if int(d["max_input_channels"]) > 0:
            out.append(InputDevice(int(d["index"]), str(d["name"]), int(d["max_input_channels"]),
                                   float(d["default_samplerate"]), int(d["index"]) == default_in))
    return out


def format_devices(inputs: list[InputDevice]) -> str:
    if not inputs:
        return "no audio input devices found"
    rows = [f"{'':1} {'index':>5}  {'channels':>8}  {'rate':>7}  name"]
    for d in inputs:
        rows.append(f"{'*' if d.is_default else ' ':1} {d.index:>5}  {d.channels:>8}  {d.default_samplerate:>7.0f}  {d.name}")
    return "\n".join(rows)


def print_devices() -> int:
    inputs = list_inputs()
    if not inputs:
        raise UserError("no audio input devices found; connect a microphone or start the sound server "
                        "(PulseAudio/PipeWire), or use a sound file as --input")
    print(format_devices(inputs))
    print("(* = default; pass --input INDEX or a part of the name)")
    return 0


def is_file_input(spec: str) -> bool:
    """A path to a sound file (existing, or looking like one so that a typo gets a clear error)."""
    p = Path(spec)
    return p.is_file() or p.suffix.lower() in AUDIO_SUFFIXES or "/" in spec or "\\" in spec


def _listing(inputs: list[InputDevice]) -> str:
    return "; ".join(f"{d.index}: {d.name}" for d in inputs) if inputs else "none found"


def _no_device(reason: str, inputs: list[InputDevice], cls: type[UserError] = DeviceMissing) -> UserError:
    return cls(f"{reason}; input devices: {_listing(inputs)}. Pass --input INDEX, a part of a device name, "
               f"or a sound file (see `aadiff-live devices`)")


def resolve_input(spec: str) -> InputDevice:
    """``default``, an index or a name substring (case-insensitive) -> the input device."""
    inputs = list_inputs()
    if not inputs:
        raise _no_device("no audio input device is available (is a microphone connected and the sound "
                         "server running?)", inputs)
    spec = (spec or "default").strip()
    if spec == "default":
        for d in inputs:
            if d.is_default:
                return d
        log.info("no default input device: using %d (%s)", inputs[0].index, inputs[0].name)
        return inputs[0]
    if spec.lstrip("-").isdigit():
        for d in inputs:
            if d.index == int(spec):
                return d
        raise _no_device(f"--input {spec}: no input device has that index", inputs)
    exact = [d for d in inputs if d.name.lower() == spec.lower()]
    if exact:
        return exact[0]
    matches = [d for d in inputs if spec.lower() in d.name.lower()]
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise _no_device(f"--input {spec!r} matches no input device name", inputs)
    raise _no_device(f"--input {spec!r} matches several devices ({', '.join(d.name for d in matches)}); "
                     f"be more specific or pass the index", inputs, UserError)


def wait_for_input(spec: str, wait_s: float, *, rescan: Callable[[], None] | None = None,
                   clock: Callable[[], float] | None = None,
                   sleep: Callable[[float], object] | None = None) -> InputDevice:
    """:func:`resolve_input`, and while the device is missing look again (``rescan`` first: a device plugged in
    later appears only in a fresh list) after 0.5 s, 1 s, 2 s, ... at most 5 s apart, for up to ``wait_s``
    seconds; then :class:`DeviceTimeout` (exit 3). ``wait_s`` 0: a missing device is an error at once (exit 2)."""
    clock = clock or time.monotonic
    sleep = sleep or time.sleep
    try:
        return resolve_input(spec)
    except DeviceMissing as exc:
        if wait_s <= 0:
            raise
        first = exc
    start = clock()
    log.warning("waiting up to %g s for the input device %r to appear (--wait-for-device): %s", wait_s,
                spec or "default", str(first).split("; input devices:")[0])
    delay, said = WAIT_FIRST_S, start
    while True:
        now = clock()
        left = wait_s - (now - start)
        if left <= 0:
            try:
                inputs = list_inputs()
            except DeviceMissing:
                inputs = []
            raise _no_device(f"--input {spec!r}: the device did not appear within --wait-for-device {wait_s:g} s",
                             inputs, DeviceTimeout) from None
        if now - said >= WAIT_SAY_EVERY_S:
            log.warning("still waiting for the input device %r (%.0f s of %g s)", spec, now - start, wait_s)
            said = now
        sleep(min(delay, left))
        delay = min(delay * 2, WAIT_MAX_S)
        if rescan is not None:
            rescan()
        try:
            device = resolve_input(spec)
        except DeviceMissing as exc:
            log.debug("input device still missing: %s", exc)
            continue
        log.info("input device %d (%s) appeared after %.1f s", device.index, device.name, clock() - start)
        return device
