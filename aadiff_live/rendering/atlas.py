"""The frame atlas (docs/design.md §7): frames at ``L`` weight levels, every other weight a blend.

For a fixed base (model, prompt, weighted token positions, seed, size, steps, guidance, image), a
frame is a deterministic, smooth function of the token weight. An :class:`Atlas` holds the frames
at ``L`` levels evenly spaced over ``[w_lo, w_hi]``; a weight between two levels shows their linear
blend, a weight outside the range clamps to the end level. Levels are filled coarse to fine (both
ends, the middle, the quarters, ...), the level nearest the weight on screen first when it is
missing; until both neighbours of a weight exist, the nearest rendered level stands in.

Threads: one filler (the renderer thread, or the offline render loop) calls :meth:`Atlas.put`; any
number of readers call :meth:`Atlas.lookup` / :meth:`Atlas.blend`. A level's pixels are written
before it is marked present, under a lock held only for that flag, so a reader never waits for a
render. :class:`AtlasCache` keeps the most recently used atlases within a memory cap.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from aadiff_live.errors import UserError

DEFAULT_LEVELS = 33
DEFAULT_ATLAS_MB = 512
MB = 1024 * 1024


@dataclass(frozen=True)
class AtlasKey:
    """Everything that determines an atlas's frames: a different key is a different atlas."""

    model: str
    backend: str
    prompt: str
    positions: tuple[int, ...]
    seed: int
    width: int
    height: int
    steps: int
    guidance: float
    image: str | None
    strength: float | None
    w_lo: float
    w_hi: float
    levels: int


def image_identity(image) -> str | None:
    """A path names itself; a picture drawn in code (the demo's) is named by a digest of its pixels."""
    if image is None or isinstance(image, str):
        return image
    import hashlib

    a = np.ascontiguousarray(image)
    return f"pixels:{a.shape}:{hashlib.sha256(a.tobytes()).hexdigest()[:16]}"


def atlas_key(renderer, prompt: str, positions: Sequence[int], levels: int, w_lo: float, w_hi: float) -> AtlasKey:
    return AtlasKey(model=renderer.c.name, backend=renderer.backend.description, prompt=prompt,
                    positions=tuple(int(p) for p in positions), seed=int(renderer.seed), width=int(renderer.width),
                    height=int(renderer.height), steps=int(renderer.steps), guidance=float(renderer.guidance),
                    image=image_identity(renderer.image),
                    strength=float(renderer.strength) if renderer.image is not None else None,
                    w_lo=float(w_lo), w_hi=float(w_hi), levels=int(levels))


def coarse_to_fine(levels: int) -> list[int]:
    """Level indices in fill order: both ends, the middle, the quarters, ... (each index once)."""
    if levels <= 0:
        return []
    if levels == 1:
        return [0]
    order = [0, levels - 1]
    spans = [(0, levels - 1)]
    while spans:
        nxt = []
        for lo, hi in spans:
            if hi - lo < 2:
                continue
            mid = (lo + hi) // 2
            order.append(mid)
            nxt += [(lo, mid), (mid, hi)]
        spans = nxt
    return order


def atlas_bytes(levels: int, width: int, height: int) -> int:
    return int(levels) * int(width) * int(height) * 3


def check_fits(levels: int, width: int, height: int, cap_mb: float) -> None:
    """A one-line error when one atlas of ``levels`` frames does not fit in ``cap_mb``."""
    need = atlas_bytes(levels, width, height)
    if need > cap_mb * MB:
        fits = int(cap_mb * MB // atlas_bytes(1, width, height))
        raise UserError(f"--levels {levels} at {width}x{height} needs {need / MB:.1f} MB, over --atlas-mb "
                        f"{cap_mb:g}: at most {fits} levels fit; lower --levels or raise --atlas-mb")


@dataclass(frozen=True)
class Lookup:
    """Where a weight falls: ``(1 - t) * level lo + t * level hi``; ``exact`` when a single level is shown
    because the weight sits on it (or clamps to an end), ``stand_in`` when a nearer level is missing."""

    lo: int
    hi: int
    t: float
    exact: bool
    stand_in: bool


class Atlas:
    def __init__(self, key: AtlasKey) -> None:
        if key.levels < 1:
            raise ValueError("an atlas needs at least one level")
        self.key = key
        self.n_levels = key.levels
        self.weights = np.linspace(key.w_lo, key.w_hi, key.levels) if key.levels > 1 else np.array([key.w_lo])
        self.frames = np.zeros((key.levels, key.height, key.width, 3), dtype=np.uint8)
        self._have = np.zeros(key.levels, dtype=bool)  # NB: written by the filler, read by the display
        self._lock = threading.Lock()
        self.n_filled = 0
        self._order = coarse_to_fine(key.levels)

    @property
    def nbytes(self) -> int:
        return int(self.frames.nbytes)

    @property
    def complete(self) -> bool:
        return self.n_filled == self.n_levels

    def has(self, i: int) -> bool:
        return bool(self._have[i])

    def filled(self) -> np.ndarray:
        with self._lock:
            return self._have.copy()

    def position(self, weight: float) -> float:
        """Fractional level index of ``weight``, clamped to ``[0, L-1]``."""
        if self.n_levels == 1 or self.key.w_hi == self.key.w_lo:
            return 0.0
        x = (float(weight) - self.key.w_lo) / (self.key.w_hi - self.key.w_lo) * (self.n_levels - 1)
        x = min(max(x, 0.0), self.n_levels - 1.0)
        r = round(x)
        return float(r) if abs(x - r) < 1e-9 else x

    def nearest(self, weight: float) -> int:
        return int(round(self.position(weight)))

    def put(self, i: int, frame: np.ndarray) -> None:
        """From the filler: store level ``i`` (written before it is published)."""
        self.frames[i] = frame
        with self._lock:
            if not self._have[i]:
                self._have[i] = True
                self.n_filled += 1

    def missing(self, weight: float | None, count: int) -> list[int]:
        """Up to ``count`` missing levels in fill order: the one nearest ``weight`` first, then coarse to fine."""
        have = self.filled()
        out: list[int] = []
        if weight is not None:
            near = self.nearest(weight)
            if not have[near]:
                out.append(near)
        for i in self._order:
            if len(out) >= count:
                break
            if not have[i] and i not in out:
                out.append(i)
        return out[:count]

    def locate(self, weight: float) -> tuple[int, int, float]:
        """``(lo, hi, t)``: ``weight`` is ``(1 - t) * level lo + t * level hi`` (``lo == hi`` on a level)."""
        x = self.position(weight)
        lo = int(np.floor(x))
        t = x - lo
        return (lo, lo, 0.0) if t == 0.0 else (lo, lo + 1, t)

    def lookup(self, weight: float) -> Lookup | None:
        """Which levels show ``weight`` now; None while no level exists."""
        have = self._have  # a bool array read: each element is set once, never cleared
        lo, hi, t = self.locate(weight)
        x = lo + t
        if t == 0.0 and have[lo]:
            return Lookup(lo, lo, 0.0, True, False)
        if have[lo] and have[hi]:
            return Lookup(lo, hi, t, False, False)
        idx = np.flatnonzero(have)
        if idx.size == 0:
            return None
        near = int(idx[np.argmin(np.abs(idx - x))])
        return Lookup(near, near, 0.0, False, True)

    def blend(self, weight: float) -> tuple[np.ndarray, Lookup] | None:
        """The picture for ``weight`` (a level's own array when no blend is needed: do not write to it)."""
        look = self.lookup(weight)
        if look is None:
            return None
        if look.lo == look.hi or look.t == 0.0:
            return self.frames[look.lo], look
        return blend_frames(self.frames[look.lo], self.frames[look.hi], look.t), look


def default_batch(backend) -> int:
    """Levels per UNet call by device: a GPU gains most from a batch; a TensorRT engine is built for at
    most 2 rows (1 frame with guidance); on a CPU a batch of 4 still saves the per-call overhead."""
    if backend.name == "tensorrt":
        return 1
    return 8 if backend.device.type == "cuda" else 4


def blend_frames(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """``round((1 - t) a + t b)`` as uint8."""
    out = a.astype(np.float32)
    out += np.float32(t) * (b.astype(np.float32) - out)
    out += 0.5
    return out.astype(np.uint8)


def fill(atlas: Atlas, render: Callable[[list[float]], np.ndarray], levels: Sequence[int]) -> int:
    """Render ``levels`` (one call: a batch) into ``atlas``; returns how many were rendered."""
    levels = [i for i in levels if not atlas.has(i)]
    if not levels:
        return 0
    frames = render([float(atlas.weights[i]) for i in levels])
    for i, frame in zip(levels, frames, strict=True):
        atlas.put(i, frame)
    return len(levels)


class AtlasCache:
    """Least-recently-used atlases within ``cap_mb``: going back to a recent prompt or word choice is instant.

    Thread-safe. ``pinned`` keys (the atlas on screen, the one being filled) are never evicted.
    """

    def __init__(self, cap_mb: float) -> None:
        self.cap = int(cap_mb * MB)
        self._atlases: OrderedDict[AtlasKey, Atlas] = OrderedDict()
        self._lock = threading.Lock()
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._atlases)

    def __contains__(self, key: AtlasKey) -> bool:
        return key in self._atlases

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(a.nbytes for a in self._atlases.values())

    def peek(self, key: AtlasKey) -> Atlas | None:
        """The atlas for ``key`` if kept, without making it the most recently used."""
        with self._lock:
            return self._atlases.get(key)

    def room_for(self, key: AtlasKey) -> bool:
        """Whether an atlas for ``key`` fits beside those kept, with nothing evicted."""
        return self.nbytes + atlas_bytes(key.levels, key.width, key.height) <= self.cap

    def get(self, key: AtlasKey, pinned: Sequence[AtlasKey] = ()) -> Atlas:
        """The atlas for ``key`` (made empty if new), now the most recently used; evicts the least recently
        used unpinned atlases while the total exceeds the cap."""
        with self._lock:
            atlas = self._atlases.get(key)
            if atlas is None:
                check_fits(key.levels, key.width, key.height, self.cap / MB)
                atlas = Atlas(key)
                self._atlases[key] = atlas
            self._atlases.move_to_end(key)
            keep = {key, *pinned}
            total = sum(a.nbytes for a in self._atlases.values())
            for k in list(self._atlases):
                if total <= self.cap:
                    break
                if k in keep:
                    continue
                total -= self._atlases.pop(k).nbytes
                self.evicted += 1
            return atlas
