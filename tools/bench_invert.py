"""--image --invert benchmark: how closely the frame at weight 1 reproduces the photo, and what an inversion costs.

    PYTHONPATH=$PWD python tools/bench_invert.py [--size 64] [--steps 25] [--rounds 3] [--json docs/bench_invert.json]

The model is built from the real SD 1.5 configs and tokenizer (aadiff_live.models.architectures) at a shrunk
width with random weights (no download); the photo is drawn in code (the demo's sun over the sea). For each
base, the frame rendered at weight 1 is compared with the VAE round trip of the photo (decode(encode(photo)):
what a perfect inversion would give): pixel MSE and PSNR, and the latent MSE relative to the photo latent's
variance. Bases: plain DDIM inversion (the empty prompt's embedding every step), null-text inversion (DDIM,
then the per-step null embeddings) and img2img at the default --strength. The three are timed in rotating
order, ``--rounds`` times; then the cached inversion is loaded (a cache hit). Last, the same comparison on a
stand-in denoiser (tests/test_invert.py's: the optimal noise prediction for Gaussian data plus a text term),
where the UNet denoises as a trained one does. Random weights draw noise: the frames are never shown.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

REPO = Path(__file__).resolve().parents[1]
BPE = REPO / "tests" / "data" / "models" / "bpe_simple_vocab_16e6.txt.gz"
PROMPT = "a sun over the sea"
WORD_POSITION = [2]  # "sun" in the SD tokenizer's ids of PROMPT


def machine() -> dict:
    from aadiff_live.backends.hardware import cpu_name

    return {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "loadavg": [round(x, 2) for x in os.getloadavg()]}


def build_model(root: Path) -> Path:
    from aadiff_live.models.architectures import write_layout
    from aadiff_live.models.random_model import write_random_model

    return write_random_model(write_layout("sd15", root / "sd15", BPE), root / "sd15-random", shrink=True)


def one(model: Path, photo: np.ndarray, size: int, steps: int, method: str, cache: Path | None) -> dict:
    from aadiff_live.backends import make_backend
    from aadiff_live.config import ModelConfig
    from aadiff_live.models.loading import load_components
    from aadiff_live.rendering.pipeline import Renderer

    c = load_components(str(model))
    backend = make_backend("torch", c, torch.device("cpu"), torch.float32)
    kw: dict = {"strength": ModelConfig().strength} if method == "img2img" else \
        {"invert": True, "null_text": method == "null-text", "invert_cache": cache}
    r = Renderer(c, backend, width=size, height=size, steps=steps, image=photo, **kw)
    t0 = time.perf_counter()
    r.prepare(PROMPT)
    seconds = time.perf_counter() - t0
    lat = r.render_latents(1.0, WORD_POSITION)
    z0 = r.image_latent(photo)
    frame = r.decode(lat).astype(np.float64)
    ref = r.decode(z0).astype(np.float64)
    mse = float(((frame - ref) ** 2).mean())
    return {"seconds": seconds, "mse": mse, "psnr_db": 10 * np.log10(255.0 ** 2 / max(mse, 1e-12)),
            "latent_rel_mse": float(((lat - z0) ** 2).mean() / z0.var()),
            "cached": bool(r.inversion.stats.get("cached")) if r.inversion is not None else None}


def stand_in(steps: int) -> dict:
    sys.path.insert(0, str(REPO / "tests"))
    from test_invert import ddim, denoiser, guided_render

    from aadiff_live.rendering import invert as inv

    torch.manual_seed(0)
    sched = ddim(steps)
    unet = denoiser(sched)
    z0, cond, null = torch.randn(1, 4, 8, 8), torch.randn(1, 77, 16), torch.randn(1, 77, 16)
    traj = inv.ddim_trajectory(unet, sched, z0, cond)
    nulls, _ = inv.null_text(unet, sched, traj, cond, null, 7.5, progress=False)
    err = lambda x: float(((x - z0) ** 2).mean() / z0.var())  # noqa: E731
    return {"ddim_guidance_1": err(guided_render(unet, sched, traj[-1], cond, null, 1.0)),
            "ddim": err(guided_render(unet, sched, traj[-1], cond, null, 7.5)),
            "null-text": err(guided_render(unet, sched, traj[-1], cond, nulls, 7.5))}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--steps", type=int, default=25, help="denoising steps (SD 1.5's default: 25)")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--json", help="write the results here (docs/bench_invert.json)")
    a = ap.parse_args()
    from aadiff_live.audio.demo import demo_picture

    start = machine()
    print(f"machine: {start['cpu']}, {start['cpu_count']} cores, load {start['loadavg']}", file=sys.stderr)
    photo = demo_picture(a.size, a.size)
    methods = ["ddim", "null-text", "img2img"]
    runs: dict[str, list[dict]] = {m: [] for m in methods}
    with tempfile.TemporaryDirectory() as tmp:
        model = build_model(Path(tmp))
        for k in range(a.rounds):
            for m in methods[k % 3:] + methods[:k % 3]:  # the order rotates every round
                runs[m].append(one(model, photo, a.size, a.steps, m, None))
                print(f"round {k + 1} {m}: {runs[m][-1]['seconds']:.1f} s, PSNR {runs[m][-1]['psnr_db']:.2f} dB",
                      file=sys.stderr)
        cache = Path(tmp) / "cache"
        one(model, photo, a.size, a.steps, "null-text", cache)
        hit = one(model, photo, a.size, a.steps, "null-text", cache)
    rows = {}
    for m, rs in runs.items():
        rows[m] = {"psnr_db": round(rs[0]["psnr_db"], 2), "mse": round(rs[0]["mse"], 1),
                   "latent_rel_mse": round(rs[0]["latent_rel_mse"], 3),
                   "seconds_median": round(statistics.median(r["seconds"] for r in rs), 2),
                   "seconds": [round(r["seconds"], 2) for r in rs]}
    rows["null-text (cache hit)"] = {"psnr_db": round(hit["psnr_db"], 2), "seconds_median": round(hit["seconds"], 3),
                                     "cached": hit["cached"]}
    out = {"what": "frame at weight 1 vs the VAE round trip of the photo; SD 1.5 configs, shrunk, random weights",
           "size": a.size, "steps": a.steps, "guidance": 7.5, "rounds": a.rounds, "rows": rows,
           "stand_in_denoiser_latent_rel_mse": stand_in(10), "machine": start,
           "loadavg_at_end": [round(x, 2) for x in os.getloadavg()]}
    for m, r in rows.items():
        print(f"{m:24s} PSNR {r['psnr_db']:6.2f} dB  {r['seconds_median']:.2f} s")
    print("stand-in denoiser:", out["stand_in_denoiser_latent_rel_mse"])
    if a.json:
        Path(a.json).write_text(json.dumps(out, indent=1) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
