"""``aadiff-live analyse clip.wav``: the envelope, the weights, CLAP's ranking and their statistics, and every
source (bands, onsets; stems with ``--stems``), without rendering (tune ``--window`` / ``--gain`` before a long
render).

The clip is read in blocks (:func:`aadiff_live.analysis.clip.analyse_clip`): memory does not grow with its
length. No diffusion model is loaded; CLAP is loaded only when there is a prompt whose words it should rank.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np

from aadiff_live.analysis.clip import analyse_clip, envelope_stats
from aadiff_live.analysis.sources import STEMS, SourceFrames, is_onset, is_stem, known_sources
from aadiff_live.audio.source import source_for
from aadiff_live.config import Config
from aadiff_live.errors import UserError
from aadiff_live.output.sidecar import RowWriter, envelope_row, rows_path, sidecar_doc, write_json_atomic
from aadiff_live.output.video import check_writable
from aadiff_live.tokens.choose import require_content_words
from aadiff_live.tokens.words import check_prompt, parse_pinned

log = logging.getLogger(__name__)


def _rank(cfg: Config, prompt: str, excerpt: np.ndarray, samplerate: int) -> dict[str, float]:
    from aadiff_live.models.loading import IN_PROCESS_RANDOM
    from aadiff_live.tokens.clap import ClapRanker, clap_model_for

    words = require_content_words(prompt)
    model = clap_model_for(cfg.model.model in IN_PROCESS_RANDOM, cfg.tokens.clap_model)
    if model == "tiny":
        log.warning("CLAP 'tiny' has random weights: its ranking is noise, not a judgement of the sound")
    ranking = ClapRanker(model).rank(excerpt, samplerate, words, cfg.tokens.text_template)
    return dict(sorted(ranking.scores.items(), key=lambda kv: -kv[1]))


def report_lines(stats: dict, ranking: dict[str, float] | None, pinned: list[str] | None, top_k: int) -> list[str]:
    w, db = stats["weight"], stats["rms_db"]
    lines = [
        f"duration {stats['duration_s']:.1f} s, {stats['frames']} frames at {stats['fps']:g} fps",
        f"weight: min {w['min']:.3f}  p5 {w['p5']:.3f}  median {w['median']:.3f}  mean {w['mean']:.3f}  "
        f"p95 {w['p95']:.3f}  max {w['max']:.3f}",
        f"level: p5 {db['p5']:.1f}  median {db['median']:.1f}  p95 {db['p95']:.1f}  max {db['max']:.1f} dBFS",
        f"silent (gated) {100 * stats['silent_fraction']:.1f} % of frames, at full weight "
        f"{100 * stats['at_full_weight_fraction']:.1f} %, median frame-to-frame change "
        f"{stats['frame_to_frame_change_median']:.4f}",
    ]
    if pinned:
        lines.append("words: " + ", ".join(pinned) + " (pinned with --tokens: no CLAP ranking)")
    elif ranking is not None:
        table = "  ".join(f"{word}={s:+.3f}" for word, s in ranking.items())
        lines.append(f"CLAP ranking: {table}  -> weighted: {', '.join(list(ranking)[:top_k])}")
    else:
        lines.append("CLAP ranking: none (pass --prompt \"...\" to rank its words against this sound)")
    return lines


def source_lines(frames: SourceFrames) -> list[str]:
    """One line of the level sources' medians and 95th percentiles, one of the onset counts."""
    levels = [n for n in frames.names if not is_onset(n)]
    onsets = [n for n in frames.names if is_onset(n)]
    lines = ["sources (median / p95): " + "  ".join(
        f"{n} {np.median(frames.values[n]):.2f}/{np.percentile(frames.values[n], 95):.2f}" for n in levels)]
    if onsets:
        dur = max(frames.n_frames / frames.fps, 1e-9)
        lines.append("onsets: " + "  ".join(f"{n} {frames.onsets[n].size} ({frames.onsets[n].size / dur:.1f}/s)"
                                            for n in onsets))
    return lines


def sources_json(frames: SourceFrames, cfg: Config) -> dict:
    f = cfg.features
    return {"names": frames.names, "bands_hz": {k: list(v) for k, v in f.bands.items()},
            "onset_decay_ms": f.onset_decay_ms, "onset_hz": cfg.live.analysis_hz,
            "stem_model": f.stem_model if any(is_stem(n) for n in frames.names) else None,
            "onsets_s": frames.onsets}  # per frame values are in the rows: sources, sources_raw


def _write_rows(path: Path, env, frames: SourceFrames) -> RowWriter:
    """Every frame as a row (docs/sidecar.schema.json): the envelope and every source's value and raw value."""
    rows = RowWriter(path)
    try:
        raw_names = [n for n in frames.names if not is_onset(n)]
        for i in range(env.n_frames):
            rows.write({**envelope_row(env, i),
                        "sources": {n: frames.values[n][i] for n in frames.names},
                        "sources_raw": {n: frames.raw[n][i] for n in raw_names}})
        rows.close()
    except BaseException:
        rows.discard()
        raise
    return rows


def tempo_line(frames: SourceFrames) -> str:
    assert frames.beats is not None
    return (f"tempo: {frames.bpm:.1f} BPM, {frames.beats.size} beats, first at {frames.beats[0]:.2f} s "
            "(offline beat tracker)" if frames.beats.size else "tempo: no beat found")


def tempo_json(frames: SourceFrames, cfg: Config) -> dict | None:
    """The beat times (s), bar lines and the median tempo of the offline tracker; ``None`` with --tempo off."""
    if frames.beats is None:
        return None
    return {"tracker": "offline", "bpm": frames.bpm if frames.beats.size else None, "beats_s": frames.beats,
            "downbeats_s": frames.downbeats, "quantum": cfg.tempo.quantum}


def run_analyse(cfg: Config, *, audio_path: str | None, prompt: str | None, json_out: str | None = None,
                plot: str | bool = False, demo: bool = False, stems: bool = False) -> int:
    if prompt is not None:
        prompt = check_prompt(prompt)
    if cfg.tokens.tokens is not None and prompt is None:
        raise UserError("--tokens needs --prompt (the words are pinned inside the prompt)")
    pinned = parse_pinned(cfg.tokens.tokens, prompt) if prompt is not None else None
    json_path = Path(json_out) if json_out else None
    if json_path is not None:
        check_writable(json_path, "--json", "analysis.json")
    png: Path | None = None
    if plot:
        name = "demo" if demo else Path(str(audio_path or "clip")).name
        png = Path(plot) if isinstance(plot, str) else (
            json_path.with_name(json_path.name + ".png") if json_path else Path(f"{name}.envelope.png"))
        check_writable(png, "--plot", "envelope.png")
    names = known_sources(cfg.features, live=True) + (list(STEMS) if stems else [])
    separator = None
    if stems:
        from aadiff_live.analysis.stems import load_separator, require_demucs

        require_demucs()
    t0 = time.perf_counter()
    source = source_for(audio_path, demo, arg="`aadiff-live analyse`")
    if stems:
        separator = load_separator(cfg.features.stem_model)
    clip = analyse_clip(source, cfg.envelope, features=cfg.features, sources=names, onset_hz=cfg.live.analysis_hz,
                        separator=separator, tempo=cfg.tempo, track_beats=cfg.tempo.source != "off")
    frames = clip.sources
    assert frames is not None
    t_analysis = time.perf_counter() - t0
    env = clip.envelope
    stats = envelope_stats(env)
    ranking = _rank(cfg, prompt, clip.excerpt, clip.samplerate) if prompt is not None and pinned is None else None
    if cfg.tempo.source not in ("audio", "off"):
        log.info("--tempo %s: a file has no clock; its beats are tracked from its sound", cfg.tempo.source)
    for line in report_lines(stats, ranking, pinned, cfg.tokens.top_k) + source_lines(frames):
        print(line)
    if frames.beats is not None:
        print(tempo_line(frames))
    if json_path is not None:
        e = cfg.envelope
        rows = _write_rows(rows_path(json_path), env, frames)
        data = sidecar_doc(
            "analyse", rows,
            audio={"file": "demo:synthetic-storm" if demo else str(audio_path), "samplerate": clip.samplerate,
                   "channels": clip.channels, "duration_s": clip.duration,
                   "clap_excerpt_starts_s": clip.excerpt_starts_s},
            settings={"fps": e.fps, "window": e.window, "smoothing": e.mode, "w_min": e.w_min, "w_max": e.w_max,
                      "gain": e.gain, "n_fft": e.n_fft, "norm_percentile": e.norm_percentile,
                      "silence_db": e.silence_db, "prompt": prompt,
                      "clap_model": cfg.tokens.clap_model if ranking is not None else None},
            stats=stats,
            tokens={"pinned": pinned, "clap_scores": ranking,
                    "words": pinned or (list(ranking)[:cfg.tokens.top_k] if ranking else None)},
            timing_s={"analysis": t_analysis},
            n_frames=env.n_frames, complete=True,
            sources=sources_json(frames, cfg),
            tempo=tempo_json(frames, cfg),
        )
        try:
            log.info("wrote %s and %s", write_json_atomic(json_path, data), rows.path)
        except BaseException:
            rows.path.unlink(missing_ok=True)
            raise
    if png is not None:
        from aadiff_live.output.plot import plot_sources

        words = pinned or (list(ranking)[:cfg.tokens.top_k] if ranking else [])
        title = f"{prompt}  [{', '.join(words)}]" if prompt else ("demo" if demo else Path(str(audio_path)).name)
        log.info("plot: %s", plot_sources(frames, env, png, title=title))
    return 0
