"""The docs' generated reference pages are what tools/gen_reference.py writes from the code today, and
the README's links into the docs lead somewhere."""

from __future__ import annotations

import re
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tools"))

import gen_reference  # noqa: E402


def test_generated_reference_pages_are_current():
    stale = [str(p.relative_to(REPO)) for p, text in gen_reference.pages().items()
             if not p.is_file() or p.read_text(encoding="utf-8") != text]
    assert not stale, f"out of date: {stale}; run python tools/gen_reference.py and commit the pages"


def test_the_config_reference_lists_every_key_with_the_config_default():
    from aadiff_live.config import Config

    page = gen_reference.config_page()
    for section, field in Config.model_fields.items():
        assert f"## {section}\n" in page
        for key in getattr(field.annotation, "model_fields", {}):
            assert f"| `{key}` |" in page, f"{section}.{key} missing"
    assert "| `fps` | `--fps` | `30.0` |" in page  # the value, from Config


def test_readme_links_exist():
    text = (REPO / "README.md").read_text(encoding="utf-8")
    links = re.findall(r"\]\(([^)#\s]+)(?:#[^)]*)?\)", text)
    local = [link for link in links if not link.startswith(("http://", "https://"))]
    assert local, "the README links into docs/"
    missing = [link for link in local if not (REPO / link).exists()]
    assert not missing, missing
