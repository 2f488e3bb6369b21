"""A video this project wrote (``render``, live ``--record``), read back frame by frame through PyAV (FFmpeg).

Frames come one at a time as ``[h, w, 3]`` uint8, so hours of video need no more memory than one frame.
A file FFmpeg cannot open, or one without a video stream, is a one-line :class:`UserError`.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np

from aadiff_live.errors import UserError


def _cannot(path: Path, why: str) -> UserError:
    return UserError(f"cannot read {path} as a video ({why}); pass the .mp4 that `render --out` or `--record` wrote")


def check_video(path: str | Path) -> int:
    """The number of video frames the container announces (0 when it does not say); raises if unreadable."""
    import av

    p = Path(path)
    if not p.is_file():
        raise UserError(f"video {p} not found; pass the .mp4 that `render --out` or `--record` wrote")
    try:
        with av.open(str(p)) as c:
            if not c.streams.video:
                raise _cannot(p, "no video stream")
            n = int(c.streams.video[0].frames or 0)
            next(iter(c.decode(video=0)))
    except UserError:
        raise
    except StopIteration:
        raise _cannot(p, "no frame") from None
    except Exception as exc:  # noqa: BLE001 - any FFmpeg failure means "not a readable video"
        raise _cannot(p, type(exc).__name__) from None
    return n


def read_frames(path: str | Path, stop: int | None = None) -> Iterator[np.ndarray]:
    """The frames in display order, as ``[h, w, 3]`` uint8 (the first ``stop`` of them when given)."""
    import av

    p = Path(path)
    try:
        with av.open(str(p)) as c:
            for k, frame in enumerate(c.decode(video=0)):
                if stop is not None and k >= stop:
                    return
                yield frame.to_ndarray(format="rgb24")
    except av.error.FFmpegError as exc:
        raise _cannot(p, f"damaged: {type(exc).__name__}") from None
