"""The ``web:`` config section (part of :class:`~aadiff_live.config.Config`): where the page listens, its token."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, field_validator

MIN_TOKEN = 12  # characters of a --web-token: guessing it over HTTP must be hopeless


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


def parse_listen(text: str) -> tuple[str, int]:
    """``8080`` -> ("127.0.0.1", 8080); ``0.0.0.0:8080``, ``[::1]:8080`` -> that host; else ValueError."""
    t = str(text).strip()
    host, sep, port = t.rpartition(":")
    if not sep:
        host, port = "127.0.0.1", t
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ValueError(f"{text!r} is not [HOST:]PORT (e.g. 8080 or 0.0.0.0:8080; PORT 0: any free port)")
    return host, int(port)


class WebConfig(_Strict):
    listen: str | None = Field(None, description=(
        "[HOST:]PORT of the status and control page, /health and /metrics; HOST 127.0.0.1 unless given "
        "(0.0.0.0: the whole network), PORT 0: any free port"), json_schema_extra={"unset": "no web page"})
    token: str | None = Field(None, description=(
        f"the token the page and every control need (at least {MIN_TOKEN} characters)"),
        json_schema_extra={"unset": "a random one, printed at start"})
    preview_fps: float = Field(4.0, gt=0, le=15, description=(
        "frames per second of the page's JPEG preview (encoded off the display thread, only while a page watches)"))

    @field_validator("listen")
    @classmethod
    def _listen(cls, v: str | None) -> str | None:
        if v is not None:
            parse_listen(v)
        return v

    @field_validator("token")
    @classmethod
    def _token(cls, v: str | None) -> str | None:
        if v is not None and (len(v) < MIN_TOKEN or not v.isprintable() or " " in v):
            raise ValueError(f"a token is at least {MIN_TOKEN} printable characters without spaces "
                             "(unset: a random one is printed at start)")
        return v
