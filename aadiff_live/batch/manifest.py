"""A batch manifest: a CSV whose rows are renders, checked whole before the first render starts.

Each row becomes the argument list of ``aadiff-live render`` (a column ``seed`` is ``--seed``, ``w_min`` is
``--w-min``) and goes through the same parser, the same Config validation and the same pre-load checks as
``render`` does: a value ``render`` would refuse is refused here, with the same words, before anything loads.
Every bad cell of every row is listed (``row N, column C: ...``); rows are numbered from 1 after the header.
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from aadiff_live.errors import UserError

if TYPE_CHECKING:
    from aadiff_live.config import Config
    from aadiff_live.render import RenderJob

# columns that are not render options: the sound, the prompt, the output (relative to --out-dir), a YAML config
SPECIAL = ("audio", "prompt", "out", "config")
NOT_COLUMNS = ("--audio", "--prompt", "--out", "--config", "--demo", "--verbose", "--help")
PATH_FLAGS = ("--image", "--frames")  # cells relative to the manifest's folder
_TRUE, _FALSE = ("1", "true", "yes", "on", "y"), ("0", "false", "no", "off", "n")
_FLAG = re.compile(r"--[a-z][a-z0-9-]*")
_SLUG = re.compile(r"[^a-z0-9]+")


@dataclass(frozen=True)
class RenderOptions:
    """How the command line reads ``render``'s options (given by :mod:`aadiff_live.cli`): a row is read
    exactly as ``render`` reads its flags."""

    parser: Callable[[], argparse.ArgumentParser]  # render's options alone
    config: Callable[[argparse.Namespace, Path | None], Config]  # parsed options -> Config
    job: Callable[[argparse.Namespace, Config], RenderJob]  # -> a checked job (no model loaded)


@dataclass
class Row:
    number: int  # 1 = the first row after the header
    job: RenderJob  # checked, no model loaded
    request: dict  # job.request(): what the sidecar of a finished render holds

    @property
    def out(self) -> Path:
        return self.job.out


class ManifestError(UserError):
    """Bad rows: one line per problem (``row N, column C: what; how to fix``), exit code 2."""


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """column name -> the render option it sets (``w_min`` and ``w-min`` both name ``--w-min``)."""
    out: dict[str, argparse.Action] = {}
    for action in parser._actions:  # noqa: SLF001 - argparse has no public list of a parser's actions
        for flag in action.option_strings:
            if flag.startswith("--") and flag not in NOT_COLUMNS and not flag.startswith("--no-"):
                out[flag[2:]] = action
    return out


def _tokens(flag: str, action: argparse.Action, value: str) -> list[str]:
    """The command-line words of one cell (``--flag=value`` so that a value may start with '-')."""
    if isinstance(action, argparse.BooleanOptionalAction) or action.nargs == 0:
        v = value.lower()
        if v not in _TRUE + _FALSE:
            raise UserError(f"{value!r} is not true or false; write true or false, or leave the cell empty")
        if isinstance(action, argparse.BooleanOptionalAction):
            return [flag if v in _TRUE else "--no-" + flag[2:]]
        return [flag] if v in _TRUE else []
    if isinstance(action, argparse._AppendAction):  # noqa: SLF001 - --route, --lora: several, split by ';'
        return [f"{flag}={part.strip()}" for part in value.split(";") if part.strip()]
    return [f"{flag}={value}"]


def _column_of(message: str, flags: dict[str, str]) -> str | None:
    """The column a check's message is about: the first flag it names that a column of this row set."""
    for m in _FLAG.finditer(message):
        if m.group(0) in flags:
            return flags[m.group(0)]
    return None


def _one_line(message: object) -> str:
    return re.sub(r" \(see `[^`]*`\)$", "", str(message)).strip()


def default_out(audio: str, prompt: str, request: dict) -> str:
    """``<audio stem>_<prompt slug>_<8 hex of the settings>.mp4``: readable, and the same on every run."""
    digest = hashlib.sha256(json.dumps(request, sort_keys=True).encode()).hexdigest()[:8]
    slug = _SLUG.sub("-", prompt.lower()).strip("-")[:40] or "clip"
    return f"{Path(audio).stem}_{slug}_{digest}.mp4"


def read_manifest(path: str | Path, out_dir: str | Path, options: RenderOptions,
                  default_config: Path | None = None) -> list[Row]:
    """Every row of the manifest checked into a :class:`Row`; any problem anywhere raises one
    :class:`ManifestError` that lists them all (nothing has been rendered or loaded)."""
    from aadiff_live.render import request_of

    config_from_args, render_job_from_args = options.config, options.job

    manifest = Path(path)
    if not manifest.is_file():
        raise UserError(f"manifest {manifest} not found; pass a CSV file with a header line (audio,prompt,...)")
    base = manifest.resolve().parent
    out_dir = Path(out_dir).resolve()
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create --out-dir {out_dir} ({exc.strerror}); choose another folder") from None
    try:
        with open(manifest, newline="", encoding="utf-8-sig") as f:
            records = list(csv.reader(f))
    except (OSError, UnicodeDecodeError, csv.Error) as exc:
        raise UserError(f"cannot read {manifest} as CSV ({exc}); save it as UTF-8 CSV with a header line") from None
    records = [r for r in records if any(c.strip() for c in r)]
    if not records:
        raise UserError(f"{manifest} is empty; give a header line (audio,prompt,...) and one row per render")
    parser = options.parser()
    flags = _options(parser)
    header = [h.strip().lower() for h in records[0]]
    problems: list[str] = []
    columns: dict[str, str] = {}  # header name -> flag ("" for the special columns)
    for name in header:
        key = name.replace("_", "-")
        if name in SPECIAL:
            columns[name] = ""
        elif key in flags:
            columns[name] = "--" + key
        else:
            problems.append(f"header, column {name or '(empty)'}: not a render option; use audio, prompt, out, "
                            f"config or an option of `aadiff-live render --help` without its dashes")
    if len(set(header)) < len(header):
        dup = sorted({h for h in header if header.count(h) > 1})
        problems.append(f"header: column {', '.join(dup)} appears twice; keep one")
    for need in ("audio", "prompt"):
        if need not in header:
            problems.append(f"header: no {need} column; every row needs its {need}")
    if problems:
        raise ManifestError("; ".join(problems) if len(problems) == 1 else _listing(manifest, problems))

    rows: list[Row] = []
    outs: dict[Path, int] = {}
    for number, record in enumerate(records[1:], start=1):
        cells = {h: (record[i].strip() if i < len(record) else "") for i, h in enumerate(header)}
        if len(record) > len(header) and any(c.strip() for c in record[len(header):]):
            problems.append(f"row {number}: more cells than columns; quote a cell that holds a comma")
            continue
        bad = len(problems)
        config = cells.get("config") or ""
        row_config = str((base / config).resolve()) if config else None
        if config and not (base / config).is_file():
            problems.append(f"row {number}, column config: {base / config} not found; check the path")
            continue
        if config:
            try:
                config_from_args(_namespace(parser, [], row_config), default_config)
            except UserError as exc:
                problems.append(f"row {number}, column config: {_one_line(exc)}")
                continue
        argv: list[str] = []
        given: dict[str, str] = {}  # flag -> column, for the flags this row sets
        for name, flag in columns.items():
            value = cells[name]
            if not flag or not value:
                continue
            if flag in PATH_FLAGS:
                value = str((base / value).resolve())
            try:  # this cell alone, parsed and applied to the config: its error names its own column
                words = _tokens(flag, flags[flag[2:]], value)
                config_from_args(_namespace(parser, words, row_config), default_config)
            except UserError as exc:
                problems.append(f"row {number}, column {name}: {_one_line(exc)}")
                continue
            argv += words
            given[flag] = name
        audio, prompt = cells["audio"], cells["prompt"]
        if not audio:
            problems.append(f"row {number}, column audio: empty; give the sound file of this row")
        elif not (base / audio).is_file():
            problems.append(f"row {number}, column audio: {base / audio} not found; check the path (relative to "
                            f"the manifest's folder)")
        if not prompt:
            problems.append(f"row {number}, column prompt: empty; give the prompt of this row")
        if len(problems) > bad:
            continue
        a = _namespace(parser, argv, row_config)
        a.audio = str((base / audio).resolve())
        a.prompt = prompt
        try:
            cfg = config_from_args(a, default_config)
            request = request_of(cfg, audio=a.audio, prompt=prompt, image=a.image, exact=a.exact)
            out = cells.get("out") or default_out(audio, prompt, request)
            a.out = str(out_dir / out)
            Path(a.out).parent.mkdir(parents=True, exist_ok=True)
            job = render_job_from_args(a, cfg)
        except UserError as exc:
            column = _column_of(str(exc), given) or ("config" if config and str(config) in str(exc) else None)
            where = f"row {number}, column {column}" if column else f"row {number}"
            problems.append(f"{where}: {_one_line(exc)}")
            continue
        except OSError as exc:
            problems.append(f"row {number}, column out: cannot create its folder ({exc.strerror})")
            continue
        target = Path(a.out).resolve()
        if target in outs:
            problems.append(f"row {number}: writes {target.name} as row {outs[target]} does; give one of them "
                            f"another out (or change a setting)")
            continue
        outs[target] = number
        rows.append(Row(number, job, job.request()))
    if problems:
        raise ManifestError(_listing(manifest, problems))
    if not rows:
        raise UserError(f"{manifest} has a header and no rows; add one row per render")
    return rows


def _namespace(parser: argparse.ArgumentParser, words: list[str], config: str | None) -> argparse.Namespace:
    """``render``'s parsed arguments for ``words`` (a row, or one cell of it) with the row's config file."""
    a = parser.parse_args(words)
    a.command, a.demo, a.config = "render", False, config
    return a


def _listing(manifest: Path, problems: list[str]) -> str:
    """Several problems: a count, then one per line (each names its row and column)."""
    return f"{manifest}: {len(problems)} problem(s), nothing was rendered; fix them and run again:\n  " + \
        "\n  ".join(problems)
