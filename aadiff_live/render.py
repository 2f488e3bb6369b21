"""``aadiff-live render``: a video whose picture moves with a sound file (the paper's use)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm

from aadiff_live.analysis.clip import analyse_clip
from aadiff_live.audio.rates import AAC_RATES
from aadiff_live.audio.source import source_for
from aadiff_live.audio.stream import AudioFeed
from aadiff_live.config import Config, parse_size
from aadiff_live.errors import UserError, cannot_write
from aadiff_live.output.sidecar import sidecar_path, write_json_atomic
from aadiff_live.output.video import VideoWriter, check_writable
from aadiff_live.rendering.atlas import OfflineAtlas, atlas_key, check_fits, default_batch, weight_range
from aadiff_live.tokens.words import check_prompt

log = logging.getLogger(__name__)

def _sigterm_as_interrupt():
    """While frames are written, SIGTERM (a service manager, ``kill``) finalises like Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _save_png(frame: np.ndarray, path: Path) -> None:
    from PIL import Image

    try:
        Image.fromarray(frame).save(path)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise cannot_write(path, exc, "the video's partial file was removed") from None


def run_render(cfg: Config, *, audio_path: str | None, prompt: str, out: str, frames_dir: str | None = None,
               plot: bool = False, image: str | None = None, demo: bool = False, exact: bool = False) -> int:
    prompt = check_prompt(prompt)
    out_path = Path(out)
    check_writable(out_path)
    if frames_dir:
        fdir = Path(frames_dir)
        try:
            fdir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UserError(f"cannot create --frames folder {fdir} ({exc.strerror}); choose another folder") from None
    if image and not Path(image).is_file():
        raise UserError(f"image {image} not found; check the path passed to --image")
    t0 = time.perf_counter()
    source = source_for(audio_path, demo)
    clip = analyse_clip(source, cfg.envelope)  # one streaming pass: memory does not grow with the length
    env = clip.envelope
    t_analysis = time.perf_counter() - t0
    if float(np.max(env.normalised, initial=0.0)) == 0.0:
        log.warning("the audio is silent (below %.0f dBFS): the video will be a still picture", cfg.envelope.silence_db)
    levels = 0 if exact else cfg.atlas.levels
    if levels:  # before the model loads: a setting that cannot work fails at once
        check_fits(levels, *parse_size(cfg.model.size), cfg.atlas.mb)
    from aadiff_live.models.loading import IN_PROCESS_RANDOM
    from aadiff_live.rendering.build import build_renderer  # torch and the models load only now
    from aadiff_live.tokens.choose import choose_tokens
    from aadiff_live.tokens.clap import ClapRanker, clap_model_for

    tcfg = cfg.tokens
    clap_model = clap_model_for(cfg.model.model in IN_PROCESS_RANDOM, tcfg.clap_model)
    # CLAP first: a missing CLAP checkpoint is reported before the slow diffusion model load
    ranker = ClapRanker(clap_model) if tcfg.tokens is None else None
    base: str | np.ndarray | None = image
    image_label = image
    if demo and image is None:
        from aadiff_live.audio.demo import demo_picture

        base = demo_picture(*parse_size(cfg.model.size))
        image_label = "demo:sun-over-the-sea"
        log.info("demo picture: a sun over the sea drawn in code, the base of every frame")
    components, renderer = build_renderer(cfg, prompt, base)
    choice = choose_tokens(prompt, components.tokenizer, pinned=tcfg.tokens, top_k=tcfg.top_k, clap_model=clap_model,
                           mono=clip.excerpt, samplerate=clip.samplerate, template=tcfg.text_template, ranker=ranker)
    weights = np.asarray(env.weights, dtype=np.float64)
    plan: OfflineAtlas | None = None
    if levels:
        e = cfg.envelope
        key = atlas_key(renderer, prompt, choice.positions, levels, *weight_range(e.w_min, e.w_max, weights))
        plan = OfflineAtlas(renderer, key, weights, choice.positions, cfg.atlas.batch or default_batch(renderer.backend))
        log.info("frame atlas: %d levels over w in [%g, %g], %d per UNet call; this clip needs %d of them "
                 "(--exact renders every frame)", levels, plan.atlas.key.w_lo, plan.atlas.key.w_hi, plan.batch,
                 len(plan.need))
    rate = clip.samplerate if clip.samplerate in AAC_RATES else 48000
    writer = VideoWriter(out_path, env.fps, renderer.width, renderer.height,
                         audio=np.zeros((0, min(2, clip.channels)), np.float32), samplerate=rate)
    audio_feed = AudioFeed(source, writer, rate)  # the audio is read again, block by block, as frames are written
    restore = _sigterm_as_interrupt()
    cache: dict[float, np.ndarray] = {}
    t_unet = t_vae = t_encode = 0.0
    t_loop = time.perf_counter()
    n_rendered = 0
    interrupted = False
    try:
        for i in tqdm(range(env.n_frames), desc="rendering", unit="frame", dynamic_ncols=True):
            w = float(weights[i])
            if plan is not None:
                if plan.missing(i):
                    n_rendered += plan.fill_next()
                    t_unet += renderer.last_timing["unet"]
                    t_vae += renderer.last_timing["vae"]
                frame = plan.frame(i)
            else:
                cached = cache.get(w)
                if cached is not None:
                    frame = cached
                else:
                    frame = renderer.render(w, choice.positions, profile=True)
                    t_unet += renderer.last_timing["unet"]
                    t_vae += renderer.last_timing["vae"]
                    n_rendered += 1
                    cache = {w: frame}  # consecutive equal weights (silence, still parts) render once
            t = time.perf_counter()
            audio_feed.until((i + 1) / env.fps)
            writer.write(frame)
            if frames_dir:
                _save_png(frame, Path(frames_dir) / f"frame_{i:05d}.png")
            t_encode += time.perf_counter() - t
    except KeyboardInterrupt:
        interrupted = True
    except BaseException:
        writer.abort()
        raise
    finally:
        restore()
    t = time.perf_counter()
    if not interrupted:
        audio_feed.until(None)
    path = writer.close(complete=not interrupted)
    t_encode += time.perf_counter() - t
    t_loop = time.perf_counter() - t_loop
    n_done = writer.n_frames
    settings = {
        "prompt": prompt, "audio": "demo:synthetic-storm" if demo else str(audio_path), "image": image_label,
        "fps": env.fps, "window": cfg.envelope.window, "smoothing": cfg.envelope.mode,
        "w_min": cfg.envelope.w_min, "w_max": cfg.envelope.w_max, "gain": cfg.envelope.gain,
        "n_fft": cfg.envelope.n_fft, "norm_percentile": cfg.envelope.norm_percentile,
        "model": components.name, "random_weights": components.is_tiny or bool(components.extra.get("random_weights")),
        "steps": renderer.steps,
        "guidance": renderer.guidance, "scheduler": type(components.scheduler).__name__, "seed": cfg.model.seed,
        "width": renderer.width, "height": renderer.height,
        "loras": components.extra.get("loras", []), "strength": cfg.model.strength if base is not None else None,
        "backend": renderer.backend.description,
        "clap_model": None if choice.pinned else clap_model, "top_k": tcfg.top_k,
        "levels": levels, "atlas_range": [plan.atlas.key.w_lo, plan.atlas.key.w_hi] if plan else None,
        "atlas_batch": plan.batch if plan else None,
    }
    data = {
        "settings": settings,
        "tokens": {"words": choice.words, "pinned": choice.pinned, "positions": choice.positions,
                   "clap_scores": choice.scores},
        "audio": {"samplerate": clip.samplerate, "channels": clip.channels, "duration_s": clip.duration,
                  "clap_excerpt_starts_s": clip.excerpt_starts_s},
        "n_frames": n_done, "complete": not interrupted, "levels": levels, "renders": n_rendered,
        "timing_s": {"analysis": t_analysis, "unet": t_unet, "vae": t_vae, "encode_mux": t_encode,
                     "loop_total": t_loop, "frames_rendered": n_rendered},
        "frames": {"time": env.times[:n_done], "raw": env.raw[:n_done], "smoothed": env.smoothed[:n_done],
                   "normalised": env.normalised[:n_done], "weight": env.weights[:n_done],
                   # per frame: (1 - blend) * level_lo + blend * level_hi (level_lo == level_hi: a level itself)
                   **(plan.sidecar(n_done) if plan is not None else {})},
    }
    if path is None:
        log.warning("interrupted before the first frame: nothing written")
        return 130
    side = write_json_atomic(sidecar_path(path), data)
    if plot:
        from aadiff_live.output.plot import plot_envelope

        png = plot_envelope(env, path.with_name(path.name + ".png"), title=f"{prompt}  [{', '.join(choice.words)}]")
        log.info("plot: %s", png)
    if interrupted:
        log.warning("interrupted: kept a playable %s with the %d frame(s) rendered so far", path, n_done)
        return 130
    log.info("wrote %s (%d frames, %.2f s) and %s", path, n_done, n_done / env.fps, side)
    return 0
