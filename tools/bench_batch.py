"""Rows per minute of 8 renders three ways: 8 ``aadiff-live render`` processes one after another, one
``aadiff-live batch`` process (each model loaded once), and ``batch --ray auto --workers 2`` (a local Ray
cluster started by the command, two actors each holding a loaded model).

Every arm is timed as a user runs it: whole commands, process start, imports, model loads and Ray start-up
included, a fresh output folder each time. Rounds of four calls: A (8 processes), B (batch), C (batch --ray)
and A again, the order rotating every round; per round the ratios B/A, C/A and the control A'/A (the noise
floor; tools/benchstats.py). With ``--model tiny`` the load dominates, which is what batch saves; with a real
model the load is longer still (tens of seconds), so the gain is larger.

    python tools/bench_batch.py --json docs/bench_batch.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchstats import _summary  # noqa: E402

PROMPTS = ["fire over water", "smoke over the sea", "rain on a roof", "a storm over a city"]


def cpu_name() -> str:
    try:
        from aadiff_live.backends.hardware import cpu_name as name

        return name()
    except Exception:  # noqa: BLE001 - descriptive only
        return platform.processor() or platform.machine()


def make_rows(folder: Path, n: int, seconds: float, options: dict[str, str]) -> list[dict[str, str]]:
    import soundfile as sf

    sr = 16000
    t = np.arange(int(seconds * sr)) / sr
    rows = []
    for i in range(n):
        x = 0.3 * np.sin(2 * np.pi * (150 + 40 * i) * t) * ((t * (2 + i % 3)) % 1 < 0.5)
        sf.write(str(folder / f"clip{i}.wav"), x.astype(np.float32), sr)
        prompt = PROMPTS[i % len(PROMPTS)]
        rows.append({"audio": f"clip{i}.wav", "prompt": prompt, "seed": str(i), "tokens": prompt.split()[0]
                     if prompt.split()[0] != "a" else "storm", **options})
    with open(folder / "manifest.csv", "w") as f:
        cols = list(rows[0])
        f.write(",".join(cols) + "\n")
        for r in rows:
            f.write(",".join(r[c] for c in cols) + "\n")
    return rows


def _run(args: list[str], cwd: Path) -> None:
    env = {**os.environ, "PYTHONPATH": str(REPO), "HF_HUB_OFFLINE": "1"}
    p = subprocess.run([sys.executable, "-m", "aadiff_live", *args], cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(args[:3])} failed ({p.returncode}): {p.stderr[-2000:]}")


def arm_processes(folder: Path, rows: list[dict[str, str]]) -> float:
    out = Path(tempfile.mkdtemp(dir=folder))
    t0 = time.perf_counter()
    for i, r in enumerate(rows):
        args = ["render", "--audio", r["audio"], "--out", str(out / f"row{i}.mp4")]
        for k, v in r.items():
            if k != "audio":
                args += [f"--{k}", v]
        _run(args, folder)
    return time.perf_counter() - t0


def arm_batch(folder: Path, extra: list[str]) -> float:
    out = Path(tempfile.mkdtemp(dir=folder))
    t0 = time.perf_counter()
    _run(["batch", "manifest.csv", "--out-dir", str(out), *extra], folder)
    return time.perf_counter() - t0


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=8)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=1.0, help="length of each clip")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--no-ray", action="store_true", help="leave out the batch --ray arm")
    a = ap.parse_args()
    options = {"model": "tiny", "size": "64", "fps": "8", "levels": "3"}
    load = [round(v, 2) for v in os.getloadavg()]
    arms = {"processes": None, "batch": [], "batch_ray": None if a.no_ray else ["--ray", "auto", "--workers", "2"]}
    times: dict[str, list[float]] = {"processes": [], "batch": [], "batch_ray": [], "processes_again": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        rows = make_rows(folder, a.rows, a.seconds, options)
        calls = [("processes", lambda: arm_processes(folder, rows)), ("batch", lambda: arm_batch(folder, []))]
        if arms["batch_ray"] is not None:
            calls.append(("batch_ray", lambda: arm_batch(folder, arms["batch_ray"])))
        calls.append(("processes_again", lambda: arm_processes(folder, rows)))
        for r in range(a.rounds):
            k = r % len(calls)
            for name, fn in calls[k:] + calls[:k]:
                s = fn()
                times[name].append(s)
                print(f"round {r + 1}: {name:16s} {s:6.1f} s  ({a.rows / s * 60:.1f} rows/min)", flush=True)
    base = times["processes"]
    result = {
        "machine": f"{cpu_name()}, {os.cpu_count()} cores", "loadavg_at_start": load,
        "loadavg_at_end": [round(v, 2) for v in os.getloadavg()],
        "rows": a.rows, "clip_s": a.seconds, "options": options, "rounds": a.rounds,
        "note": "whole commands timed (start, imports, model load, Ray start-up included); random weights (tiny)",
        "rows_per_min": {k: round(a.rows / statistics.median(v) * 60, 2) for k, v in times.items() if v},
        "seconds": {k: [round(x, 2) for x in v] for k, v in times.items() if v},
        "speedup_over_processes": {k: _summary(sorted(b / s for b, s in zip(base, v, strict=True)))
                                   for k, v in times.items() if v and k != "processes"},
    }
    print(json.dumps(result, indent=1))
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
