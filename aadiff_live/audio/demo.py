"""A synthetic storm generated in code: the demo sound of ``aadiff-live render`` (no recordings shipped).

Soft filtered rain throughout, with thunderclaps at known times: a sharp crack followed by a
low rumble that decays. ``DEMO_CLAPS`` lists the claps' onset times in seconds.
"""

from __future__ import annotations

import numpy as np
from scipy.signal import butter, sosfilt

from aadiff_live.audio.decode import Audio

DEMO_SR = 44100
DEMO_DURATION = 8.0
DEMO_CLAPS = (1.0, 3.2, 4.0, 6.3)


def demo_storm(duration: float = DEMO_DURATION, sr: int = DEMO_SR, seed: int = 7) -> Audio:
    rng = np.random.default_rng(seed)
    n = int(round(duration * sr))
    t = np.arange(n) / sr
    rain = sosfilt(butter(2, [800, 6000], btype="band", fs=sr, output="sos"), rng.standard_normal(n))
    rain = 0.02 * rain / (np.abs(rain).max() + 1e-9)
    out = rain.copy()
    low = butter(2, 180, btype="low", fs=sr, output="sos")
    for i, onset in enumerate(DEMO_CLAPS):
        start = int(onset * sr)
        seg = n - start
        if seg <= 0:
            continue
        tt = t[:seg]
        crack = rng.standard_normal(seg) * np.exp(-tt / 0.04)
        rumble = sosfilt(low, rng.standard_normal(seg)) * np.exp(-tt / (0.5 + 0.2 * i))
        rumble /= np.abs(rumble).max() + 1e-9
        out[start:] += 0.6 * crack + 0.5 * rumble
    out /= np.abs(out).max() + 1e-9
    out *= 0.8
    stereo = np.stack([out, out], axis=1).astype(np.float32)
    return Audio(stereo, sr)
