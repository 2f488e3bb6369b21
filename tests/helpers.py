"""What several test files share: the live-app harness (tools/liverun.py, shared with the tools) and sound files."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from liverun import run_watched, wait_started  # noqa: E402

__all__ = ["bursts_wav", "run_watched", "wait_started"]


def bursts_wav(path: Path, seconds: float, samplerate: int = 48000, period: float = 1.0) -> Path:
    """Noise bursts: ``period / 2`` s of noise (0.3 rms), then as long silent, for ``seconds``; written to ``path``."""
    import soundfile as sf

    t = np.arange(int(seconds * samplerate)) / samplerate
    on = (t % period) < period / 2
    x = (0.3 * on * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)
    sf.write(str(path), x, samplerate)
    return path
