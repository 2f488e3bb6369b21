"""The repository stands on its own: nothing tracked reads or names a folder beside the checkout
or the build machine's paths, and every file under tests/data is listed, with its source and licence, in tests/data/MANIFEST.md."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = REPO / "tests" / "data"
SIBLING = "shared"  # the folder name, joined below so that this file does not name the paths itself
FORBIDDEN = re.compile("|".join([
    re.escape(".." + "/" + SIBLING),  # a relative path to a sibling folder
    re.escape("/" + "work/"),  # the build machine's working folder (its shared folder, lock files, ...)
    r"""["']""" + SIBLING + r"""["']\s*[/,]\s*["'](audio|models)""",  # a path built from the folder name and "audio" or "models"
    r"parents?\[?\d?\]?\s*/\s*[\"']" + SIBLING + r"[\"']",  # a path built from the checkout's parent
]))


def _tracked() -> list[Path]:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout: the tracked files are unknown")
    out = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout
    return [REPO / p for p in out.decode().split("\0") if p]


def test_no_tracked_file_names_a_folder_beside_the_checkout():
    hits = []
    for path in _tracked():
        if not path.is_file():
            continue
        text = path.read_bytes().decode("utf-8", errors="replace")
        hits += [f"{path.relative_to(REPO)}:{text.count(chr(10), 0, m.start()) + 1}: {m.group(0)}"
                 for m in FORBIDDEN.finditer(text)]
    assert not hits, "tracked files name a folder outside the repository:\n" + "\n".join(hits)


def test_the_pattern_catches_the_old_forms():
    for s in (".." + "/" + SIBLING + "/audio", "/work" + "/" + SIBLING + "/models/x",
              'REPO.parent / "' + SIBLING + '" / "audio"', 'joinpath("' + SIBLING + '", "audio", "x.wav")'):
        assert FORBIDDEN.search(s), s
    for s in ("shared_audio", "a shared machine", "shared by the loader", "shared/", "/workspace/x", "framework/"):
        assert not FORBIDDEN.search(s), s


def _manifest() -> dict[str, str]:
    rows = {}
    for line in (DATA / "MANIFEST.md").read_text(encoding="utf-8").splitlines():
        m = re.match(r"\|\s*`([^`]+)`\s*\|(.*)\|\s*(`([0-9a-f]{64})`|\(text\))\s*\|\s*$", line)
        if m:
            rows[m.group(1)] = m.group(4) or ""
    return rows


def test_every_data_file_is_in_the_manifest_with_its_hash():
    rows = _manifest()
    on_disk = {p.relative_to(DATA).as_posix() for p in DATA.rglob("*") if p.is_file() and "__pycache__" not in p.parts}
    assert on_disk == set(rows), f"unlisted: {sorted(on_disk - set(rows))}; listed but absent: {sorted(set(rows) - on_disk)}"
    for name, sha in rows.items():
        if sha:
            assert hashlib.sha256((DATA / name).read_bytes()).hexdigest() == sha, name


def test_every_data_file_has_a_permissive_licence():
    rows = [ln.split("|")[1:-1] for ln in (DATA / "MANIFEST.md").read_text(encoding="utf-8").splitlines()
            if ln.startswith("| `")]
    assert rows
    for cells in rows:
        name, licence = cells[0].strip(), cells[4].strip()
        assert licence.startswith(("CC0", "CC BY (", "CC BY 3", "CC BY 4", "MIT", "Apache", "BSD")), (name, licence)
        assert "NC" not in licence.split("(")[0] and "SA" not in licence.split("(")[0], (name, licence)


def test_the_data_stays_small():
    total = sum(p.stat().st_size for p in DATA.rglob("*") if p.is_file())
    assert total < 4 * 2**20, total
