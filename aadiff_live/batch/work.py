"""One row's work: skip it if done, else render it with the models a :class:`RowRenderer` keeps loaded.

A render writes its video to a hidden temporary file beside the target and renames it at the end, then
writes the sidecar (``render`` does the same). A row is *done* when its video and its sidecar exist, the
sidecar says complete, and the sidecar's request (inputs and settings) is the row's. A row that stops
part-way (a failure, Ctrl-C, a lost worker) leaves no video and no sidecar: a rerun renders it again.
"""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from aadiff_live.batch.manifest import Row
from aadiff_live.errors import UserError
from aadiff_live.output.sidecar import frames_path, sidecar_path

log = logging.getLogger(__name__)
ATTEMPTS = 2  # a failing row is tried again once, then recorded as failed


def is_done(row: Row) -> bool:
    """The row's video and a complete sidecar with the same request exist (``--force`` ignores this)."""
    side = sidecar_path(row.out)
    if not row.out.is_file() or not side.is_file():
        return False
    try:
        doc = json.loads(side.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return False
    return bool(doc.get("complete")) and doc.get("settings", {}).get("request") == row.request


def discard_partial(out: Path) -> None:
    """Remove what an unfinished render of ``out`` may have left: the hidden temporary video (the name
    VideoWriter gives it) and, without a sidecar, the rows file. A finished video and its sidecar stay."""
    for tmp in out.parent.glob(f".{out.name}.*.partial.mp4"):
        tmp.unlink(missing_ok=True)
    if not sidecar_path(out).exists():
        frames_path(out).unlink(missing_ok=True)


# a render's own info lines (words chosen, atlas, file written): the batch logs one line per row instead
RENDER_LOGGERS = ("aadiff_live.render", "aadiff_live.rendering", "aadiff_live.tokens", "aadiff_live.backends",
                  "aadiff_live.analysis", "aadiff_live.audio", "aadiff_live.models")


@contextmanager
def quiet_renders(verbose: bool) -> Iterator[None]:
    """Without ``verbose``, the renders' info lines are hidden (warnings still show); levels come back after."""
    loggers = [logging.getLogger(n) for n in RENDER_LOGGERS]
    levels = [lg.level for lg in loggers]
    if not verbose:
        for lg in loggers:
            lg.setLevel(logging.WARNING)
    try:
        yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def one_line(exc: BaseException) -> str:
    """An error as one line for the report: a user error's own words, else its type and message."""
    if isinstance(exc, UserError):
        return str(exc)
    text = " ".join(str(exc).split()) or "(no message)"
    return f"{type(exc).__name__}: {text[:500]}"


class RowRenderer:
    """Renders rows one after another in this process (the local batch, or one Ray actor), loading each model
    once: rows with the same model settings share it (:class:`~aadiff_live.rendering.cache.ModelCache`)."""

    def __init__(self) -> None:
        from aadiff_live.rendering.cache import ModelCache

        self.models = ModelCache()

    def render(self, row: Row, attempt: int, frames: Callable[[int], Iterable[int]] | None = None) -> dict:
        """Render ``row``; a record for the report (``status`` rendered or failed). Ctrl-C goes on up, with the
        partial files removed."""
        from aadiff_live.render import render_job

        t0 = time.perf_counter()
        record = {"row": row.number, "out": str(row.out), "attempts": attempt, "pid": os.getpid(),
                  "host": os.uname().nodename}
        try:
            sidecar_path(row.out).unlink(missing_ok=True)  # from here the old video no longer reads as done
            discard_partial(row.out)
            kw = {"frames": frames} if frames is not None else {}
            result = render_job(row.job, self.models, keep_partial=False, **kw)
        except KeyboardInterrupt:
            discard_partial(row.out)
            raise
        except Exception as exc:  # noqa: BLE001 - a row's failure is recorded, and the batch goes on
            discard_partial(row.out)
            if not isinstance(exc, UserError):  # out of memory, a backend fault: load afresh for the next row
                self.models.clear()
                _free_gpu_memory()
            return {**record, "status": "failed", "error": one_line(exc), "seconds": time.perf_counter() - t0}
        return {**record, "status": "rendered", "frames": result.n_frames, "seconds": time.perf_counter() - t0}


def _free_gpu_memory() -> None:
    import torch

    if torch.cuda.is_available():
        torch.cuda.empty_cache()
