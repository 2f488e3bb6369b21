"""tools/bench_gpu.py --smoke: the GPU benchmark's every section on the CPU, as on a bare GPU machine."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
# not on the bare GPU machine: the benchmark's path must not need them
ABSENT = ("av", "pygame", "sounddevice", "soxr", "soundfile")
RUN = ("import runpy, sys\n"
       "for m in {absent!r}: sys.modules[m] = None  # unimportable, as on the bare machine\n"
       "sys.argv = ['bench_gpu.py', *{args!r}]\n"
       "runpy.run_path({script!r}, run_name='__main__')\n")


def _run(tmp_path: Path, *args: str) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path / "bench.json"
    code = RUN.format(absent=ABSENT, args=["--smoke", "--json", str(out), *args],
                      script=str(REPO / "tools" / "bench_gpu.py"))
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600, cwd=REPO)
    return proc, json.loads(out.read_text())


def test_smoke_runs_every_section_without_the_audio_and_display_packages(tmp_path):
    proc, res = _run(tmp_path, "--budget", "1000")
    assert proc.returncode == 0, proc.stdout[-2000:] + proc.stderr[-2000:]
    sec = res["sections"]
    for name in ("env", "correctness", "frames", "reweight_ratio", "batched_fill", "streamdiffusion", "sd15_lcm"):
        assert name in sec and "error" not in sec[name] and "skipped" not in sec[name], (name, sec.get(name))
    assert sec["correctness"]["ok"] and sec["correctness"]["pixel_change_w0_to_w2.5"] > 1.0
    assert sec["correctness"]["worst"]["fast_vs_eager_half_pixel_mean_abs"] == 0.0  # static path == eager
    for cfg in ("eager", "static_eager", "channels_last"):
        assert sec["frames"]["configs"][cfg]["fps"] > 0
    assert set(sec["batched_fill"]["batches"]) == {"1", "3", "6"}
    r = sec["reweight_ratio"]["eager"]
    assert r["ratio"]["q1"] <= r["ratio"]["median"] <= r["ratio"]["q3"] and "aa" in r
    assert sec["streamdiffusion"]["fps"] > 0 and sec["sd15_lcm"]["steps"] == 4
    assert not set(ABSENT) & set(res["modules"])
    assert not [m for m in res["project_modules"] if m.startswith(("aadiff_live.live", "aadiff_live.audio",
                                                                     "aadiff_live.output"))]
    assert "reweighted/plain UNet" in proc.stdout and "A/A" in proc.stdout


def test_budget_spent_skips_sections_and_still_writes_the_json(tmp_path):
    proc, res = _run(tmp_path, "--budget", "0", "--only", "frames,streamdiffusion")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "env" in res["sections"] and "summary" in res["sections"]
    for name in ("frames", "streamdiffusion"):
        assert res["sections"][name]["skipped"].startswith("skipped: ")
    assert "correctness" not in res["sections"]
