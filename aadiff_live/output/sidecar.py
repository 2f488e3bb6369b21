"""The sidecar: one JSON file of settings and summaries, and one row per frame in a JSON-lines file.

Every mode writes the same thing (``docs/sidecar.schema.json`` is its JSON Schema, ``docs/sidecar.md``
describes it): ``render`` and live ``--record`` beside the video (``clip.mp4.json`` and
``clip.mp4.frames.jsonl``), ``analyse --json a.json`` beside its JSON (``a.frames.jsonl``). The JSON
names its kind (``"kind"``), the format's version (``"schema_version"``) and its rows file
(``"frames_file"``). Rows are streamed to disk as frames are made, in all modes: hours of render and
days of live keep nothing per frame in memory, and a crash keeps every row written so far. A row's
field has the same name and meaning in every mode that has it (``time``, ``weight``, ``rms_db``, ...).
:func:`read_frames` reads the rows back as columns.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from aadiff_live.errors import cannot_write

SCHEMA_VERSION = 1  # docs/sidecar.schema.json; raised when a field changes meaning or goes away
KINDS = ("render", "analyse", "live")


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
    """The rows file of a video's sidecar: ``clip.mp4`` -> ``clip.mp4.frames.jsonl``."""
    v = Path(video)
    return v.with_name(v.name + ".frames.jsonl")


def rows_path(sidecar: str | Path) -> Path:
    """The rows file beside a sidecar: ``clip.mp4.json`` -> ``clip.mp4.frames.jsonl``, ``a.json`` -> ``a.frames.jsonl``."""
    s = Path(sidecar)
    stem = s.name[:-len(".json")] if s.name.endswith(".json") else s.name
    return s.with_name(stem + ".frames.jsonl")


def sidecar_doc(kind: str, rows: RowWriter | None, **parts: Any) -> dict:
    """The sidecar's JSON: ``schema_version``, ``kind`` and ``frames_file`` first, then ``parts``."""
    if kind not in KINDS:
        raise ValueError(f"unknown sidecar kind {kind!r}")
    name = rows.path.name if rows is not None and rows.n_rows else None
    return {"schema_version": SCHEMA_VERSION, "kind": kind, "frames_file": name, **parts}


class RowWriter:
    """One JSON object per line, written as frames are made (nothing per frame is kept in memory).

    A failure to write (disk full, folder gone) raises :class:`~aadiff_live.errors.OutputError` naming
    the file. ``line_buffered``: every row reaches the OS at once (live: a crash loses no row)."""

    def __init__(self, path: str | Path, line_buffered: bool = False) -> None:
        self.path = Path(path)
        self.n_rows = 0
        try:
            self._f: Any = open(self.path, "w", encoding="utf-8", buffering=1 if line_buffered else -1)  # noqa: SIM115
        except OSError as exc:
            raise cannot_write(self.path, exc) from None

    def write(self, row: dict[str, Any]) -> None:
        try:
            self._f.write(json.dumps(clean_json(row), separators=(",", ":")) + "\n")
        except OSError as exc:
            raise cannot_write(self.path, exc) from None
        self.n_rows += 1

    def close(self) -> None:
        """Flush and close; a file with no row is removed."""
        f, self._f = self._f, None
        if f is None:
            return
        try:
            f.close()
        except OSError as exc:
            raise cannot_write(self.path, exc) from None
        finally:
            if self.n_rows == 0:
                self.path.unlink(missing_ok=True)

    def discard(self) -> None:
        """Close and remove (the output it belongs to was removed)."""
        f, self._f = self._f, None
        if f is not None:
            try:
                f.close()
            except OSError:
                pass  # the file is being removed anyway
        self.path.unlink(missing_ok=True)


def envelope_row(env, i: int) -> dict[str, Any]:
    """Frame ``i`` of an offline :class:`~aadiff_live.analysis.envelope.Envelope` as a row (render, analyse)."""
    return {"frame": i, "time": env.times[i], "raw": env.raw[i], "smoothed": env.smoothed[i],
            "normalised": env.normalised[i], "rms_db": env.rms_db[i], "weight": env.weights[i]}


def read_rows(sidecar: str | Path) -> list[dict[str, Any]]:
    """The rows of a sidecar (its ``frames_file``), in order. A last line cut short by a crash is skipped."""
    side = Path(sidecar)
    data = json.loads(side.read_text(encoding="utf-8"))
    name = data.get("frames_file")
    if not name:
        return []
    rows = []
    with open(side.with_name(name), encoding="utf-8") as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                break  # a torn last line
    return rows


def read_frames(sidecar: str | Path) -> dict[str, Any]:
    """The rows of a sidecar as columns ``{field: [value per frame]}`` (a field missing from a row reads None).
    A field whose values are objects (``sources``, ``weights``: name -> value) reads as ``{name: [value per
    frame]}``."""
    rows = read_rows(sidecar)
    keys: dict[str, None] = {}
    for r in rows:
        keys.update(dict.fromkeys(r))
    out: dict[str, Any] = {}
    for k in keys:
        col = [r.get(k) for r in rows]
        if any(isinstance(v, dict) for v in col):
            names: dict[str, None] = {}
            for v in col:
                names.update(dict.fromkeys(v or {}))
            out[k] = {n: [(v or {}).get(n) for v in col] for n in names}
        else:
            out[k] = col
    return out
