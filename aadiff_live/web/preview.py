"""The page's live preview: the newest shown picture as a JPEG, encoded on a thread of its own.

The display thread posts a picture into a latest-value mailbox (a few a second, only while a page
watches: :class:`~aadiff_live.web.board.Board`); this thread encodes the newest one with Pillow (which
releases the GIL while it encodes) and keeps the bytes for the web thread. A picture the encoder had
no time for is replaced, never queued: the display never waits for it.
"""

from __future__ import annotations

import io
import logging
import threading

import numpy as np

from aadiff_live.mailbox import Mailbox

log = logging.getLogger(__name__)
MAX_SIDE = 640  # larger pictures are scaled down for the page
QUALITY = 80


def encode_jpeg(image: np.ndarray, max_side: int = MAX_SIDE, quality: int = QUALITY) -> bytes:
    from PIL import Image

    im = Image.fromarray(np.ascontiguousarray(image[..., :3]), "RGB")
    if max(im.size) > max_side:
        im.thumbnail((max_side, max_side))
    buf = io.BytesIO()
    im.save(buf, "JPEG", quality=quality)
    return buf.getvalue()


class PreviewEncoder(threading.Thread):
    def __init__(self) -> None:
        super().__init__(name="web-preview", daemon=False)
        self.inbox: Mailbox[np.ndarray | None] = Mailbox()  # None: stop
        self.jpeg: bytes | None = None  # NB: written here, read by the web thread (one attribute store)
        self.encoded = 0
        self.failed = 0

    def post(self, image: np.ndarray) -> None:
        """From the display thread: never blocks (an older picture not yet encoded is dropped)."""
        self.inbox.put(image)

    def close(self) -> None:
        self.inbox.put(None)
        if self.is_alive():
            self.join(timeout=1.0)

    def run(self) -> None:
        while True:
            image = self.inbox.get()
            if image is None:
                return
            try:
                self.jpeg = encode_jpeg(image)
                self.encoded += 1
            except Exception as exc:  # noqa: BLE001 - the preview is lost, the show goes on; said once
                self.failed += 1
                if self.failed == 1:
                    log.error("web preview: encoding a picture failed (%s: %s)", type(exc).__name__, exc)
