"""``aadiff-live batch manifest.csv --out-dir DIR``: check every row, skip the done ones, render the rest.

In this process by default (one :class:`~aadiff_live.batch.work.RowRenderer`: each model loads once), or on a
Ray cluster with ``--ray``. A failing row is tried once more, then recorded in ``DIR/batch_report.jsonl`` while
the others go on. Exit code: 0 when every row is rendered or skipped, 1 when a row failed, 2 for a bad
manifest (nothing started), 130 on Ctrl-C (a rerun resumes: done rows are skipped).
"""

from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

from tqdm.contrib.logging import logging_redirect_tqdm

from aadiff_live.batch.manifest import RenderOptions, Row, read_manifest
from aadiff_live.batch.progress import REPORT, BatchProgress, Report
from aadiff_live.batch.work import ATTEMPTS, RowRenderer, is_done, quiet_renders
from aadiff_live.errors import UserError

log = logging.getLogger("aadiff_live.batch")


def _order(rows: list[Row]) -> list[Row]:
    """Rows with the same model settings next to each other (a model loads once per run of them), else in
    manifest order."""
    from aadiff_live.rendering.build import backend_key

    keys: dict[tuple, int] = {}
    for row in rows:
        keys.setdefault(backend_key(row.job.cfg), len(keys))
    return sorted(rows, key=lambda r: keys[backend_key(r.job.cfg)])


def run_local(rows: list[Row], report: Report, progress: BatchProgress) -> None:
    worker = RowRenderer()
    for row in rows:
        for attempt in range(1, ATTEMPTS + 1):
            record = worker.render(row, attempt, frames=progress.frames)
            if record["status"] == "rendered":
                break
            log.warning("row %d failed (attempt %d of %d): %s", row.number, attempt, ATTEMPTS, record["error"])
        report.write(record)
        progress.row_done(record["status"])


def run_batch(a: argparse.Namespace, options: RenderOptions) -> int:
    """``options``: how the CLI reads render's options (each row is read the same way)."""
    if a.workers is not None and not a.ray:
        raise UserError("--workers sets the number of Ray actors; add --ray auto (or a cluster address)")
    if a.ray:
        from aadiff_live.batch.ray_run import require_ray

        require_ray()  # before the manifest is read: the install command, not a traceback
    default_config = Path(a.config) if a.config else (Path("config.yaml") if Path("config.yaml").is_file() else None)
    if default_config is not None and not default_config.is_file():
        raise UserError(f"config file {default_config} not found; pass an existing --config file")
    rows = read_manifest(a.manifest, a.out_dir, options, default_config)
    out_dir = Path(a.out_dir).resolve()
    todo = rows if a.force else [r for r in rows if not is_done(r)]
    todo_numbers = {r.number for r in todo}
    report = Report(out_dir)
    progress = BatchProgress(len(rows))
    t0 = time.perf_counter()
    try:
        with logging_redirect_tqdm(), quiet_renders(a.verbose):
            for row in rows:
                if row.number not in todo_numbers:
                    report.write({"row": row.number, "out": str(row.out), "status": "skipped"})
                    progress.row_done("skipped")
            if todo:
                if a.ray:
                    from aadiff_live.batch.ray_run import run_ray

                    run_ray(_order(todo), address=a.ray, workers=a.workers, report=report, progress=progress,
                            verbose=a.verbose)
                else:
                    run_local(_order(todo), report, progress)
    except KeyboardInterrupt:
        progress.close()
        report.close()
        c = report.counts
        log.warning("interrupted: %d rendered, %d skipped, %d failed so far; the rows in progress were discarded. "
                    "Run the same command again to resume (done rows are skipped)", c["rendered"], c["skipped"],
                    c["failed"])
        return 130
    progress.close()
    report.close()
    c = report.counts
    log.info("batch: %d rendered, %d skipped (already done), %d failed in %.0f s; report: %s", c["rendered"],
             c["skipped"], c["failed"], time.perf_counter() - t0, out_dir / REPORT)
    if c["failed"]:
        log.error("%d row(s) failed twice: their errors are in %s", c["failed"], out_dir / REPORT)
        return 1
    return 0
