"""tools/bench_grid.py: every section end to end in --smoke (tiny model, 64x64, small grids)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_smoke_runs_every_section_and_writes_the_json(tmp_path):
    out = tmp_path / "grid.json"
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "bench_grid.py"), "--smoke", "--json", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    res = json.loads(out.read_text())
    rows = res["blend"]["k2"]["rows"]
    assert [r["levels_per_axis"] for r in rows] == [5, 3] and rows[0]["cells"] == 25
    assert rows[0]["mean_255"] < rows[1]["mean_255"]  # more levels per axis: a smaller blend error
    assert res["blend"]["k3"]["rows"][0]["cells"] == 27 and res["fill"]["cells"] == 9
    live = res["live"]
    assert live["routes"] == ["low=thunder", "high=rain"] and live["atlas_fill_s"] is not None
    assert live["latency_steady"]["n"] > 0
    assert "blend vs exact render" in proc.stdout and "frames/s shown after the fill" in proc.stdout
