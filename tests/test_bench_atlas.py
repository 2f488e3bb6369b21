"""tools/bench_atlas.py: every section end to end in --smoke (tiny model, 64x64), and its bookkeeping."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))
import bench_atlas  # noqa: E402


def test_runs_of_equal_counts_the_renders_of_an_exact_render():
    assert bench_atlas.runs_of_equal([]) == 0
    assert bench_atlas.runs_of_equal([0.5, 0.5, 0.5]) == 1
    assert bench_atlas.runs_of_equal([0.0, 0.5, 0.5, 0.0, 0.0, 1.0]) == 4


def test_steady_state_keeps_only_frames_after_the_fill():
    lat = [0.9, 0.8, 0.03, 0.02, 0.04]
    # the app's display times: exact selection, frames/s over those frames
    got, fps, how = bench_atlas.steady_state({"latencies_s": lat, "atlas_fill_s": 2.0, "shown_s": [0.5, 1.9, 2.0, 2.5, 3.0]})
    assert got == [0.03, 0.02, 0.04] and fps == 2.0 and "after the fill" in how
    # no display times: the tail of (run - fill) x fps frames
    got, _, _ = bench_atlas.steady_state({"latencies_s": lat, "atlas_fill_s": 2.0, "run_s": 4.0, "fps": 1.0})
    assert got == [0.02, 0.04]
    # --levels 0: no fill, every frame
    assert bench_atlas.steady_state({"latencies_s": lat, "shown_s": [0, 1, 2, 3, 4]})[:2] == (lat, 1.0)


def test_smoke_runs_every_section_and_writes_the_json(tmp_path):
    out = tmp_path / "bench.json"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "SDL_VIDEODRIVER": "dummy"}
    env.pop("DISPLAY", None)
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "bench_atlas.py"), "--smoke", "--json", str(out)],
                          capture_output=True, text=True, timeout=300, cwd=REPO, env=env)
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-3000:]
    res = json.loads(out.read_text())
    m = res["machine"]
    assert m["cpu"] and m["cpu_count"] >= 1 and len(m["loadavg"]) == 3 and len(m["loadavg_end"]) == 3
    tiny = res["models"]["tiny"]
    rows = tiny["blend"]["rows"]
    assert [r["levels"] for r in rows] == [9, 17, 33, 65]
    for r in rows:  # a blend is close to the exact render but not identical
        assert 0.0 < r["mean_255"] <= r["worst_frame_255"] <= r["worst_pixel_255"] < 64
    assert tiny["blend"]["fill"]["levels"] == 33 and tiny["blend"]["fill"]["seconds"] > 0
    sd = tiny["streamdiffusion"]
    if importlib.util.find_spec("streamdiffusion") is None:
        assert sd["skipped"].startswith("the streamdiffusion package is not installed")
    else:
        assert sd["fps"] > 0 and sd["peer_over_ours"]["aa"]["q1"] <= sd["peer_over_ours"]["aa"]["q3"]
    for kind, levels in (("atlas", 33), ("exact", 0)):
        live = tiny["live"][kind]
        assert live["levels"] == levels and live["frames_shown"] > 0 and live["latency_steady"]["n"] > 0, live
        assert live["fps_steady"] > 0 and live["stopped_by"] == "stopped"
    # the atlas run stops a fixed time after its fill; the frames before the fill are not in the steady state
    atlas = tiny["live"]["atlas"]
    assert atlas["atlas_fill_s"] > 0 and atlas["latency_steady"]["n"] < atlas["latency_all"]["n"]
    off = res["sections"]["offline"]
    assert off["atlas"]["renders"] <= 33 < off["exact"]["renders"] <= off["frames"]
    assert off["exact"]["wall_s_extrapolated"] > 0 and off["atlas"]["wall_s"] > 0
    disp = res["sections"]["display"]
    assert disp["window"] == [1280, 720] and disp["per_refresh"]["n"] == 20 and disp["per_refresh"]["p50_ms"] > 0
    assert "blend of the neighbouring levels" in proc.stdout and "A/A" in proc.stdout
