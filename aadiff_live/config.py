"""Typed, validated configuration: defaults here, ``config.yaml`` on top, CLI flags on top of that.

Unknown keys are rejected by name. Nothing here parses arguments or writes globals.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from aadiff_live.control.settings import MidiConfig, OscConfig, SceneConfig, VideoOutConfig
from aadiff_live.errors import UserError


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class EnvelopeConfig(_Strict):
    fps: float = Field(30.0, gt=0, le=240)
    window: int = Field(5, ge=1)
    mode: Literal["centred", "trailing", "attack-release"] = "centred"
    attack_ms: float = Field(10.0, ge=0)
    release_ms: float = Field(300.0, ge=0)
    n_fft: int = Field(2048, ge=64)
    norm_percentile: float = Field(99.0, gt=0, le=100)
    silence_db: float = -60.0
    w_min: float = 0.0
    w_max: float = 2.0
    gain: float = Field(1.0, ge=0)


RESERVED_SOURCES = ("loudness", "onset", "drums", "bass", "vocals", "other")
_BAND_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class FeaturesConfig(_Strict):
    """Sources besides the loudness (docs/design.md §1.5): frequency bands and onsets, from the same STFT."""

    bands: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: {"low": (20.0, 200.0), "mid": (200.0, 2000.0), "high": (2000.0, 16000.0)})
    onset_decay_ms: float = Field(150.0, gt=0)  # an onset is a flash: 1 at once, then down with this time constant
    onset_delta: float = Field(0.05, ge=0)  # peak picking: how far the flux must exceed its recent mean (log units)
    onset_wait_ms: float = Field(60.0, ge=0)  # at least this long between two onsets of one source
    stem_model: str = "htdemucs"  # Demucs separator of the stem sources (offline; pip install "aadiff-live[stems]")

    @field_validator("bands")
    @classmethod
    def _bands_ok(cls, v: dict[str, tuple[float, float]]) -> dict[str, tuple[float, float]]:
        for name, (lo, hi) in v.items():
            if not _BAND_NAME.match(name) or name in RESERVED_SOURCES:
                raise ValueError(f"band name {name!r}: use lower-case letters, digits and _, and none of "
                                 f"{', '.join(RESERVED_SOURCES)}")
            if not 0 <= lo < hi:
                raise ValueError(f"band {name!r} [{lo:g}, {hi:g}] Hz: need 0 <= low < high")
        return v


class TokenConfig(_Strict):
    clap_model: str = "laion/clap-htsat-unfused"
    top_k: int = Field(1, ge=1)
    tokens: list[str] | None = None
    text_template: str = "the sound of {word}"


class ModelConfig(_Strict):
    model: str = "stabilityai/sd-turbo"
    steps: int | None = Field(None, ge=1, le=200)
    guidance: float | None = Field(None, ge=0)
    seed: int = 0
    size: str = "512"
    strength: float = Field(0.5, gt=0, le=1)
    device: str = "auto"
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = "auto"
    backend: Literal["auto", "torch", "onnxruntime", "tensorrt"] = "auto"
    vae: str = "auto"
    compile: bool | None = None  # torch on CUDA: torch.compile + CUDA graphs (None: on for CUDA)
    loras: list[str] = Field(default_factory=list)  # ID_OR_PATH[:SCALE], fused into the weights

    @field_validator("size")
    @classmethod
    def _size_ok(cls, v: str) -> str:
        parse_size(v)
        return v


class LiveConfig(_Strict):
    input: str = "default"
    samplerate: int | None = None
    blocksize: int = Field(256, ge=16)
    agc_release_s: float = Field(10.0, gt=0)
    gate_db: float = -55.0
    clap_every_s: float = Field(3.0, gt=0)
    clap_window_s: float = Field(5.0, gt=0)
    clap_hysteresis: float = Field(0.02, ge=0)
    fullscreen: bool = False
    display: int = Field(0, ge=0)
    window_size: int = Field(768, ge=64)
    hud: bool = True
    segment_minutes: float | None = Field(None, gt=0)  # --record: a new file every N minutes
    loop: bool = False  # a sound-file input starts again at its end
    display_fps: float = Field(60.0, gt=0, le=1000)  # the display loop's rate (vsync where offered)
    vsync: bool = True  # ask the window system to sync the flip with the screen's refresh
    analysis_hz: float = Field(100.0, ge=10, le=1000)  # live weights per second (hop = samplerate / analysis_hz)
    fade_s: float = Field(0.5, ge=0, le=10)  # cross-fade to a new atlas (prompt, words, seed)
    clap_retry_max_s: float = Field(60.0, gt=0)  # a failing CLAP is retried after every_s, doubling up to this
    thread_restarts: int = Field(3, ge=0, le=1000)  # restarts of a failing analysis/CLAP/renderer thread, then stop
    stall_s: float = Field(20.0, gt=0)  # RENDER STALLED when the renderer makes no progress for this long
    wait_for_device_s: float = Field(0.0, ge=0)  # a missing input device is waited for this long (then exit 3)


MAX_ROUTES = 3  # routed words one atlas can vary: its cells grow as levels ** routes


class AtlasConfig(_Strict):
    """The frame atlas (docs/design.md §1.6, §7): ``levels`` 0 renders every frame exactly (per weight).

    ``levels`` serves one weight (no route, or one); ``levels_2`` and ``levels_3`` are the levels per axis of
    the grid for 2 and 3 routed words, chosen from the measured blend-error table (docs/sounds.md)."""

    levels: int = Field(33, ge=0, le=4097)
    levels_2: int = Field(9, ge=2, le=65)
    levels_3: int = Field(5, ge=2, le=17)
    mb: float = Field(512.0, gt=0)  # memory cap of all atlases kept (live: the LRU; offline: the one atlas)
    batch: int | None = Field(None, ge=1, le=256)  # levels per UNet call; None: by device (see atlas.default_batch)
    prefill_scenes: bool = True  # live: once the atlas on screen is complete, fill the scenes' atlases ahead

    @field_validator("levels")
    @classmethod
    def _levels_blend(cls, v: int) -> int:
        if v == 1:
            raise ValueError("must be 0 (render every frame exactly) or at least 2 (one level cannot blend)")
        return v


class RouteConfig(_Strict):
    """One prompt word given its own weight by one sound source (docs/design.md §1.6). Unset values are the
    envelope's (``w_min``, ``w_max``, ``gain``; ``attack_ms``/``release_ms``: the source's own smoothing)."""

    source: str  # loudness, a band of features.bands (low, mid, high), onset, onset:BAND, or a stem
    word: str  # a word of the prompt
    w_min: float | None = None
    w_max: float | None = None
    gain: float | None = Field(None, ge=0)
    attack_ms: float | None = Field(None, ge=0)  # given: this route's source follows attack/release
    release_ms: float | None = Field(None, ge=0)


class Config(_Strict):
    envelope: EnvelopeConfig = EnvelopeConfig()
    features: FeaturesConfig = FeaturesConfig()
    tokens: TokenConfig = TokenConfig()
    model: ModelConfig = ModelConfig()
    live: LiveConfig = LiveConfig()
    osc: OscConfig = OscConfig()
    midi: MidiConfig = MidiConfig()
    video_out: VideoOutConfig = VideoOutConfig()
    scenes: list[SceneConfig] = Field(default_factory=list, max_length=99)
    atlas: AtlasConfig = AtlasConfig()
    # each an own word for a sound source (--route SOURCE=WORD[:W_MIN:W_MAX]); "auto": CLAP pairs them
    routes: list[RouteConfig] | Literal["auto"] = Field(default_factory=list)


_SIZE = re.compile(r"^\s*(\d+)\s*(?:[x×]\s*(\d+))?\s*$")


def parse_size(text: str) -> tuple[int, int]:
    """``"512"`` -> (512, 512); ``"512x384"`` -> (width 512, height 384). Multiples of 64, at least 64."""
    m = _SIZE.match(str(text))
    if not m:
        raise ValueError(f"size {text!r} is not WIDTH or WIDTHxHEIGHT (e.g. 512 or 512x384)")
    w = int(m.group(1))
    h = int(m.group(2) or m.group(1))
    for v in (w, h):
        if v < 64 or v % 64:
            raise ValueError(f"size {text!r}: each side must be a multiple of 64 and at least 64 (e.g. 512 or 512x384)")
    return w, h


ROUTE_HELP = "SOURCE=WORD[:W_MIN:W_MAX], e.g. --route low=thunder or --route high=rain:0:1.5 (or --route auto)"


def parse_route(text: str) -> RouteConfig | Literal["auto"]:
    """``--route SOURCE=WORD[:W_MIN:W_MAX]``; ``auto`` lets CLAP give each source its word. A source may hold a
    colon (``onset:low``): the source ends at the first ``=``."""
    t = str(text).strip()
    if t == "auto":
        return "auto"
    source, eq, rest = t.partition("=")
    parts = rest.split(":")
    if not eq or not source.strip() or not parts[0].strip() or len(parts) not in (1, 3):
        raise UserError(f"--route {text!r}: expected {ROUTE_HELP}")
    try:
        lo, hi = (float(parts[1]), float(parts[2])) if len(parts) == 3 else (None, None)
    except ValueError:
        raise UserError(f"--route {text!r}: W_MIN and W_MAX must be numbers; expected {ROUTE_HELP}") from None
    return RouteConfig(source=source.strip(), word=parts[0].strip(), w_min=lo, w_max=hi)


def _describe(err: ValidationError, source: str) -> str:
    errors = err.errors()
    # an unknown key says most (a misspelt key also reads as a missing one); a union's branch tags
    # (``list[RouteConfig]``, ``literal['auto']``) are no part of where the value is
    e = next((x for x in errors if x["type"] == "extra_forbidden"), errors[0])
    loc = ".".join(str(p) for p in e["loc"] if not (isinstance(p, str) and "[" in p))
    if e["type"] == "extra_forbidden":
        return f"{source}: unknown key '{loc}'; remove it or check its spelling against config.yaml"
    msg = e["msg"].removeprefix("Value error, ")
    return f"{source}: '{loc}': {msg}"


# the CLI flag of each override whose name is not "--" + its key (a test checks every override's flag exists)
FLAGS = {("osc", "port"): "--osc-port", ("osc", "host"): "--osc-host", ("osc", "send"): "--osc-send",
         ("midi", "port"): "--midi", ("video_out", "targets"): "--output", ("video_out", "hud"): "--output-hud",
         ("atlas", "mb"): "--atlas-mb", ("atlas", "batch"): "--atlas-batch", ("envelope", "mode"): "--smoothing",
         ("model", "loras"): "--lora"}


def flag_for(section: str, key: str) -> str:
    """The CLI flag that sets ``section.key`` (``atlas.mb`` -> ``--atlas-mb``)."""
    return FLAGS.get((section, key), "--" + key.replace("_", "-"))


def load_config(path: Path | None, overrides: dict[str, dict[str, Any]] | None = None) -> Config:
    """Read ``path`` (YAML; may be None), then apply ``overrides`` ({section: {key: value}})."""
    data: dict[str, Any] = {}
    source = "defaults"
    if path is not None:
        source = str(path)
        try:
            raw = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise UserError(f"config file {path} not found; pass an existing --config file") from None
        except yaml.YAMLError as exc:
            raise UserError(f"{path} is not valid YAML ({str(exc).splitlines()[0]}); fix the syntax") from None
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            raise UserError(f"{path}: the top level must be a mapping of sections (envelope, tokens, model, live)")
        data = raw
    try:
        cfg = Config.model_validate(data)
    except ValidationError as exc:
        raise UserError(_describe(exc, source)) from None
    for section, values in (overrides or {}).items():
        sub = getattr(cfg, section)
        for key, value in values.items():
            if value is None:
                continue
            try:
                setattr(sub, key, value)
            except ValidationError as exc:
                flag = flag_for(section, key)
                raise UserError(f"{flag}: {exc.errors()[0]['msg'].removeprefix('Value error, ')}") from None
    return cfg
