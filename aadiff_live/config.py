"""Typed, validated configuration: defaults here, ``config.yaml`` on top, CLI flags on top of that.

Unknown keys are rejected by name. Nothing here parses arguments or writes globals.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, JsonValue, ValidationError, field_validator

from aadiff_live.control.settings import MidiConfig, OscConfig, SceneConfig, VideoOutConfig
from aadiff_live.errors import UserError
from aadiff_live.web.settings import WebConfig


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def _unset(text: str) -> dict[str, JsonValue]:
    """``json_schema_extra`` of a field whose ``None`` default means something: what it means."""
    return {"unset": text}


class EnvelopeConfig(_Strict):
    fps: float = Field(30.0, gt=0, le=240, description=(
        "frames per second of the envelope and of rendered videos; live: the recording's frame rate and "
        "the unit of window (the live analysis runs at live.analysis_hz)"))
    window: int = Field(5, ge=1, description=(
        "smoothing window in frames: 1 = raw, >= frame count = whole-clip mean; live: used only by "
        "smoothing trailing (the live default, attack-release, ignores it)"))
    mode: Literal["centred", "trailing", "attack-release"] = Field("centred", description=(
        "centred (no lag; files only), trailing or attack-release (causal); live turns centred into "
        "attack-release"))
    attack_ms: float = Field(10.0, ge=0, description="attack-release: rise time constant in ms (short: thunderclaps)")
    release_ms: float = Field(300.0, ge=0, description="attack-release: fall time constant in ms (long: a slow fire)")
    n_fft: int = Field(2048, ge=64, description="STFT window in samples (shortened at low sample rates)")
    norm_percentile: float = Field(99.0, gt=0, le=100, description=(
        "render and analyse: the envelope is divided by this percentile of the clip, then clipped to [0, 1]"))
    silence_db: float = Field(-60.0, description=(
        "render and analyse: a clip whose loudest frame is below this RMS (dBFS) is silent: a still video"))
    w_min: float = Field(0.0, description="token weight in silence (0: the word fades out; negative weights are legal)")
    w_max: float = Field(2.0, description="token weight at full loudness")
    gain: float = Field(1.0, ge=0, description="multiplies the normalised envelope: w = w_min + (w_max - w_min) * gain * e")


RESERVED_SOURCES = ("loudness", "onset", "drums", "bass", "vocals", "other", "beat", "bar", "lfo")
_BAND_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class FeaturesConfig(_Strict):
    """Sources besides the loudness (docs/design.md §1.5): frequency bands and onsets, from the same STFT."""

    bands: dict[str, tuple[float, float]] = Field(
        default_factory=lambda: {"low": (20.0, 200.0), "mid": (200.0, 2000.0), "high": (2000.0, 16000.0)},
        description="name -> [low Hz, high Hz]: frequency bands a route can follow")
    onset_decay_ms: float = Field(150.0, gt=0, description=(
        "an onset is a flash: 1 at once, then down with this time constant (ms)"))
    onset_delta: float = Field(0.05, ge=0, description=(
        "onset peak picking: how far the spectral flux must exceed its recent mean (log units)"))
    onset_wait_ms: float = Field(60.0, ge=0, description="at least this long between two onsets of one source (ms)")
    stem_model: str = Field("htdemucs", description=(
        "Demucs separator of the stem sources (offline; pip install 'aadiff-live[stems]')"))

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
    clap_model: str = Field("laion/clap-htsat-unfused", description=(
        "CLAP checkpoint that ranks the prompt's words (transformers ClapModel); --model tiny uses a tiny one"))
    top_k: int = Field(1, ge=1, description="how many of the prompt's words CLAP picks")
    tokens: list[str] | None = Field(None, description="pin these words of the prompt instead of CLAP's choice",
                                     json_schema_extra=_unset("CLAP chooses"))
    text_template: str = Field("the sound of {word}", description="how each word is phrased for CLAP's text encoder")


class ModelConfig(_Strict):
    model: str = Field("stabilityai/sd-turbo", description=(
        "hub id, hub-cache id or local folder; 'tiny' = random weights built in-process (noise, for trying "
        "the pipeline)"))
    steps: int | None = Field(None, ge=1, le=200, description="denoising steps",
                              json_schema_extra=_unset("by model: turbo 1, LCM 4, tiny 2, others 25"))
    guidance: float | None = Field(None, ge=0, description="classifier-free guidance",
                                   json_schema_extra=_unset("by model: turbo, LCM and tiny 0, others 7.5"))
    seed: int = Field(0, description="seed of the initial noise every frame shares")
    size: str = Field("512", description="WIDTH or WIDTHxHEIGHT, multiples of 64, at least 64")
    strength: float = Field(0.5, gt=0, le=1, description=(
        "with an image: how far the picture is noised before denoising (0..1]"))
    invert: bool = Field(False, description=(
        "with an image: null-text inversion (DDIM, then per-step null embeddings, cached in engines/inversions) "
        "instead of noising to strength, so the frame at weight 1 is the photo; multi-step models with guidance "
        "(SD 1.5, SD 2.1) only"))
    device: str = Field("auto", description="auto (cuda, then mps, then cpu), cpu, cuda, cuda:N or mps")
    dtype: Literal["auto", "float32", "float16", "bfloat16"] = Field("auto", description=(
        "auto (float16 on a GPU, float32 on a CPU), float32, float16 or bfloat16"))
    backend: Literal["auto", "torch", "onnxruntime", "tensorrt"] = Field("auto", description=(
        "auto, torch, onnxruntime or tensorrt; auto: TensorRT on CUDA when installed with a matching engine, "
        "else torch; on a CPU in float32 ONNX Runtime when a matching engine exists, else torch; it logs "
        "which and why (tensorrt has the least test coverage)"))
    vae: str = Field("auto", description="auto (the model's own VAE), tiny (TAESD: madebyollin/taesd) or a hub id or folder")
    compile: bool | None = Field(None, description=(
        "torch on CUDA: torch.compile + CUDA graphs, the first frame compiles for about a minute; needs "
        "Triton; false (--no-compile): eager"), json_schema_extra=_unset("on for CUDA when Triton is installed"))
    loras: list[str] = Field(default_factory=list, description=(
        "LoRAs fused into the weights, ID_OR_PATH[:SCALE] (scale 1 when left out); an LCM-LoRA "
        "(e.g. latent-consistency/lcm-lora-sdv1-5) makes an SD 1.5 model a 4-step model"))

    @field_validator("size")
    @classmethod
    def _size_ok(cls, v: str) -> str:
        parse_size(v)
        return v


class LiveConfig(_Strict):
    input: str = Field("default", description=(
        "'default', a device index, part of a device name, or a sound file played in real time"))
    samplerate: int | None = Field(None, description="capture rate in Hz", json_schema_extra=_unset("the device's own"))
    blocksize: int = Field(256, ge=16, description="PortAudio block in samples")
    agc_release_s: float = Field(10.0, gt=0, description="automatic gain: release time of the peak follower in s")
    gate_db: float = Field(-55.0, description="noise gate (RMS dBFS): quieter frames read as silence (weight w_min)")
    clap_every_s: float = Field(3.0, gt=0, description="CLAP re-ranks the words this often (s)")
    clap_window_s: float = Field(5.0, gt=0, description="... on this much of the latest sound (s)")
    clap_hysteresis: float = Field(0.02, ge=0, description=(
        "a new word must beat the current one by this much cosine similarity"))
    fullscreen: bool = Field(False, description="start fullscreen (F toggles)")
    display: int = Field(0, ge=0, description="monitor index for the window")
    window_size: int = Field(768, ge=64, description="window side in pixels")
    hud: bool = Field(True, description="show the HUD at start (H toggles)")
    segment_minutes: float | None = Field(None, gt=0, description=(
        "with --record: close the file every N minutes and start the next (names carry the start time)"),
        json_schema_extra=_unset("one file"))
    loop: bool = Field(False, description="a sound-file input starts again at its end (rehearsals, soak tests)")
    display_fps: float = Field(60.0, gt=0, le=1000, description=(
        "display refreshes per second, each showing the atlas blend for the newest weight (paced by a timer, "
        "and by vsync where offered)"))
    vsync: bool = Field(True, description="sync the flip with the screen's refresh where the window system offers it")
    late_latch: bool = Field(True, description=(
        "with vsync, start each refresh just before the screen's, so the flip waits little (less latency); "
        "false: start right after the previous flip"))
    analysis_hz: float = Field(100.0, ge=10, le=1000, description=(
        "live weights per second; smoothing is defined in time, so the look is the same at any rate"))
    fade_s: float = Field(0.5, ge=0, le=10, description="cross-fade to a new atlas (prompt, words, seed, scene) in s")
    clap_retry_max_s: float = Field(60.0, gt=0, description=(
        "a failing CLAP ranking is retried after clap_every_s, doubling up to this (s)"))
    thread_restarts: int = Field(3, ge=0, le=1000, description=(
        "restarts of a failing analysis, CLAP or renderer thread; one more failure stops the app (exit code 1)"))
    stall_s: float = Field(20.0, gt=0, description=(
        "show RENDER STALLED when the renderer makes no progress for this many seconds"))
    wait_for_device_s: float = Field(0.0, ge=0, description=(
        "wait up to this long for a missing input device (an interface that appears after boot), looking again "
        "every few seconds, then exit 3; 0: exit 2 at once"))


MAX_ROUTES = 3  # routed words one atlas can vary: its cells grow as levels ** routes


class AtlasConfig(_Strict):
    """The frame atlas (docs/design.md §1.6, §7): ``levels`` 0 renders every frame exactly (per weight).

    ``levels`` serves one weight (no route, or one); ``levels_2`` and ``levels_3`` are the levels per axis of
    the grid for 2 and 3 routed words, chosen from the measured blend-error table (docs/sounds.md)."""

    levels: int = Field(33, ge=0, le=4097, description=(
        "weight levels rendered once and blended, evenly over [w_min, w_max]; 0 = render every frame exactly"))
    levels_2: int = Field(9, ge=2, le=65, description="levels per axis of the grid for 2 routed words")
    levels_3: int = Field(5, ge=2, le=17, description="levels per axis of the grid for 3 routed words")
    mb: float = Field(512.0, gt=0, description=(
        "memory cap of the atlases in MB (live: recent prompts and words are kept, so going back is instant)"))
    batch: int | None = Field(None, ge=1, le=256, description="levels per UNet call",
                              json_schema_extra=_unset("by device: CPU 4, CUDA 8, TensorRT 1"))
    prefill_scenes: bool = Field(True, description=(
        "live: once the atlas on screen is complete, fill the scenes' atlases ahead (never evicts one)"))

    @field_validator("levels")
    @classmethod
    def _levels_blend(cls, v: int) -> int:
        if v == 1:
            raise ValueError("must be 0 (render every frame exactly) or at least 2 (one level cannot blend)")
        return v


TEMPO_SOURCES = ("audio", "link", "midi", "off")


class TempoConfig(_Strict):
    """Tempo and beat ([tempo and beat](../tempo.md)): the beat-locked sources beat, bar and lfo:SHAPE:BEATS."""

    source: Literal["audio", "link", "midi", "off"] = Field("audio", description=(
        "where tempo and beat come from: audio (a beat tracker on the sound; works with no setup), link "
        "(an Ableton Link session), midi (MIDI clock), off; a file (render, analyse) has no clock: its beats "
        "are tracked from its sound"))
    quantum: int = Field(4, ge=1, le=32, description="beats per bar (the bar source, Link's quantum)")
    beat_decay_ms: float = Field(150.0, gt=0, description=(
        "the beat source is a flash on every beat: 1 on the beat, then down with this time constant (ms)"))
    quantise: Literal["off", "beat", "bar"] = Field("off", description=(
        "live: scene switches and prompt changes (keys, MIDI, OSC) land on the next beat or bar line, their "
        "cross-fade complete on it; off: at once"))
    lookahead_ms: float = Field(0.0, ge=0, le=2000, description=(
        "live, with --quantise: complete a change this much before the line, for the display's or projector's "
        "delay (ms)"))
    link_session: str | None = Field(None, description=(
        "--tempo link: MODULE:CALLABLE returning a Link session object (tempo, beat, num_peers), e.g. your own "
        "small module around a Link binding; no Link binding can ship with aadiff-live (docs: tempo and beat)"),
        json_schema_extra=_unset("none"))


class RouteConfig(_Strict):
    """One prompt word given its own weight by one sound source (docs/design.md §1.6). Unset values are the
    envelope's (``w_min``, ``w_max``, ``gain``; ``attack_ms``/``release_ms``: the source's own smoothing)."""

    source: str = Field(description=(
        "loudness, a band of features.bands (low, mid, high), onset, onset:BAND, or a stem"))
    word: str = Field(description="a word of the prompt")
    w_min: float | None = Field(None, description="weight in silence (unset: envelope.w_min)")
    w_max: float | None = Field(None, description="weight at full level (unset: envelope.w_max)")
    gain: float | None = Field(None, ge=0, description="gain of this route (unset: envelope.gain)")
    attack_ms: float | None = Field(None, ge=0, description=(
        "given: this route's source follows attack/release with this attack (unset: the source's own smoothing)"))
    release_ms: float | None = Field(None, ge=0, description="release of this route's attack/release (ms)")


class EvaluateConfig(_Strict):
    """``aadiff-live evaluate``: how a video's sync with its sound is measured (docs: evaluate)."""

    clip_model: str = Field("openai/clip-vit-large-patch14", description=(
        "CLIP checkpoint that scores each frame against the weighted word and the prompt (transformers CLIPModel); "
        "'tiny' = random weights built in-process (for tests)"))
    batch: int = Field(16, ge=1, description="frames per CLIP call")
    onset_window_ms: float = Field(500.0, gt=0, description=(
        "the lag of each audio onset is looked for within this long after it (ms)"))


class Config(_Strict):
    envelope: EnvelopeConfig = Field(EnvelopeConfig(), description=(
        "How loudness becomes the word's weight ([shaping the response](../shaping.md))."))
    features: FeaturesConfig = Field(FeaturesConfig(), description=(
        "Sources besides the loudness: frequency bands and onsets ([several sounds, several words](../sounds.md))."))
    tokens: TokenConfig = Field(TokenConfig(), description="Which words are weighted ([models: CLAP](../models.md#clap)).")
    model: ModelConfig = Field(ModelConfig(), description=(
        "The diffusion model and where it runs ([models](../models.md), [backends](../backends.md))."))
    live: LiveConfig = Field(LiveConfig(), description="The live show ([live show](../live.md)).")
    osc: OscConfig = Field(OscConfig(), description="OSC control and output ([OSC](../osc.md)).")
    midi: MidiConfig = Field(MidiConfig(), description="MIDI control ([MIDI](../midi.md)).")
    video_out: VideoOutConfig = Field(VideoOutConfig(), description="Frames for other programs ([video out](../video-out.md)).")
    scenes: list[SceneConfig] = Field(default_factory=list, max_length=99, description=(
        "Prompts to switch to with keys 1-9, MIDI notes or /aadiff/scene N ([scenes](../scenes.md))."))
    atlas: AtlasConfig = Field(AtlasConfig(), description=(
        "The frame atlas ([live show](../live.md#the-frame-atlas), [render](../render.md)); how it works: "
        "[design §7](../design.md#7-frame-atlas)."))
    web: WebConfig = Field(WebConfig(), description=(
        "The status and control page, /health and /metrics ([installation](../installation.md#6-the-status-page))."))
    tempo: TempoConfig = Field(TempoConfig(), description=(
        "Tempo and beat from the sound, Ableton Link or MIDI clock ([tempo and beat](../tempo.md))."))
    routes: list[RouteConfig] | Literal["auto"] = Field(default_factory=list, description=(
        "Each an own word for a sound source (--route SOURCE=WORD[:W_MIN:W_MAX]); \"auto\": CLAP pairs them "
        "([several sounds, several words](../sounds.md))."))
    evaluate: EvaluateConfig = Field(EvaluateConfig(), description=(
        "How `aadiff-live evaluate` measures a video's sync with its sound ([evaluate](../evaluate.md))."))


def field_of(section: str, key: str):
    """The pydantic ``FieldInfo`` of ``section.key`` (e.g. ``"envelope", "fps"``)."""
    model = Config.model_fields[section].annotation
    return model.model_fields[key]  # type: ignore[union-attr]


def default_text(section: str, key: str) -> str:
    """The default of ``section.key`` as the help and the docs state it: the value, or what unset means."""
    f = field_of(section, key)
    value = f.get_default(call_default_factory=True)
    if value is None:
        extra = f.json_schema_extra if isinstance(f.json_schema_extra, dict) else {}
        return str(extra.get("unset", "none"))
    if isinstance(value, bool):
        return "on" if value else "off"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, list):
        return ", ".join(map(str, value)) if value else "none"
    return str(value)


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
         ("model", "loras"): "--lora", ("live", "wait_for_device_s"): "--wait-for-device",
         ("tempo", "source"): "--tempo", ("web", "listen"): "--web", ("web", "token"): "--web-token"}


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
