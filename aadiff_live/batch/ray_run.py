"""``batch --ray``: the rows as work for Ray actors, each a :class:`~aadiff_live.batch.work.RowRenderer` holding
its loaded model (one GPU per actor on a GPU cluster, a share of the CPUs otherwise).

Ray (Apache-2.0) is the usual carrier of Python GPU batch inference: it starts the worker processes, places
them on GPUs and reports a lost one. This module only hands each idle actor the next row and retries a row
once when it fails or its actor is lost (a new actor takes the lost one's place). Every path is read and
written by the actors themselves, so the manifest's audio and images and ``--out-dir`` must be visible at
the same path on every node (a shared folder: NFS, SMB, a cloud file share mounted on each node).
"""

from __future__ import annotations

import logging
from collections import deque
from typing import Any

from aadiff_live.batch.manifest import Row
from aadiff_live.batch.progress import BatchProgress, Report
from aadiff_live.batch.work import ATTEMPTS, RowRenderer, discard_partial, one_line
from aadiff_live.errors import UserError

log = logging.getLogger(__name__)
INSTALL = 'pip install "aadiff-live[ray]"'


def require_ray():
    try:
        import ray
    except ImportError:
        raise UserError(f"--ray needs Ray, which is not installed; run {INSTALL} (on every node of the cluster)") from None
    return ray


class _Actor(RowRenderer):
    """The Ray actor's class: a RowRenderer that logs warnings only (its lines would reach the driver)."""

    def __init__(self, verbose: bool = False) -> None:
        from aadiff_live.batch.work import RENDER_LOGGERS

        super().__init__()
        logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING, format="aadiff-live: %(message)s")
        if not verbose:
            for name in RENDER_LOGGERS:
                logging.getLogger(name).setLevel(logging.WARNING)

    def ping(self) -> bool:
        return True


ACTOR_CLASS: type = _Actor  # the class each actor runs (tests put in one that fails on purpose)


def connect(address: str):
    """Join the cluster: ``auto`` finds one this machine belongs to (``ray start``, RAY_ADDRESS) or starts a
    local one; else ``address`` (``ray://head:10001``, ``head:6379``). Already connected: that one."""
    ray = require_ray()
    if ray.is_initialized():
        return ray
    try:
        ray.init(address=None if address == "auto" else address, include_dashboard=False,
                 log_to_driver=True, logging_level=logging.WARNING)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        raise UserError(f"--ray {address}: cannot join the Ray cluster ({one_line(exc)}); check the address "
                        f"(ray status on the head node prints it) or use --ray auto") from None
    return ray


def run_ray(rows: list[Row], *, address: str, workers: int | None, report: Report, progress: BatchProgress,
            verbose: bool = False, actor_class: type | None = None) -> None:
    """Render ``rows`` on the cluster; each row's record goes to ``report`` as it ends. Ctrl-C stops the actors
    and removes the partial files of the rows they held, then goes on up."""
    ray = connect(address)
    resources = ray.cluster_resources()
    gpus, cpus = int(resources.get("GPU", 0)), max(1, int(resources.get("CPU", 1)))
    n = workers or (gpus if gpus else 2)
    if n < 1:
        raise UserError(f"--workers {n}: give at least 1")
    per_actor: dict[str, Any] = {"num_gpus": 1, "num_cpus": 1} if gpus else {"num_cpus": max(1, cpus // n)}
    if gpus and n > gpus:
        log.warning("--workers %d on %d GPU(s): %d actor(s) wait for a free GPU", n, gpus, n - gpus)
    remote = ray.remote(max_restarts=0, max_task_retries=0, **per_actor)(actor_class or ACTOR_CLASS)
    log.info("Ray: %d actor(s) on %s", n, f"{gpus} GPU(s)" if gpus else f"{cpus} CPU(s), {per_actor['num_cpus']} each")
    idle = [remote.remote(verbose) for _ in range(n)]
    queue: deque[tuple[Row, int]] = deque((row, 1) for row in rows)
    running: dict[Any, tuple[Any, Row, int]] = {}  # task -> (actor, row, attempt)
    try:
        while queue or running:
            while queue and idle:
                actor = idle.pop()
                row, attempt = queue.popleft()
                running[actor.render.remote(row, attempt)] = (actor, row, attempt)
            done, _ = ray.wait(list(running), num_returns=1)
            actor, row, attempt = running.pop(done[0])
            try:
                record = ray.get(done[0])
            except ray.exceptions.RayActorError as exc:  # the process died (killed, out of memory, node lost)
                discard_partial(row.out)
                ray.kill(actor)
                actor = remote.remote(verbose)  # a new actor takes its place
                record = {"row": row.number, "out": str(row.out), "attempts": attempt, "status": "failed",
                          "error": f"worker lost: {one_line(exc)[:300]}"}
            except ray.exceptions.RayError as exc:
                record = {"row": row.number, "out": str(row.out), "attempts": attempt, "status": "failed",
                          "error": one_line(exc)[:500]}
            idle.append(actor)
            if record["status"] == "failed" and attempt < ATTEMPTS:
                log.warning("row %d failed (%s); trying it again", row.number, record["error"])
                queue.appendleft((row, attempt + 1))  # the next free actor: another process
                continue
            report.write(record)
            if record["status"] == "failed":
                log.error("row %d failed twice: %s", row.number, record["error"])
            progress.add_frames(record.get("frames", 0))
            progress.row_done(record["status"])
    except KeyboardInterrupt:
        for actor, row, _ in running.values():
            ray.kill(actor)
            discard_partial(row.out)
        raise
    finally:
        for actor in idle:
            ray.kill(actor)
