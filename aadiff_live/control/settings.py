"""Typed config sections for the VJ rig: ``osc:``, ``midi:`` and ``scenes:`` (part of :class:`Config`)."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from aadiff_live.control.params import GAIN_MAX, PARAMS, SEED_MAX


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class OscConfig(_Strict):
    port: int | None = Field(None, ge=0, le=65535, description="listen for OSC control on this UDP port (0: any free port)",
                             json_schema_extra={"unset": "no listener"})
    host: str = Field("127.0.0.1", description=(
        "address to listen on; 127.0.0.1: this machine only, 0.0.0.0: the whole network can steer the show"))
    send: str | None = Field(None, description=(
        "HOST:PORT that gets /aadiff/envelope, weight, level_db, latency_ms per displayed frame and "
        "/aadiff/words when they change"), json_schema_extra={"unset": "nothing sent"})


class VideoOutConfig(_Strict):
    targets: list[str] = Field(default_factory=list, description=(
        "video out: ndi[:NAME], syphon[:NAME] (macOS), spout[:NAME] (Windows), virtualcam; each an extra, "
        "e.g. pip install 'aadiff-live[ndi]'"))
    hud: bool = Field(False, description="draw the HUD into the frames that go out (needs the window)")


MIDI_PARAMS = tuple(n for n, p in PARAMS.items() if p.kind in ("f", "i"))
# parameters that start a new atlas (a new base picture to render): from a knob they act once it comes to rest
REBUILD_PARAMS = ("seed", "scene")


def idle_params(smoothing: str) -> tuple[str, ...]:
    """Parameters that change nothing under live smoothing ``smoothing`` (live turns 'centred' into
    'attack-release'): the trailing window under attack-release, the time constants under trailing."""
    return ("attack_ms", "release_ms") if smoothing == "trailing" else ("window", "window_ms")


class CcMap(_Strict):
    param: str
    min: float
    max: float

    @model_validator(mode="after")
    def _in_table(self) -> CcMap:
        p = PARAMS.get(self.param)
        if p is None or p.kind not in ("f", "i"):
            raise ValueError(f"'{self.param}' cannot be set by a knob; use one of {', '.join(MIDI_PARAMS)}")
        for v in (self.min, self.max):
            if (p.lo is not None and v < p.lo) or (p.hi is not None and v > p.hi):
                raise ValueError(f"{self.param}: {v:g} is outside {p.lo:g}..{p.hi:g}")
        return self


# A generic 8-knob controller (Akai LPD8 / MPK mini style): knobs send CC 1-8, pads notes 36-43. Only knobs
# that act under the default live settings (attack-release smoothing): knob 6 is left free (MIDI learn: L).
DEFAULT_CC: dict[int, CcMap] = {
    1: CcMap(param="gain", min=0.0, max=4.0),
    2: CcMap(param="w_min", min=-1.0, max=1.0),
    3: CcMap(param="w_max", min=0.0, max=4.0),
    4: CcMap(param="attack_ms", min=0.0, max=200.0),
    5: CcMap(param="release_ms", min=20.0, max=2000.0),
    7: CcMap(param="seed", min=0, max=127),
    8: CcMap(param="freeze", min=0, max=1),
}
DEFAULT_NOTES: dict[int, int] = {36 + i: i + 1 for i in range(8)}


def _midi_numbers(v: dict, what: str) -> dict:
    """MIDI CC and note numbers are 7-bit: 0..127."""
    bad = [k for k in v if not 0 <= k <= 127]
    if bad:
        raise ValueError(f"{what} numbers are 0..127, got {bad}")
    return v


class MidiConfig(_Strict):
    port: str | None = Field(None, description="MIDI input: part of a port's name (`aadiff-live midi-ports` lists them)",
                             json_schema_extra={"unset": "no MIDI"})
    channel: int | None = Field(None, ge=1, le=16, description="listen on this channel (1-16) only",
                                json_schema_extra={"unset": "every channel"})
    cc: dict[int, CcMap] = Field(default_factory=lambda: dict(DEFAULT_CC), description=(
        "CC number -> {param, min, max}: the parameter a knob sets and the range its 0..127 covers"))
    notes: dict[int, int] = Field(default_factory=lambda: dict(DEFAULT_NOTES), description=(
        "note number -> scene number (1 = the first scene)"))
    settle_ms: float = Field(250.0, ge=0, le=5000, description=(
        "a knob on seed or scene acts this long after its last tick (one new atlas per sweep of the knob)"))

    @field_validator("cc")
    @classmethod
    def _cc_numbers(cls, v: dict[int, CcMap]) -> dict[int, CcMap]:
        return _midi_numbers(v, "CC")

    @field_validator("notes")
    @classmethod
    def _notes(cls, v: dict[int, int]) -> dict[int, int]:
        _midi_numbers(v, "note")
        if any(s < 1 for s in v.values()):
            raise ValueError("a note switches to a scene number (1 = the first scene)")
        return v


class SceneConfig(_Strict):
    name: str = Field(min_length=1, description="shown on the HUD")
    prompt: str = Field(min_length=1, description="the scene's prompt")
    words: list[str] | None = Field(None, description="pin these words of the prompt (unset: CLAP chooses)")
    seed: int | None = Field(None, ge=0, le=SEED_MAX, description="a new base from this seed (unset: the current)")
    window: int | None = Field(None, ge=1, description="smoothing window in frames (acts under smoothing trailing)")
    gain: float | None = Field(None, ge=0, le=GAIN_MAX, description="the gain while the scene is on (unset: the current)")

    @model_validator(mode="after")
    def _words_in_prompt(self) -> SceneConfig:
        if self.words is not None:
            from aadiff_live.errors import UserError
            from aadiff_live.tokens.words import parse_pinned

            try:
                parse_pinned(self.words, self.prompt)
            except UserError as exc:
                raise ValueError(f"scene '{self.name}': {str(exc).removeprefix('--tokens: ')}") from None
        return self
