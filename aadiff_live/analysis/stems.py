"""Stems (offline): Demucs splits a clip into drums, bass, vocals and other; each stem's loudness is a source.

Optional: ``pip install "aadiff-live[stems]"`` installs Demucs (MIT; version 4.1 needs no torchaudio, so our
pinned torch stays). Without it, asking for a stem source is a one-line error naming that command. The
default separator is ``htdemucs`` (Hybrid Transformer Demucs, from the Hugging Face hub on first use,
about 80 MB). Separation needs the whole clip in memory (Demucs works on the full track in overlapping
segments); the other sources stream. Each stem's loudness is the envelope of :mod:`.envelope` on the
stem's mono mix, smoothed and normalised like the loudness (:class:`~.sources.OfflineSources`).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any, Protocol, cast

import numpy as np

from aadiff_live.analysis.sources import LOUDNESS, STEMS, STEMS_INSTALL, OfflineSources, Smoothing
from aadiff_live.config import EnvelopeConfig, FeaturesConfig
from aadiff_live.errors import UserError

log = logging.getLogger(__name__)
DEFAULT_SEPARATOR = "htdemucs"


class Separator(Protocol):
    """What :func:`separate` needs of a Demucs model (a ``BagOfModels`` or one model)."""

    sources: list[str]
    samplerate: int
    audio_channels: int


def require_demucs() -> Any:
    try:
        import demucs.apply
    except ImportError:
        raise UserError(f"stem sources ({', '.join(STEMS)}) need Demucs: {STEMS_INSTALL}") from None
    return demucs


def load_separator(name: str = DEFAULT_SEPARATOR) -> Separator:
    """A pretrained Demucs by name (``htdemucs``, ``htdemucs_ft``, ...), downloaded once into the hub cache."""
    require_demucs()
    from demucs.pretrained import get_model

    try:
        model = get_model(name)
    except Exception as exc:  # noqa: BLE001 - Demucs raises several kinds; one line for the user
        raise UserError(f"the stem separator '{name}' could not be loaded ({str(exc).splitlines()[0][:160]}); "
                        "check the network or the Hugging Face cache") from None
    model.eval()
    return model


def separate(model: Separator, audio: np.ndarray, samplerate: int) -> tuple[dict[str, np.ndarray], int]:
    """``audio`` ``[samples, channels]`` -> ({stem: mono float32 at the model's rate}, that rate)."""
    require_demucs()
    import soxr
    import torch
    from demucs.apply import apply_model

    x = np.asarray(audio, dtype=np.float32)
    if x.ndim == 1:
        x = x[:, None]
    if samplerate != model.samplerate:
        x = soxr.resample(x, samplerate, model.samplerate).astype(np.float32)
    if x.shape[1] != model.audio_channels:  # mono in (or more channels than the model takes): the mean in each
        x = np.repeat(x.mean(axis=1, keepdims=True), model.audio_channels, axis=1)
    mix = torch.from_numpy(np.ascontiguousarray(x.T))
    ref = mix.mean(0)
    scale = float(ref.std()) or 1.0  # Demucs' own normalisation (demucs.separate): zero mean, unit deviation
    with torch.inference_mode():
        out = apply_model(cast(Any, model), ((mix - ref.mean()) / scale)[None], shifts=0, split=True, overlap=0.25,
                          progress=False)[0]
    out = out * scale + ref.mean()
    stems = {name: out[k].mean(0).numpy().astype(np.float32) for k, name in enumerate(model.sources)}
    return stems, int(model.samplerate)


def stem_values(stems: Mapping[str, np.ndarray], samplerate: int, env: EnvelopeConfig, features: FeaturesConfig,
                names: Sequence[str], n_frames: int,
                smoothing: Mapping[str, Smoothing] | None = None) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """({stem: value in [0, 1] per video frame}, {stem: raw loudness per frame}) for the stems in ``names``."""
    values, raw = {}, {}
    for name in names:
        if name not in stems:
            raise UserError(f"the separator gives {', '.join(stems)}; it has no stem '{name}'")
        an = OfflineSources(samplerate, env, features, [LOUDNESS], onset_hz=100.0)
        an.push(stems[name])
        sm = (smoothing or {}).get(name)
        frames = an.finish(n_frames, {LOUDNESS: sm} if sm else None)
        values[name], raw[name] = frames.values[LOUDNESS], frames.raw[LOUDNESS]
    return values, raw
