"""``--plot``: raw and smoothed envelope and the token weight over time; ``analyse --plot``: every source
(matplotlib, no display)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from aadiff_live.analysis.envelope import Envelope
from aadiff_live.analysis.sources import LOUDNESS, ONSET, SourceFrames, is_onset
from aadiff_live.errors import cannot_write


def _save(fig, path: str | Path) -> Path:
    """Write ``fig`` as a PNG and close it; a failed write removes the partial file and is one line."""
    import matplotlib.pyplot as plt

    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        Path(path).unlink(missing_ok=True)
        raise cannot_write(path, exc) from None
    finally:
        plt.close(fig)
    return Path(path)

def plot_envelope(env: Envelope, path: str | Path, title: str = "") -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 5), sharex=True, constrained_layout=True)
    ref = max(float(env.raw.max(initial=0.0)), 1e-12)
    ax1.plot(env.times, env.raw / ref, lw=0.8, color="0.6", label="raw STFT magnitude")
    ax1.plot(env.times, env.smoothed / ref, lw=1.6, color="C0", label="smoothed")
    ax1.set_ylabel("envelope (rel.)")
    ax1.legend(loc="upper right")
    ax2.plot(env.times, env.weights, lw=1.6, color="C3")
    ax2.set_ylabel("token weight w_t")
    ax2.set_xlabel("time (s)")
    if title:
        ax1.set_title(title)
    return _save(fig, path)


def plot_sources(frames: SourceFrames, env: Envelope, path: str | Path, title: str = "",
                 weights: Mapping[str, np.ndarray] | None = None) -> Path:
    """One panel per level source (loudness, each band, each stem): its raw value (grey, relative) and its value
    in [0, 1], with the onset events of its onset source marked (``onset`` on the loudness, ``onset:<band>`` on
    the band); a flash source that is routed (in ``frames`` without its level source) gets a panel of its own;
    then the weight (or each routed word's, ``weights``)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = [n for n in frames.names if not is_onset(n) or weights is not None]
    fig, axes = plt.subplots(len(levels) + 1, 1, figsize=(10, 1.3 * len(levels) + 2.2), sharex=True,
                             constrained_layout=True)
    for k, (ax, name) in enumerate(zip(axes, levels, strict=False)):
        raw = frames.raw[name]
        if not is_onset(name):  # a flash is its own raw value
            ax.plot(frames.times, raw / max(float(raw.max(initial=0.0)), 1e-12), lw=0.6, color="0.7")
        ax.fill_between(frames.times, frames.values[name], lw=0, color=f"C{k}", alpha=0.55)
        ax.plot(frames.times, frames.values[name], lw=1.0, color=f"C{k}")
        onset = name if is_onset(name) else ONSET if name == LOUDNESS else f"{ONSET}:{name}"
        events = frames.onsets.get(onset)
        label = name
        if events is not None and events.size:
            ax.vlines(events, 0.0, 1.05, color="k", lw=0.7, alpha=0.8)
            label += f"\n{events.size} onsets"
        ax.set_ylim(0, 1.08)
        ax.set_ylabel(label, rotation=0, ha="right", va="center")
        ax.set_yticks([0, 1])
    if weights:
        for k, (word, w) in enumerate(weights.items()):
            axes[-1].plot(frames.times[:len(w)], w, lw=1.4, color=f"C{k + 3}", label=word)
        axes[-1].legend(loc="upper right")
        axes[-1].set_ylabel("weights", rotation=0, ha="right", va="center")
    else:
        axes[-1].plot(env.times, env.weights, lw=1.4, color="C3")
        axes[-1].set_ylabel("weight w_t\n(loudness)", rotation=0, ha="right", va="center")
    axes[-1].set_xlabel("time (s)")
    if title:
        axes[0].set_title(title)
    return _save(fig, path)


def plot_sync(report: dict, path: str | Path) -> Path:
    """``evaluate --plot``, drawn like the paper's Fig. 4: each word's CLIP similarity with the envelope, the
    prompt's with the weights, and the frame change with the onsets (ticks) beneath."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    f = report["per_frame"]
    t = np.asarray(f["time"], dtype=np.float64)
    env = np.asarray(f["envelope"], dtype=np.float64)

    def z(x) -> np.ndarray:  # on the envelope's [0, 1] scale, to read the two curves together
        x = np.asarray(x, dtype=np.float64)
        lo, hi = np.nanmin(x) if np.isfinite(x).any() else 0.0, np.nanmax(x) if np.isfinite(x).any() else 1.0
        return (x - lo) / (hi - lo) if hi > lo else x * 0.0

    fig, axes = plt.subplots(3, 1, figsize=(10, 7), sharex=True, constrained_layout=True)
    ax = axes[0]
    ax.fill_between(t, env, lw=0, color="0.85", label="audio envelope")
    for k, (word, sim) in enumerate(f["clip_word"].items()):
        r = next((x["r_clip_word_envelope"] for x in report["routes"] if x["word"] == word), None)
        ax.plot(t, z(sim), lw=1.4, color=f"C{k}", label=f"CLIP(frame, {word})" + (f"  r={r:+.2f}" if r is not None
                                                                                     else ""))
    ax.set_ylabel("rel. to its range")
    ax.legend(loc="upper right", fontsize=8)
    ax = axes[1]
    for k, (word, w) in enumerate(f["weights"].items()):
        ax.plot(t, w, lw=1.2, color=f"C{k + 3}", label=f"weight ({word})")
    ax2 = ax.twinx()
    ax2.plot(t, f["clip_prompt"], lw=1.0, color="k", alpha=0.7, label="CLIP(frame, prompt)")
    ax.set_ylabel("weight")
    ax2.set_ylabel("CLIP(frame, prompt)")
    ax.legend(loc="upper left", fontsize=8)
    ax2.legend(loc="upper right", fontsize=8)
    ax = axes[2]
    ax.plot(t, f["change"], lw=1.0, color="C2", label="frame change (mean |diff|, 0-255)")
    ons = np.asarray(report["onsets"]["times_s"], dtype=np.float64)
    if ons.size:
        ax.vlines(ons, 0, 1, transform=ax.get_xaxis_transform(), color="k", lw=0.6, alpha=0.6,
                  label=f"onsets ({report['onsets']['from']})")
    ax.set_ylabel("frame change")
    ax.set_xlabel("time (s)")
    ax.legend(loc="upper right", fontsize=8)
    title = f"{Path(report['video']).name}: CLIP {report['clip_model']}"
    if report.get("random_weights"):
        title += "  (random weights: noise, not imagery)"
    axes[0].set_title(title)
    return _save(fig, path)
