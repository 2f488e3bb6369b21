"""Draw docs/demo_strip.png: three frames of ``aadiff-live render --demo`` (quiet, the first
thunderclap, quiet again), side by side, each captioned with its time and word weight.

    python tools/demo_strip.py [--out docs/demo_strip.png] [--size 128] [--zoom 2] [--times 0.5 1.07 1.97]

The frames are the render's lossless PNGs (``--frames``); the weights come from its sidecar.
Random-weight output: the README says so under the strip.
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from PIL import Image, ImageDraw

REPO = Path(__file__).resolve().parents[1]
FPS = 30
CAPTION = 18  # pixels of caption under each frame
GAP = 10


def main(argv: list[str] | None = None) -> int:
    from aadiff_live.cli import main as cli
    from aadiff_live.output.sidecar import read_frames

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=REPO / "docs" / "demo_strip.png")
    p.add_argument("--size", type=int, default=128)
    p.add_argument("--zoom", type=int, default=2, help="each frame is shown enlarged this many times (nearest pixel)")
    p.add_argument("--times", type=float, nargs=3, default=[0.5, 1.07, 1.97], help="seconds: quiet, loud, quiet")
    a = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        video, frames = Path(tmp) / "demo.mp4", Path(tmp) / "frames"
        code = cli(["render", "--demo", "--out", str(video), "--size", str(a.size), "--fps", str(FPS),
                    "--frames", str(frames)])
        if code:
            return code
        weights = read_frames(Path(str(video) + ".json"))["weight"]
        paths = sorted(frames.glob("frame_*.png"))
        picks = [min(round(t * FPS), len(paths) - 1) for t in a.times]
        shots = [Image.open(paths[k]).convert("RGB") for k in picks]
    shots = [s.resize((s.width * a.zoom, s.height * a.zoom), Image.Resampling.NEAREST) for s in shots]
    w, h = shots[0].size
    strip = Image.new("RGB", (3 * w + 2 * GAP, h + CAPTION), "white")
    draw = ImageDraw.Draw(strip)
    for i, (k, shot) in enumerate(zip(picks, shots, strict=True)):
        x = i * (w + GAP)
        strip.paste(shot, (x, 0))
        draw.text((x + 2, h + 3), f"t={k / FPS:.2f} s,  w={weights[k]:.2f}", fill="black")
    strip.save(a.out)
    print(f"wrote {a.out}: frames {picks} at {FPS} fps, weights {[round(weights[k], 2) for k in picks]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
