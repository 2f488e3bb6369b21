"""What this machine offers: the CPU's name and instruction flags (``/proc/cpuinfo``), installed packages."""

from __future__ import annotations

import importlib.util
import platform
from pathlib import Path

CPUINFO = Path("/proc/cpuinfo")


def cpuinfo(path: Path = CPUINFO) -> dict[str, str]:
    """The first processor's ``key: value`` lines of ``/proc/cpuinfo``; empty where there is none (macOS)."""
    fields: dict[str, str] = {}
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return fields
    for line in text.splitlines():
        if not line.strip():
            if fields:
                break  # the next processor repeats the same fields
            continue
        key, sep, value = line.partition(":")
        if sep:
            fields.setdefault(key.strip(), value.strip())
    return fields


def cpu_flags(path: Path = CPUINFO) -> set[str]:
    return set(cpuinfo(path).get("flags", "").split())


def cpu_name(path: Path = CPUINFO) -> str:
    return cpuinfo(path).get("model name") or platform.processor() or platform.machine()


def cpu_has_bf16(path: Path = CPUINFO) -> bool:
    """Native bf16 matrix instructions (AVX512-BF16 or AMX): torch bf16 is then about 2x fp32 here."""
    return bool(cpu_flags(path) & {"avx512_bf16", "amx_bf16"})


def importable(name: str) -> bool:
    """Whether package ``name`` is installed (found without importing it)."""
    return importlib.util.find_spec(name) is not None
