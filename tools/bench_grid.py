"""Grid-atlas benchmark (several routed words, docs/design.md §7): the blend-error table that chooses the
levels per axis, and the time to fill a grid.

Sections (``--sections``, all by default):

- ``blend``: on the tiny model, for 1, 2 and 3 routed words, grids of several levels per axis
  (``--levels1/2/3``; a cell shared by two grids is rendered once), and at ``--n`` seeded random weight
  vectors the multilinear blend of the 2^k corners against the exact render there: mean absolute error
  over all pixels, the worst frame's mean and the worst pixel (in 1/255), beside the error no blend can
  remove (a cell rendered in a batch against the same weights rendered alone) and how far each word
  moves the picture.
- ``live``: the live show headless on the tiny model with two routes (``low=thunder``, ``high=rain``), a
  recording played in real time: frames/s shown and audio-to-photon latency after the grid is filled.
- ``fill``: the full-size SD-Turbo architecture (random weights) at 256x256, bf16, TAESD: the time to
  fill a grid for two routed words (``--fill-levels`` per axis, the default of ``atlas.levels_2``), in
  batches of the app's size, from a cold start and after a warm-up call.

Random weights draw noise, not pictures: the figures measure smoothness in the weights and time.

    python tools/bench_grid.py --json docs/bench_grid.json
    python tools/bench_grid.py --sections blend --n 8        # the table only
    python tools/bench_grid.py --smoke                       # seconds: the tiny model at 64x64
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import time
from pathlib import Path

import numpy as np
from bench_atlas import in_worker  # the renderer's worker thread, as live

os.environ.setdefault("HF_HUB_OFFLINE", "1")

PROMPT = "thunder, rain and wind over a dark sea"
WORDS = ("thunder", "rain", "wind")
SECTIONS = ("blend", "fill", "live")
LIVE_ROUTES = ("low=thunder", "high=rain")
FILL_GOAL_S = 120.0


def machine() -> dict:
    import torch

    from aadiff_live.backends.hardware import cpu_name

    return {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "loadavg": [round(x, 2) for x in os.getloadavg()]}


def build(model: str, size: int, dtype: str, vae: str):
    from aadiff_live.config import load_config
    from aadiff_live.rendering.build import build_renderer

    cfg = load_config(None, {"model": {"model": model, "size": str(size), "dtype": dtype, "vae": vae, "device": "cpu"},
                             "tokens": {"tokens": list(WORDS)}})
    components, renderer = build_renderer(cfg, PROMPT)
    return cfg, components, renderer


def groups_for(components, k: int) -> list[list[int]]:
    from aadiff_live.tokens.words import word_positions

    found = word_positions(components.tokenizer, PROMPT, list(WORDS[:k]))
    return [found[w] for w in WORDS[:k]]


def blend_k(renderer, components, k: int, level_list: list[int], n: int, batch: int, lo: float, hi: float) -> dict:
    """The blend error of grids with each of ``level_list`` levels per axis against exact renders at ``n``
    random weight vectors (cells shared by two grids are rendered once)."""
    from aadiff_live.rendering.atlas import Atlas, Axis, blend_frames, blend_many, grid_key

    groups = groups_for(components, k)
    atlases = {L: Atlas(grid_key(renderer, PROMPT, [Axis(tuple(g), lo, hi, L) for g in groups])) for L in level_list}
    positions = groups[0] if k == 1 else groups

    def work() -> dict:
        renderer.render_batch([lo if k == 1 else (lo,) * k], positions)  # warm-up
        cache: dict[tuple, np.ndarray] = {}
        t0 = time.perf_counter()
        for atlas in atlases.values():
            todo = [atlas.point(i) for i in range(atlas.n_cells)]
            keys = [tuple(np.round(np.atleast_1d(p), 9)) for p in todo]
            new = [p for p, key in zip(todo, keys, strict=True) if key not in cache]
            for s in range(0, len(new), batch):
                part = new[s:s + batch]
                for p, f in zip(part, renderer.render_batch(part, positions), strict=True):
                    cache[tuple(np.round(np.atleast_1d(p), 9))] = f
            for i, key in enumerate(keys):
                atlas.put(i, cache[key])
        fill_s = time.perf_counter() - t0
        rng = np.random.default_rng(k)
        pts = rng.uniform(lo, hi, size=(n, k))
        exact = [renderer.render(float(p[0]) if k == 1 else tuple(p), positions).astype(np.float32) for p in pts]
        big = atlases[max(level_list)]
        corners = [0, big.n_cells // 2, big.n_cells - 1]
        floor = [np.abs(renderer.render(big.point(c), positions).astype(np.float32) - big.frames[c]) for c in corners]
        return {"fill_s": fill_s, "cells": len(cache), "pts": pts, "exact": exact, "floor": floor}

    r = in_worker(work)
    assert isinstance(r, dict)
    rows = []
    for L in sorted(level_list, reverse=True):
        atlas = atlases[L]
        errs = []
        for p, ex in zip(r["pts"], r["exact"], strict=True):
            if k == 1:
                a, b, t = atlas.locate(float(p[0]))
                img = atlas.frames[a] if t == 0 else blend_frames(atlas.frames[a], atlas.frames[b], t)
            else:
                cells, coeffs = atlas.corners(tuple(p))
                img = blend_many([atlas.frames[c] for c in cells], coeffs)
            errs.append(np.abs(img.astype(np.float32) - ex))
        e = np.stack(errs)
        rows.append({"levels_per_axis": L, "cells": L ** k, "mean_255": round(float(e.mean()), 4),
                     "worst_frame_255": round(float(e.mean(axis=(1, 2, 3)).max()), 4),
                     "worst_pixel_255": float(e.max()), "p999_pixel_255": float(np.percentile(e, 99.9))})
    big = atlases[max(level_list)]
    f32 = big.frames.astype(np.float32).reshape(*big.shape, *big.frames.shape[1:])
    top = max(level_list) - 1
    axis_moves = [round(float(np.abs(f32[tuple(top if b == a else 0 for b in range(k))] - f32[(0,) * k]).mean()), 3)
                  for a in range(k)]
    fl = np.stack(r["floor"])
    return {"k": k, "words": list(WORDS[:k]), "n_test_points": n, "w_range": [lo, hi], "rows": rows,
            "cells_rendered": r["cells"], "s_per_cell": round(r["fill_s"] / max(1, r["cells"]), 4),
            "floor": {"mean_255": round(float(fl.mean()), 4), "worst_pixel_255": float(fl.max())},
            "change_255_per_axis_w_lo_to_w_hi": axis_moves}


def fill_section(model: str, size: int, dtype: str, vae: str, levels: int, batch: int | None) -> dict:
    from aadiff_live.rendering.atlas import Atlas, Axis, default_batch, fill, grid_key

    t0 = time.perf_counter()
    cfg, components, renderer = build(model, size, dtype, vae)
    build_s = time.perf_counter() - t0
    groups = groups_for(components, 2)
    lo, hi = cfg.envelope.w_min, cfg.envelope.w_max
    b = batch or default_batch(renderer.backend)
    atlas = Atlas(grid_key(renderer, PROMPT, [Axis(tuple(g), lo, hi, levels) for g in groups]))

    def work() -> dict:
        load = [round(x, 2) for x in os.getloadavg()]
        t_start = time.perf_counter()
        calls = []
        first_cell_s = None
        while not atlas.complete:
            todo = atlas.missing((1.0, 1.0), b)
            t = time.perf_counter()
            fill(atlas, lambda pts: renderer.render_batch(pts, groups), todo)
            calls.append(time.perf_counter() - t)
            if first_cell_s is None:
                first_cell_s = time.perf_counter() - t_start
        return {"load": load, "total": time.perf_counter() - t_start, "calls": calls, "first": first_cell_s}

    r = in_worker(work)
    assert isinstance(r, dict)
    return {"model": model, "size": size, "dtype": dtype, "vae": vae, "backend": renderer.backend.description,
            "build_s": round(build_s, 1), "levels_per_axis": levels, "cells": atlas.n_cells, "batch": b,
            "loadavg_at_start": r["load"], "fill_s": round(r["total"], 1), "goal_s": FILL_GOAL_S,
            "meets_goal": r["total"] <= FILL_GOAL_S, "s_per_cell": round(r["total"] / atlas.n_cells, 3),
            "first_call_s": round(r["first"], 2), "s_per_call_p50": round(float(np.median(r["calls"])), 3)}


def live_grid_section(size: int, steady_s: float, display_fps: float) -> dict:
    """``run_live`` headless on the tiny model with two routes, from a file played in real time (looped):
    display frames/s and audio-to-photon latency after the grid is filled (tools/bench_atlas.py's harness)."""
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_atlas import Spec, live_section

    spec = Spec("tiny", size, "float32", "auto")
    cfg, components, renderer = build("tiny", size, "float32", "auto")
    return live_section(spec, components, renderer, cfg.atlas.levels, steady_s, display_fps, routes=LIVE_ROUTES,
                        prompt=PROMPT)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--json", help="write the results to this JSON file")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"any of {', '.join(SECTIONS)}")
    p.add_argument("--size", type=int, default=128, help="blend: the tiny model's picture size")
    p.add_argument("--levels1", default="9,17,33,65", help="blend, 1 word: the levels compared")
    p.add_argument("--levels2", default="3,5,9,17,33", help="blend, 2 words: levels per axis compared")
    p.add_argument("--levels3", default="3,5,7,9", help="blend, 3 words: levels per axis compared")
    p.add_argument("--n", type=int, default=24, help="blend: random weight vectors per k")
    p.add_argument("--batch", type=int, help="cells per UNet call (default: the app's, atlas.default_batch)")
    p.add_argument("--fill-model", default="random-sd-turbo")
    p.add_argument("--fill-size", type=int, default=256)
    p.add_argument("--fill-dtype", default="bfloat16")
    p.add_argument("--fill-vae", default="tiny")
    p.add_argument("--fill-levels", type=int, help="levels per axis (default: atlas.levels_2)")
    p.add_argument("--live-s", type=float, default=20.0, help="live: seconds after the grid is filled")
    p.add_argument("--display-fps", type=float, default=60.0)
    p.add_argument("--smoke", action="store_true", help="seconds: tiny 64x64, small grids")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    from diffusers.utils import logging as dlog

    from aadiff_live.config import AtlasConfig
    from aadiff_live.rendering.atlas import default_batch

    dlog.set_verbosity_error()
    sections = [s.strip() for s in a.sections.split(",") if s.strip()]
    if a.smoke:
        a.size, a.levels1, a.levels2, a.levels3, a.n = 64, "5,9", "3,5", "3", 2
        a.fill_model, a.fill_size, a.fill_dtype, a.fill_vae, a.fill_levels = "tiny", 64, "float32", "auto", 3
        a.live_s = 1.0
    res: dict = {"what": (__doc__ or "").splitlines()[0], "random_weights": True, "prompt": PROMPT,
                 "machine": machine(), "smoke": a.smoke}

    def save() -> None:
        res["machine"]["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
        if a.json:
            Path(a.json).write_text(json.dumps(res, indent=1) + "\n", encoding="utf-8")

    if "blend" in sections:
        cfg, components, renderer = build("tiny", a.size, "float32", "auto")
        b = a.batch or default_batch(renderer.backend)
        lo, hi = cfg.envelope.w_min, cfg.envelope.w_max
        res["blend"] = {"model": f"tiny {a.size}x{a.size} float32", "batch": b}
        for k, text in ((1, a.levels1), (2, a.levels2), (3, a.levels3)):
            level_list = [int(x) for x in text.split(",") if x.strip()]
            print(f"== blend, {k} word(s), levels per axis {level_list}", file=sys.stderr, flush=True)
            res["blend"][f"k{k}"] = blend_k(renderer, components, k, level_list, a.n, b, lo, hi)
            save()
    if "fill" in sections:
        levels = a.fill_levels or AtlasConfig().levels_2
        print(f"== fill, {a.fill_model} {a.fill_size} {a.fill_dtype} {a.fill_vae} VAE, {levels}x{levels}",
              file=sys.stderr, flush=True)
        res["fill"] = fill_section(a.fill_model, a.fill_size, a.fill_dtype, a.fill_vae, levels, a.batch)
    if "live" in sections:
        print(f"== live, tiny {a.size}x{a.size}, routes {', '.join(LIVE_ROUTES)}", file=sys.stderr, flush=True)
        res["live"] = live_grid_section(a.size, a.live_s, a.display_fps)
    save()
    print_table(res)
    return 0


def print_table(res: dict) -> None:
    m = res["machine"]
    print(f"\ngrid atlas benchmark: {m['cpu']} ({m['cpu_count']} cores, torch {m['torch']}), load average "
          f"{m['loadavg'][0]:.1f} at start, {m.get('loadavg_end', m['loadavg'])[0]:.1f} at end; random weights\n")
    for key in ("k1", "k2", "k3"):
        b = res.get("blend", {}).get(key)
        if not b:
            continue
        print(f"{res['blend']['model']}, {b['k']} routed words ({', '.join(b['words'])}), {b['n_test_points']} random "
              f"weight vectors in [{b['w_range'][0]:g}, {b['w_range'][1]:g}]^{b['k']}: blend vs exact render")
        print(f"{'levels/axis':>12} {'cells':>6} {'mean /255':>10} {'worst frame':>12} {'worst pixel':>12}")
        for r in b["rows"]:
            print(f"{r['levels_per_axis']:>12} {r['cells']:>6} {r['mean_255']:>10.3f} {r['worst_frame_255']:>12.3f} "
                  f"{r['worst_pixel_255']:>12.0f}")
        print(f"   floor (batch vs alone): mean {b['floor']['mean_255']:.3f}, worst pixel "
              f"{b['floor']['worst_pixel_255']:.0f}; each word moves the picture {b['change_255_per_axis_w_lo_to_w_hi']}"
              f"/255 from w_min to w_max; {b['s_per_cell']:.3f} s per cell\n")
    lv = res.get("live")
    if lv:
        ls = lv["latency_steady"]
        lat = "-" if not ls["n"] else f"p50 {ls['p50_ms']:.0f} / p95 {ls['p95_ms']:.0f} / p99 {ls['p99_ms']:.0f} ms"
        print(f"live, tiny, routes {', '.join(lv['routes'])}: {lv['fps_steady']} frames/s shown after the fill "
              f"({lv['atlas_fill_s']} s), audio-to-photon {lat}, load {lv['loadavg_at_start'][0]:.1f}")
    f = res.get("fill")
    if f:
        print(f"fill, {f['model']} {f['size']}x{f['size']} {f['dtype']} {f['vae']} VAE ({f['backend']}), two words, "
              f"{f['levels_per_axis']}x{f['levels_per_axis']} = {f['cells']} cells, batch {f['batch']}: {f['fill_s']:.1f} s "
              f"(goal <= {f['goal_s']:g} s: {'met' if f['meets_goal'] else 'NOT met'}), {f['s_per_cell']:.2f} s per cell, "
              f"load {f['loadavg_at_start'][0]:.1f}")


if __name__ == "__main__":
    raise SystemExit(main())
