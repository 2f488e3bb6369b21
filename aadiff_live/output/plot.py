"""``--plot``: raw and smoothed envelope and the token weight over time (matplotlib, no display)."""

from __future__ import annotations

from pathlib import Path

from aadiff_live.analysis.envelope import Envelope
from aadiff_live.errors import cannot_write


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
    try:
        fig.savefig(path, dpi=100)
    except OSError as exc:
        Path(path).unlink(missing_ok=True)
        raise cannot_write(path, exc) from None
    finally:
        plt.close(fig)
    return Path(path)
