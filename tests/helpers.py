"""What several test files share: the live-app harness (tools/liverun.py, shared with the tools) and sound files."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from liverun import run_watched, wait_started  # noqa: E402

__all__ = ["FakeLink", "bursts_wav", "fake_link_session", "run_watched", "wait_started"]


def bursts_wav(path: Path, seconds: float, samplerate: int = 48000, period: float = 1.0) -> Path:
    """Noise bursts: ``period / 2`` s of noise (0.3 rms), then as long silent, for ``seconds``; written to ``path``."""
    import soundfile as sf

    t = np.arange(int(seconds * samplerate)) / samplerate
    on = (t % period) < period / 2
    x = (0.3 * on * np.random.default_rng(0).standard_normal(t.size)).astype(np.float32)
    sf.write(str(path), x, samplerate)
    return path


class FakeLink:
    """A Link session with Link's interface (tempo, beat, phase, num_peers) on the monotonic clock: beat 0 at
    ``t0``; a new tempo (a peer's, or proposed) keeps the beat where it is, as Link does."""

    def __init__(self, bpm: float = 120.0, quantum: float = 4.0, peers: int = 1) -> None:
        import time

        self._clock = time.monotonic
        self.quantum = quantum
        self.num_peers = peers
        self._bpm, self._t, self._beat = float(bpm), self._clock(), 0.0

    @property
    def tempo(self) -> float:
        return self._bpm

    @tempo.setter
    def tempo(self, bpm: float) -> None:
        self._beat, self._t, self._bpm = self.beat, self._clock(), float(bpm)

    @property
    def beat(self) -> float:
        return self._beat + (self._clock() - self._t) * self._bpm / 60.0

    @property
    def phase(self) -> float:
        return self.beat % self.quantum


LINK: list[FakeLink] = []  # the sessions fake_link_session made (a test reaches the one its show follows)


def fake_link_session() -> FakeLink:
    """``tempo.link_session: helpers:fake_link_session`` (the plug-in point) in tests."""
    LINK.append(FakeLink())
    return LINK[-1]


# A batch of 6 rows (tests/test_batch.py, tests/test_batch_ray.py): tiny model, 0.5 s clips, 4 frames each.
# Row 3's audio is corrupt; row 6 is rendered beforehand with `render` (done_render), so a batch skips it.
BATCH_COMMON = {"model": "tiny", "size": "64", "fps": "8", "levels": "3"}
BATCH_ROWS = [
    {"audio": "a0.wav", "prompt": "fire over water", "seed": "1", "tokens": "fire"},
    {"audio": "a1.wav", "prompt": "fire over water", "seed": "2", "window": "1"},
    {"audio": "bad.wav", "prompt": "fire over water", "tokens": "fire"},
    {"audio": "a2.wav", "prompt": "smoke over the sea", "seed": "3", "tokens": "smoke", "out": "sub/smoke.mp4",
     "image": "pic.png"},
    {"audio": "a0.wav", "prompt": "rain on a roof", "seed": "4", "route": "low=rain"},
    {"audio": "a1.wav", "prompt": "fire over water", "tokens": "water", "out": "done.mp4"},
]


def batch_case(folder: Path) -> Path:
    """The clips, the corrupt file and manifest.csv of :data:`BATCH_ROWS` in ``folder``; the manifest's path."""
    import csv

    import soundfile as sf

    sr = 16000
    t = np.arange(sr // 2) / sr
    for i in range(3):
        x = 0.3 * np.sin(2 * np.pi * (150 + 120 * i) * t) * ((t * (3 + i)) % 1 < 0.5)
        sf.write(str(folder / f"a{i}.wav"), x.astype(np.float32), sr)
    from PIL import Image

    yy, xx = np.mgrid[0:96, 0:96]
    Image.fromarray(np.stack([xx * 2, yy * 2, 255 - xx - yy], -1).astype(np.uint8)).save(folder / "pic.png")
    (folder / "bad.wav").write_bytes(b"RIFF\x00\x00\x00\x00WAVEfmt " + bytes(range(256)) * 8)
    columns = list(dict.fromkeys(k for r in BATCH_ROWS for k in r)) + list(BATCH_COMMON)
    with open(folder / "manifest.csv", "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        for r in BATCH_ROWS:
            w.writerow([{**r, **BATCH_COMMON}.get(c, "") for c in columns])
    return folder / "manifest.csv"


def render_args(row: dict, folder: Path, out: Path) -> list[str]:
    """``aadiff-live render`` arguments of a manifest row (the batch must make the same video)."""
    args = ["render", "--audio", str((folder / row["audio"]).resolve()), "--out", str(out)]
    for k, v in {**row, **BATCH_COMMON}.items():
        if k not in ("audio", "out"):
            args += [f"--{k.replace('_', '-')}", str((folder / v).resolve()) if k == "image" else v]
    return args


def video_frames(path: Path) -> np.ndarray:
    """Every decoded frame of a video, ``[n, h, w, 3]`` uint8."""
    import av

    with av.open(str(path)) as c:
        return np.stack([f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])])


def hang_nth_render(renderer, n: int, hung, release, timeout: float = 30.0) -> dict[str, int]:
    """Fault injection: the renderer's ``n``-th render (``render`` or ``render_batch``) sets ``hung`` and hangs, as a
    driver that never returns, until ``release`` is set (at most ``timeout`` s). Returns the live count of renders
    (``["renders"]``)."""
    count = {"renders": 0}

    def hanging(real):
        def render(*args, **kwargs):
            count["renders"] += 1
            if count["renders"] == n:
                hung.set()
                release.wait(timeout)
            return real(*args, **kwargs)
        return render

    for name in ("render", "render_batch"):
        if hasattr(renderer, name):
            setattr(renderer, name, hanging(getattr(renderer, name)))
    return count
