"""Frame-atlas benchmark: blend error, fill time, offline cost, the StreamDiffusion peer,
the windowed display's cost per refresh, and live display rate and audio-to-photon latency.

Sections (``--sections``, all by default), each for the models in ``--models``:

- ``blend``: the frames at 65 levels over [w_min, w_max] (the 33 even ones first, coarse to fine,
  ``--batch`` per UNet call: that part is the time to fill a 33-level atlas; 17 and 9 levels are
  every 4th and 8th of them), then at ``--n`` seeded random weights the blend of the two
  neighbouring levels against the exact render there: mean absolute error over all pixels, the
  worst frame's mean and the worst pixel (in 1/255). ``floor``: a level rendered in a batch
  against the same weight rendered alone (the error no blend can remove).
- ``offline``: ``render`` of a ``--clip-minutes`` clip (``ibm_thunder.flac`` repeated) with the
  atlas, timed whole; ``--exact`` timed on its first ``--exact-seconds`` and extrapolated from the
  time per render to the renders the whole clip needs (one per run of equal weights, counted).
- ``streamdiffusion``: StreamDiffusion's own SD-Turbo loop (``txt2img_sd_turbo``, as its wrapper
  calls it for SD-Turbo; and its LCM ``txt2img``) on the same UNet, text encoder and VAE, paired and
  alternating with our exact per-frame render, with an A/A control. Skipped with a note when the
  ``streamdiffusion`` package is absent (``pip install --no-deps streamdiffusion==0.1.1``).
- ``display``: the live window's cost per refresh (blend two levels, upload, scale to a 1280x720
  window, HUD, flip) through :class:`aadiff_live.live.display.Display`, under Xvfb (started here
  when there is no ``$DISPLAY``).
- ``live``: ``run_live`` headless from ``ibm_thunder.flac`` played in real time (looped), words
  pinned, with the atlas and with ``--levels 0``: display frames/s, audio-to-photon p50/p95/p99
  after the atlas is filled, and the time to fill it.

Random weights draw noise, not pictures: the figures measure smoothness in ``w`` and time, not imagery.

    python tools/bench_atlas.py --json docs/bench_atlas.json            # everything, both models
    python tools/bench_atlas.py --models tiny --sections blend          # one part
    python tools/bench_atlas.py --smoke --json /tmp/smoke.json          # every section, tiny, seconds
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchstats import fmt_ratio, ratio_with_control  # noqa: E402
from liverun import run_watched  # noqa: E402

log = logging.getLogger("bench_atlas")
REPO = Path(__file__).resolve().parents[1]
THUNDER = REPO / "tests" / "data" / "audio" / "ibm_thunder.flac"
LEVELS = (9, 17, 33, 65)
FILL_LEVELS = 33
FILL_GOAL_S = 60.0
DISPLAY_BUDGET_MS = 33.0
WINDOW = (1280, 720)
PROMPT = "a city skyline in a thunderstorm"
WORD = "thunderstorm"
SECTIONS = ("blend", "offline", "streamdiffusion", "display", "live")


@dataclass(frozen=True)
class Spec:
    model: str
    size: int
    dtype: str
    vae: str

    def config(self) -> dict:
        return {"model": self.model, "size": str(self.size), "dtype": self.dtype, "vae": self.vae, "device": "cpu"}

    def label(self) -> str:
        vae = f", {self.vae} VAE" if self.vae != "auto" else ""
        return f"{self.model} {self.size}x{self.size} {self.dtype}{vae}"


SPECS = {"tiny": Spec("tiny", 128, "float32", "auto"), "full": Spec("random-sd-turbo", 256, "bfloat16", "tiny")}


def machine() -> dict:
    import torch

    from aadiff_live.backends.hardware import cpu_name

    return {"cpu": cpu_name(), "cpu_count": os.cpu_count(), "torch": torch.__version__,
            "torch_threads": torch.get_num_threads(), "loadavg": [round(x, 2) for x in os.getloadavg()]}


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(values, dtype=np.float64), q))


def ms_summary(seconds: list[float]) -> dict:
    if not seconds:
        return {"n": 0}
    return {"n": len(seconds), "p50_ms": round(pct(seconds, 50) * 1000, 3), "p95_ms": round(pct(seconds, 95) * 1000, 3),
            "p99_ms": round(pct(seconds, 99) * 1000, 3), "max_ms": round(max(seconds) * 1000, 3)}


def positions_for(components) -> list[int]:
    from aadiff_live.tokens.words import token_positions

    return token_positions(components.tokenizer, PROMPT, [WORD])


def in_worker(fn: Callable[[], object]) -> object:
    """Run ``fn`` in a worker thread, as the live renderer does (tools/bench_live.py: on a busy CPU torch's
    OpenMP pool ran far slower from the main thread here); exceptions come back to the caller."""
    out: dict = {}

    def work() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - re-raised in the caller
            out["error"] = exc

    t = threading.Thread(target=work, name="bench-atlas-worker")
    t.start()
    t.join()
    if "error" in out:
        raise out["error"]
    return out.get("value")


# ---------------------------------------------------------------------------------------------- blend and fill
def blend_section(cfg, components, renderer, n: int, batch: int) -> dict:
    from aadiff_live.rendering.atlas import Atlas, atlas_key, blend_frames, coarse_to_fine, fill

    pos = positions_for(components)
    lo, hi = cfg.envelope.w_min, cfg.envelope.w_max
    top = max(LEVELS)
    full = Atlas(atlas_key(renderer, PROMPT, pos, top, lo, hi))
    step33 = (top - 1) // (FILL_LEVELS - 1)

    def render(ws: list[float]) -> np.ndarray:
        return renderer.render_batch(ws, pos)

    def fill_in(order: list[int]) -> list[float]:
        times = []
        for k in range(0, len(order), batch):
            t0 = time.perf_counter()
            fill(full, render, order[k:k + batch])
            times.append(time.perf_counter() - t0)
        return times

    def work() -> dict:
        render([lo])  # warm-up: first-call costs are not the fill's
        load = [round(x, 2) for x in os.getloadavg()]
        t33 = fill_in([i * step33 for i in coarse_to_fine(FILL_LEVELS)])
        rest = fill_in([i for i in range(top) if not full.has(i)])
        rng = np.random.default_rng(0)
        test_w = np.sort(rng.uniform(lo, hi, n))
        exact, exact_s = [], []
        for w in test_w:
            t0 = time.perf_counter()
            exact.append(renderer.render(float(w), pos).astype(np.float32))
            exact_s.append(time.perf_counter() - t0)
        floor_levels = [0, top // 2, top - 1]
        floor = [np.abs(renderer.render(float(full.weights[i]), pos).astype(np.float32) - full.frames[i]) for i in floor_levels]
        return {"load": load, "t33": t33, "rest": rest, "test_w": test_w, "exact": exact, "exact_s": exact_s,
                "floor": floor}

    r = in_worker(work)
    assert isinstance(r, dict)
    rows = []
    for L in LEVELS:
        step = (top - 1) // (L - 1)
        frames = full.frames[::step]
        errs = []
        for w, ex in zip(r["test_w"], r["exact"], strict=True):
            x = (w - lo) / (hi - lo) * (L - 1)
            i = min(int(np.floor(x)), L - 2)
            img = blend_frames(frames[i], frames[i + 1], x - i).astype(np.float32)
            errs.append(np.abs(img - ex))
        e = np.stack(errs)
        rows.append({"levels": L, "mean_255": round(float(e.mean()), 4),
                     "worst_frame_255": round(float(e.mean(axis=(1, 2, 3)).max()), 4),
                     "worst_pixel_255": float(e.max())})
    fl = np.stack(r["floor"])
    f32 = full.frames.astype(np.float32)
    step_change = np.abs(np.diff(f32[::step33], axis=0)).mean(axis=(1, 2, 3))
    fill33 = sum(r["t33"])
    return {
        "rows": rows, "n_test_weights": n, "w_range": [lo, hi], "loadavg_at_start": r["load"],
        # how far the picture moves: the blend error means something only against this
        "change_255": {"w_lo_to_w_hi_mean": round(float(np.abs(f32[-1] - f32[0]).mean()), 3),
                       "neighbours_of_33_mean": round(float(step_change.mean()), 3),
                       "neighbours_of_33_max": round(float(step_change.max()), 3)},
        "floor": {"levels_checked": 3, "mean_255": round(float(fl.mean()), 4), "worst_pixel_255": float(fl.max())},
        "fill": {"levels": FILL_LEVELS, "batch": batch, "seconds": round(fill33, 2), "goal_s": FILL_GOAL_S,
                 "meets_goal": fill33 <= FILL_GOAL_S, "s_per_level": round(fill33 / FILL_LEVELS, 3),
                 "s_per_call": [round(t, 3) for t in r["t33"]], "all_65_s": round(fill33 + sum(r["rest"]), 2)},
        "exact_render": ms_summary(r["exact_s"]),
    }


# ---------------------------------------------------------------------------------------------- offline
def runs_of_equal(weights: list[float]) -> int:
    """Renders of an exact render: one per run of equal consecutive weights (run_render's one-frame cache)."""
    return sum(1 for i, w in enumerate(weights) if i == 0 or w != weights[i - 1])


def offline_section(spec: Spec, minutes: float, exact_seconds: float, workdir: Path) -> dict:
    import soundfile as sf

    from aadiff_live.config import load_config
    from aadiff_live.output.sidecar import read_frames, sidecar_path
    from aadiff_live.render import run_render

    x, sr = sf.read(str(THUNDER), dtype="float32", always_2d=True)
    mono = x.mean(axis=1)
    n = int(minutes * 60 * sr)
    clip = np.tile(mono, n // mono.size + 1)[:n]
    whole, part = workdir / "clip.wav", workdir / "part.wav"
    sf.write(str(whole), clip, sr, subtype="PCM_16")
    sf.write(str(part), clip[:int(exact_seconds * sr)], sr, subtype="PCM_16")
    cfg = load_config(None, {"model": spec.config(), "tokens": {"tokens": [WORD]}})

    def render(audio: Path, out: Path, exact: bool) -> tuple[float, dict]:
        t0 = time.perf_counter()
        code = run_render(cfg, audio_path=str(audio), prompt=PROMPT, out=str(out), exact=exact)
        wall = time.perf_counter() - t0
        if code != 0:
            raise RuntimeError(f"render of {audio.name} exited {code}")
        return wall, json.loads(sidecar_path(out).read_text())

    load = [round(v, 2) for v in os.getloadavg()]
    wall_a, side_a = render(whole, workdir / "atlas.mp4", exact=False)
    wall_p, side_p = render(part, workdir / "exact_part.mp4", exact=True)
    frames = int(side_a["n_frames"])
    ta, tp = side_a["timing_s"], side_p["timing_s"]
    per_render_exact = (tp["unet"] + tp["vae"]) / max(1, side_p["renders"])
    renders_exact = runs_of_equal(list(read_frames(sidecar_path(workdir / "atlas.mp4"))["weight"]))
    # everything but the renders (analysis, model load, blending, encoding) as measured with the atlas
    exact_wall = wall_a - (ta["unet"] + ta["vae"]) + renders_exact * per_render_exact
    return {
        "model": spec.label(), "minutes": minutes, "frames": frames, "loadavg_at_start": load,
        "atlas": {"levels": side_a["levels"], "renders": side_a["renders"], "wall_s": round(wall_a, 1),
                  "render_s": round(ta["unet"] + ta["vae"], 2), "encode_s": round(ta["encode_mux"], 1)},
        "exact": {"renders": renders_exact, "wall_s_extrapolated": round(exact_wall, 1),
                  "timed_part_s": exact_seconds, "timed_part_renders": side_p["renders"],
                  "timed_part_wall_s": round(wall_p, 1), "s_per_render": round(per_render_exact, 4)},
        "speedup_wall": round(exact_wall / wall_a, 1),
    }


# ---------------------------------------------------------------------------------------------- StreamDiffusion
def streamdiffusion_section(components, renderer, pairs: int) -> dict:
    try:
        from streamdiffusion import StreamDiffusion
    except ImportError:
        return {"skipped": "the streamdiffusion package is not installed (pip install --no-deps streamdiffusion==0.1.1)"}
    import torch
    from diffusers import StableDiffusionPipeline
    from diffusers.models.attention_processor import AttnProcessor2_0

    c, r = components, renderer
    ours = dict(c.unet.attn_processors)  # our token-scaling processors; the peer runs the plain UNet

    def plain() -> None:
        c.unet.set_attn_processor(AttnProcessor2_0())

    def mine() -> None:
        c.unet.set_attn_processor(dict(ours))  # set_attn_processor pops from the dict it is given

    dtype = r.dtype
    plain()
    try:
        pipe = StableDiffusionPipeline(vae=c.vae, text_encoder=c.text_encoder, tokenizer=c.tokenizer, unet=c.unet,
                                       scheduler=c.scheduler, safety_checker=None, feature_extractor=None,
                                       requires_safety_checker=False)
        # CPU: StreamDiffusion's txt2img paths use no CUDA call (only __call__, the img2img path, times with
        # CUDA events); the pipeline is made on the same modules, which are already on the CPU in our dtype
        stream = StreamDiffusion(pipe, t_index_list=[0], torch_dtype=dtype, width=r.width, height=r.height,
                                 cfg_type="none", use_denoising_batch=True, frame_buffer_size=1)
        stream.prepare(PROMPT, num_inference_steps=50, guidance_scale=0.0, seed=2)
    finally:
        mine()
    pos = positions_for(c)

    def to_uint8(x) -> np.ndarray:  # the same conversion and copy as our frames
        return ((x[0].float().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()

    def ours_frame() -> None:
        r.render(0.75, pos)

    def sd_turbo() -> None:
        with torch.inference_mode():
            to_uint8(stream.txt2img_sd_turbo(1))

    def sd_lcm() -> None:
        with torch.inference_mode():
            to_uint8(stream.txt2img(1))

    def work() -> dict:
        load = [round(v, 2) for v in os.getloadavg()]
        a = ratio_with_control(ours_frame, sd_turbo, pairs, before_a=mine, before_b=plain)
        b = ratio_with_control(ours_frame, sd_lcm, max(2, pairs // 2), before_a=mine, before_b=plain)
        mine()
        return {"load": load, "turbo": a, "lcm": b}

    res = in_worker(work)
    assert isinstance(res, dict)
    a, b = res["turbo"], res["lcm"]
    return {
        "loop": "StreamDiffusion(t_index_list=[0], cfg none, denoising batch) .txt2img_sd_turbo (its wrapper's "
                "SD-Turbo path) + uint8 + copy; same UNet, text encoder and VAE modules, plain attention processors",
        "loadavg_at_start": res["load"],
        "fps": round(1.0 / a["b_median_s"], 3), "s_per_frame_median": a["b_median_s"],
        "ours_exact_fps": round(1.0 / a["a_median_s"], 3), "ours_exact_s_per_frame_median": a["a_median_s"],
        "peer_over_ours": a, "note": "ratio = StreamDiffusion frame time / our exact frame time (>1: ours faster)",
        "lcm_txt2img": {"fps": round(1.0 / b["b_median_s"], 3), "peer_over_ours": b},
    }


# ---------------------------------------------------------------------------------------------- display
class Xvfb:
    """A private X server for the windowed path when there is no ``$DISPLAY`` (SDL then uses x11)."""

    def __init__(self) -> None:
        self.proc: subprocess.Popen | None = None
        self.saved = {k: os.environ.get(k) for k in ("DISPLAY", "SDL_VIDEODRIVER")}

    def __enter__(self) -> str:
        if os.environ.get("DISPLAY") and os.environ.get("SDL_VIDEODRIVER") in (None, "", "x11"):
            return f"existing X display {os.environ['DISPLAY']}"
        exe = shutil.which("Xvfb")
        if exe is None:
            return f"SDL video driver {os.environ.get('SDL_VIDEODRIVER', 'default')} (no Xvfb on PATH)"
        r, w = os.pipe()
        self.proc = subprocess.Popen([exe, "-displayfd", str(w), "-screen", "0", "1920x1080x24", "-nolisten", "tcp"],
                                     pass_fds=(w,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.close(w)
        with os.fdopen(r) as f:
            num = f.readline().strip()
        if not num:
            raise RuntimeError("Xvfb did not start")
        os.environ["DISPLAY"] = f":{num}"
        os.environ["SDL_VIDEODRIVER"] = "x11"
        return f"Xvfb :{num} (1920x1080x24)"

    def __exit__(self, *exc) -> None:
        for k, v in self.saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
        if self.proc is not None:
            self.proc.terminate()
            self.proc.wait(timeout=10)


def display_section(size: int, refreshes: int) -> dict:
    from aadiff_live.live.display import Display, HudInfo
    from aadiff_live.rendering.atlas import blend_frames

    rng = np.random.default_rng(0)
    a, b = (rng.integers(0, 256, (size, size, 3), dtype=np.uint8) for _ in range(2))
    with Xvfb() as where:
        d = Display(size, size, window_size=WINDOW[0], fullscreen=False, display=0, hud=True)
        try:
            pg = d.pg
            d.screen = pg.display.set_mode(WINDOW, pg.RESIZABLE)  # a 1280x720 window (the picture letterboxed)
            driver = pg.display.get_driver()
            hud_fields = set(HudInfo.__dataclass_fields__)
            extra = {"atlas": "atlas 33/33"} if "atlas" in hud_fields else {}
            parts: dict[str, list[float]] = {"blend": [], "set_picture": [], "draw": [], "poll": [], "total": []}
            load = [round(v, 2) for v in os.getloadavg()]
            for i in range(refreshes + 10):
                t0 = time.perf_counter()
                img = blend_frames(a, b, (i % 97) / 97 + 0.005)  # a new weight every refresh
                t1 = time.perf_counter()
                d.set_picture(img)
                t2 = time.perf_counter()
                d.draw(HudInfo(fps=60.0, render_ms=600.0, latency_ms=31.0, level_db=-20.0, words=(WORD,),
                               weight=0.8, input_status="file", prompt=PROMPT, notes=["random weights: noise"],
                               **extra))
                t3 = time.perf_counter()
                d.poll()
                t4 = time.perf_counter()
                if i >= 10:  # the first refreshes warm caches and fonts
                    for k, v in zip(parts, (t1 - t0, t2 - t1, t3 - t2, t4 - t3, t4 - t0), strict=True):
                        parts[k].append(v)
            shown = tuple(d.screen.get_size())
        finally:
            d.close()
    total = ms_summary(parts["total"])
    return {"where": where, "sdl_driver": driver, "window": list(shown), "picture": [size, size], "hud": True,
            "refreshes": refreshes, "loadavg_at_start": load, "per_refresh": total,
            "parts_p50_ms": {k: round(pct(v, 50) * 1000, 3) for k, v in parts.items() if k != "total"},
            "budget_ms": DISPLAY_BUDGET_MS, "within_budget_p95": total["p95_ms"] < DISPLAY_BUDGET_MS}


# ---------------------------------------------------------------------------------------------- live
def steady_indices(stats: dict) -> list[int]:
    """The indices (into ``latencies_s`` / ``shown_s``) of the frames shown after the atlas was complete."""
    fill_s = stats.get("atlas_fill_s")
    return [i for i, t in enumerate(stats["shown_s"]) if fill_s is None or t >= fill_s]


def steady_state(stats: dict) -> tuple[list[float], float | None, str]:
    """Latencies and display frames/s of the frames shown after the atlas was complete (every frame for
    ``--levels 0``)."""
    lat = list(stats.get("latencies_s") or [])
    shown = stats.get("shown_s")  # display times on the clock of atlas_fill_s, one per latency
    fill_s = stats.get("atlas_fill_s")
    if shown is None or len(shown) != len(lat):
        fps = stats.get("fps")
        if fill_s is None:
            return lat, fps, "all frames"
        n = int(max(0.0, stats.get("run_s", 0.0) - fill_s) * (fps or 0.0))
        return (lat[-n:] if n else []), fps, "the last (run - fill) x fps frames"
    keep = steady_indices(stats)
    times = [shown[i] for i in keep]
    fps = (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else None
    return [lat[i] for i in keep], fps, "frames shown after the fill" if fill_s is not None else "all frames"


def live_section(spec: Spec, components, renderer, levels: int, steady_s: float, display_fps: float,
                 max_s: float = 300.0, routes: tuple[str, ...] = (), prompt: str = PROMPT) -> dict:
    """``steady_s`` seconds of live show after the atlas is complete (at most ``max_s`` in all); ``routes``
    (``SOURCE=WORD`` each) instead of the pinned word: a grid atlas."""
    from aadiff_live.config import load_config, parse_route
    from aadiff_live.live.app import LiveApp

    overrides: dict = {"model": spec.config(), "tokens": {"tokens": None if routes else [WORD]},
                       "atlas": {"levels": levels},
                       "live": {"input": str(THUNDER), "loop": True, "display_fps": display_fps}}
    cfg = load_config(None, overrides)
    if routes:
        cfg.routes = [r for r in (parse_route(t) for t in routes) if r != "auto"]
    stats: dict = {}
    app = LiveApp(cfg, prompt=prompt, no_display=True, duration=max_s, record=None, monitor=False,
                  prebuilt=(components, renderer), stats_out=stats)

    def stop_when_steady() -> None:
        end = time.monotonic() + max_s
        rt = app.render_thread
        while not app.stop.is_set() and time.monotonic() < end:
            if levels == 0 or rt.first_fill_s is not None:
                app.stop.wait(steady_s)
                app.stop.set()
                return
            app.stop.wait(0.05)

    load = [round(v, 2) for v in os.getloadavg()]
    code = run_watched(app, stop_when_steady)
    if code != 0:
        raise RuntimeError(f"live run exited {code}")
    steady, fps, how = steady_state(stats)
    fill_s = stats.get("atlas_fill_s")
    return {"levels": levels, "routes": list(routes), "steady_s": steady_s, "display_fps_setting": display_fps, "loadavg_at_start": load,
            "run_s": round(stats.get("run_s", 0.0), 1), "fps_steady": None if fps is None else round(fps, 2),
            "fps_whole_run": round(stats.get("fps") or 0.0, 2), "frames_shown": stats.get("frames_shown"),
            "frames_rendered": stats.get("frames_rendered"), "atlas_fill_s": None if fill_s is None else round(fill_s, 2),
            "steady": how, "latency_steady": ms_summary(steady),
            "latency_all": ms_summary(list(stats.get("latencies_s") or [])),
            "stale_audio_skipped_s": stats.get("stale_audio_skipped_s"), "stopped_by": stats.get("stopped_by")}


# ---------------------------------------------------------------------------------------------- driver
class Run:
    def __init__(self, out: Path | None, smoke: bool) -> None:
        self.out = out
        self.result: dict = {"what": (__doc__ or "").splitlines()[0], "smoke": smoke, "random_weights": True,
                             "machine": machine(), "models": {}, "sections": {}}
        self.errors = 0

    def section(self, where: dict, name: str, fn: Callable[[], dict]) -> dict | None:
        print(f"== {name}", file=sys.stderr, flush=True)
        t0 = time.perf_counter()
        try:
            res = fn()
        except Exception as exc:  # noqa: BLE001 - one section's failure must not lose the others' figures
            traceback.print_exc()
            res = {"error": f"{type(exc).__name__}: {exc}"}
            self.errors += 1
        res["section_s"] = round(time.perf_counter() - t0, 1)
        where[name] = res
        self.save()
        return res

    def save(self) -> None:
        if self.out is not None:
            from aadiff_live.output.sidecar import write_json_atomic

            self.result["machine"]["loadavg_end"] = [round(v, 2) for v in os.getloadavg()]
            write_json_atomic(self.out, self.result)


def build(spec: Spec):
    from aadiff_live.config import load_config
    from aadiff_live.rendering.build import build_renderer

    cfg = load_config(None, {"model": spec.config(), "tokens": {"tokens": [WORD]}})
    components, renderer = build_renderer(cfg, PROMPT)
    return cfg, components, renderer


def bench_model(run: Run, name: str, spec: Spec, sections: list[str], a: argparse.Namespace) -> None:
    """The sections that need a built renderer, sharing one build (the full-size model loads in ~30 s)."""
    from aadiff_live.rendering.atlas import default_batch

    print(f"== {name}: {spec.label()}", file=sys.stderr, flush=True)
    t0 = time.perf_counter()
    cfg, components, renderer = build(spec)
    batch = a.batch or default_batch(renderer.backend)
    entry = run.result["models"][name] = {**asdict(spec), "label": spec.label(), "backend": renderer.backend.description,
                                           "build_s": round(time.perf_counter() - t0, 1)}
    if "blend" in sections:
        run.section(entry, "blend", lambda: blend_section(cfg, components, renderer, a.n, batch))
    if "streamdiffusion" in sections and (name == "full" or a.smoke or a.model):
        run.section(entry, "streamdiffusion", lambda: streamdiffusion_section(components, renderer, a.pairs))
    if "live" in sections:
        live: dict = entry.setdefault("live", {})
        for levels in (cfg.atlas.levels, 0):
            run.section(live, "atlas" if levels else "exact",
                        lambda lv=levels: live_section(spec, components, renderer, lv, a.live_s, a.display_fps))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=(__doc__ or "").split("\n\n")[0])
    p.add_argument("--json", help="also write the results to this JSON file (rewritten after every section)")
    p.add_argument("--models", default="tiny,full", help="tiny (128x128 fp32) and/or full (random-sd-turbo "
                   "256x256 bf16, tiny VAE); default both")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"any of {', '.join(SECTIONS)}")
    p.add_argument("--model", help="one custom model instead of --models (e.g. random-sd-turbo)")
    p.add_argument("--size", type=int, help="with --model: picture size")
    p.add_argument("--dtype", default="float32", help="with --model")
    p.add_argument("--vae", default="auto", help="with --model")
    p.add_argument("--n", type=int, default=24, help="test weights for the blend error")
    p.add_argument("--batch", type=int, help="levels per UNet call (default: the app's, atlas.default_batch)")
    p.add_argument("--clip-minutes", type=float, default=10.0)
    p.add_argument("--exact-seconds", type=float, default=20.0, help="the part of the clip rendered --exact, timed")
    p.add_argument("--pairs", type=int, default=9, help="paired rounds against StreamDiffusion")
    p.add_argument("--refreshes", type=int, default=600, help="display refreshes timed")
    p.add_argument("--live-s", type=float, default=20.0, help="live seconds after the atlas is filled")
    p.add_argument("--display-fps", type=float, default=60.0)
    p.add_argument("--smoke", action="store_true", help="every section on the tiny model at 64x64, seconds (tests)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(name)s: %(message)s")
    from diffusers.utils import logging as dlog

    dlog.set_verbosity_error()
    sections = [s.strip() for s in a.sections.split(",") if s.strip()]
    bad = [s for s in sections if s not in SECTIONS]
    if bad:
        p.error(f"unknown section(s) {', '.join(bad)}; choose from {', '.join(SECTIONS)}")
    if a.model:
        specs = {a.model: Spec(a.model, a.size or 128, a.dtype, a.vae)}
    else:
        names = [m.strip() for m in a.models.split(",") if m.strip()]
        bad = [m for m in names if m not in SPECS]
        if bad:
            p.error(f"unknown model(s) {', '.join(bad)}; choose from {', '.join(SPECS)} (or --model NAME)")
        specs = {m: SPECS[m] for m in names}
    if a.smoke:
        specs = {"tiny": Spec("tiny", 64, "float32", "auto")}
        a.n, a.clip_minutes, a.exact_seconds, a.pairs, a.refreshes, a.live_s = 3, 0.1, 1.0, 2, 20, 1.0
    run = Run(Path(a.json) if a.json else None, a.smoke)
    tiny_spec = specs.get("tiny", SPECS["tiny"])
    for name, spec in specs.items():
        if any(s in sections for s in ("blend", "streamdiffusion", "live")):
            bench_model(run, name, spec, sections, a)
    if "offline" in sections:
        with tempfile.TemporaryDirectory() as tmp:
            run.section(run.result["sections"], "offline",
                        lambda: offline_section(tiny_spec, a.clip_minutes, a.exact_seconds, Path(tmp)))
    if "display" in sections:
        size = max(s.size for s in specs.values())
        run.section(run.result["sections"], "display", lambda: display_section(size, a.refreshes))
    run.save()
    print_table(run.result)
    return 1 if run.errors else 0


def print_table(res: dict) -> None:
    m = res["machine"]
    load = m.get("loadavg_end", m["loadavg"])
    print(f"\nframe atlas benchmark: {m['cpu']} ({m['cpu_count']} cores, torch {m['torch']}, {m['torch_threads']} "
          f"threads), load average {m['loadavg'][0]:.1f} at start, {load[0]:.1f} at end; random weights: noise, "
          "not imagery\n")
    for e in res["models"].values():
        b = e.get("blend", {})
        if "rows" in b:
            print(f"{e['label']}: blend of the neighbouring levels vs the exact render, {b['n_test_weights']} random "
                  f"weights in [{b['w_range'][0]:g}, {b['w_range'][1]:g}]")
            print(f"{'levels':>8} {'mean /255':>10} {'worst frame':>12} {'worst pixel':>12}")
            for row in b["rows"]:
                print(f"{row['levels']:>8} {row['mean_255']:>10.3f} {row['worst_frame_255']:>12.3f} "
                      f"{row['worst_pixel_255']:>12.0f}")
            f = b["fill"]
            ch = b["change_255"]
            print(f"   the picture moves {ch['w_lo_to_w_hi_mean']:.2f}/255 on average from w_min to w_max, "
                  f"{ch['neighbours_of_33_mean']:.3f}/255 between neighbours of 33 levels")
            print(f"   floor (a level in a batch vs alone): mean {b['floor']['mean_255']:.3f}, worst pixel "
                  f"{b['floor']['worst_pixel_255']:.0f}; exact frame p50 {b['exact_render']['p50_ms']:.0f} ms")
            print(f"   fill {f['levels']} levels, batch {f['batch']}: {f['seconds']:.1f} s (goal <= {f['goal_s']:g} s: "
                  f"{'met' if f['meets_goal'] else 'NOT met'})\n")
        elif "error" in b:
            print(f"{e['label']}: blend failed: {b['error']}\n")
        sd = e.get("streamdiffusion")
        if sd:
            if "fps" in sd:
                print(f"{e['label']}: StreamDiffusion txt2img_sd_turbo {sd['fps']:.2f} fps, our exact frame "
                      f"{sd['ours_exact_fps']:.2f} fps; peer/ours time {fmt_ratio(sd['peer_over_ours'])}\n")
            else:
                print(f"{e['label']}: StreamDiffusion: {sd.get('skipped') or sd.get('error')}\n")
        for kind, r in (e.get("live") or {}).items():
            if "error" in r:
                print(f"{e['label']} live {kind}: {r['error']}")
                continue
            ls = r["latency_steady"]
            fill = "-" if r["atlas_fill_s"] is None else f"{r['atlas_fill_s']:.1f} s"
            lat = "-" if not ls["n"] else f"p50 {ls['p50_ms']:.0f} / p95 {ls['p95_ms']:.0f} / p99 {ls['p99_ms']:.0f} ms"
            fps = "-" if r["fps_steady"] is None else f"{r['fps_steady']:.1f}"
            print(f"{e['label']} live, levels {r['levels']}: {fps} frames/s shown, fill {fill}, "
                  f"audio-to-photon ({r['steady']}) {lat}")
    s = res["sections"]
    o = s.get("offline")
    if o and "atlas" in o:
        print(f"\noffline, {o['model']}, a {o['minutes']:g}-minute clip ({o['frames']} frames): atlas "
              f"{o['atlas']['renders']} renders, {o['atlas']['wall_s']:.0f} s wall; exact {o['exact']['renders']} "
              f"renders, ~{o['exact']['wall_s_extrapolated']:.0f} s wall (extrapolated from "
              f"{o['exact']['timed_part_s']:g} s timed)")
    elif o:
        print(f"\noffline: {o.get('error')}")
    dsp = s.get("display")
    if dsp and "per_refresh" in dsp:
        pr = dsp["per_refresh"]
        print(f"\ndisplay ({dsp['where']}, SDL {dsp['sdl_driver']}, window {dsp['window'][0]}x{dsp['window'][1]}, "
              f"HUD on): per refresh p50 {pr['p50_ms']:.2f} ms, p95 {pr['p95_ms']:.2f} ms, p99 {pr['p99_ms']:.2f} ms "
              f"(budget {dsp['budget_ms']:g} ms); parts p50 {dsp['parts_p50_ms']}")
    elif dsp:
        print(f"\ndisplay: {dsp.get('error')}")


if __name__ == "__main__":
    sys.exit(main())
