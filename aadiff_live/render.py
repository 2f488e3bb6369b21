"""``aadiff-live render``: a video whose picture moves with a sound file (the paper's use)."""

from __future__ import annotations

import logging
import signal
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from aadiff_live.analysis.clip import analyse_clip
from aadiff_live.analysis.routes import (
    AutoRoutes,
    Route,
    auto_routes,
    band_audio,
    resolve_routes,
    route_smoothing,
    route_weights,
)
from aadiff_live.analysis.sources import is_stem
from aadiff_live.audio.rates import AAC_RATES, FALLBACK_RATE
from aadiff_live.audio.source import source_for
from aadiff_live.audio.stream import AudioFeed
from aadiff_live.config import MAX_ROUTES, Config, parse_size
from aadiff_live.errors import UserError, cannot_write
from aadiff_live.output.sidecar import (
    RowWriter,
    clean_json,
    envelope_row,
    frames_path,
    sidecar_doc,
    sidecar_path,
    write_json_atomic,
)
from aadiff_live.output.video import VideoWriter, check_writable
from aadiff_live.rendering.atlas import (
    Axis,
    OfflineAtlas,
    check_fits,
    default_batch,
    grid_key,
    grid_label,
    weight_range,
)
from aadiff_live.tokens.choose import TokenChoice, choose_tokens
from aadiff_live.tokens.words import check_prompt, parse_pinned, route_groups

log = logging.getLogger(__name__)

def _sigterm_as_interrupt():
    """While frames are written, SIGTERM (a service manager, ``kill``) finalises like Ctrl-C does."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum, frame):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, handler)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _resolve_routes(cfg: Config, prompt: str) -> list[Route]:
    """The routes of config.yaml or --route, checked against the prompt and the known sources (none: [])."""
    if cfg.routes == "auto":
        if cfg.tokens.tokens:
            raise UserError("--tokens and --route auto both choose the weighted words; give one of them")
        return []
    if not cfg.routes:
        return []
    from aadiff_live.analysis.sources import check_source, is_beat_locked, known_sources

    for r in cfg.routes:  # the one source check (its message lists the beat-locked sources too)
        check_source(r.source, cfg.features, flag=f"--route {r.source}={r.word}")
    locked = list(dict.fromkeys(r.source for r in cfg.routes if is_beat_locked(r.source)))
    if locked and cfg.tempo.source == "off":
        raise UserError(f"--route {locked[0]}=...: the source follows the tempo, but --tempo is off; use --tempo audio "
                        "(a file's beats are tracked from its sound)")
    if locked and cfg.tempo.source != "audio":
        log.info("--tempo %s: a file has no clock; its beats are tracked from its sound", cfg.tempo.source)
    return resolve_routes(cfg.routes, cfg.envelope, prompt, known_sources(cfg.features) + locked,
                          pinned=cfg.tokens.tokens)


def _auto_routes(cfg: Config, prompt: str, tokenizer, ranker, clip, names: list[str]) -> AutoRoutes:
    """``--route auto``: CLAP ranks the prompt's words on each band's own audio (the clip's CLAP excerpt
    band-filtered); each band gets its best word, no word twice."""
    from aadiff_live.tokens.words import content_words, reachable_scores

    words = list(reachable_scores(tokenizer, prompt, dict.fromkeys(content_words(prompt), 0.0), 0))
    audio = {n: band_audio(clip.excerpt, clip.samplerate, *cfg.features.bands[n]) for n in names}
    picked = auto_routes(ranker, audio, clip.samplerate, words, cfg.envelope, cfg.tokens.text_template)
    log.info("--route auto (CLAP on each band's own sound): %s", picked.table())
    return picked


def _save_png(frame: np.ndarray, path: Path) -> None:
    from PIL import Image

    try:
        Image.fromarray(frame).save(path)
    except OSError as exc:
        path.unlink(missing_ok=True)
        raise cannot_write(path, exc, "the video's partial file was removed") from None


def levels_for(cfg: Config, n_routes: int, exact: bool) -> tuple[int, ...]:
    """The atlas's levels per axis: ``()`` for exact rendering, one axis with no route or one, else a grid."""
    if exact or cfg.atlas.levels == 0:
        return ()
    if n_routes <= 1:
        return (cfg.atlas.levels,)
    return (cfg.atlas.levels_2 if n_routes == 2 else cfg.atlas.levels_3,) * n_routes


def auto_sources(cfg: Config) -> list[str]:
    """The sources ``--route auto`` gives words to: the bands of features.bands (at most 3)."""
    return list(cfg.features.bands)[:MAX_ROUTES]


# the Config sections a render reads: a sidecar's request holds them, and batch compares it to skip done rows
RENDER_SECTIONS = ("envelope", "features", "tokens", "model", "atlas", "tempo", "routes")


@dataclass
class RenderJob:
    """One render, checked before any model loads (:func:`check_render`); :func:`render_job` makes it."""

    cfg: Config
    prompt: str
    audio: str | None
    out: Path
    frames_dir: str | None = None
    plot: bool = False
    image: str | None = None
    demo: bool = False
    exact: bool = False
    routes: list[Route] = field(default_factory=list)
    names: list[str] = field(default_factory=list)
    shape: tuple[int, ...] = ()

    def request(self) -> dict:
        """What was asked for, as the sidecar stores it (``settings.request``)."""
        return request_of(self.cfg, audio="demo:synthetic-storm" if self.demo else self.audio, prompt=self.prompt,
                          image=self.image, exact=self.exact)


def request_of(cfg: Config, *, audio: str | None, prompt: str, image: str | None, exact: bool) -> dict:
    """The inputs of a render and the config sections it reads, as JSON: two renders with the same request
    make the same video (the sidecar's ``settings.request``; batch skips a row whose request is done)."""
    dump = cfg.model_dump(mode="json")
    return clean_json({"audio": audio, "prompt": prompt, "image": image, "exact": bool(exact),
                       "config": {k: dump[k] for k in RENDER_SECTIONS}})


@dataclass
class RenderResult:
    path: Path | None  # None: interrupted before the first frame, nothing written
    n_frames: int
    interrupted: bool


def check_render(cfg: Config, *, audio_path: str | None, prompt: str, out: str | Path, frames_dir: str | None = None,
                 plot: bool = False, image: str | None = None, demo: bool = False, exact: bool = False) -> RenderJob:
    """Every check that needs no model and no decoding: a bad setting fails here, before anything loads."""
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
    from aadiff_live.rendering.build import check_image_args

    check_image_args(cfg, image)
    parse_pinned(cfg.tokens.tokens, prompt)  # --tokens: words of the prompt (the tokenizer's check comes later)
    auto = cfg.routes == "auto"
    routes = _resolve_routes(cfg, prompt)
    names = auto_sources(cfg) if auto else list(dict.fromkeys(r.source for r in routes))
    shape = levels_for(cfg, len(names), exact)
    if shape:  # before the model loads: a setting that cannot work fails at once
        check_fits(shape, *parse_size(cfg.model.size), cfg.atlas.mb)
    if any(is_stem(n) for n in names):
        from aadiff_live.analysis.stems import require_demucs

        require_demucs()  # before anything is read: the install command, not a traceback
    return RenderJob(cfg, prompt, audio_path, out_path, frames_dir, plot, image, demo, exact, routes, names, shape)


def run_render(cfg: Config, *, audio_path: str | None, prompt: str, out: str, frames_dir: str | None = None,
               plot: bool = False, image: str | None = None, demo: bool = False, exact: bool = False) -> int:
    """``aadiff-live render``: check, load the models, render; the exit code (130: interrupted)."""
    return run_job(check_render(cfg, audio_path=audio_path, prompt=prompt, out=out, frames_dir=frames_dir,
                                plot=plot, image=image, demo=demo, exact=exact))


def run_job(job: RenderJob) -> int:
    """Render one checked job with models loaded for it alone; the exit code (130: interrupted)."""
    from aadiff_live.rendering.cache import ModelCache  # torch and the models load only now

    return 130 if render_job(job, ModelCache()).interrupted else 0


def _frames_bar(n: int) -> Iterable[int]:
    return tqdm(range(n), desc="rendering", unit="frame", dynamic_ncols=True)


def render_job(job: RenderJob, models, *, frames: Callable[[int], Iterable[int]] = _frames_bar,
               keep_partial: bool = True) -> RenderResult:
    """Make one checked render with the models of ``models`` (a ModelCache: loaded on first use, kept for
    the next job). ``frames(n)`` iterates the frame indices (default: a progress bar of its own).
    Ctrl-C (or SIGTERM): with ``keep_partial`` a playable file of the frames so far and a sidecar marked
    incomplete are kept (render); without, the partial files are removed and KeyboardInterrupt goes on (batch)."""
    cfg, prompt, image, demo = job.cfg, job.prompt, job.image, job.demo
    out_path, frames_dir, exact, plot = job.out, job.frames_dir, job.exact, job.plot
    auto = cfg.routes == "auto"
    routes, names, shape = list(job.routes), job.names, job.shape
    separator = None
    t0 = time.perf_counter()
    source = source_for(job.audio, demo)
    if any(is_stem(n) for n in names):
        from aadiff_live.analysis.stems import load_separator

        separator = load_separator(cfg.features.stem_model)
    # one streaming pass (the envelope and the routes' sources): memory does not grow with the length
    clip = analyse_clip(source, cfg.envelope, features=cfg.features, sources=names, onset_hz=cfg.live.analysis_hz,
                        smoothing=route_smoothing(cfg.envelope, routes), separator=separator, tempo=cfg.tempo)
    env = clip.envelope
    sources = clip.sources
    t_analysis = time.perf_counter() - t0
    if float(np.max(env.normalised, initial=0.0)) == 0.0:
        log.warning("the audio is silent (below %.0f dBFS): the video will be a still picture", cfg.envelope.silence_db)
    from aadiff_live.models.loading import IN_PROCESS_RANDOM
    from aadiff_live.tokens.clap import clap_model_for

    tcfg = cfg.tokens
    clap_model = clap_model_for(cfg.model.model in IN_PROCESS_RANDOM, tcfg.clap_model)
    # CLAP first: a missing CLAP checkpoint is reported before the slow diffusion model load
    ranker = models.ranker(clap_model) if tcfg.tokens is None and not routes else None  # --route auto: CLAP too
    base: str | np.ndarray | None = image
    image_label = image
    if demo and image is None:
        from aadiff_live.audio.demo import demo_picture

        base = demo_picture(*parse_size(cfg.model.size))
        image_label = "demo:sun-over-the-sea"
        log.info("demo picture: a sun over the sea drawn in code, the base of every frame")
    components, renderer = models.renderer(cfg, prompt, base, image_label)
    picked: AutoRoutes | None = None
    if auto:
        picked = _auto_routes(cfg, prompt, components.tokenizer, ranker, clip, names)
        routes = picked.routes
        shape = levels_for(cfg, len(routes), exact)
        if shape:
            check_fits(shape, renderer.width, renderer.height, cfg.atlas.mb)
    levels = shape[0] if shape else 0
    if routes:
        assert sources is not None
        choice = TokenChoice([r.word for r in routes], {}, [], pinned=True)
        groups = route_groups(components.tokenizer, prompt, choice.words)
        route_w = route_weights(sources.values, routes)  # [frames, routes]
        for r in routes:
            log.info("route %s: weight in [%g, %g], gain %g", r.label, r.w_min, r.w_max, r.gain)
    else:
        choice = choose_tokens(prompt, components.tokenizer, pinned=tcfg.tokens, top_k=tcfg.top_k,
                               clap_model=clap_model, mono=clip.excerpt, samplerate=clip.samplerate,
                               template=tcfg.text_template, ranker=ranker)
        groups = [choice.positions]
        route_w = np.asarray(env.weights, dtype=np.float64)[:, None]
    ranges = [weight_range(r.w_min, r.w_max, route_w[:, j]) for j, r in enumerate(routes)] or \
        [weight_range(cfg.envelope.w_min, cfg.envelope.w_max, route_w[:, 0])]
    # one weight: a weight per frame and one group of positions (as before routes); a grid: vectors and groups
    grid = len(groups) > 1
    points = route_w if grid else route_w[:, 0]
    positions: list[int] | list[list[int]] = groups if grid else groups[0]
    plan: OfflineAtlas | None = None
    if shape:
        axes = [Axis(tuple(g), lo, hi, n) for g, (lo, hi), n in zip(groups, ranges, shape, strict=True)]
        plan = OfflineAtlas(renderer, grid_key(renderer, prompt, axes), points, positions,
                            cfg.atlas.batch or default_batch(renderer.backend))
        log.info("frame atlas: %s %s over %s, %d per UNet call; this clip needs %d of them (--exact renders every "
                 "frame)", grid_label(shape), "cells" if grid else "levels",
                 " x ".join(f"[{lo:g}, {hi:g}]" for lo, hi in ranges), plan.batch, len(plan.need))
    rate = clip.samplerate if clip.samplerate in AAC_RATES else FALLBACK_RATE
    writer = VideoWriter(out_path, env.fps, renderer.width, renderer.height,
                         audio=np.zeros((0, min(2, clip.channels)), np.float32), samplerate=rate)
    audio_feed = AudioFeed(source, writer, rate)  # the audio is read again, block by block, as frames are written
    try:
        rows = RowWriter(frames_path(out_path))  # one row per frame, streamed (docs/sidecar.schema.json)
    except BaseException:
        writer.abort()
        raise

    def frame_row(i: int) -> dict:
        """Frame ``i``'s row (docs/sidecar.schema.json): the envelope; with routes each source's value and each
        word's own weight instead of the one weight; the atlas levels it blends."""
        row = envelope_row(env, i)
        if routes:
            assert sources is not None
            del row["weight"]
            row["sources"] = {k: v[i] for k, v in sources.values.items()}
            row["weights"] = {r.word: route_w[i, j] for j, r in enumerate(routes)}
        return {**row, **(plan.row(i) if plan is not None else {"exact": True})}

    restore = _sigterm_as_interrupt()
    cache: dict[float | tuple[float, ...], np.ndarray] = {}
    t_unet = t_vae = t_encode = 0.0
    t_loop = time.perf_counter()
    n_rendered = 0
    interrupted = False
    try:
        for i in frames(env.n_frames):
            w: float | tuple[float, ...] = tuple(float(x) for x in points[i]) if grid else float(points[i])
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
                    frame = renderer.render(w, positions, profile=True)
                    t_unet += renderer.last_timing["unet"]
                    t_vae += renderer.last_timing["vae"]
                    n_rendered += 1
                    cache = {w: frame}  # consecutive equal weights (silence, still parts) render once
            t = time.perf_counter()
            audio_feed.until((i + 1) / env.fps)
            writer.write(frame)
            rows.write(frame_row(i))
            if frames_dir:
                _save_png(frame, Path(frames_dir) / f"frame_{i:05d}.png")
            t_encode += time.perf_counter() - t
    except KeyboardInterrupt:
        if not keep_partial:
            writer.abort()
            rows.discard()
            raise
        interrupted = True
    except BaseException:
        writer.abort()
        rows.discard()
        raise
    finally:
        restore()
    t = time.perf_counter()
    try:
        if not interrupted:
            audio_feed.until(None)
        path = writer.close(complete=not interrupted)
        rows.close()
    except BaseException:
        rows.discard()
        raise
    if path is None:
        rows.discard()
    t_encode += time.perf_counter() - t
    t_loop = time.perf_counter() - t_loop
    n_done = writer.n_frames
    settings = {
        "prompt": prompt, "audio": "demo:synthetic-storm" if demo else str(job.audio), "image": image_label,
        "fps": env.fps, "window": cfg.envelope.window, "smoothing": cfg.envelope.mode,
        "w_min": cfg.envelope.w_min, "w_max": cfg.envelope.w_max, "gain": cfg.envelope.gain,
        "n_fft": cfg.envelope.n_fft, "norm_percentile": cfg.envelope.norm_percentile,
        "model": components.name, "random_weights": components.is_tiny or bool(components.extra.get("random_weights")),
        "steps": renderer.steps,
        "guidance": renderer.guidance, "scheduler": type(renderer.c.scheduler).__name__, "seed": cfg.model.seed,
        "width": renderer.width, "height": renderer.height,
        "loras": components.extra.get("loras", []),
        "strength": cfg.model.strength if base is not None and not renderer.invert else None,
        "invert": renderer.invert,
        "inversion": ({"seconds": renderer.inversion.stats.get("seconds"), "cached": renderer.inversion.stats.get("cached"),
                       "null_text": renderer.null_text} if renderer.inversion is not None else None),
        "backend": renderer.backend.description,
        "clap_model": None if choice.pinned else clap_model, "top_k": tcfg.top_k,
        "levels": levels, "grid": list(shape) if grid else None,
        "atlas_range": (ranges if grid else list(ranges[0])) if plan else None,
        "routes": [{"source": r.source, "word": r.word, "w_min": r.w_min, "w_max": r.w_max, "gain": r.gain,
                    "attack_ms": r.attack_ms, "release_ms": r.release_ms} for r in routes],
        # --route auto: what CLAP heard in each source's own audio (source -> word -> similarity)
        "route_auto_scores": picked.scores if picked is not None else None,
        # beat-locked routes: the beats the offline tracker found in the file
        "tempo": ({"bpm": sources.bpm, "beats_s": sources.beats, "downbeats_s": sources.downbeats,
                   "quantum": cfg.tempo.quantum} if sources is not None and sources.beats is not None else None),
        "atlas_batch": plan.batch if plan else None,
        "request": job.request(),  # what was asked for (batch skips a row whose request is already done)
    }
    data = sidecar_doc(
        "render", rows,
        settings=settings,
        tokens={"words": choice.words, "pinned": choice.pinned, "positions": positions,
                "clap_scores": choice.scores},
        audio={"samplerate": clip.samplerate, "channels": clip.channels, "duration_s": clip.duration,
               "clap_excerpt_starts_s": clip.excerpt_starts_s},
        n_frames=n_done, complete=not interrupted, levels=levels, renders=n_rendered,
        timing_s={"analysis": t_analysis, "unet": t_unet, "vae": t_vae, "encode_mux": t_encode,
                  "loop_total": t_loop, "frames_rendered": n_rendered},
    )
    if path is None:
        log.warning("interrupted before the first frame: nothing written")
        return RenderResult(None, 0, True)
    side = write_json_atomic(sidecar_path(path), data)
    if plot:
        from aadiff_live.output.plot import plot_envelope, plot_sources

        png_path = path.with_name(path.name + ".png")
        if sources is not None:  # routes: a panel per routed source, and each word's weight
            png = plot_sources(sources, env, png_path, title=prompt,
                               weights={r.word: route_w[:n_done, j] for j, r in enumerate(routes)})
        else:
            png = plot_envelope(env, png_path, title=f"{prompt}  [{', '.join(choice.words)}]")
        log.info("plot: %s", png)
    if interrupted:
        log.warning("interrupted: kept a playable %s with the %d frame(s) rendered so far", path, n_done)
        return RenderResult(path, n_done, True)
    log.info("wrote %s (%d frames, %.2f s) and %s", path, n_done, n_done / env.fps, side)
    return RenderResult(path, n_done, False)
