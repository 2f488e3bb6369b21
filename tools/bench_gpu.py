#!/usr/bin/env python3
"""GPU fast path, measured in one run: correctness, frame rate, reweighting cost, batched fills, the peer.

Written for one prepared run on a bare NVIDIA H100 (docs/gpu.md says how): at most about 6
minutes, compile times included. Every measurement runs in its own try block (an error becomes a
string in the JSON and the run goes on), a global time budget skips what no longer fits, and the
JSON is rewritten after every section, so a run cut short still leaves its figures.

Models: the full-size SD-Turbo architecture (SD 2.1 UNet, OpenCLIP-H-sized text encoder) with
RANDOM weights and the tiny autoencoder (TAESD architecture, random); the SD 1.5 architecture with
an LCM scheduler; speed does not depend on the weights' values and the frames are noise.

    python tools/bench_gpu.py --json docs/bench_gpu_h100.json          # on the GPU machine
    python tools/bench_gpu.py --smoke --json /tmp/smoke.json           # CPU, tiny model, seconds

Sections (JSON keys): env, correctness, frames (eager fp16, static buffers, channels_last,
compile + CUDA graphs), reweight_ratio (with A/A control), batched_fill (batch 1/4/8/16/33 -> a
33-level atlas), streamdiffusion (its own txt2img loop, same UNet and tiny VAE), sd15_lcm (4 steps),
summary (the goals, met or not). Peak GPU memory is recorded per configuration.
"""

from __future__ import annotations

import argparse
import copy
import gc
import json
import math
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # tools/benchstats.py
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # the project from the working tree

from benchstats import call_times, fmt_ratio, frame_stats, ratio_with_control  # noqa: E402
from plain_unet import PlainUNet, set_plain  # noqa: E402

PROMPT = "a city skyline in a thunderstorm"
POSITIONS = [5, 6, 7, 8, 9]  # "thunderstorm"-ish positions; any positions exercise the same kernels
GOALS = {"fps": 300.0, "p99_ms": 5.0, "vs_streamdiffusion": 1.2, "atlas_ms": 150.0, "reweight_ratio": 1.02}


class Bench:
    """Sections with a time budget, error capture, progress lines and an incrementally written JSON."""

    def __init__(self, out: Path | None, budget_s: float, smoke: bool, device: torch.device) -> None:
        self.out = out
        self.budget_s = budget_s
        self.smoke = smoke
        self.device = device
        self.t0 = time.monotonic()
        self.result: dict = {"what": __doc__.splitlines()[0], "smoke": smoke, "random_weights": True,
                             "started_utc": _utc(), "budget_s": budget_s, "sections": {}}

    def left(self) -> float:
        return self.budget_s - (time.monotonic() - self.t0)

    def log(self, msg: str) -> None:
        print(f"[{time.monotonic() - self.t0:6.1f}s {_utc()[11:19]}] {msg}", flush=True)

    def section(self, name: str, needs_s: float, fn: Callable[[], dict]) -> dict | None:
        if needs_s > 0 and self.left() < needs_s:
            why = f"skipped: {self.left():.0f} s of the {self.budget_s:.0f} s budget left, needs about {needs_s:.0f} s"
            self.log(f"{name}: {why}")
            self.result["sections"][name] = {"skipped": why}
            self.write()
            return None
        self.log(f"{name}: start ({self.left():.0f} s left)")
        t = time.monotonic()
        try:
            value = fn()
        except Exception as exc:  # noqa: BLE001 - recorded in the JSON; the run goes on
            value = {"error": f"{type(exc).__name__}: {exc}"[:2000],
                     "traceback_tail": traceback.format_exc().splitlines()[-8:]}
            self.log(f"{name}: ERROR {type(exc).__name__}: {str(exc)[:300]}")
        value["section_s"] = round(time.monotonic() - t, 1)
        self.result["sections"][name] = value
        self.write()
        self.log(f"{name}: done in {value['section_s']} s")
        _free()
        return value

    def write(self) -> None:
        self.result["elapsed_s"] = round(time.monotonic() - self.t0, 1)
        if self.out is None:
            return
        self.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.out.with_name(self.out.name + ".tmp")
        tmp.write_text(json.dumps(self.result, indent=1, default=str) + "\n", encoding="utf-8")
        tmp.replace(self.out)


def _utc() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _free() -> None:
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _sync_fn(device: torch.device) -> Callable[[], None] | None:
    return (lambda: torch.cuda.synchronize(device)) if device.type == "cuda" else None


class PeakMemory:
    """Peak GPU memory (MiB) allocated inside the ``with`` block; None on the CPU."""

    def __init__(self, device: torch.device) -> None:
        self.device = device
        self.mib: float | None = None

    def __enter__(self) -> PeakMemory:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            torch.cuda.reset_peak_memory_stats(self.device)
        return self

    def __exit__(self, *exc) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)
            self.mib = round(torch.cuda.max_memory_allocated(self.device) / 2**20, 1)


# ------------------------------------------------------------------------------------------ models
def tiny_parts():
    from aadiff_live.models.loading import load_components
    from aadiff_live.models.tiny import build_tiny_vae_tiny

    c = copy.copy(load_components("tiny"))
    c.extra = {"kl_vae": c.vae}
    c.vae = build_tiny_vae_tiny()
    return c


def fullsize_parts():
    """SD-Turbo architecture, random weights, with a random TAESD-architecture decoder."""
    from diffusers import AutoencoderTiny

    from aadiff_live.models.fullsize import fullsize_components

    c = fullsize_components()
    torch.manual_seed(3)
    c.extra["kl_vae"] = c.vae
    c.vae = AutoencoderTiny().eval()
    return c


def sd15_parts():
    """SD 1.5 architecture (UNet, CLIP-L-sized text encoder) with an LCM scheduler, random weights, TAESD."""
    from diffusers import AutoencoderTiny, LCMScheduler, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel

    from aadiff_live.models.components import Components
    from aadiff_live.models.tiny import tiny_clip_tokenizer

    tok = tiny_clip_tokenizer()
    torch.manual_seed(10)
    te = CLIPTextModel(CLIPTextConfig(vocab_size=max(len(tok), 49408), hidden_size=768, intermediate_size=3072,
                                      num_hidden_layers=12, num_attention_heads=12, max_position_embeddings=77,
                                      bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                                      pad_token_id=tok.pad_token_id)).eval()
    torch.manual_seed(11)
    unet = UNet2DConditionModel(
        sample_size=64, in_channels=4, out_channels=4, layers_per_block=2, block_out_channels=(320, 640, 1280, 1280),
        down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"),
        cross_attention_dim=768, attention_head_dim=8).eval()
    torch.manual_seed(12)
    sched = LCMScheduler(num_train_timesteps=1000, beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
                         prediction_type="epsilon", timestep_spacing="leading", steps_offset=1)
    return Components(unet=unet, vae=AutoencoderTiny().eval(), text_encoder=te, tokenizer=tok, scheduler=sched,
                      name="lcm-sd15-architecture (random weights)")


def tiny_lcm_parts():
    from diffusers import LCMScheduler

    c = tiny_parts()
    c.scheduler = LCMScheduler.from_config({**c.scheduler.config, "prediction_type": "epsilon"})
    c.name = "tiny-lcm"
    return c


# ------------------------------------------------------------------------------------------ sections
def env_section(bench: Bench) -> dict:
    import importlib.metadata as md

    from aadiff_live.backends.hardware import cpu_name

    out = {"python": platform.python_version(), "platform": platform.platform(), "cpu": cpu_name(),
           "cores": os.cpu_count(), "loadavg_1m": round(os.getloadavg()[0], 2), "torch": torch.__version__,
           "cuda_available": torch.cuda.is_available(), "device": str(bench.device)}
    for dist in ("diffusers", "transformers", "streamdiffusion", "huggingface-hub", "triton", "safetensors"):
        try:
            out[dist] = md.version(dist)
        except md.PackageNotFoundError:
            out[dist] = None
    if bench.device.type == "cuda":
        p = torch.cuda.get_device_properties(bench.device)
        out.update(gpu=p.name, gpu_memory_gib=round(p.total_memory / 2**30, 1), sm_count=p.multi_processor_count,
                   capability=f"{p.major}.{p.minor}", cuda=torch.version.cuda)
    return out


def make_renderer(c, device: torch.device, dtype: torch.dtype, size: int, *, static: bool, compile: bool = False,
                  channels_last: bool = False):
    from aadiff_live.backends.torch_backend import torch_backend
    from aadiff_live.rendering.pipeline import Renderer

    fmt = torch.channels_last if channels_last else torch.contiguous_format
    c.unet.to(memory_format=fmt)
    c.vae.to(memory_format=fmt)
    backend = torch_backend(c, device, dtype, compile=compile)
    r = Renderer(c, backend, width=size, height=size, seed=0, static=static)
    r.prepare(PROMPT)
    return r


def correctness_section(bench: Bench, size: int) -> dict:
    """Tiny model: device fp32 vs the CPU reference (same seeds), fp16 (bf16 on the CPU) vs fp32, and
    the product's fast path (static buffers; compile + CUDA graphs on CUDA) vs eager, at several weights."""
    dev = bench.device
    weights = [0.0, 1.0, 2.5] if bench.smoke else [0.0, 0.5, 1.0, 1.5, 2.0, 2.5]
    half = torch.float16 if dev.type == "cuda" else torch.bfloat16
    base = tiny_parts()
    ref = make_renderer(copy.deepcopy(base), torch.device("cpu"), torch.float32, size, static=False)
    d32 = make_renderer(copy.deepcopy(base), dev, torch.float32, size, static=False)
    d16 = make_renderer(copy.deepcopy(base), dev, half, size, static=False)
    rows = []
    for w in weights:
        lat_ref = ref.render_latents(w, POSITIONS).cpu()
        lat32 = d32.render_latents(w, POSITIONS).cpu()
        lat16 = d16.render_latents(w, POSITIONS).cpu()
        f_ref, f32, f16 = ref.decode(lat_ref).astype(float), d32.decode(lat32.to(dev)), d16.decode(lat16.to(dev))
        rows.append({"weight": w, "half_frame": f16,
                     "fp32_vs_cpu_latent_max_abs": float((lat32 - lat_ref).abs().max()),
                     "fp32_vs_cpu_pixel_mean_abs": float(np.abs(f32 - f_ref).mean()),
                     "half_vs_fp32_latent_max_abs": float((lat16 - lat32).abs().max()),
                     "half_vs_fp32_pixel_mean_abs": float(np.abs(f16.astype(float) - f32).mean())})
    out: dict = {"model": "tiny (random weights)", "size": size, "half": str(half).removeprefix("torch.")}
    try:  # the product's fast path, on its own: a compile failure must not hide the rows above
        fast = make_renderer(base, dev, half, size, static=True, compile=dev.type == "cuda")
        out["fast_path"] = "compile + CUDA graphs" if fast.graphs else "static buffers, eager"
        for row in rows:
            f_fast = fast.render(row["weight"], POSITIONS)
            row["fast_vs_eager_half_pixel_mean_abs"] = float(np.abs(f_fast.astype(float) - row["half_frame"]).mean())
    except Exception as exc:  # noqa: BLE001 - recorded; the eager comparisons stand
        out["fast_path_error"] = f"{type(exc).__name__}: {exc}"[:2000]
        out["fast_path_traceback_tail"] = traceback.format_exc().splitlines()[-8:]
        bench.log(f"  correctness fast path: ERROR {type(exc).__name__}: {str(exc)[:300]}")
    for row in rows:
        del row["half_frame"]
    moved = float(np.abs(ref.render(weights[0], POSITIONS).astype(float) - ref.render(weights[-1], POSITIONS)).mean())
    worst = {k: max(r.get(k, float("nan")) for r in rows) for k in rows[0] if k != "weight"}
    fast_ok = "fast_vs_eager_half_pixel_mean_abs" in worst and worst["fast_vs_eager_half_pixel_mean_abs"] < 1.0
    return {**out, "rows": rows, "worst": worst, "pixel_change_w0_to_w2.5": moved,
            "ok": worst["fp32_vs_cpu_pixel_mean_abs"] < 1.0 and fast_ok}


def frame_loop(r, frames: int, warmup: int) -> dict:
    """Whole frames, a new weight every frame, the copy to the host included (render() returns numpy)."""
    first_s = sum(call_times(lambda i: r.render(1.0 + 0.1 * i, POSITIONS), warmup))
    # a new weight every frame, never repeating in a row
    times = call_times(lambda i: r.render(1.0 + math.sin(i * 0.37), POSITIONS), frames)
    return {**frame_stats(times), "warmup_frames": warmup, "warmup_s": round(first_s, 2)}


def frames_section(bench: Bench, c, size: int, frames: int, configs: list[str]) -> dict:
    dev, dtype = bench.device, (torch.float16 if bench.device.type == "cuda" else torch.float32)
    out: dict = {"size": size, "steps": None, "dtype": str(dtype).removeprefix("torch."), "configs": {}}
    for name in configs:
        if name == "compile_cuda_graphs" and bench.left() < 150:
            out["configs"][name] = {"skipped": f"{bench.left():.0f} s left; compile needs about 150 s"}
            continue
        bench.log(f"  frames[{name}]")
        try:
            with PeakMemory(dev) as mem:
                r = make_renderer(c, dev, dtype, size, static=name != "eager", compile=name == "compile_cuda_graphs",
                                  channels_last=name == "channels_last")
                out["steps"] = r.steps
                res = frame_loop(r, frames, warmup=1 if bench.smoke else 2 if name == "compile_cuda_graphs" else 3)
            res["peak_gpu_mib"] = mem.mib
            out["configs"][name] = res
            bench.log(f"  frames[{name}]: {res['fps']} fps, p50 {res['p50_ms']} ms, p99 {res['p99_ms']} ms, "
                      f"peak {mem.mib} MiB, warm-up {res['warmup_s']} s")
        except Exception as exc:  # noqa: BLE001 - one configuration failing must not lose the others
            out["configs"][name] = {"error": f"{type(exc).__name__}: {exc}"[:2000],
                                    "traceback_tail": traceback.format_exc().splitlines()[-8:]}
            bench.log(f"  frames[{name}]: ERROR {type(exc).__name__}: {str(exc)[:300]}")
        finally:
            c.unet.to(memory_format=torch.contiguous_format)
            c.vae.to(memory_format=torch.contiguous_format)
            r = None
            _free()
        bench.write()
    return out


def reweight_section(bench: Bench, c, size: int, pairs: int) -> dict:
    """Reweighted / plain UNet (median of per-round ratios) with the A/A control, eager; and under CUDA
    graphs (the plain and the reweighted UNet captured separately) on CUDA."""
    from aadiff_live.backends.torch_backend import UNetWithScale
    from aadiff_live.models.attention import install_reweighting
    from aadiff_live.rendering.static import StaticGraph

    dev, dtype = bench.device, (torch.float16 if bench.device.type == "cuda" else torch.float32)
    unet_rw = c.unet.to(dev, dtype)
    install_reweighting(unet_rw)
    rw = UNetWithScale(unet_rw).eval()
    plain_unet = copy.deepcopy(unet_rw)
    set_plain(plain_unet)  # diffusers' own attention processor
    plain = PlainUNet(plain_unet).eval()
    g = torch.Generator().manual_seed(0)
    lat = size // 8
    sample = torch.randn(1, 4, lat, lat, generator=g).to(dev, dtype)
    t = torch.tensor([999.0], device=dev)
    ehs = torch.randn(1, 77, c.unet.config.cross_attention_dim, generator=g).to(dev, dtype)
    scale = torch.ones(1, 77, dtype=dtype, device=dev)
    scale[0, POSITIONS] = 1.7
    out: dict = {"size": size, "what": "UNet call only, batch 1"}
    sync = _sync_fn(dev)
    with torch.inference_mode():
        res = ratio_with_control(lambda: plain(sample, t, ehs), lambda: rw(sample, t, ehs, scale), pairs, sync=sync)
        out["eager"] = res
        bench.log(f"  reweighted/plain eager: {fmt_ratio(res)}")
        if dev.type == "cuda" and bench.left() > 40:
            gp = StaticGraph(plain, capture=True)
            gr = StaticGraph(rw, capture=True)
            res = ratio_with_control(lambda: gp(sample, t, ehs), lambda: gr(sample, t, ehs, scale), pairs, sync=sync)
            out["cuda_graphs"] = res
            bench.log(f"  reweighted/plain CUDA graphs: {fmt_ratio(res)}")
    return out


def batched_section(bench: Bench, c, size: int, batches: list[int], levels: int) -> dict:
    """Time to render ``levels`` weights (a frame atlas) in batches of B with Renderer.render_batch (the atlas
    code)."""
    from aadiff_live.backends.torch_backend import torch_backend
    from aadiff_live.rendering.pipeline import Renderer

    dev, dtype = bench.device, (torch.float16 if bench.device.type == "cuda" else torch.float32)
    backend = torch_backend(c, dev, dtype, compile=False)
    r = Renderer(c, backend, width=size, height=size, seed=0, static=False)
    r.prepare(PROMPT)
    weights = [2.0 * i / (levels - 1) for i in range(levels)]
    sync = _sync_fn(dev)
    out: dict = {"size": size, "levels": levels, "via": "Renderer.render_batch", "eager": True, "batches": {}}

    def fill(b: int) -> None:
        for i in range(0, levels, b):
            chunk = weights[i:i + b]
            chunk = chunk + [chunk[-1]] * (b - len(chunk))  # static batch: pad the last one
            r.render_batch(chunk, POSITIONS)

    for b in batches:
        if bench.left() < 20:
            out["batches"][str(b)] = {"skipped": "time budget"}
            continue
        try:
            with PeakMemory(dev) as mem:
                if not bench.smoke:
                    fill(b)  # warm-up (cuDNN algorithm choice per shape)
                times = []
                for _ in range(1 if bench.smoke else 3):
                    if sync:
                        sync()
                    t0 = time.perf_counter()
                    fill(b)
                    times.append(time.perf_counter() - t0)
            out["batches"][str(b)] = {"fill_ms_median": round(float(np.median(times)) * 1000, 2),
                                      "fill_ms_min": round(min(times) * 1000, 2), "calls": math.ceil(levels / b),
                                      "peak_gpu_mib": mem.mib}
            bench.log(f"  batch {b}: {levels} levels in {out['batches'][str(b)]['fill_ms_median']} ms")
        except Exception as exc:  # noqa: BLE001 - e.g. out of memory at one batch size: keep the others
            out["batches"][str(b)] = {"error": f"{type(exc).__name__}: {exc}"[:1000]}
            bench.log(f"  batch {b}: ERROR {type(exc).__name__}: {str(exc)[:200]}")
            _free()
        bench.write()
    ok = [v["fill_ms_median"] for v in out["batches"].values() if "fill_ms_median" in v]
    out["best_fill_ms"] = min(ok) if ok else None
    return out


def streamdiffusion_section(bench: Bench, c, size: int, frames: int) -> dict:
    """StreamDiffusion's own txt2img loop (package ``streamdiffusion``, its pipeline, its LCM step, no
    TensorRT) on the same random UNet and tiny VAE, plus the same uint8 conversion and copy to the host
    as our frames; and the same loop's UNet under our hands for reference."""
    from diffusers import StableDiffusionPipeline
    from streamdiffusion import StreamDiffusion

    dev, dtype = bench.device, (torch.float16 if bench.device.type == "cuda" else torch.float32)
    from diffusers.models.attention_processor import AttnProcessor2_0

    c.unet.set_attn_processor(AttnProcessor2_0())  # the peer runs the plain UNet
    pipe = StableDiffusionPipeline(vae=c.extra.get("kl_vae", c.vae), text_encoder=c.text_encoder,
                                   tokenizer=c.tokenizer, unet=c.unet, scheduler=c.scheduler, safety_checker=None,
                                   feature_extractor=None, requires_safety_checker=False)
    pipe = pipe.to(device=dev, dtype=dtype)
    stream = StreamDiffusion(pipe, t_index_list=[0], torch_dtype=dtype, width=size, height=size,
                             cfg_type="none", use_denoising_batch=True, frame_buffer_size=1)
    stream.vae = c.vae.to(dev, dtype)  # the tiny VAE, as StreamDiffusion's own examples swap in TAESD
    stream.prepare(PROMPT, num_inference_steps=50, guidance_scale=0.0, seed=2)

    def frame() -> np.ndarray:
        x = stream.txt2img()
        return ((x[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).cpu().numpy()

    with PeakMemory(dev) as mem:
        with torch.inference_mode():
            times = call_times(lambda _i: frame(), frames, warmup=1 if bench.smoke else 3)
    res = {**frame_stats(times), "peak_gpu_mib": mem.mib, "loop": "StreamDiffusion.txt2img (t_index_list=[0], "
           "cfg none, denoising batch, TAESD) + uint8 + copy to host", "size": size}
    bench.log(f"  streamdiffusion: {res['fps']} fps, p50 {res['p50_ms']} ms, p99 {res['p99_ms']} ms")
    return res


def sd15_section(bench: Bench, c, size: int, frames: int) -> dict:
    return frames_section(bench, c, size, frames,
                          ["static_eager", "compile_cuda_graphs"] if bench.device.type == "cuda" else ["static_eager"])


def summary(bench: Bench) -> dict:
    s = bench.result["sections"]
    cfgs = s.get("frames", {}).get("configs", {})
    fps = {k: v.get("fps") for k, v in cfgs.items() if isinstance(v, dict) and v.get("fps")}
    best = max(fps, key=lambda k: fps[k]) if fps else None
    sd_fps = s.get("streamdiffusion", {}).get("fps")
    ratio = s.get("reweight_ratio", {})
    rw = (ratio.get("cuda_graphs") or ratio.get("eager") or {}).get("ratio", {}).get("median")
    fill = s.get("batched_fill", {}).get("best_fill_ms")
    out: dict = {"best_config": best, "best_fps": fps.get(best) if best else None,
                 "best_p99_ms": cfgs[best]["p99_ms"] if best else None,
                 "vs_streamdiffusion": round(fps[best] / sd_fps, 3) if best and sd_fps else None,
                 "atlas_fill_ms": fill, "reweight_ratio": rw, "goals": GOALS}
    if not bench.smoke:
        out["met"] = {
            "fps": out["best_fps"] is not None and out["best_fps"] >= GOALS["fps"],
            "p99_ms": out["best_p99_ms"] is not None and out["best_p99_ms"] <= GOALS["p99_ms"],
            "vs_streamdiffusion": out["vs_streamdiffusion"] is not None
            and out["vs_streamdiffusion"] >= GOALS["vs_streamdiffusion"],
            "atlas_ms": fill is not None and fill <= GOALS["atlas_ms"],
            "reweight_ratio": rw is not None and rw <= GOALS["reweight_ratio"]}
    return out


def print_table(result: dict) -> None:
    s = result["sections"]
    env = s.get("env", {})
    print(f"\n{env.get('gpu') or env.get('cpu')}  torch {env.get('torch')}  (random weights: timings only)")
    for key in ("frames", "sd15_lcm"):
        sec = s.get(key, {})
        if "configs" not in sec:
            continue
        print(f"\n{key}: {sec['size']}x{sec['size']}, {sec['steps']} step(s), {sec['dtype']}")
        print(f"{'config':<22}{'fps':>9}{'p50 ms':>9}{'p99 ms':>9}{'peak MiB':>10}{'warm-up s':>11}")
        for name, v in sec["configs"].items():
            if "fps" in v:
                print(f"{name:<22}{v['fps']:>9}{v['p50_ms']:>9}{v['p99_ms']:>9}{v.get('peak_gpu_mib') or '-':>10}"
                      f"{v['warmup_s']:>11}")
            else:
                print(f"{name:<22}  {(v.get('error') or v.get('skipped') or '')[:70]}")
    sd = s.get("streamdiffusion", {})
    if "fps" in sd:
        print(f"{'StreamDiffusion loop':<22}{sd['fps']:>9}{sd['p50_ms']:>9}{sd['p99_ms']:>9}"
              f"{sd.get('peak_gpu_mib') or '-':>10}")
    rr = s.get("reweight_ratio", {})
    for k in ("eager", "cuda_graphs"):
        if k in rr:
            print(f"reweighted/plain UNet ({k}): {fmt_ratio(rr[k])}")
    bf = s.get("batched_fill", {})
    if "batches" in bf:
        print("atlas fill (" + str(bf["levels"]) + " levels): " + ", ".join(
            f"batch {b}: {v.get('fill_ms_median', v.get('error', v.get('skipped')))} ms" for b, v in bf["batches"].items()))
    cor = s.get("correctness", {})
    if "worst" in cor:
        print("correctness (worst over weights): " + ", ".join(f"{k} {v:.3g}" for k, v in cor["worst"].items()))
    for name, v in s.items():
        if isinstance(v, dict) and ("error" in v or "skipped" in v):
            print(f"{name}: {v.get('error') or v.get('skipped')}")
    print("summary:", json.dumps(s.get("summary", {}), default=str))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--json", help="write the results here (rewritten after every section)")
    p.add_argument("--smoke", action="store_true", help="CPU, tiny model, small sizes: seconds (the test suite runs it)")
    p.add_argument("--budget", type=float, help="seconds for the whole run (default 330 on a GPU, 120 smoke)")
    p.add_argument("--frames", type=int, help="frames per timed loop (default 300; smoke 8)")
    p.add_argument("--only", help="comma-separated sections to run (default all)")
    a = p.parse_args(argv)
    import logging
    import warnings

    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    warnings.simplefilter("ignore")
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    if a.smoke:
        device = torch.device("cpu")
        torch.set_num_threads(1)  # small models; on a busy machine more threads only wait for each other
    elif not torch.cuda.is_available():
        print("bench_gpu: error: no CUDA GPU is visible to torch; run with --smoke on the CPU", file=sys.stderr)
        return 2
    else:
        device = torch.device("cuda")
    budget = a.budget if a.budget is not None else (120.0 if a.smoke else 330.0)
    frames = a.frames or (4 if a.smoke else 300)
    bench = Bench(Path(a.json) if a.json else None, budget, a.smoke, device)
    if not a.smoke:
        import faulthandler

        faulthandler.dump_traceback_later(budget + 60, exit=False)  # where it hangs, if it does
    only = set(a.only.split(",")) if a.only else None

    def want(name: str) -> bool:
        return only is None or name in only

    try:
        from diffusers.utils import logging as dlog

        dlog.set_verbosity_error()
        dlog.disable_progress_bar()
        bench.section("env", 0, lambda: env_section(bench))
        if want("correctness"):
            bench.section("correctness", 20, lambda: correctness_section(bench, 64))
        size = 64 if a.smoke else 512
        parts: dict = {}

        def big():
            if "c" not in parts:
                bench.log("building the full-size SD-Turbo architecture (random weights)")
                parts["c"] = tiny_parts() if a.smoke else fullsize_parts()
            return parts["c"]

        if want("frames"):
            cfgs = ["eager", "static_eager", "channels_last"] + (["compile_cuda_graphs"] if device.type == "cuda" else [])
            bench.section("frames", 30, lambda: frames_section(bench, big(), size, frames, cfgs))
        if want("reweight_ratio"):
            bench.section("reweight_ratio", 20, lambda: reweight_section(bench, big(), size, 6 if a.smoke else 60))
        if want("batched_fill"):
            batches, levels = ([1, 3, 6], 6) if a.smoke else ([1, 4, 8, 16, 33], 33)
            bench.section("batched_fill", 30, lambda: batched_section(bench, big(), size, batches, levels))
        if want("streamdiffusion"):
            bench.section("streamdiffusion", 25, lambda: streamdiffusion_section(bench, big(), size, frames))
        parts.clear()
        _free()
        if want("sd15_lcm"):
            bench.section("sd15_lcm", 60, lambda: sd15_section(bench, tiny_lcm_parts() if a.smoke else sd15_parts(),
                                                                  size, max(4, frames // 3)))
        bench.result["sections"]["summary"] = summary(bench)
        bench.result["loadavg_1m_at_end"] = round(os.getloadavg()[0], 2)
        bench.result["modules"] = sorted(m for m in sys.modules if "." not in m and sys.modules[m] is not None)
        bench.result["project_modules"] = sorted(m for m in sys.modules if m.startswith("aadiff_live."))
    finally:
        bench.write()
    print_table(bench.result)
    if a.json:
        print(f"wrote {a.json}")
    errors = [k for k, v in bench.result["sections"].items() if isinstance(v, dict) and "error" in v]
    return 1 if errors else 0


if __name__ == "__main__":
    raise SystemExit(main())
