"""The JSON sidecar next to a video (``clip.mp4.json``): settings, tokens and per-frame values."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np


def _clean(v: Any) -> Any:
    if isinstance(v, dict):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [_clean(x) for x in v]
    if isinstance(v, np.ndarray):
        return [_clean(x) for x in v.tolist()]
    if isinstance(v, (np.floating, float)):
        f = float(v)
        return round(f, 6) if np.isfinite(f) else None
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, Path):
        return str(v)
    return v


def write_json_atomic(path: str | Path, data: dict) -> Path:
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent or ".")
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        json.dump(_clean(data), f, indent=1)
        f.write("\n")
    from aadiff_live.output.video import _umask

    os.chmod(tmp, 0o666 & ~_umask())
    os.replace(tmp, path)
    return path


def sidecar_path(video: str | Path) -> Path:
    v = Path(video)
    return v.with_name(v.name + ".json")
