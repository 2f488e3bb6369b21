"""Frame-atlas benchmark: how far the blend of two atlas levels is from the exact render.

For ``L`` in {9, 17, 33, 65}: the frames at ``L`` levels over [w_min, w_max] (the 65 levels are
rendered once; 33, 17 and 9 are every 2nd, 4th, 8th of them, the same weights), then at ``N``
seeded random weights the blend of the two neighbouring levels against the exact render there:
mean absolute error over all pixels, the worst frame's mean, and the worst pixel (in 1/255).
Also the offline cost of a clip: renders with the atlas (at most ``L``) vs one per video frame.

Random weights draw noise, not pictures; the figures measure smoothness in ``w``, not imagery.

    python tools/bench_atlas.py [--json out.json] [--model tiny] [--size 128] [--n 24]
"""

from __future__ import annotations

import argparse
import logging
import os
import sys
import time

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
LEVELS = (9, 17, 33, 65)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--json", help="also write the results to this JSON file")
    p.add_argument("--model", default="tiny", help="tiny or random-sd-turbo")
    p.add_argument("--size", default="128")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--vae", default="auto")
    p.add_argument("--n", type=int, default=24, help="test weights")
    p.add_argument("--clip-minutes", type=float, default=10.0)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    from aadiff_live.backends.hardware import cpu_name
    from aadiff_live.config import load_config
    from aadiff_live.output.sidecar import write_json_atomic
    from aadiff_live.rendering.atlas import Atlas, atlas_key, blend_frames, fill
    from aadiff_live.rendering.build import build_renderer
    from aadiff_live.tokens.words import token_positions

    cfg = load_config(None, {"model": {"model": a.model, "size": a.size, "dtype": a.dtype, "vae": a.vae,
                                       "device": "cpu"}})
    prompt = "a city skyline in a thunderstorm"
    components, r = build_renderer(cfg, prompt)
    pos = token_positions(components.tokenizer, prompt, ["thunderstorm"])
    lo, hi = cfg.envelope.w_min, cfg.envelope.w_max
    top = max(LEVELS)
    full = Atlas(atlas_key(r, prompt, pos, top, lo, hi))
    t0 = time.perf_counter()
    batch = 4
    for k in range(0, top, batch):
        fill(full, lambda ws: r.render_batch(ws, pos), range(k, min(top, k + batch)))
    fill_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)
    test_w = np.sort(rng.uniform(lo, hi, a.n))
    t0 = time.perf_counter()
    exact = [r.render(float(w), pos).astype(np.float32) for w in test_w]
    exact_s = (time.perf_counter() - t0) / a.n
    rows = []
    for L in LEVELS:
        step = (top - 1) // (L - 1)
        frames = full.frames[::step]
        errs = []
        for w, ex in zip(test_w, exact, strict=True):
            x = (w - lo) / (hi - lo) * (L - 1)
            i = min(int(np.floor(x)), L - 2)
            img = blend_frames(frames[i], frames[i + 1], x - i).astype(np.float32)
            errs.append(np.abs(img - ex))
        e = np.stack(errs)
        rows.append({"levels": L, "mean_255": float(e.mean()), "worst_frame_255": float(e.mean(axis=(1, 2, 3)).max()),
                     "worst_pixel_255": float(e.max())})
    n_frames = int(a.clip_minutes * 60 * cfg.envelope.fps)
    out = {"model": components.name, "size": a.size, "dtype": a.dtype, "vae": a.vae, "cpu": cpu_name(),
           "cpu_count": os.cpu_count(), "loadavg": os.getloadavg(), "n_test_weights": a.n, "rows": rows,
           "fill_s_per_level_batch4": fill_s / top, "exact_s_per_frame": exact_s,
           "offline_clip": {"minutes": a.clip_minutes, "frames": n_frames, "renders_exact": n_frames,
                            "renders_atlas_max": cfg.atlas.levels,
                            "render_s_exact_extrapolated": n_frames * exact_s,
                            "render_s_atlas_max": cfg.atlas.levels * fill_s / top}}
    print(f"\nblend vs exact render, {components.name} {a.size} {a.dtype}, {a.n} random weights, "
          f"{out['cpu']} ({os.cpu_count()} cores, load {out['loadavg'][0]:.1f}); random weights: noise, not imagery\n")
    print(f"{'levels':>6} {'mean /255':>10} {'worst frame':>12} {'worst pixel':>12}")
    for row in rows:
        print(f"{row['levels']:>6} {row['mean_255']:>10.3f} {row['worst_frame_255']:>12.3f} {row['worst_pixel_255']:>12.0f}")
    c = out["offline_clip"]
    print(f"\n{a.clip_minutes:g}-minute clip at {cfg.envelope.fps:g} fps: {c['frames']} renders exact "
          f"(~{c['render_s_exact_extrapolated']:.0f} s of rendering, extrapolated), at most {c['renders_atlas_max']} "
          f"with the atlas (~{c['render_s_atlas_max']:.0f} s)")
    if a.json:
        write_json_atomic(a.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
