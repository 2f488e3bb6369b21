"""One frame of each full-size architecture with random weights, at a small size: time and peak memory.

    python tools/bench_families.py [--families sd15 sdxl-turbo] [--size 64]
        [--dtype float32] [--dtype-of sdxl-turbo=bfloat16] [--out docs/bench_families.json]

Each family runs in its own process (so peak RSS is that family's): the architecture is built
from the published hyper-parameters (aadiff_live/models/architectures.py, written out as a hub
layout, then tools/make_random_model.py's builder, full size, in memory), then the same Renderer as the CLI prepares the prompt and renders one frame at the
family's default schedule. Random weights: the frame is noise; what is measured is the cost.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CLIP_BPE = Path(__file__).resolve().parents[1] / "tests" / "data" / "models" / "bpe_simple_vocab_16e6.txt.gz"
FAMILIES = {  # family -> the checkpoint whose architecture it is
    "sd15": "runwayml/stable-diffusion-v1-5",
    "sdxl-turbo": "stabilityai/sdxl-turbo",
    "lcm": "SimianLuo/LCM_Dreamshaper_v7",
    "sd-turbo": "stabilityai/sd-turbo",
}


def one(family: str, size: int, dtype_name: str) -> dict:
    import torch

    from aadiff_live.backends import make_backend
    from aadiff_live.models.architectures import write_layout
    from aadiff_live.models.components import Components
    from aadiff_live.models.random_model import build_random_parts
    from aadiff_live.rendering.pipeline import Renderer

    dtype = getattr(torch, dtype_name)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="layout-") as tmp:
        parts = build_random_parts(write_layout(family, Path(tmp) / family, CLIP_BPE), dtype=dtype)
    parts.pop("model_index")
    t_build = time.perf_counter() - t0
    n_params = {k: sum(p.numel() for p in v.parameters()) for k, v in parts.items() if hasattr(v, "parameters")}
    c = Components(name=family, **parts)
    backend = make_backend("torch", c, torch.device("cpu"), dtype)
    r = Renderer(c, backend, width=size, height=size)
    t0 = time.perf_counter()
    r.prepare("a forest with a wildfire, at night")
    t_prepare = time.perf_counter() - t0
    frame = r.render(2.0, [5], profile=True)
    return {"family": family, "config": FAMILIES[family], "dtype": dtype_name, "size": size,
            "steps": r.steps, "guidance": r.guidance, "scheduler": type(c.scheduler).__name__,
            "params_millions": {k: round(v / 1e6, 1) for k, v in n_params.items()},
            "build_s": round(t_build, 1), "prepare_s": round(t_prepare, 2),
            "frame_s": round(r.last_timing["unet"] + r.last_timing["vae"], 2),
            "unet_s": round(r.last_timing["unet"], 2), "vae_s": round(r.last_timing["vae"], 2),
            "frame_shape": list(frame.shape),
            "peak_rss_gb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20, 2)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--families", nargs="+", default=["sd15", "sdxl-turbo"], choices=list(FAMILIES))
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
    p.add_argument("--dtype-of", nargs="*", default=[], metavar="FAMILY=DTYPE",
                   help="per-family dtype, e.g. sdxl-turbo=bfloat16 (full-size SDXL is ~14 GB in float32)")
    p.add_argument("--out", default="docs/bench_families.json")
    p.add_argument("--one", help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one:
        print(json.dumps(one(a.one, a.size, a.dtype)))
        return 0
    from aadiff_live.backends.engines import cpu_name

    result = {"machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "loadavg_1m_at_start": os.getloadavg()[0]},
              "note": "random weights (noise); one frame each at the family's default schedule", "runs": []}
    dtypes = dict(x.split("=", 1) for x in a.dtype_of)
    for fam in a.families:
        proc = subprocess.run([sys.executable, __file__, "--one", fam, "--size", str(a.size), "--dtype",
                               dtypes.get(fam, a.dtype)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            result["runs"].append({"family": fam, "error": proc.stderr.strip().splitlines()[-1:]})
        else:
            result["runs"].append(json.loads(proc.stdout.strip().splitlines()[-1]))
        print(json.dumps(result["runs"][-1]), flush=True)
    from aadiff_live.output.sidecar import write_json_atomic

    result["machine"]["loadavg_1m_at_end"] = os.getloadavg()[0]
    write_json_atomic(Path(a.out), result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
