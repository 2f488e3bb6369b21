"""Benchmark the reweighting UNet and the decoders per backend (one run, one machine).

Full-size SD-Turbo architecture (SD 2.1 UNet, KL VAE, TAESD) with RANDOM weights: speed does not
depend on the weights' values, and nothing here draws a picture. Measures, per backend and size:
- the plain UNet (diffusers' AttnProcessor2_0) and the reweighted one (value scaling with a
  ``token_scale`` input), as seconds per call and their ratio (target <= 1.02);
- the KL decoder and the tiny autoencoder (TAESD), and one SD-Turbo frame (1 UNet step + decode).

    python tools/bench.py --json docs/bench_cpu.json
    python tools/bench.py --sizes 256 --iters 2 --backends torch-fp32,onnxruntime-fp32

onnxruntime exports each graph once (dynamic height and width: minutes and ~3.5 GB for the UNet).
"""

from __future__ import annotations

import argparse
import gc
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchstats import call_times, fmt_ratio, ratio_with_control  # noqa: E402
from plain_unet import PlainUNet, set_plain  # noqa: E402

log = logging.getLogger("bench")
BACKENDS = ("torch-fp32", "torch-bf16", "onnxruntime-fp32")


def build_models(seed: int = 0) -> dict:
    """The full-size parts (aadiff_live.models.fullsize: the one builder of the random SD-Turbo architecture)."""
    from diffusers import AutoencoderTiny

    from aadiff_live.models.fullsize import build_fullsize_sd_turbo

    parts = build_fullsize_sd_turbo(seed=seed)
    torch.manual_seed(seed + 1)
    taesd = AutoencoderTiny()
    return {"unet": parts["unet"].eval(), "vae": parts["vae"].eval(), "taesd": taesd.eval(),
            "source": "aadiff_live.models.fullsize.build_fullsize_sd_turbo"}


def timeit(fn, iters: int) -> float:
    """Median of ``iters`` calls after one warm-up call."""
    return statistics.median(call_times(lambda _i: fn(), iters, warmup=1))


def machine() -> dict:
    import onnxruntime

    from aadiff_live.backends.hardware import cpu_flags, cpu_name

    flags = cpu_flags()
    return {"cpu": cpu_name(), "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "loadavg_1m_at_start": round(os.getloadavg()[0], 2),
            "amx": "amx_tile" in flags, "avx512_bf16": "avx512_bf16" in flags,
            "platform": platform.platform(), "python": platform.python_version(), "torch": torch.__version__,
            "onnxruntime": onnxruntime.__version__}


def inputs(size: int, dtype: torch.dtype) -> tuple:
    g = torch.Generator().manual_seed(0)
    lat = size // 8
    sample = torch.randn(1, 4, lat, lat, generator=g).to(dtype)
    t = torch.tensor([999.0])
    ehs = torch.randn(1, 77, 1024, generator=g).to(dtype)
    scale = torch.ones(1, 77, dtype=dtype)
    scale[0, 2:5] = 1.7  # a reweighted word: the multiply runs whatever the value
    return sample, t, ehs, scale


def bench_torch(models: dict, dtype: torch.dtype, sizes: list[int], iters: int) -> list[dict]:
    from aadiff_live.backends.torch_backend import Decoder, UNetWithScale
    from aadiff_live.models.attention import install_reweighting

    unet = models["unet"].to(dtype)
    install_reweighting(unet)  # the plain runs swap diffusers' processor in (set_plain) and out again
    rw = UNetWithScale(unet)
    plain = PlainUNet(unet)
    kl, tiny = Decoder(models["vae"].to(dtype)), Decoder(models["taesd"].to(dtype))
    rows = []
    with torch.inference_mode():
        for size in sizes:
            s, t, e, c = inputs(size, dtype)
            pair = ratio_with_control(lambda a=(s, t, e): plain(*a), lambda a=(s, t, e, c): rw(*a), iters,
                                      before_a=lambda: set_plain(unet), before_b=lambda: install_reweighting(unet))
            z = torch.randn(1, 4, size // 8, size // 8).to(dtype)
            rows.append(row("torch", dtype, size, pair, timeit(lambda z=z: kl(z), iters),
                            timeit(lambda z=z: tiny(z), iters)))
            log.info("%s", rows[-1])
    models["unet"].float()
    models["vae"].float()
    models["taesd"].float()
    return rows


def bench_onnxruntime(models: dict, sizes: list[int], iters: int, workdir: Path) -> tuple[list[dict], dict]:
    import numpy as np
    import onnxruntime as ort

    from aadiff_live.backends.onnx_export import (
        UNET_INPUTS,
        UNET_OUTPUTS,
        GraphShape,
        _export,
        export_decoder,
        export_unet,
    )
    from aadiff_live.backends.torch_backend import Decoder, UNetWithScale
    from aadiff_live.models.attention import install_reweighting

    export_s: dict[str, float] = {}
    shape = GraphShape(latent_channels=4, latent_height=min(sizes) // 8, latent_width=min(sizes) // 8,
                       text_dim=1024)

    def session(path: Path):
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.optimized_model_filepath = str(path.with_name("optimized.onnx"))  # what ORT runs, for op counts
        # weights beside it (a full-size UNet is over protobuf's 2 GB)
        so.add_session_config_entry("session.optimized_model_external_initializers_file_name", "optimized.onnx.data")
        so.add_session_config_entry("session.optimized_model_external_initializers_min_size_in_bytes", "1024")
        return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])

    def open_graph(name: str, export_fn):
        """Export (timed) and open one graph."""
        path = workdir / name / "model.onnx"
        t0 = time.perf_counter()
        export_fn(path)
        t1 = time.perf_counter()
        sess = session(path)
        export_s[name] = round(t1 - t0, 1)
        export_s[name + "_session_open"] = round(time.perf_counter() - t1, 1)
        log.info("onnx %s: export %.0f s, session %.0f s", name, t1 - t0, time.perf_counter() - t1)
        return sess

    unet = models["unet"].float()
    set_plain(unet)
    s, t, e, _ = inputs(min(sizes), torch.float32)
    sessions = {
        "plain": open_graph("unet_plain", lambda p: _export(PlainUNet(unet), (s, t, e), p, UNET_INPUTS[:3],
                                                           UNET_OUTPUTS, dynamic_hw=True)),
        "kl": open_graph("decoder_kl", lambda p: export_decoder(Decoder(models["vae"]), p, shape, torch.float32,
                                                                True)),
        "tiny": open_graph("decoder_tiny", lambda p: export_decoder(Decoder(models["taesd"]), p, shape,
                                                                    torch.float32, True)),
    }
    install_reweighting(unet)
    sessions["rw"] = open_graph("unet_reweighted", lambda p: export_unet(UNetWithScale(unet), p, shape,
                                                                         torch.float32, True))
    export_s["optimized_ops_reweighted_minus_plain"] = optimized_op_diff(workdir / "unet_plain",
                                                                         workdir / "unet_reweighted")
    log.info("onnx optimized graph, reweighted minus plain: %s", export_s["optimized_ops_reweighted_minus_plain"])
    rows = []
    for size in sizes:
        s, t, e, c = (x.numpy() for x in inputs(size, torch.float32))
        z = np.random.default_rng(0).standard_normal((1, 4, size // 8, size // 8)).astype(np.float32)
        base = {"sample": s, "timestep": t, "encoder_hidden_states": e}
        with_scale = {**base, "token_scale": c}
        pair = ratio_with_control(lambda f=base: sessions["plain"].run(None, f),
                                  lambda f=with_scale: sessions["rw"].run(None, f), iters)
        zf = {"latents": z}
        rows.append(row("onnxruntime", torch.float32, size, pair,
                        timeit(lambda f=zf: sessions["kl"].run(None, f), iters),
                        timeit(lambda f=zf: sessions["tiny"].run(None, f), iters)))
        log.info("%s", rows[-1])
    return rows, export_s


def optimized_op_diff(plain_dir: Path, rw_dir: Path) -> dict[str, int]:
    """Op counts of ONNX Runtime's optimized reweighted graph minus the plain one's: only the
    ``token_scale`` multiplies (one Mul per cross-attention layer, one Unsqueeze) should differ; a
    fused op (Attention, MultiHeadAttention, FusedMatMul ...) missing on one side would show here."""
    import collections

    import onnx

    def ops(d: Path) -> collections.Counter:
        g = onnx.load(str(d / "optimized.onnx"), load_external_data=False).graph
        return collections.Counter(n.op_type for n in g.node)

    a, b = ops(plain_dir), ops(rw_dir)
    return {k: b[k] - a[k] for k in sorted(set(a) | set(b)) if b[k] != a[k]}


def row(backend: str, dtype: torch.dtype, size: int, pair: dict, kl: float, tiny: float) -> dict:
    """``pair``: :func:`benchstats.ratio_with_control` of plain (A) and reweighted (B) UNet calls."""
    prec = {torch.float32: "fp32", torch.bfloat16: "bf16", torch.float16: "fp16"}[dtype]
    plain, rw = pair["a_median_s"], pair["b_median_s"]
    return {"backend": backend, "precision": prec, "size": size, "unet_plain_s": round(plain, 4),
            "unet_reweighted_s": round(rw, 4), "reweight_ratio": pair["ratio"]["median"],
            "reweight_ratio_q1_q3": [pair["ratio"]["q1"], pair["ratio"]["q3"]],
            "aa_ratio": pair["aa"]["median"], "aa_ratio_q1_q3": [pair["aa"]["q1"], pair["aa"]["q3"]],
            "ratio_text": fmt_ratio(pair),
            "decoder_kl_s": round(kl, 4), "decoder_tiny_s": round(tiny, 4),
            "frame_kl_s": round(rw + kl, 4), "frame_tiny_s": round(rw + tiny, 4),
            "fps_kl": round(1.0 / (rw + kl), 3), "fps_tiny": round(1.0 / (rw + tiny), 3)}


def table(rows: list[dict]) -> str:
    head = (f"{'backend':<12}{'prec':<6}{'size':>5}{'plain s':>9}{'reweight s':>11}{'  ratio [q1-q3] (A/A control)':<44}"
            f"{'KL dec s':>9}{'tiny dec s':>11}{'frame KL':>9}{'frame tiny':>11}")
    lines = [head, "-" * len(head)]
    for r in rows:
        lines.append(f"{r['backend']:<12}{r['precision']:<6}{r['size']:>5}{r['unet_plain_s']:>9.3f}"
                     f"{r['unet_reweighted_s']:>11.3f}  {r['ratio_text']:<42}{r['decoder_kl_s']:>9.3f}"
                     f"{r['decoder_tiny_s']:>11.3f}{r['frame_kl_s']:>9.3f}{r['frame_tiny_s']:>11.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", help="write the results here")
    p.add_argument("--sizes", default="256,512", help="comma-separated square sizes (default 256,512)")
    p.add_argument("--iters", type=int, default=9, help="rounds of paired plain/reweighted/plain UNet calls (and "
                   "decoder calls), after 1 warm-up (default 9)")
    p.add_argument("--backends", default=",".join(BACKENDS), help=f"comma-separated of {', '.join(BACKENDS)}")
    p.add_argument("--workdir", help="where onnxruntime graphs are exported (default: a temporary folder)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="bench: %(message)s", stream=sys.stderr)
    warnings.simplefilter("ignore")
    sizes = [int(x) for x in a.sizes.split(",")]
    backends = [b.strip() for b in a.backends.split(",")]
    unknown = set(backends) - set(BACKENDS)
    if unknown or any(s % 64 for s in sizes):
        p.error(f"unknown backend(s) {sorted(unknown)} or a size not a multiple of 64")
    t_start = time.perf_counter()
    models = build_models()
    result = {"what": "full-size SD-Turbo architecture (SD 2.1 UNet, KL VAE, TAESD), RANDOM weights; batch 1, "
                      "1 UNet step per frame (SD-Turbo, no guidance); seconds are medians of --iters calls; reweight_ratio is the "
                      "median of per-round reweighted/plain ratios (rounds of plain, reweighted, plain in rotating order), "
                      "aa_ratio the plain/plain control from the same rounds",
              "models_from": models["source"], "machine": machine(), "iters": a.iters, "rows": [],
              "onnx_export_s": {}}
    for b in backends:
        log.info("backend %s", b)
        if b == "torch-fp32":
            result["rows"] += bench_torch(models, torch.float32, sizes, a.iters)
        elif b == "torch-bf16":
            result["rows"] += bench_torch(models, torch.bfloat16, sizes, a.iters)
        else:
            with tempfile.TemporaryDirectory(prefix="aadiff-bench-", dir=a.workdir) as tmp:
                rows, exp = bench_onnxruntime(models, sizes, a.iters, Path(tmp))
            result["rows"] += rows
            result["onnx_export_s"] = exp
        gc.collect()
    result["rows"].sort(key=lambda r: (r["size"], r["backend"], r["precision"]))
    result["total_s"] = round(time.perf_counter() - t_start, 1)
    # other processes on the machine distort the figures: a load above the core count says so
    result["machine"]["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
    m = result["machine"]
    print(f"\n{m['cpu']} ({m['cores']} cores, torch {m['torch']}, onnxruntime {m['onnxruntime']}); "
          f"random weights, medians of {a.iters} rounds; ratio = median of per-round ratios [quartiles] "
          f"with the A/A control")
    print(table(result["rows"]))
    if result["onnx_export_s"]:
        print("onnx export / session open (s):", result["onnx_export_s"])
    if a.json:
        Path(a.json).parent.mkdir(parents=True, exist_ok=True)
        Path(a.json).write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
        print(f"wrote {a.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
