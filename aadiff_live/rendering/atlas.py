"""The frame atlas (docs/design.md §1.6, §7): frames at weight levels, every other weight a blend.

For a fixed base (model, prompt, weighted token positions, seed, size, steps, guidance, image), a
frame is a deterministic, smooth function of the token weight. An :class:`Atlas` holds the frames
at ``L`` levels evenly spaced over ``[w_lo, w_hi]``; a weight between two levels shows their linear
blend, a weight outside the range clamps to the end level. Levels are filled coarse to fine (both
ends, the middle, the quarters, ...), the level nearest the weight on screen first when it is
missing; until both neighbours of a weight exist, the nearest rendered level stands in.

With ``k`` routed words (each its own weight, docs/design.md §1.6) the atlas is a grid: one axis per
word, ``L_1 x ... x L_k`` cells, and a weight vector shows the multilinear blend of the ``2^k``
corners of the cell that holds it. Cells are filled corners of the cell on screen first, then a
coarse grid (ends, middles, quarters of every axis), then the rest; a missing corner is replaced by
the nearest rendered cell until it arrives. Cells are numbered in C order over the axes, so with
one axis a cell is a level.

Threads: one filler (the renderer thread, or the offline render loop) calls :meth:`Atlas.put`; any
number of readers call :meth:`Atlas.lookup` / :meth:`Atlas.blend`. A cell's pixels are written
before it is marked present, under a lock held only for that flag, so a reader never waits for a
render. :class:`AtlasCache` keeps the most recently used atlases within a memory cap.
"""

from __future__ import annotations

import itertools
import math
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from aadiff_live.errors import UserError

MAX_AXES = 3  # routed words one atlas can vary (cells grow as levels ** k)
MB = 1024 * 1024

Point = float | tuple[float, ...]  # a weight (one axis) or a weight vector (one value per axis)


@dataclass(frozen=True)
class Axis:
    """One weight the frames depend on: the token positions it scales and its levels over ``[w_lo, w_hi]``."""

    positions: tuple[int, ...]
    w_lo: float
    w_hi: float
    levels: int

    def values(self) -> np.ndarray:
        return np.linspace(self.w_lo, self.w_hi, self.levels) if self.levels > 1 else np.array([self.w_lo])


@dataclass(frozen=True)
class AtlasKey:
    """Everything that determines an atlas's frames: a different key is a different atlas.

    ``positions``, ``w_lo``, ``w_hi`` and ``levels`` are the first axis; ``more`` holds the others of a grid."""

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
    more: tuple[Axis, ...] = ()

    @property
    def axes(self) -> tuple[Axis, ...]:
        return (Axis(self.positions, self.w_lo, self.w_hi, self.levels), *self.more)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(a.levels for a in self.axes)

    @property
    def n_cells(self) -> int:
        return math.prod(self.shape)


def render_positions(key: AtlasKey) -> list[int] | list[list[int]]:
    """The token positions to render ``key``'s cells with, as ``Renderer.render_batch`` takes them: one group
    (one axis) or one group per axis (a grid)."""
    if len(key.more) == 0:
        return list(key.positions)
    return [list(a.positions) for a in key.axes]


def image_identity(image) -> str | None:
    """A path names itself; a picture drawn in code (the demo's) is named by a digest of its pixels."""
    if image is None or isinstance(image, str):
        return image
    import hashlib

    a = np.ascontiguousarray(image)
    return f"pixels:{a.shape}:{hashlib.sha256(a.tobytes()).hexdigest()[:16]}"


def atlas_key(renderer, prompt: str, positions: Sequence[int], levels: int, w_lo: float, w_hi: float,
              more: Sequence[Axis] = ()) -> AtlasKey:
    return AtlasKey(model=renderer.c.name, backend=renderer.backend.description, prompt=prompt,
                    positions=tuple(int(p) for p in positions), seed=int(renderer.seed), width=int(renderer.width),
                    height=int(renderer.height), steps=int(renderer.steps), guidance=float(renderer.guidance),
                    image=image_identity(renderer.image),
                    strength=float(renderer.strength) if renderer.image is not None else None,
                    w_lo=float(w_lo), w_hi=float(w_hi), levels=int(levels), more=tuple(more))


def grid_key(renderer, prompt: str, axes: Sequence[Axis]) -> AtlasKey:
    """The key of an atlas over ``axes`` (one per routed word, at most :data:`MAX_AXES`)."""
    if not 1 <= len(axes) <= MAX_AXES:
        raise ValueError(f"an atlas has 1 to {MAX_AXES} axes, not {len(axes)}")
    a = axes[0]
    return atlas_key(renderer, prompt, a.positions, a.levels, a.w_lo, a.w_hi, axes[1:])


def _stages(levels: int) -> list[int]:
    """Per level index, the pass of :func:`coarse_to_fine` that adds it (0: both ends, 1: the middle, ...)."""
    stage = [0] * max(levels, 0)
    spans, depth = [(0, levels - 1)], 1
    while spans:
        nxt = []
        for lo, hi in spans:
            if hi - lo < 2:
                continue
            mid = (lo + hi) // 2
            stage[mid] = depth
            nxt += [(lo, mid), (mid, hi)]
        spans, depth = nxt, depth + 1
    return stage


def coarse_to_fine(levels: int) -> list[int]:
    """Level indices in fill order: both ends, the middle, the quarters, ... (each index once)."""
    stage = _stages(levels)
    return sorted(range(max(levels, 0)), key=lambda i: (stage[i], i))


def grid_order(shape: Sequence[int]) -> list[int]:
    """Cell indices (C order) in fill order: the grid of every axis's ends first, then with the middles, then
    the quarters, ...: each pass a finer grid. One axis: :func:`coarse_to_fine`."""
    ranks = []
    stages = []
    for n in shape:
        order = coarse_to_fine(n)
        r = [0] * n
        for pos, i in enumerate(order):
            r[i] = pos
        ranks.append(r)
        stages.append(_stages(n))
    cells = itertools.product(*(range(n) for n in shape))
    keyed = sorted(cells, key=lambda c: (max(stages[a][i] for a, i in enumerate(c)),
                                         tuple(ranks[a][i] for a, i in enumerate(c))))
    return [int(np.ravel_multi_index(c, tuple(shape))) for c in keyed]


def atlas_bytes(levels: int | Sequence[int], width: int, height: int) -> int:
    cells = int(levels) if isinstance(levels, int | np.integer) else math.prod(int(n) for n in levels)
    return cells * int(width) * int(height) * 3


def grid_label(shape: Sequence[int]) -> str:
    """``"33"`` for one axis, ``"9x9"`` for two."""
    return "x".join(str(int(n)) for n in shape)


def check_fits(levels: int | Sequence[int], width: int, height: int, cap_mb: float) -> None:
    """A one-line error when one atlas of ``levels`` frames (or a grid of that shape) does not fit in ``cap_mb``."""
    need = atlas_bytes(levels, width, height)
    if need <= cap_mb * MB:
        return
    fits = int(cap_mb * MB // atlas_bytes(1, width, height))
    if isinstance(levels, int | np.integer) or len(levels) == 1:
        n = int(levels) if isinstance(levels, int | np.integer) else int(levels[0])
        raise UserError(f"--levels {n} at {width}x{height} needs {need / MB:.1f} MB, over --atlas-mb "
                        f"{cap_mb:g}: at most {fits} levels fit; lower --levels or raise --atlas-mb")
    k = len(levels)
    per_axis = max(1, int(fits ** (1.0 / k) + 1e-9))
    raise UserError(f"a {grid_label(levels)} atlas at {width}x{height} needs {need / MB:.1f} MB, over --atlas-mb "
                    f"{cap_mb:g}: at most {per_axis} levels per axis fit; lower --levels-{k} or raise --atlas-mb")


@dataclass(frozen=True)
class Lookup:
    """Where a weight falls: ``(1 - t) * level lo + t * level hi``; ``exact`` when a single level is shown
    because the weight sits on it (or clamps to an end), ``stand_in`` when a nearer level is missing.

    A grid atlas: the picture is ``sum(coeffs[i] * cell cells[i])``; ``lo`` and ``hi`` are its first and last
    cell and ``t`` the last one's share."""

    lo: int
    hi: int
    t: float
    exact: bool
    stand_in: bool
    cells: tuple[int, ...] = ()
    coeffs: tuple[float, ...] = ()

    def blend_cells(self) -> tuple[tuple[int, ...], tuple[float, ...]]:
        """The cells shown and their shares (summing to 1), for one axis as for a grid."""
        if self.cells:
            return self.cells, self.coeffs
        if self.lo == self.hi or self.t == 0.0:
            return (self.lo,), (1.0,)
        return (self.lo, self.hi), (1.0 - self.t, self.t)


class Atlas:
    def __init__(self, key: AtlasKey) -> None:
        if min(key.shape) < 1:
            raise ValueError("an atlas needs at least one level per axis")
        if len(key.shape) > MAX_AXES:
            raise ValueError(f"an atlas has at most {MAX_AXES} axes")
        self.key = key
        self.shape = key.shape
        self.k = len(self.shape)
        self.n_levels = self.n_cells = key.n_cells  # frames in the atlas (a grid: cells)
        self.axes_values = [a.values() for a in key.axes]
        self.coords = np.array(list(itertools.product(*(range(n) for n in self.shape))), dtype=np.int64)
        # one axis: the weight of each level; a grid: the weight vector of each cell, [cells, k]
        self.weights = (self.axes_values[0] if self.k == 1 else
                        np.stack([self.axes_values[a][self.coords[:, a]] for a in range(self.k)], axis=1))
        self.frames = np.zeros((self.n_cells, key.height, key.width, 3), dtype=np.uint8)
        self._have = np.zeros(self.n_cells, dtype=bool)  # NB: written by the filler, read by the display
        self._lock = threading.Lock()
        self.n_filled = 0
        self._order = coarse_to_fine(key.levels) if self.k == 1 else grid_order(self.shape)

    @property
    def nbytes(self) -> int:
        return int(self.frames.nbytes)

    @property
    def complete(self) -> bool:
        return self.n_filled == self.n_cells

    def has(self, i: int) -> bool:
        return bool(self._have[i])

    def filled(self) -> np.ndarray:
        with self._lock:
            return self._have.copy()

    def point(self, i: int) -> Point:
        """What cell ``i`` is rendered at: a weight (one axis) or a weight vector."""
        if self.k == 1:
            return float(self.weights[i])
        return tuple(float(x) for x in self.weights[i])

    def _axis_position(self, a: int, weight: float) -> float:
        ax = self.key.axes[a]
        if ax.levels == 1 or ax.w_hi == ax.w_lo:
            return 0.0
        x = (float(weight) - ax.w_lo) / (ax.w_hi - ax.w_lo) * (ax.levels - 1)
        x = min(max(x, 0.0), ax.levels - 1.0)
        r = round(x)
        return float(r) if abs(x - r) < 1e-9 else x

    def _vector(self, weight: Point) -> tuple[float, ...]:
        w = tuple(float(x) for x in np.atleast_1d(np.asarray(weight, dtype=np.float64)))
        if len(w) != self.k:
            raise ValueError(f"this atlas has {self.k} axes: a point needs {self.k} weights, not {len(w)}")
        return w

    def position(self, weight: float) -> float:
        """Fractional level index of ``weight``, clamped to ``[0, L-1]`` (one axis)."""
        return self._axis_position(0, weight)

    def positions(self, weight: Point) -> np.ndarray:
        """Fractional index of ``weight`` on every axis, each clamped to its levels."""
        return np.array([self._axis_position(a, w) for a, w in enumerate(self._vector(weight))])

    def nearest(self, weight: Point) -> int:
        idx = tuple(int(round(x)) for x in self.positions(weight))
        return int(np.ravel_multi_index(idx, self.shape))

    def put(self, i: int, frame: np.ndarray) -> None:
        """From the filler: store cell ``i`` (written before it is published)."""
        self.frames[i] = frame
        with self._lock:
            if not self._have[i]:
                self._have[i] = True
                self.n_filled += 1

    def missing(self, weight: Point | None, count: int) -> list[int]:
        """Up to ``count`` missing cells in fill order: first those that show ``weight`` (one axis: the level
        nearest it; a grid: the corners of its cell, nearest first), then coarse to fine."""
        have = self.filled()
        out: list[int] = []
        if weight is not None:
            if self.k == 1:
                first = [self.nearest(weight)]
            else:
                x = self.positions(weight)
                corners = self._corners(x)[0]
                first = sorted(corners, key=lambda c: float(np.sum((self.coords[c] - x) ** 2)))
            out += [c for c in first if not have[c]]
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

    def _corners(self, x: np.ndarray) -> tuple[list[int], list[float]]:
        """The corners of the cell holding fractional indices ``x`` with non-zero share, and their shares."""
        per_axis = []
        for xa in x:
            lo = int(np.floor(xa))
            t = float(xa - lo)
            per_axis.append([(lo, 1.0)] if t == 0.0 else [(lo, 1.0 - t), (lo + 1, t)])
        cells, coeffs = [], []
        for combo in itertools.product(*per_axis):
            cells.append(int(np.ravel_multi_index(tuple(i for i, _ in combo), self.shape)))
            coeffs.append(math.prod(c for _, c in combo))
        return cells, coeffs

    def corners(self, weight: Point) -> tuple[list[int], list[float]]:
        """The multilinear blend of ``weight`` when every cell exists: cells and their shares."""
        return self._corners(self.positions(weight))

    def lookup(self, weight: Point) -> Lookup | None:
        """Which cells show ``weight`` now; None while no cell exists."""
        if self.k > 1:
            return self._lookup_grid(weight)
        have = self._have  # a bool array read: each element is set once, never cleared
        lo, hi, t = self.locate(float(weight))  # type: ignore[arg-type]
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

    def _lookup_grid(self, weight: Point) -> Lookup | None:
        have = self._have
        cells, coeffs = self.corners(weight)
        stand_in = not all(have[c] for c in cells)
        if stand_in:
            idx = np.flatnonzero(have)
            if idx.size == 0:
                return None
            shares: dict[int, float] = {}
            for c, w in zip(cells, coeffs, strict=True):
                if not have[c]:  # the nearest rendered cell to the missing corner takes its share
                    c = int(idx[np.argmin(np.sum((self.coords[idx] - self.coords[c]) ** 2, axis=1))])
                shares[c] = shares.get(c, 0.0) + w
            cells, coeffs = list(shares), list(shares.values())
        exact = len(cells) == 1 and not stand_in
        t = coeffs[-1] if len(cells) > 1 else 0.0
        return Lookup(cells[0], cells[-1], t, exact, stand_in, tuple(cells), tuple(coeffs))

    def blend(self, weight: Point) -> tuple[np.ndarray, Lookup] | None:
        """The picture for ``weight`` (a cell's own array when no blend is needed: do not write to it)."""
        look = self.lookup(weight)
        if look is None:
            return None
        if look.cells:
            if len(look.cells) == 1:
                return self.frames[look.cells[0]], look
            return blend_many([self.frames[c] for c in look.cells], look.coeffs), look
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


def blend_many(frames: Sequence[np.ndarray], coeffs: Sequence[float]) -> np.ndarray:
    """``round(sum(coeffs[i] * frames[i]))`` as uint8 (shares summing to 1: a multilinear blend)."""
    out = np.float32(coeffs[0]) * frames[0].astype(np.float32)
    for f, c in zip(frames[1:], coeffs[1:], strict=True):
        out += np.float32(c) * f.astype(np.float32)
    out += 0.5
    np.clip(out, 0.0, 255.0, out=out)
    return out.astype(np.uint8)


def fill(atlas: Atlas, render: Callable[[list], np.ndarray], levels: Sequence[int]) -> int:
    """Render cells ``levels`` (one call: a batch) into ``atlas``; returns how many were rendered. ``render``
    gets each cell's point: a weight (one axis) or a weight vector (a grid)."""
    levels = [i for i in levels if not atlas.has(i)]
    if not levels:
        return 0
    frames = render([atlas.point(i) for i in levels])
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
        return self.nbytes + atlas_bytes(key.shape, key.width, key.height) <= self.cap

    def get(self, key: AtlasKey, pinned: Sequence[AtlasKey] = ()) -> Atlas:
        """The atlas for ``key`` (made empty if new), now the most recently used; evicts the least recently
        used unpinned atlases while the total exceeds the cap."""
        with self._lock:
            atlas = self._atlases.get(key)
            if atlas is None:
                check_fits(key.shape, key.width, key.height, self.cap / MB)
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


def weight_range(w_min: float, w_max: float, weights: np.ndarray) -> tuple[float, float]:
    """An axis's range: ``[w_min, w_max]`` widened to every weight that occurs (a gain over 1 goes beyond)."""
    w = np.asarray(weights, dtype=np.float64)
    return (min(w_min, w_max, float(w.min(initial=w_min))), max(w_min, w_max, float(w.max(initial=w_max))))


class OfflineAtlas:
    """The atlas of one offline render, filled lazily: only the cells the clip's weights need, in the order
    the frames first need them, ``batch`` cells per UNet call; at most ``n_cells`` renders whatever the
    clip's length.

    ``points``: one weight per frame (``[n]``, one axis) or one weight vector per frame (``[n, k]``, a grid);
    ``positions``: the token positions as :meth:`Renderer.render_batch` takes them (one group, or one per axis).
    """

    def __init__(self, renderer, key: AtlasKey, points: np.ndarray, positions, batch: int) -> None:
        self.renderer = renderer
        self.positions = positions
        self.batch = int(batch)
        self.atlas = Atlas(key)
        pts = np.asarray(points, dtype=np.float64)
        self.grid = self.atlas.k > 1
        if self.grid:
            pts = pts.reshape(len(pts), self.atlas.k)
            self.where = [self.atlas.positions(tuple(p)) for p in pts]  # fractional index per axis, per frame
            self.plan = [self.atlas._corners(x) for x in self.where]
        else:
            self.plan = [self._pair(self.atlas.locate(float(w))) for w in pts.reshape(-1)]
            self.levels = [self.atlas.locate(float(w)) for w in pts.reshape(-1)]
        need: dict[int, None] = {}
        for cells, _ in self.plan:
            for c in cells:
                need.setdefault(c)
        self.need = list(need)  # cells in the order the frames first need them
        self._next = 0

    @staticmethod
    def _pair(loc: tuple[int, int, float]) -> tuple[list[int], list[float]]:
        a, b, t = loc
        return ([a], [1.0]) if t == 0 else ([a, b], [1.0 - t, t])

    def missing(self, i: int) -> bool:
        return not all(self.atlas.has(c) for c in self.plan[i][0])

    def fill_next(self) -> int:
        """Render the next ``batch`` needed cells (those of the current frame come first); how many."""
        todo = self.need[self._next:self._next + self.batch]
        self._next += len(todo)
        return fill(self.atlas, lambda pts: self.renderer.render_batch(pts, self.positions, profile=True), todo)

    def frame(self, i: int) -> np.ndarray:
        cells, coeffs = self.plan[i]
        if len(cells) == 1:
            return self.atlas.frames[cells[0]]
        if not self.grid:
            return blend_frames(self.atlas.frames[cells[0]], self.atlas.frames[cells[1]], coeffs[1])
        return blend_many([self.atlas.frames[c] for c in cells], coeffs)

    def row(self, i: int) -> dict:
        """Frame ``i``'s sidecar fields (docs/sidecar.schema.json). One axis: ``levels`` [lo, hi] and ``blend``
        (the frame is ``(1 - blend) * lo + blend * hi``); a grid: ``grid_position``, the fractional level index
        on every axis (the frame is the multilinear blend of the cell around it)."""
        if self.grid:
            return {"exact": False, "grid_position": [round(float(x), 6) for x in self.where[i]]}
        lo, hi, t = self.levels[i]
        return {"exact": False, "levels": [lo, hi], "blend": round(t, 6)}
