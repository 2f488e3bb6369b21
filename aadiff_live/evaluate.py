"""``aadiff-live evaluate OUT.mp4``: does the picture follow the sound? (the paper's Fig. 4, as a command)

Reads a video written by ``render`` or live ``--record`` and its sidecar (``OUT.mp4.json`` and its rows,
docs/sidecar.md), decodes the frames (PyAV) and measures, per frame: the CLIP similarity of the frame to each
weighted word (phrased with ``tokens.text_template``, as CLAP hears it) and to the whole prompt; how much the
frame differs from the one before (*change*) and from the quietest frame (*distance*). Against the sidecar's
weights and envelope these give Pearson correlations, one row per routed word; the sound's onsets (the
project's onset detector on the video's own audio, else the envelope's rises) give the lag of the picture's
change behind each onset, beside the lag of the weight's own change as the sidecar has it.
"""

from __future__ import annotations

import collections
import json
import logging
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from aadiff_live.analysis.sync import abs_step, envelope_onsets, lag_summary, onset_lags, pearson
from aadiff_live.config import Config
from aadiff_live.errors import UserError
from aadiff_live.output.sidecar import frames_path, read_frames, sidecar_path, write_json_atomic
from aadiff_live.output.video_read import check_video
from aadiff_live.output.video_read import read_frames as video_frames

log = logging.getLogger(__name__)
STILL = 0.01  # another word's weight "does not move" into a frame: it changes by under this share of the weights' range


@dataclass(frozen=True)
class Sidecar:
    """What the sidecar says about each frame."""

    kind: str
    settings: dict
    times: np.ndarray
    envelope: np.ndarray  # the normalised envelope per frame (NaN where missing)
    weights: dict[str, np.ndarray]  # label (the routed word, or the weighted words) -> weight per frame
    sources: dict[str, str]  # label -> the source it follows
    words: dict[str, list[tuple[str, ...]]]  # label -> the words scored per frame
    prompts: list[str]  # the prompt per frame

    @property
    def n(self) -> int:
        return int(self.times.size)


def _floats(col) -> np.ndarray:
    return np.array([np.nan if v is None else float(v) for v in col], dtype=np.float64)


def read_sidecar(video: Path) -> Sidecar:
    side = sidecar_path(video)
    if not side.is_file():
        raise UserError(f"{video} has no sidecar ({side.name} is missing beside it); evaluate reads the videos that "
                        f"`render --out` or `--record` wrote, with their .json")
    try:
        doc = json.loads(side.read_text(encoding="utf-8"))
        cols = read_frames(side)
    except (OSError, ValueError) as exc:
        raise UserError(f"cannot read the sidecar {side} ({type(exc).__name__}); it is damaged: render again") from None
    if not isinstance(doc, dict) or doc.get("kind") not in ("render", "live") or not cols.get("time"):
        rows = frames_path(video).name
        raise UserError(f"the sidecar {side} has no frame rows ({rows}) of a render or a recording; evaluate needs both")
    settings = doc.get("settings") or {}
    n = len(cols["time"])
    prompts = [str(p) for p in cols["prompt"]] if "prompt" in cols else [str(settings.get("prompt", ""))] * n
    route_src = {r["word"]: r["source"] for r in settings.get("routes") or []}
    weights: dict[str, np.ndarray] = {}
    words: dict[str, list[tuple[str, ...]]] = {}
    sources: dict[str, str] = {}
    if isinstance(cols.get("weights"), dict) and cols["weights"]:
        for word, col in cols["weights"].items():
            weights[word], words[word], sources[word] = _floats(col), [(word,)] * n, route_src.get(word, "?")
    elif "weight" in cols:
        fixed = tuple((doc.get("tokens") or {}).get("words") or ())
        per = [tuple(w) if w else fixed for w in cols["words"]] if "words" in cols else [fixed] * n
        label = ", ".join(Counter(per).most_common(1)[0][0]) or "?"
        weights[label], words[label], sources[label] = _floats(cols["weight"]), per, "loudness"
    else:
        raise UserError(f"the sidecar {side} has no weights per frame; evaluate reads render and --record sidecars")
    envelope = _floats(cols["normalised"]) if "normalised" in cols else np.full(n, np.nan)
    return Sidecar(str(doc["kind"]), settings, _floats(cols["time"]), envelope, weights, sources, words, prompts)


def audio_onsets(video: Path, cfg: Config, fps: float) -> np.ndarray | None:
    """Onset times (s) of the video's own audio, by the project's onset detector; None when it has no audio."""
    from aadiff_live.analysis.sources import LOUDNESS, ONSET, sources_from_blocks
    from aadiff_live.audio.stream import open_audio

    try:
        src = open_audio(video, "evaluate")
    except UserError:
        return None
    env = cfg.envelope.model_copy(update={"fps": fps})
    mono = (b.mean(axis=1) if b.shape[1] > 1 else b[:, 0] for b in src.blocks())
    frames = sources_from_blocks(mono, src.samplerate, env, cfg.features, [LOUDNESS, ONSET],
                                 onset_hz=cfg.live.analysis_hz)
    return np.asarray(frames.onsets.get(ONSET, np.zeros(0)), dtype=np.float64)


def measure_frames(video: Path, side: Sidecar, scorer, template: str, batch: int) -> dict[str, Any]:
    """Per frame: CLIP similarity to each label's words and to the prompt, change and distance (mean absolute
    difference, 0..255, to the frame before and to the quietest frame)."""
    total = np.sum([np.nan_to_num(w, nan=np.inf) for w in side.weights.values()], axis=0)
    base_index = int(np.argmin(total))
    base = collections.deque(video_frames(video, stop=base_index + 1), maxlen=1)[0].astype(np.float32)
    n = side.n
    change, distance = np.full(n, np.nan), np.full(n, np.nan)
    clip_word = {k: np.full(n, np.nan) for k in side.weights}
    clip_prompt = np.full(n, np.nan)
    pending: list[tuple[int, np.ndarray]] = []

    def score() -> None:
        idx = [i for i, _ in pending]
        img = scorer.embed_images(np.stack([f for _, f in pending]))
        prompts = scorer.embed_texts([side.prompts[i] for i in idx])
        clip_prompt[idx] = (img * prompts).sum(-1).numpy()
        for label, per in side.words.items():
            for row, i in enumerate(idx):
                ws = per[i]
                if ws:
                    txt = scorer.embed_texts([template.format(word=w) for w in ws])
                    clip_word[label][i] = float((txt @ img[row]).mean())
        pending.clear()

    prev = None
    seen = 0
    for i, frame in enumerate(tqdm(video_frames(video, stop=n), total=n, desc="evaluating", unit="frame",
                                   dynamic_ncols=True)):
        f = frame.astype(np.float32)
        if prev is not None:
            change[i] = float(np.abs(f - prev).mean())
        distance[i] = float(np.abs(f - base).mean())
        prev = f
        pending.append((i, frame))
        seen = i + 1
        if len(pending) >= batch:
            score()
    if pending:
        score()
    return {"n": seen, "base_frame": base_index, "change": change, "distance": distance, "clip_word": clip_word,
            "clip_prompt": clip_prompt}


def _r(x) -> float | None:
    return None if x is None else round(x, 4)


def evaluate(video: str | Path, cfg: Config, *, clip_model: str | None = None, device: str = "cpu") -> dict[str, Any]:
    """The report of ``video`` (a dict, as ``--json`` writes it)."""
    from aadiff_live.models.clip_image import ClipScorer

    video = Path(video)
    announced = check_video(video)
    side = read_sidecar(video)
    fps = float(side.settings.get("fps") or 0) or (1.0 / float(np.median(np.diff(side.times))) if side.n > 1 else 30.0)
    model = clip_model or cfg.evaluate.clip_model
    scorer = ClipScorer(model, device)  # before decoding: a missing model is said at once
    m = measure_frames(video, side, scorer, cfg.tokens.text_template, cfg.evaluate.batch)
    n = m["n"]
    if n < side.n:
        log.warning("%s has %d frames, its sidecar %d rows: the first %d are compared", video, n, side.n, n)
    elif announced and announced > side.n:
        log.warning("%s has %d frames, its sidecar %d rows: the first %d are compared", video, announced, side.n, n)
    env = side.envelope[:n]
    times = side.times[:n]
    change, distance = m["change"][:n], m["distance"][:n]
    rows = []
    steps = {k: abs_step(v[:n]) for k, v in side.weights.items()}
    still = STILL * max([float(np.nanmax(v[:n]) - np.nanmin(v[:n])) for v in side.weights.values()] + [1e-6])
    for label, w in side.weights.items():
        w = w[:n]
        # the frames where no other word's weight moves: this word's own share of the change
        others = np.sum([s for k, s in steps.items() if k != label] or [np.zeros(n)], axis=0)
        own_change = np.where(np.nan_to_num(others) > still, np.nan, change)
        word = m["clip_word"][label][:n]
        rows.append({"word": label, "source": side.sources[label],
                     "r_clip_word_weight": _r(pearson(word, w)), "r_clip_word_envelope": _r(pearson(word, env)),
                     "r_clip_prompt_weight": _r(pearson(m["clip_prompt"][:n], w)),
                     "r_clip_prompt_envelope": _r(pearson(m["clip_prompt"][:n], env)),
                     "r_distance_weight": _r(pearson(distance, w)),
                     "r_change_weight_change": _r(pearson(own_change, steps[label]))})
    onsets = audio_onsets(video, cfg, fps)
    origin = "audio"
    if onsets is None:
        onsets, origin = envelope_onsets(times, env), "envelope"
    window = cfg.evaluate.onset_window_ms / 1000.0
    weight_change = np.sum([abs_step(w[:n]) for w in side.weights.values()], axis=0)
    lags = onset_lags(onsets, times, change, window)
    weight_lags = onset_lags(onsets, times, weight_change, window)
    random = bool(side.settings.get("random_weights")) or model == "tiny"
    return {
        "video": str(video), "kind": side.kind, "frames": n, "fps": fps, "clip_model": model,
        "random_weights": random, "text_template": cfg.tokens.text_template, "base_frame": m["base_frame"],
        "routes": rows,
        "r_change_envelope": _r(pearson(change, env)), "r_change_envelope_change": _r(pearson(change, abs_step(env))),
        "onsets": {"from": origin, "window_s": window, "times_s": onsets, "lag_s": lags, "weight_lag_s": weight_lags,
                   "lag": lag_summary(lags), "weight_lag": lag_summary(weight_lags)},
        "per_frame": {"time": times, "envelope": env, "weights": {k: v[:n] for k, v in side.weights.items()},
                      "clip_word": {k: v[:n] for k, v in m["clip_word"].items()}, "clip_prompt": m["clip_prompt"][:n],
                      "change": change, "distance": distance},
    }


def _fmt(x: float | None) -> str:
    return "   -  " if x is None else f"{x:+.3f}"


def table(report: dict[str, Any]) -> str:
    """The report as text: one row of correlations per word, then the frame change and the onset lags."""
    head = (f"{report['video']}: {report['kind']}, {report['frames']} frames at {report['fps']:g} fps; "
            f"CLIP {report['clip_model']}" + ("  [random weights: the CLIP scores mean nothing]"
                                              if report["random_weights"] else ""))
    cols = [("word", 14), ("source", 10), ("clip~w", 7), ("clip~env", 8), ("prompt~w", 8), ("prompt~env", 10),
            ("dist~w", 7), ("chg~|dw|", 8)]
    keys = ["r_clip_word_weight", "r_clip_word_envelope", "r_clip_prompt_weight", "r_clip_prompt_envelope",
            "r_distance_weight", "r_change_weight_change"]
    lines = [head, "Pearson r per word: CLIP(frame, word) and CLIP(frame, prompt) against the weight (w) and the "
             "envelope (env); distance from the quietest frame against w; frame change against |change of w| (on the "
             "frames where no other word's weight moves)",
             "  ".join(name.ljust(width) for name, width in cols)]
    for r in report["routes"]:
        cells = [r["word"][:14].ljust(14), str(r["source"])[:10].ljust(10)]
        cells += [_fmt(r[k]).ljust(width) for k, (_, width) in zip(keys, cols[2:], strict=True)]
        lines.append("  ".join(cells))
    lines.append(f"frame change ~ envelope r = {_fmt(report['r_change_envelope'])}, ~ |change of envelope| r = "
                 f"{_fmt(report['r_change_envelope_change'])}")
    o = report["onsets"]
    lag, wl = o["lag"], o["weight_lag"]
    if lag["n"]:
        lines.append(f"{len(o['times_s'])} onsets (from the {o['from']}): picture changes {lag['median_s']:+.3f} s "
                     f"after each (median; 90% within {lag['p90_abs_s']:.3f} s); the sidecar's weight "
                     + (f"{wl['median_s']:+.3f} s" if wl["n"] else "does not change"))
    else:
        lines.append(f"{len(o['times_s'])} onsets (from the {o['from']}) with a change after them: no lag to report")
    return "\n".join(lines)


def run_evaluate(cfg: Config, video: str, *, json_out: str | None = None, plot: str | None = None,
                 clip_model: str | None = None) -> int:
    from aadiff_live.backends import resolve_device
    from aadiff_live.output.video import check_writable

    for path, flag, example in ((json_out, "--json", "sync.json"), (plot, "--plot", "sync.png")):
        if path:
            check_writable(Path(path), flag, example)
    if plot and Path(plot).suffix.lower() != ".png":
        raise UserError(f"--plot {plot}: the plot is a PNG file, name it .png")
    report = evaluate(video, cfg, clip_model=clip_model, device=str(resolve_device(cfg.model.device)))
    print(table(report))
    if json_out:
        write_json_atomic(json_out, report)
        log.info("wrote %s", json_out)
    if plot:
        from aadiff_live.output.plot import plot_sync

        log.info("plot: %s", plot_sync(report, plot))
    return 0

