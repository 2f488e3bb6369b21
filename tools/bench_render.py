#!/usr/bin/env python3
"""Per-frame cost of ``aadiff-live render``, split into analysis, UNet, VAE and encode/mux.

Runs the product's own render path (``run_render``) on a full-size SD-Turbo-architecture model
with random weights (speed does not depend on weight values; the output is noise) at 256x256 on
this machine's CPU, with an audio clip whose every frame has a different weight (so every frame
is rendered). Prints the split and the ratio of the whole frame to UNet + VAE (target <= 1.05:
everything around the model costs under 5 %).

    python tools/bench_render.py [--seconds 1.0] [--size 256] [--model random-sd-turbo] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import soundfile as sf
import torch


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=1.0, help="audio length (frames = seconds x fps)")
    ap.add_argument("--fps", type=float, default=30.0)
    ap.add_argument("--size", default="256")
    ap.add_argument("--model", default="random-sd-turbo", help="random-sd-turbo (full size) or tiny")
    ap.add_argument("--vae", default="auto")
    ap.add_argument("--backend", default="torch")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--json", help="write the figures here")
    a = ap.parse_args()
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    from diffusers.utils import logging as dlog

    dlog.set_verbosity_error()
    from aadiff_live.backends.hardware import cpu_name
    from aadiff_live.config import load_config
    from aadiff_live.render import run_render

    with tempfile.TemporaryDirectory() as tmp:
        sr = 44100
        rng = np.random.default_rng(0)
        n = int(a.seconds * sr)
        # a rising noise ramp with clicks: every frame gets a different weight
        x = rng.standard_normal(n) * np.linspace(0.05, 0.6, n)
        x[:: sr // 7] = 0.9
        sf.write(Path(tmp) / "bench.wav", x.astype(np.float32), sr)
        cfg = load_config(None, {"model": {"model": a.model, "size": a.size, "vae": a.vae, "backend": a.backend,
                                           "dtype": a.dtype},
                                 "envelope": {"fps": a.fps, "window": 1}, "tokens": {"tokens": ["fire"]}})
        out = Path(tmp) / "bench.mp4"
        t0 = time.perf_counter()
        code = run_render(cfg, audio_path=str(Path(tmp) / "bench.wav"), prompt="a forest fire at night", out=str(out))
        wall = time.perf_counter() - t0
        if code != 0:
            return code
        side = json.loads(Path(str(out) + ".json").read_text())
    t = side["timing_s"]
    frames = side["n_frames"]
    rendered = t["frames_rendered"]
    per = {k: t[k] / frames for k in ("unet", "vae", "encode_mux")}
    per["analysis"] = t["analysis"] / frames
    per["whole_frame"] = (t["loop_total"] + t["analysis"]) / frames
    ratio = per["whole_frame"] / (per["unet"] + per["vae"])
    result = {
        "machine": f"{cpu_name()}, {torch.get_num_threads()} torch threads",
        "python": sys.version.split()[0], "torch": torch.__version__,
        "model": side["settings"]["model"], "backend": side["settings"]["backend"], "size": a.size,
        "steps": side["settings"]["steps"], "frames": frames, "frames_rendered": rendered,
        "per_frame_ms": {k: round(v * 1000, 2) for k, v in per.items()},
        "whole_over_unet_plus_vae": round(ratio, 4), "wall_s_including_load": round(wall, 1),
    }
    print(f"machine: {result['machine']}")
    print(f"model: {result['model']} ({result['backend']}), {a.size}px, {result['steps']} step(s), {frames} frames")
    print(f"{'part':<14}{'ms/frame':>12}")
    for k in ("analysis", "unet", "vae", "encode_mux", "whole_frame"):
        print(f"{k:<14}{per[k] * 1000:>12.2f}")
    print(f"whole frame / (UNet + VAE) = {ratio:.4f}  (target <= 1.05)")
    if a.json:
        Path(a.json).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
