"""What a batch shows and keeps: one progress bar for the whole batch, and ``batch_report.jsonl``.

The bar counts rows (done, skipped or failed), shows frames per second over the rendered rows and the time
left from the rows' rate. The report holds one JSON line per row of this run, written as each row ends (a
crash keeps every line written so far): ``row``, ``status`` (rendered, skipped, failed), ``out``, and for a
failure its ``error`` and the ``attempts`` made.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tqdm import tqdm

from aadiff_live.errors import cannot_write
from aadiff_live.output.sidecar import clean_json

REPORT = "batch_report.jsonl"


class Report:
    def __init__(self, out_dir: Path) -> None:
        self.path = Path(out_dir) / REPORT
        try:
            self._f: Any = open(self.path, "w", encoding="utf-8", buffering=1)  # noqa: SIM115 - closed in close()
        except OSError as exc:
            raise cannot_write(self.path, exc) from None
        self.counts = {"rendered": 0, "skipped": 0, "failed": 0}

    def write(self, record: dict[str, Any]) -> None:
        self.counts[record["status"]] += 1
        try:
            self._f.write(json.dumps(clean_json(record), separators=(",", ":")) + "\n")
        except OSError as exc:
            raise cannot_write(self.path, exc) from None

    def close(self) -> None:
        if self._f is not None:
            self._f.close()
            self._f = None


class BatchProgress:
    """One bar: rows done of all rows, frames per second, time left."""

    def __init__(self, n_rows: int) -> None:
        self.bar = tqdm(total=n_rows, desc="batch", unit="row", dynamic_ncols=True)
        self.n_frames = 0
        self._t0 = time.perf_counter()
        self._shown = 0.0

    def frames(self, n: int) -> Iterator[int]:
        """Iterate a render's ``n`` frame indices, counting them into the bar's frames per second."""
        for i in range(n):
            yield i
            self.add_frames(1)

    def add_frames(self, n: int) -> None:
        self.n_frames += n
        now = time.perf_counter()
        if now - self._shown >= 0.5:
            self._shown = now
            self.bar.set_postfix_str(f"{self.n_frames / max(now - self._t0, 1e-9):.1f} frames/s", refresh=True)

    def row_done(self, status: str) -> None:
        self.bar.update(1)
        if status != "rendered":
            return
        self._shown = 0.0
        self.add_frames(0)

    def close(self) -> None:
        self.bar.close()
