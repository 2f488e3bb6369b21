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
