"""Write a diffusers-layout model folder with random weights from a real checkpoint's configs.

    python tools/make_random_model.py ../shared/models/runwayml--stable-diffusion-v1-5 /tmp/sd15 --shrink
    aadiff-live render --model /tmp/sd15 --audio clip.wav --prompt "a forest fire" --out v.mp4

``--shrink``: the same classes, block types, scheduler and real tokenizers with small widths (for
tests); without it, the full-size architecture (for timing). ``--turbo``: sd-turbo's scheduler. Random weights draw noise, not
pictures: never present the output as imagery.
"""

from __future__ import annotations

import argparse
import logging
import sys

from aadiff_live.errors import UserError
from aadiff_live.models.random_model import write_random_model


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("config_folder", help="a hub repo's configs and tokenizers in diffusers layout (no weights)")
    p.add_argument("out", help="folder to write (diffusers layout)")
    p.add_argument("--shrink", action="store_true", help="small widths and depths (tests)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--turbo", action="store_true", help="sd-turbo's Euler 'trailing' scheduler instead of the folder's "
                   "(for SD 2.1-base's configs: the sd-turbo architecture); name OUT with 'turbo' for 1 step")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="make_random_model: %(message)s")
    try:
        out = write_random_model(a.config_folder, a.out, shrink=a.shrink, seed=a.seed, turbo=a.turbo)
    except UserError as exc:
        print(f"make_random_model: error: {exc}", file=sys.stderr)
        return 2
    logging.getLogger(__name__).info("wrote %s (random weights: noise, not pictures)", out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
