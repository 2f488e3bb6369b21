"""Live-mode benchmark of the exact path (``--levels 0``): latency and frame rate against the bare renderer.

Input: a click train over a quiet noise bed, played in real time as a file input (so the weight
changes every frame and the renderer never idles). For each model:

- bare: ``renderer.render`` in a loop with a new weight per frame (frames per second);
- live: the whole live app headless (capture feeder, analysis, renderer, main loop), words
  pinned (no CLAP); frames rendered per second, and the audio-to-photon latency of every
  rendered frame (display time minus the capture time of the last sample it reflects).

Models: ``tiny`` (random weights, in-process) and the full-size SD-Turbo architecture with random
weights (:mod:`aadiff_live.models.fullsize`) at 256x256. Random weights draw noise, not
pictures; the timing is what counts here.

    python tools/bench_live.py [--json out.json] [--skip-fullsize] [--live-s 12] [--fullsize-live-s 30]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
log = logging.getLogger("bench_live")
SR = 48000
MIN_LIVE_FRAMES = 10
MAX_LIVE_S = 120.0


def click_train(path: Path, seconds: float, every_s: float = 0.25, seed: int = 0) -> None:
    import soundfile as sf

    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    x = 0.01 * rng.standard_normal(n)  # -40 dBFS bed: above the gate, so the weight never rests
    click = np.exp(-np.arange(int(0.03 * SR)) / (0.005 * SR)) * rng.standard_normal(int(0.03 * SR))
    for start in range(int(0.2 * SR), n - click.size, int(every_s * SR)):
        x[start:start + click.size] += 0.8 * click
    sf.write(str(path), np.clip(x, -1, 1).astype(np.float32), SR)


def build(model: str, size: int):
    from aadiff_live.backends import make_backend
    from aadiff_live.rendering.pipeline import Renderer

    if model == "fullsize":
        from aadiff_live.models.fullsize import fullsize_components

        components = fullsize_components()
    else:
        from aadiff_live.models.loading import load_components

        components = load_components(model)
    import torch

    backend = make_backend("torch", components, torch.device("cpu"), torch.float32, width=size, height=size)
    renderer = Renderer(components, backend, width=size, height=size)
    return components, renderer


def bare_fps(renderer, positions: list[int], frames: int) -> tuple[float, float]:
    """Frames per second of ``renderer.render`` alone, run in a worker thread as the live renderer is (on a
    busy CPU, torch's 2-thread OpenMP pool was 10-50x slower from the main thread than from a worker here)."""
    import threading

    out: dict = {}

    def work() -> None:
        renderer.render(0.5, positions)  # warm-up
        t0 = time.perf_counter()
        for i in range(frames):
            renderer.render(0.5 + 1.5 * i / max(1, frames), positions)
        out["dt"] = time.perf_counter() - t0

    t = threading.Thread(target=work, name="bench-bare")
    t.start()
    t.join()
    dt = out["dt"]
    return frames / dt, dt / frames


def bench(model: str, size: int, bare_frames: int, live_s: float, workdir: Path, blocksize: int = 256) -> dict:
    from aadiff_live.config import load_config
    from aadiff_live.live.app import run_live
    from aadiff_live.tokens.words import token_positions

    prompt = "thunder over a city"
    t0 = time.perf_counter()
    components, renderer = build(model, size)
    renderer.prepare(prompt)
    build_s = time.perf_counter() - t0
    positions = token_positions(components.tokenizer, prompt, ["thunder"])
    fps_before, frame_before = bare_fps(renderer, positions, bare_frames)
    live_s = max(live_s, min(MAX_LIVE_S, MIN_LIVE_FRAMES * frame_before))  # enough frames for percentiles
    src = workdir / "clicks.wav"
    click_train(src, live_s + 2.0)
    cfg = load_config(None, {"model": {"model": model if model != "fullsize" else "tiny", "size": str(size)},
                             "live": {"input": str(src), "blocksize": blocksize}, "tokens": {"tokens": ["thunder"]},
                             # the exact per-frame path: this tool measures the pipeline around the renderer (the
                             # atlas's live figures come from tools/bench_atlas.py)
                             "atlas": {"levels": 0}})
    stats: dict = {}
    t0 = time.perf_counter()
    code = run_live(cfg, prompt=prompt, no_display=True, duration=live_s, prebuilt=(components, renderer),
                    stats_out=stats)
    wall = time.perf_counter() - t0
    if code != 0:
        raise SystemExit(f"live run of {model} failed (exit {code})")
    fps_after, _ = bare_fps(renderer, positions, bare_frames)  # the machine's load may change: bracket the run
    fps_bare = 0.5 * (fps_before + fps_after)
    frame_s = 1.0 / fps_bare
    rendered_fps = stats["frames_rendered"] / stats["run_s"]
    return {
        "model": components.name, "size": size, "blocksize": blocksize, "build_s": build_s, "bare_frame_s": frame_s, "bare_fps": fps_bare,
        "live_rendered_fps": rendered_fps, "live_shown_fps": stats["fps"], "ratio": rendered_fps / fps_bare,
        "latency_ms_median": stats["rendered_latency_ms_median"], "latency_ms_p95": stats["rendered_latency_ms_p95"],
        "frames_rendered": stats["frames_rendered"], "frames_shown": stats["frames_shown"], "live_s": wall,
        "bare_fps_before": fps_before, "bare_fps_after": fps_after,
        # A/A control: the bare renderer against itself, before vs after; live/bare means something only
        # where this is close to 1
        "ratio_aa": fps_after / fps_before,
        # the share of the live run the renderer spent rendering (1.0: the pipeline never made it wait)
        "renderer_busy": stats["render_busy_s"] / stats["run_s"],
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--tiny-size", type=int, default=128)
    p.add_argument("--tiny-live-s", type=float, default=12.0)
    p.add_argument("--tiny-bare-frames", type=int, default=20)
    p.add_argument("--skip-fullsize", action="store_true")
    p.add_argument("--fullsize-size", type=int, default=256)
    p.add_argument("--fullsize-live-s", type=float, default=20.0, help="at least; longer for slow frames "
                   f"({MIN_LIVE_FRAMES} frames, at most {MAX_LIVE_S:g} s)")
    p.add_argument("--fullsize-bare-frames", type=int, default=2)
    p.add_argument("--blocksize", type=int, default=256, help="audio block size (live.blocksize; default 256)")
    p.add_argument("--threads", type=int, help="torch intra-op threads (default: torch's choice)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    from diffusers.utils import logging as dlog

    dlog.set_verbosity_error()
    import torch

    if a.threads:
        torch.set_num_threads(a.threads)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        runs = [("tiny", a.tiny_size, a.tiny_bare_frames, a.tiny_live_s)]
        if not a.skip_fullsize:
            runs.append(("fullsize", a.fullsize_size, a.fullsize_bare_frames, a.fullsize_live_s))
        for model, size, frames, live_s in runs:
            print(f"{model} {size}x{size}: building, {frames} bare frames, {live_s:g} s live, {frames} bare frames",
                  file=sys.stderr, flush=True)
            rows.append(bench(model, size, frames, live_s, Path(tmp), a.blocksize))
            print(json.dumps(rows[-1]), file=sys.stderr, flush=True)
    print(f"\nlive benchmark on {os.cpu_count()} CPU core(s), torch {torch.__version__} ({torch.get_num_threads()} "
          f"threads), random weights (timing only)\n")
    head = (f"{'model':<28} {'size':>5} {'bare fps':>9} {'live fps':>9} {'ratio':>6} {'A/A':>6} {'lat med ms':>11} "
            f"{'lat p95 ms':>11} {'frames':>7} {'busy':>5}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['model']:<28} {r['size']:>5} {r['bare_fps']:>9.2f} {r['live_rendered_fps']:>9.2f} {r['ratio']:>6.2f} {r['ratio_aa']:>6.2f} "
              f"{r['latency_ms_median'] or float('nan'):>11.0f} {r['latency_ms_p95'] or float('nan'):>11.0f} "
              f"{r['frames_rendered']:>7} {r['renderer_busy']:>5.2f}")
    print("\nlive fps: frames rendered per second of the live run (weights change every frame); ratio = live / bare "
          "(target >= 0.95; bare = mean of runs before and after; A/A = bare after / bare before, the noise "
          "floor); busy: share of the live run spent rendering; latency: display time minus capture time of the audio each rendered frame reflects "
          "(budget 45 ms)")
    if a.json:
        Path(a.json).write_text(json.dumps({"rows": rows, "cpu_count": os.cpu_count(),
                                            "torch_threads": torch.get_num_threads()}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
