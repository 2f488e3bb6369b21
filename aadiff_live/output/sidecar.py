"""The JSON sidecar next to a video (``clip.mp4.json``): settings, tokens and per-frame values.

Live recordings stream their per-frame rows to a JSON-lines file beside the video
(``clip.mp4.frames.jsonl``, one JSON object per frame) that the sidecar names in
``"frames_file"``; :func:`read_frames` reads either form back as columns.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from aadiff_live.errors import cannot_write


def current_umask() -> int:
    """The process's umask (files written atomically get the permissions a plain ``open`` would give)."""
    mask = os.umask(0)
    os.umask(mask)
    return mask


def clean_json(v: Any) -> Any:
    """JSON-ready copy: numpy scalars and arrays to Python, floats rounded to 6 places, NaN/inf to null."""
    if isinstance(v, dict):
        return {str(k): clean_json(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [clean_json(x) for x in v]
    if isinstance(v, np.ndarray):
        return [clean_json(x) for x in v.tolist()]
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return round(f, 6) if np.isfinite(f) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, Path):
        return str(v)
    return v


def write_json_atomic(path: str | Path, data: dict) -> Path:
    """Write ``data`` as JSON to a temporary file beside ``path`` and rename it: ``path`` is never
    half-written. A failure (disk full, folder gone) removes the temporary file and raises
    :class:`~aadiff_live.errors.OutputError` naming ``path`` and the cause."""
    path = Path(path)
    tmp: str | None = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent or ".")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(clean_json(data), f, indent=1)
            f.write("\n")
        os.chmod(tmp, 0o666 & ~current_umask())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp is not None:
            Path(tmp).unlink(missing_ok=True)
        raise cannot_write(path, exc) from None
    return path


def sidecar_path(video: str | Path) -> Path:
    v = Path(video)
    return v.with_name(v.name + ".json")


def frames_path(video: str | Path) -> Path:
    """Where a live recording's per-frame rows go: ``clip.mp4.frames.jsonl``."""
    v = Path(video)
    return v.with_name(v.name + ".frames.jsonl")


def read_frames(sidecar: str | Path) -> dict[str, list]:
    """The per-frame values of a sidecar as columns ``{key: [value per frame]}`` (a key missing from a
    row reads None), whether they are inline (``"frames"``) or in its JSON-lines file (``"frames_file"``).
    A last line cut short by a crash is skipped."""
    side = Path(sidecar)
    data = json.loads(side.read_text(encoding="utf-8"))
    if "frames" in data:
        return dict(data["frames"])
    name = data.get("frames_file")
    if not name:
        return {}
    rows = []
    with open(side.with_name(name), encoding="utf-8") as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a torn last line
    keys: dict[str, None] = {}
    for r in rows:
        keys.update(dict.fromkeys(r))
    return {k: [r.get(k) for r in rows] for k in keys}
