"""Video out to other programs (``--output ndi[:NAME]``, ``syphon``, ``spout``, ``virtualcam``).

Each output is an optional extra (``pip install 'aadiff-live[ndi]'``), imported only when asked,
and one line says what to install (or which platform it needs) when it is missing. The display
loop hands every displayed frame to :class:`ShareThread` through a latest-value mailbox; the
thread does the copies and the sends, so a slow receiver never holds the display. A send that
fails is loud (log line, HUD) and the show goes on.

NDI uses cyndilib (maintained, ships the NDI runtime in its wheels for Linux, macOS and
Windows, typed, writes numpy buffers without a copy); ndi-python also ships the runtime but
mirrors the C API call for call (create/destroy pairs, frame structs filled by hand).
"""

from __future__ import annotations

import logging
import sys
import threading
from collections.abc import Callable
from fractions import Fraction
from typing import Protocol

import numpy as np

from aadiff_live.errors import UserError
from aadiff_live.mailbox import Mailbox

log = logging.getLogger(__name__)
KINDS = ("ndi", "syphon", "spout", "virtualcam")
DEFAULT_NAME = "aadiff-live"
_PLATFORM = {"syphon": ("darwin", "macOS", "on Windows use --output spout; anywhere --output ndi"),
             "spout": ("win32", "Windows", "on macOS use --output syphon; anywhere --output ndi")}
_EXTRA = {"ndi": ("cyndilib", "ndi"), "syphon": ("syphon", "syphon"), "spout": ("SpoutGL", "spout"),
          "virtualcam": ("pyvirtualcam", "virtualcam")}


class Share(Protocol):
    label: str

    def send(self, image: np.ndarray) -> None:
        """``image``: [h, w, 3] uint8 RGB."""

    def close(self) -> None: ...


def parse_output(spec: str) -> tuple[str, str]:
    kind, _, name = str(spec).partition(":")
    kind = kind.strip().lower()
    if kind not in KINDS:
        raise UserError(f"--output {spec!r}: use one of ndi[:NAME], syphon[:NAME], spout[:NAME], virtualcam")
    if kind == "virtualcam" and name:
        raise UserError("--output virtualcam takes no name (the device is chosen by pyvirtualcam)")
    return kind, name.strip() or DEFAULT_NAME


def _need(kind: str, platform: str | None = None):
    """Import the output's package, or a one-line error with the platform or the install command."""
    import importlib

    platform = platform or sys.platform
    if kind in _PLATFORM and not platform.startswith(_PLATFORM[kind][0]):
        _, os_name, instead = _PLATFORM[kind]
        raise UserError(f"--output {kind} works on {os_name} only (this is {platform}); {instead}")
    module, extra = _EXTRA[kind]
    try:
        return importlib.import_module(module)
    except ImportError:
        raise UserError(f"--output {kind} needs {module}: pip install 'aadiff-live[{extra}]'") from None


def _rgba(image: np.ndarray, out: np.ndarray) -> np.ndarray:
    out[..., :3] = image
    return out


class NdiShare:
    """An NDI source named ``name`` (receivers see "HOST (name)")."""

    def __init__(self, name: str, width: int, height: int, fps: float) -> None:
        _need("ndi")
        from cyndilib.sender import Sender
        from cyndilib.video_frame import VideoSendFrame
        from cyndilib.wrapper.ndi_structs import FourCC

        self.label = f"ndi:{name}"
        self.sender = Sender(name, clock_video=False, clock_audio=False)  # the display sets the pace, not NDI
        vf = VideoSendFrame()
        vf.set_resolution(width, height)
        vf.set_frame_rate(Fraction(fps).limit_denominator(1001))
        vf.set_fourcc(FourCC.RGBX)
        self.sender.set_video_frame(vf)
        self.sender.open()
        self._buf = np.full((height, width, 4), 255, np.uint8)  # prepared once; only RGB is written per frame
        self.source_name = self.sender.source.name if self.sender.source is not None else name

    def send(self, image: np.ndarray) -> None:
        self.sender.write_video(_rgba(image, self._buf).ravel())

    def close(self) -> None:
        self.sender.close()


class SyphonShare:
    def __init__(self, name: str, width: int, height: int, fps: float) -> None:
        syphon = _need("syphon")
        from syphon.utils.numpy import copy_image_to_mtl_texture
        from syphon.utils.raw import create_mtl_texture

        self.label = f"syphon:{name}"
        self.server = syphon.SyphonMetalServer(name)
        self.texture = create_mtl_texture(self.server.device, width, height)
        self._copy = copy_image_to_mtl_texture
        self._buf = np.full((height, width, 4), 255, np.uint8)

    def send(self, image: np.ndarray) -> None:
        self._copy(_rgba(image, self._buf), self.texture)
        self.server.publish_frame_texture(self.texture)

    def close(self) -> None:
        self.server.stop()


GL_RGBA = 0x1908  # OpenGL's constant (PyOpenGL not needed for one number)


class SpoutShare:
    def __init__(self, name: str, width: int, height: int, fps: float) -> None:
        spout = _need("spout")
        self.label = f"spout:{name}"
        self.name = name
        self.sender = spout.SpoutSender()
        self.sender.setSenderName(name)
        self._buf = np.full((height, width, 4), 255, np.uint8)
        self.width, self.height = width, height

    def send(self, image: np.ndarray) -> None:
        if not self.sender.sendImage(_rgba(image, self._buf), self.width, self.height, GL_RGBA, False, 0):
            raise RuntimeError("Spout did not take the frame")
        self.sender.setFrameSync(self.name)

    def close(self) -> None:
        self.sender.releaseSender()


class VirtualCamShare:
    """OBS Virtual Camera (Windows, macOS) or a v4l2loopback device (Linux), through pyvirtualcam."""

    def __init__(self, name: str, width: int, height: int, fps: float) -> None:
        pvc = _need("virtualcam")
        try:
            self.cam = pvc.Camera(width=width, height=height, fps=fps, fmt=pvc.PixelFormat.RGB)
        except RuntimeError as exc:  # no OBS virtual camera / no v4l2loopback device
            hint = ("sudo modprobe v4l2loopback exclusive_caps=1" if sys.platform.startswith("linux")
                    else "install OBS Studio and start its virtual camera once")
            raise UserError(f"--output virtualcam: {str(exc).splitlines()[0]} ({hint})") from None
        self.label = f"virtualcam:{self.cam.device}"

    def send(self, image: np.ndarray) -> None:
        self.cam.send(np.ascontiguousarray(image))

    def close(self) -> None:
        self.cam.close()


_OPENERS: dict[str, Callable[[str, int, int, float], Share]] = {"ndi": NdiShare, "syphon": SyphonShare, "spout": SpoutShare, "virtualcam": VirtualCamShare}


def open_share(spec: str, width: int, height: int, fps: float) -> Share:
    kind, name = parse_output(spec)
    share = _OPENERS[kind](name, width, height, fps)
    log.info("video out: %s (%dx%d)", share.label, width, height)
    return share


class ShareThread(threading.Thread):
    """Sends the newest displayed frame to every output; the display only posts (never waits)."""

    def __init__(self, shares: list[Share], stop: threading.Event) -> None:
        super().__init__(name="video-out", daemon=False)
        self.shares = shares
        self.stop_event = stop
        self.frames: Mailbox[np.ndarray] = Mailbox()
        self.sent = 0
        self.failed: dict[str, str] = {}  # NB: read by the HUD: output label -> last error

    def post(self, image: np.ndarray) -> None:
        """From the display loop: the frame as shown (newest wins)."""
        self.frames.put(image)

    def run(self) -> None:
        try:
            while not self.stop_event.is_set():
                image = self.frames.get(timeout=0.1)
                if image is None:
                    continue
                for s in self.shares:
                    try:
                        s.send(image)
                    except Exception as exc:  # noqa: BLE001 - loud (log once per output, HUD), the show goes on
                        if s.label not in self.failed:
                            log.error("video out %s failed: %s: %s; still trying every frame", s.label,
                                      type(exc).__name__, exc)
                        self.failed[s.label] = f"{type(exc).__name__}: {exc}"
                    else:
                        self.failed.pop(s.label, None)
                self.sent += 1
        finally:
            for s in self.shares:
                try:
                    s.close()
                except Exception as exc:  # noqa: BLE001 - closing one must not keep the others open
                    log.warning("closing video out %s: %s", s.label, exc)
