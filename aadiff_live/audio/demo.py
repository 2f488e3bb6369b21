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


def demo_picture(width: int, height: int) -> np.ndarray:
    """The demo's base picture, drawn in code: a sky, a sun low over the horizon, a darker sea.

    ``[height, width, 3]`` uint8. Simple, smooth shapes, so that the picture stays recognisable
    through the tiny random-weight model (which keeps its base and lays a soft haze of colour over
    it).
    """
    y = (np.arange(height)[:, None] + 0.5) / height
    x = (np.arange(width)[None, :] + 0.5) / width
    horizon = 0.62
    t = np.clip(y / horizon, 0, 1)[..., None]
    sky = (1 - t) * np.array([40, 90, 190]) + t * np.array([250, 190, 140])  # deep blue down to a warm haze
    d = np.clip(1 - (y - horizon) / (1 - horizon), 0, 1)[..., None]
    sea = d * np.array([40, 70, 110]) + (1 - d) * np.array([10, 20, 40])
    img = np.where(y[..., None] < horizon, sky, sea)
    aspect = width / height
    r = np.hypot((x - 0.68) * aspect, y - 0.42)
    sun = np.clip((0.14 - r) / 0.01, 0, 1)[..., None]  # an anti-aliased disc
    img = (1 - sun) * img + sun * np.array([255, 230, 120])
    glint = np.clip(1 - np.abs(x - 0.68) * aspect / 0.08, 0, 1) * (y > horizon) * 0.5
    img = img + glint[..., None] * (np.array([255, 210, 120]) - img)
    return np.clip(np.broadcast_to(img, (height, width, 3)), 0, 255).round().astype(np.uint8)
