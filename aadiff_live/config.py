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


class AtlasConfig(_Strict):
    """The frame atlas (docs/design.md §7): ``levels`` 0 renders every frame exactly (per weight)."""

    levels: int = Field(33, ge=0, le=4097)
    mb: float = Field(512.0, gt=0)  # memory cap of all atlases kept (live: the LRU; offline: the one atlas)
    batch: int | None = Field(None, ge=1, le=256)  # levels per UNet call; None: by device (see atlas.default_batch)
    prefill_scenes: bool = True  # live: once the atlas on screen is complete, fill the scenes' atlases ahead

    @field_validator("levels")
    @classmethod
    def _levels_blend(cls, v: int) -> int:
        if v == 1:
            raise ValueError("must be 0 (render every frame exactly) or at least 2 (one level cannot blend)")
        return v


class Config(_Strict):
    envelope: EnvelopeConfig = EnvelopeConfig()
    tokens: TokenConfig = TokenConfig()
    model: ModelConfig = ModelConfig()
    live: LiveConfig = LiveConfig()
    osc: OscConfig = OscConfig()
    midi: MidiConfig = MidiConfig()
    video_out: VideoOutConfig = VideoOutConfig()
    scenes: list[SceneConfig] = Field(default_factory=list, max_length=99)
    atlas: AtlasConfig = AtlasConfig()


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


def _describe(err: ValidationError, source: str) -> str:
    e = err.errors()[0]
    loc = ".".join(str(p) for p in e["loc"])
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
