#!/usr/bin/env python3
"""Memory of long files: peak RSS of ``aadiff-live analyse`` on an hour of 44.1 kHz stereo, and RSS over time
of a long ``render --model tiny`` (does it grow with the clip?).

Writes a generated test file (bursty noise with a slow swell, 16-bit stereo, block by block) into a
temporary folder, runs the product's CLI on it in child processes, and reads each child's peak RSS
(``VmHWM``, reported by the child at exit) and its RSS every few seconds (``/proc/PID/status``). Linux only.

    python tools/bench_long.py --analyse-minutes 60 --render-minutes 10 120 --json docs/long_cpu.json
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import soundfile as sf

SR = 44100
# the CLI, reporting its own peak RSS (VmHWM) at exit: a fork's ru_maxrss would count this parent's memory
CHILD = ("import atexit, sys\n"
         "def hwm():\n"
         "    for line in open('/proc/self/status'):\n"
         "        if line.startswith('VmHWM:'):\n"
         "            sys.stderr.write('VMHWM_KB ' + line.split()[1] + '\\n')\n"
         "atexit.register(hwm)\n"
         "from aadiff_live.cli import main\n"
         "sys.exit(main(sys.argv[1:]))\n")


def write_clip(path: Path, minutes: float, sr: int = SR) -> None:
    rng = np.random.default_rng(0)
    block = sr * 10
    n_blocks = int(round(minutes * 60 / 10))
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=2, subtype="PCM_16") as f:
        for k in range(n_blocks):
            t = (k * block + np.arange(block)) / sr
            amp = 0.08 + 0.25 * (0.5 + 0.5 * np.sin(2 * np.pi * t / 47.0)) + 0.4 * ((t % 2.0) < 0.15)
            f.write((rng.standard_normal((block, 2)) * amp[:, None] * 0.5).astype(np.float32))


def _rss_mb(pid: int) -> float | None:
    try:
        with open(f"/proc/{pid}/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        return None
    return None


def run_child(args: list[str], every_s: float = 2.0) -> dict:
    """Run ``aadiff-live ARGS``; its exit code, wall time, peak RSS and RSS samples over time."""
    env = {**os.environ, "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1"), "HF_HUB_OFFLINE": "1",
           "TQDM_DISABLE": "1"}
    t0 = time.monotonic()
    p = subprocess.Popen([sys.executable, "-c", CHILD, *args], env=env, stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    samples: list[tuple[float, float]] = []
    done = threading.Event()

    def poll() -> None:
        while not done.wait(every_s):
            r = _rss_mb(p.pid)
            if r is not None:
                samples.append((round(time.monotonic() - t0, 2), round(r, 1)))

    th = threading.Thread(target=poll, daemon=True)
    th.start()
    out, err = "", ""
    # read its pipes meanwhile so it never blocks on them
    readers = [threading.Thread(target=lambda s=s, k=k: res.__setitem__(k, s.read()), daemon=True)
               for k, s in (("out", p.stdout), ("err", p.stderr))]
    res: dict[str, str] = {}
    for r in readers:
        r.start()
    p.wait()
    done.set()
    for r in readers:
        r.join()
    out, err = res.get("out", ""), res.get("err", "")
    hwm = [int(line.split()[1]) for line in err.splitlines() if line.startswith("VMHWM_KB ")]
    err = "\n".join(line for line in err.splitlines() if not line.startswith("VMHWM_KB "))
    return {"args": args, "rc": p.returncode, "wall_s": round(time.monotonic() - t0, 1),
            "peak_rss_mb": round(hwm[0] / 1024, 1) if hwm else None, "rss_samples": samples,
            "stdout": out.strip().splitlines()[-6:], "stderr_tail": err.strip().splitlines()[-4:]}


def slope_mb_per_min(samples: list[tuple[float, float]], after_s: float) -> float | None:
    pts = [(t, r) for t, r in samples if t >= after_s]
    if len(pts) < 3:
        return None
    t, r = np.array(pts).T
    return float(np.polyfit(t / 60.0, r, 1)[0])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--analyse-minutes", type=float, default=60.0, help="length of the file analysed (0: skip)")
    ap.add_argument("--render-minutes", type=float, nargs="*", default=[20.0],
                    help="lengths of the files rendered (none: skip), e.g. 10 120: does memory grow with the length?")
    ap.add_argument("--size", default="64", help="render size (tiny model)")
    ap.add_argument("--json", help="write the figures here")
    ap.add_argument("--tmp", help="folder for the generated files (default: a temporary folder)")
    a = ap.parse_args()
    from aadiff_live.backends.hardware import cpu_name

    result: dict = {"machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version()},
                    "loadavg_start": list(os.getloadavg())}
    with tempfile.TemporaryDirectory(dir=a.tmp) as tmp:
        d = Path(tmp)
        if a.analyse_minutes:
            clip = d / "long.wav"
            write_clip(clip, a.analyse_minutes)
            file_mb = clip.stat().st_size / 1e6
            # the envelope alone (no prompt: CLAP is not loaded), then with CLAP ranking (the tiny random CLAP:
            # the real one adds its own ~600 MB of weights, whatever the clip's length)
            env_only = run_child(["analyse", str(clip), "--json", str(d / "a.json")])
            with_clap = run_child(["analyse", str(clip), "--prompt", "rain and thunder over the sea",
                                   "--clap-model", "tiny"])
            short = d / "short.wav"
            write_clip(short, 1.0)
            env_short = run_child(["analyse", str(short), "--json", str(d / "s.json")])
            frames = json.loads((d / "a.json").read_text())["stats"]["frames"]
            result["analyse"] = {"minutes": a.analyse_minutes, "file": "44.1 kHz stereo 16-bit wav",
                                 "file_mb": round(file_mb, 1), "frames": frames,
                                 "decoded_whole_float32_mb": round(a.analyse_minutes * 60 * SR * 2 * 4 / 1e6, 1),
                                 "envelope_only": env_only, "with_tiny_clap": with_clap,
                                 "one_minute_envelope_only": env_short}
            clip.unlink()
        result["loadavg_mid"] = list(os.getloadavg())
        result["render"] = []
        for minutes in a.render_minutes:
            clip = d / "render.wav"
            write_clip(clip, minutes)
            r = run_child(["render", "--audio", str(clip), "--model", "tiny", "--size", a.size, "--prompt",
                           "a storm over the sea", "--tokens", "storm", "--out", str(d / "r.mp4")], every_s=5.0)
            # the frame loop: after model load and the atlas fill, before the sidecar is written at the end
            warm, end = min(120.0, r["wall_s"] / 4), 0.9 * r["wall_s"]
            loop = [(t, m) for t, m in r["rss_samples"] if warm <= t <= end]
            side = json.loads((d / "r.mp4.json").read_text())
            r.update({"minutes": minutes, "size": a.size, "frames": side["n_frames"], "renders": side["renders"],
                      "video_mb": round((d / "r.mp4").stat().st_size / 1e6, 1), "loop_window_s": [warm, end],
                      "rss_mb_loop_min_max": [min(m for _, m in loop), max(m for _, m in loop)] if loop else None,
                      "rss_slope_mb_per_min_loop": slope_mb_per_min(loop, warm)})
            result["render"].append(r)
            for f in (clip, d / "r.mp4", d / "r.mp4.json"):
                f.unlink(missing_ok=True)
    result["loadavg_end"] = list(os.getloadavg())
    text = json.dumps(result, indent=1)
    if a.json:
        Path(a.json).write_text(text + "\n")
    summary = {k: v for k, v in result.items() if k not in ("analyse", "render")}
    if "analyse" in result:
        an = result["analyse"]
        summary["analyse_peak_rss_mb"] = {"envelope_only": an["envelope_only"]["peak_rss_mb"],
                                          "with_tiny_clap": an["with_tiny_clap"]["peak_rss_mb"],
                                          "one_minute": an["one_minute_envelope_only"]["peak_rss_mb"],
                                          "wall_s": an["envelope_only"]["wall_s"]}
    summary["render"] = [{k: r[k] for k in ("minutes", "rc", "wall_s", "peak_rss_mb", "frames", "renders",
                                             "rss_mb_loop_min_max", "rss_slope_mb_per_min_loop")}
                         for r in result["render"]]
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
