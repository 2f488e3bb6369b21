"""What the live threads hand each other (docs/design.md §4), each through a latest-value mailbox.

    analysis thread --WeightSample--> renderer thread, main thread (display)
    CLAP thread     --WordChoice----> renderer thread
    main thread     --RenderRequest-> renderer thread (a typed prompt, OSC, MIDI, a scene)
    renderer thread --AtlasView-----> main thread (atlas mode), --Frame--> main thread (--levels 0)
    main thread     --Frame---------> recorder thread (what was shown)

All are frozen: once put in a mailbox, no thread changes them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from aadiff_live.rendering.atlas import Atlas, Lookup


@dataclass(frozen=True)
class WeightSample:
    """One analysis frame: what the renderer needs, and what the HUD and sidecar show."""

    index: int  # analysis frame number
    weight: float
    normalised: float
    rms_db: float
    capture_time: float  # monotonic s of the last audio sample the frame saw
    sources: Mapping[str, float] = field(default_factory=dict)  # every live source's value in [0, 1]
    onsets: tuple[str, ...] = ()  # the onset sources that fired since the previous sample posted
    posted_time: float = 0.0  # monotonic s when the analysis thread posted it (the latency split: sound -> weight)


@dataclass(frozen=True)
class WordChoice:
    """CLAP's ranking: the words to weight for ``prompt``."""

    prompt: str  # the prompt the words belong to
    words: list[str]
    scores: dict[str, float] = field(default_factory=dict)
    time: float = 0.0  # monotonic s of the ranking


@dataclass(frozen=True)
class RenderRequest:
    """What the renderer should draw: the whole desired state (a latest-value mailbox carries it)."""

    prompt: str
    words: tuple[str, ...] | None  # pinned words; None: CLAP chooses
    seed: int
    scene: str | None = None  # the scene these come from (recorded per frame)


@dataclass(frozen=True)
class AtlasView:
    """An atlas and what it was rendered for, as published to the display loop."""

    atlas: Atlas
    words: tuple[str, ...]
    prompt: str
    positions: tuple[int, ...]
    scene: str | None = None


@dataclass(frozen=True)
class Frame:
    """A picture and what it shows: an exact render (``--levels 0``), or an atlas blend on the screen."""

    image: np.ndarray  # [h, w, 3] uint8
    sample: WeightSample  # the analysis frame it reflects (weight, level, capture time)
    words: tuple[str, ...]
    prompt: str
    render_s: float  # 0 when the picture was reused (same weight, words and prompt) or blended from the atlas
    scene: str | None = None  # the scene whose prompt / words / seed it was rendered with
    lookup: Lookup | None = None  # atlas mode: the levels shown and the blend factor (None: an exact render)
    fade: float | None = None  # atlas mode, during a cross-fade: the new atlas's share (0..1)
    ready_time: float = 0.0  # monotonic s when the picture was ready (blended, or rendered with --levels 0)


SPLIT = ("sound_to_weight", "weight_to_blend", "blend_to_flip")


def latency_split(frame: Frame, shown: float) -> dict[str, float]:
    """Audio-to-photon in three parts (s): capture -> weight posted (audio I/O, analysis), -> picture ready
    (the wait for a refresh, the blend; with ``--levels 0`` the render), -> on screen (upload, HUD, flip).
    They sum to ``shown - capture_time``. Empty for frames without the times (tests' hand-made frames)."""
    s = frame.sample
    if not (s.capture_time and s.posted_time and frame.ready_time):
        return {}
    return {"sound_to_weight_s": s.posted_time - s.capture_time, "weight_to_blend_s": frame.ready_time - s.posted_time,
            "blend_to_flip_s": shown - frame.ready_time}
