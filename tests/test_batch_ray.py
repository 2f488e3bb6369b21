"""``batch --ray`` on a local Ray cluster started here (2 CPUs, one cluster for the module: Ray takes seconds to
start): the same outcome as in one process, and a worker that dies mid-row has its row retried elsewhere."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest

ray = pytest.importorskip("ray")

sys.path.insert(0, str(Path(__file__).resolve().parent))
from helpers import BATCH_ROWS, batch_case, render_args  # noqa: E402
from test_batch import _report, assert_same_as_render  # noqa: E402

from aadiff_live.batch import ray_run  # noqa: E402

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def cluster():
    # the workers import this tree's aadiff_live and this module's actor class (sent by value, not by name)
    env = {"PYTHONPATH": os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep),
           "HF_HUB_OFFLINE": "1"}
    ray.init(num_cpus=2, include_dashboard=False, runtime_env={"env_vars": env}, logging_level="ERROR")
    ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    yield
    ray.shutdown()


class DiesMidRow(ray_run._Actor):
    """Row 2's first attempt: the process exits after its first two frames (as if killed or out of memory)."""

    def render(self, row, attempt, frames=None):
        if row.number == 2 and attempt == 1:
            def dying(n):
                for i in range(n):
                    if i == 2:
                        os._exit(1)
                    yield i
            return super().render(row, attempt, frames=dying)
        return super().render(row, attempt, frames)


def test_ray_batch_renders_skips_reports_and_survives_a_lost_worker(cluster, tmp_path, cli, monkeypatch):
    manifest = batch_case(tmp_path)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, _, err = cli(*render_args(BATCH_ROWS[5], tmp_path, out_dir / "done.mp4"))
    assert code == 0, err
    monkeypatch.setattr(ray_run, "ACTOR_CLASS", DiesMidRow)
    code, _, err = cli("batch", manifest, "--out-dir", out_dir, "--ray", "auto", "--workers", "2")
    assert code == 1, err
    report = _report(out_dir)
    status = {n: r["status"] for n, r in report.items()}
    assert status == {1: "rendered", 2: "rendered", 3: "failed", 4: "rendered", 5: "rendered", 6: "skipped"}
    assert report[3]["attempts"] == 2 and "cannot decode" in report[3]["error"]
    assert report[2]["attempts"] == 2  # lost with its worker, then rendered by another process
    assert "worker lost" in err and "row 2" in err
    assert report[2]["pid"] != os.getpid() and len({r["pid"] for r in report.values() if "pid" in r}) >= 2
    assert not list(out_dir.rglob("*.partial*"))
    assert_same_as_render(cli, tmp_path, out_dir, [1, 2])
    assert json.loads((out_dir / "done.mp4.json").read_text())["complete"]


def test_ctrl_c_on_ray_stops_the_actors_and_a_rerun_resumes(cluster, tmp_path, cli, monkeypatch):
    manifest = batch_case(tmp_path)
    manifest.write_text("\n".join(line for i, line in enumerate(manifest.read_text().splitlines()) if i != 3) + "\n")
    out_dir = tmp_path / "out"
    real_wait, waits = ray.wait, []

    def interrupted_wait(*a, **k):
        waits.append(1)
        if len(waits) == 3:  # two rows done, the next ones in progress
            raise KeyboardInterrupt
        return real_wait(*a, **k)

    monkeypatch.setattr(ray, "wait", interrupted_wait)
    code, _, err = cli("batch", manifest, "--out-dir", out_dir, "--ray", "auto", "--workers", "2")
    assert code == 130 and "Run the same command again to resume" in err, err
    done = [r for r in _report(out_dir).values() if r["status"] == "rendered"]
    assert len(done) == 2
    assert not list(out_dir.rglob("*.partial*"))
    videos = {p.name for p in out_dir.rglob("*.mp4")}
    assert all(Path(str(p) + ".json").is_file() for p in out_dir.rglob("*.mp4")), videos  # no video without sidecar
    monkeypatch.setattr(ray, "wait", real_wait)
    code, _, err = cli("batch", manifest, "--out-dir", out_dir, "--ray", "auto", "--workers", "2")
    assert code == 0, err
    status = [r["status"] for r in _report(out_dir).values()]
    assert status.count("skipped") == 2 and status.count("rendered") == 3
