"""The ``engines/`` cache: compiled graphs named by what they were built from (docs/design.md §5).

One folder per engine, ``<model>__<part>__<W>x<H>__<precision>__<backend>``, holding the files
(``model.onnx`` + ``model.onnx.data``; for TensorRT also ``model.plan``) and ``manifest.json``,
which records the model identity (config hash and a weights fingerprint), resolution, batch range,
precision, backend, device, library versions and each file's size and hash. A run:
- reuses an engine whose manifest matches what it would build;
- rebuilds a *stale* one (same folder, built from something else: another model identity, size,
  precision, TensorRT version or GPU) and says why;
- rejects a *corrupt* one (unreadable manifest, missing, truncated or altered file) with a
  message and rebuilds it. Nothing is silently ignored, and nothing built for something else is
  ever loaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import platform
import re
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from aadiff_live.backends.hardware import cpu_name
from aadiff_live.errors import UserError

log = logging.getLogger(__name__)

ENGINE_FORMAT = 1
MANIFEST = "manifest.json"
_SAMPLE = 1 << 20  # bytes hashed at each end of a large file


def default_engines_dir() -> Path:
    """``$AADIFF_ENGINES`` if set, else ``./engines`` (the repository's top-level folder)."""
    return Path(os.environ.get("AADIFF_ENGINES", "engines"))


def weights_fingerprint(module: torch.nn.Module, n: int = 16) -> str:
    """A cheap fingerprint of the weights: mean |w| of ``n`` tensors spread over the model.

    Rounded to 4 significant digits so that loading the same weights in another dtype gives the
    same fingerprint, while different weights (another fine-tune with the same config) do not.
    """
    params = list(module.parameters())
    if not params:
        return "none"
    picks = sorted({round(i * (len(params) - 1) / max(n - 1, 1)) for i in range(n)})
    with torch.no_grad():
        vals = [f"{float(params[i].detach().float().abs().mean()):.4g}" for i in picks]
    return hashlib.sha256((str(len(params)) + ",".join(vals)).encode()).hexdigest()[:16]


def config_hash(config) -> str:
    """A stable hash of a diffusers config: public keys only, sets sorted (``_use_default_values``
    is a set whose ``str`` changes from one process to the next)."""

    def norm(v):
        if isinstance(v, (set, frozenset)):
            return sorted(map(str, v))
        if isinstance(v, (list, tuple)):
            return [norm(x) for x in v]
        if isinstance(v, dict):
            return {str(k): norm(x) for k, x in v.items()}
        return v if isinstance(v, (int, float, str, bool, type(None))) else str(v)

    public = {k: norm(v) for k, v in dict(config).items() if not str(k).startswith("_")}
    return hashlib.sha256(json.dumps(public, sort_keys=True).encode()).hexdigest()[:16]


def part_identity(module: torch.nn.Module) -> str:
    """What an engine of ``module`` is built from: its config and a fingerprint of its weights."""
    return f"{config_hash(module.config)}-{weights_fingerprint(module)}"


@dataclass(frozen=True)
class EngineSpec:
    """What an engine is built from; its manifest must match this exactly to be used."""

    model: str  # the model name or path
    part: str  # "unet", "decoder-kl" or "decoder-tiny"
    identity: str  # config hash + weights fingerprint of the part (part_identity)
    width: int
    height: int
    precision: str  # "fp32" or "fp16"
    backend: str  # "onnxruntime" or "tensorrt"
    device: str = "any"  # "any" for ONNX graphs; the GPU name for TensorRT plans
    batch_min: int = 1
    batch_max: int = 2  # 1 without guidance, 2 with (unconditional + conditional)
    lib_version: str = ""  # TensorRT version for plans (plans are not portable across versions)
    format: int = ENGINE_FORMAT

    @property
    def folder_name(self) -> str:
        slug = re.sub(r"[^A-Za-z0-9._-]+", "-", self.model).strip("-.")[-60:] or "model"
        return f"{slug}__{self.part}__{self.width}x{self.height}__{self.precision}__{self.backend}"


@dataclass
class Engine:
    spec: EngineSpec
    folder: Path
    files: dict[str, Path] = field(default_factory=dict)  # role -> path, e.g. "onnx", "plan"


def file_record(path: Path) -> dict:
    """Size and a hash of the file (whole file if small, first and last MiB + size otherwise)."""
    size = path.stat().st_size
    h = hashlib.sha256()
    with path.open("rb") as f:
        if size <= 4 * _SAMPLE:
            h.update(f.read())
        else:
            h.update(f.read(_SAMPLE))
            f.seek(size - _SAMPLE)
            h.update(f.read(_SAMPLE))
    return {"bytes": size, "sha256": h.hexdigest()}


def library_versions() -> dict[str, str]:
    import onnx

    out = {"torch": torch.__version__, "onnx": onnx.__version__}
    for name in ("diffusers", "onnxruntime", "tensorrt"):
        try:
            out[name] = __import__(name).__version__
        except ImportError:
            continue
    return out


def check_engine(folder: Path, spec: EngineSpec) -> tuple[str, str]:
    """``("ok"|"missing"|"stale"|"corrupt", reason)`` for the engine in ``folder``."""
    mpath = folder / MANIFEST
    if not folder.exists():
        return "missing", "not built yet"
    if not mpath.is_file():
        return "corrupt", f"{mpath} is missing (an interrupted build?)"
    try:
        manifest = json.loads(mpath.read_text(encoding="utf-8"))
        built = manifest["spec"]
        files = manifest["files"]
        if not isinstance(built, dict) or not isinstance(files, dict) or not files:
            raise ValueError("spec/files have the wrong type")
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return "corrupt", f"{mpath} is unreadable ({type(exc).__name__}: {str(exc)[:80]})"
    wanted = asdict(spec)
    diffs = [f"{k} {built.get(k)!r} -> {v!r}" for k, v in wanted.items() if built.get(k) != v]
    if diffs:
        return "stale", "built for something else: " + "; ".join(diffs)
    for name, rec in files.items():
        p = folder / name
        if not p.is_file():
            return "corrupt", f"{p} is missing"
        try:
            now = file_record(p)
        except OSError as exc:
            return "corrupt", f"{p} is unreadable ({exc})"
        if now["bytes"] != rec.get("bytes"):
            return "corrupt", f"{p} has {now['bytes']} bytes, the manifest says {rec.get('bytes')} (truncated?)"
        if now["sha256"] != rec.get("sha256"):
            return "corrupt", f"{p} does not match the hash in its manifest (altered or damaged)"
    return "ok", "matches"


BuildStep = tuple[str, Callable[[Path], None]]


def ensure_engine(spec: EngineSpec, steps: Sequence[BuildStep], roles: dict[str, str], *,
                  engines_dir: Path | str | None = None, force: bool = False, build: bool = True) -> Engine:
    """Return the engine for ``spec``, building it (``steps``, with a progress bar) when needed.

    ``roles`` maps a role ("onnx", "plan") to a file name inside the folder. With
    ``build=False`` a missing, stale or corrupt engine raises :class:`UserError` instead.
    """
    root = Path(engines_dir) if engines_dir is not None else default_engines_dir()
    folder = root / spec.folder_name
    engine = Engine(spec, folder, {role: folder / name for role, name in roles.items()})
    state, reason = check_engine(folder, spec)
    if state == "ok" and not force:
        log.info("engine %s: reusing (%s)", folder, reason)
        return engine
    if state in ("stale", "corrupt"):
        log.warning("engine %s is %s (%s); rebuilding it", folder, state, reason)
    elif force and state == "ok":
        log.info("engine %s: rebuilding (--force)", folder)
    if not build:
        raise UserError(f"engine {folder} is {state} ({reason}); build it with `aadiff-live build-engine`")
    build_engine(engine, steps)
    return engine


def build_engine(engine: Engine, steps: Sequence[BuildStep]) -> None:
    """Run the build ``steps`` into a scratch folder, write the manifest, then swap it in."""
    from tqdm import tqdm

    folder = engine.folder
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = folder.with_name(folder.name + f".building-{os.getpid()}")
    shutil.rmtree(scratch, ignore_errors=True)
    scratch.mkdir()
    t0 = time.perf_counter()
    log.info("building engine %s (%s, %dx%d, %s)", folder.name, engine.spec.backend, engine.spec.width,
             engine.spec.height, engine.spec.precision)
    with tqdm(total=len(steps) + 1, desc=f"build {engine.spec.part}", unit="step", leave=True) as bar:
        for label, fn in steps:
            bar.set_postfix_str(label)
            fn(scratch)
            bar.update(1)
        bar.set_postfix_str("manifest")
        files = {p.name: file_record(p) for p in sorted(scratch.iterdir()) if p.is_file()}
        manifest = {
            "spec": asdict(engine.spec),
            "files": files,
            "versions": library_versions(),
            "built_on": {"cpu": cpu_name(), "platform": platform.platform(),
                         "gpu": torch.cuda.get_device_name() if torch.cuda.is_available() else None},
            "built_at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "build_seconds": round(time.perf_counter() - t0, 1),
        }
        (scratch / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n", encoding="utf-8")
        bar.update(1)
    if folder.exists():
        shutil.rmtree(folder)
    scratch.rename(folder)
    log.info("engine %s built in %.0f s", folder, time.perf_counter() - t0)
