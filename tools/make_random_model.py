"""Write a diffusers-layout model folder with random weights, from a family's architecture or a checkpoint's configs.

    python tools/make_random_model.py sd15 /tmp/sd15 --shrink
    aadiff-live render --model /tmp/sd15 --audio clip.wav --prompt "a forest fire" --out v.mp4

SOURCE is a family (sd15, lcm, sd-turbo, sdxl-turbo: the published architecture and its real CLIP
tokenizers, aadiff_live/models/architectures.py) or a folder holding a hub repo's configs and
tokenizers. ``--shrink``: the same classes, block types, scheduler and real tokenizers with small
widths (for tests); without it, the full-size architecture (for timing). Name OUT with 'turbo' for
a turbo family's 1 step. Random weights draw noise, not pictures: never present the output as imagery.
"""

from __future__ import annotations

import argparse
import logging
import sys
import tempfile
from pathlib import Path

from aadiff_live.errors import UserError
from aadiff_live.models.architectures import FAMILIES, write_layout
from aadiff_live.models.random_model import write_random_model

CLIP_BPE = Path(__file__).resolve().parents[1] / "tests" / "data" / "models" / "bpe_simple_vocab_16e6.txt.gz"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("source", help=f"a family ({', '.join(FAMILIES)}) or a folder with a hub repo's configs and "
                   "tokenizers in diffusers layout (no weights)")
    p.add_argument("out", help="folder to write (diffusers layout)")
    p.add_argument("--shrink", action="store_true", help="small widths and depths (tests)")
    p.add_argument("--seed", type=int, default=0)
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="make_random_model: %(message)s")
    if a.source not in FAMILIES and not Path(a.source).is_dir():
        print(f"make_random_model: error: {a.source!r} is neither a family ({', '.join(FAMILIES)}) nor a folder",
              file=sys.stderr)
        return 2
    try:
        with tempfile.TemporaryDirectory(prefix="layout-") as tmp:
            src = write_layout(a.source, Path(tmp) / a.source, CLIP_BPE) if a.source in FAMILIES else a.source
            out = write_random_model(src, a.out, shrink=a.shrink, seed=a.seed, source=a.source)
    except UserError as exc:
        print(f"make_random_model: error: {exc}", file=sys.stderr)
        return 2
    logging.getLogger(__name__).info("wrote %s (random weights: noise, not pictures)", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
