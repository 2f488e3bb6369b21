"""Draw docs/architecture.svg: one box per stage (folder or command module), an arrow where a stage
imports another, layered by the import graph (what a stage uses sits below it).

    python tools/draw_architecture.py [--out docs/architecture.svg]

The graph is the one tests/test_imports.py checks for cycles (every import statement of every
module, function-level ones included); ``errors`` (imported by almost everything) is left out.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from test_imports import ROOT, import_graph, stage_graph  # noqa: E402

LEAVE_OUT = {"errors", "__main__", ""}
SLOT = 2.6  # horizontal room per box, in the units of the box width (2.35)
ROLE = {
    "audio": "decode files, demo sound, sample rates",
    "analysis": "envelope, sources, routes -> weight",
    "tokens": "words, positions, word choice, CLAP",
    "models": "load, tiny / random, attention processor",
    "backends": "torch, ONNX Runtime, TensorRT, engines/",
    "rendering": "cached base, batched render, atlas",
    "output": "video, sidecar, plot, video out",
    "control": "OSC, MIDI, scenes",
    "web": "status page, /health, /metrics",
    "live": "threads + messages, present, health, rig",
    "mailbox": "latest-value hand-over",
    "config": "typed config (pydantic)",
    "render": "aadiff-live render",
    "build_engine": "aadiff-live build-engine",
    "cli": "command line",
}


def stages() -> dict[str, set[str]]:
    short = lambda m: m.split(".", 1)[1] if "." in m else ""  # noqa: E731
    g = {short(a): {short(b) for b in bs} - LEAVE_OUT for a, bs in stage_graph(import_graph()).items()}
    return {a: bs for a, bs in g.items() if a not in LEAVE_OUT}


def layers(g: dict[str, set[str]]) -> dict[str, int]:
    """Longest path down to a stage that imports nothing (0): a stage sits above all it uses."""
    depth: dict[str, int] = {}

    def d(n: str) -> int:
        if n not in depth:
            depth[n] = 1 + max((d(m) for m in g.get(n, ())), default=-1)
        return depth[n]

    for n in g:
        d(n)
    return depth


def contents(stage: str) -> str:
    folder = ROOT / stage
    if folder.is_dir():
        names = sorted(p.stem for p in folder.glob("*.py") if p.stem != "__init__")
        return f"{stage}/\n" + "\n".join(", ".join(names[i:i + 3]) for i in range(0, len(names), 3))
    return f"{stage}.py"


def draw(out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.patches import FancyArrowPatch, FancyBboxPatch

    g = stages()
    depth = layers(g)
    rows: dict[int, list[str]] = {}
    for n in sorted(g, key=lambda n: (depth[n], n)):
        rows.setdefault(depth[n], []).append(n)
    width = max(len(r) for r in rows.values())
    pos = {}
    for level, names in rows.items():
        for i, n in enumerate(names):
            pos[n] = ((i + 0.5) * SLOT * width / len(names), level)
    fig, ax = plt.subplots(figsize=(2.6 * width, 1.5 * len(rows)))
    bw, bh = 2.35, 0.74
    for n, (x, y) in pos.items():
        is_folder = (ROOT / n).is_dir()
        ax.add_patch(FancyBboxPatch((x - bw / 2, y - bh / 2), bw, bh, boxstyle="round,pad=0.04",
                                    fc="#e8f0fb" if is_folder else "#f3f3f3", ec="#35507a", lw=1.2))
        ax.text(x, y + 0.1, contents(n), ha="center", va="center", fontsize=7.5, family="monospace")
        ax.text(x, y - bh / 2 + 0.07, ROLE.get(n, ""), ha="center", va="center", fontsize=6.5, color="#444",
                style="italic")
    for a, bs in g.items():
        for b in bs:
            (xa, ya), (xb, yb) = pos[a], pos[b]
            ax.add_patch(FancyArrowPatch((xa, ya - bh / 2), (xb, yb + bh / 2), arrowstyle="-|>", mutation_scale=9,
                                         color="#8a8a8a", lw=0.6, alpha=0.8, connectionstyle="arc3,rad=0.06",
                                         shrinkA=1, shrinkB=1))
    ax.set_xlim(-0.2, SLOT * width + 0.2)
    ax.set_ylim(-0.6, len(rows) - 0.4)
    ax.axis("off")
    ax.set_title("aadiff-live: one folder per stage; arrow A -> B: A imports B (no cycles: tests/test_imports.py)",
                 fontsize=9)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, metadata={"Date": None})
    plt.close(fig)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(REPO / "docs" / "architecture.svg"))
    a = p.parse_args(argv)
    draw(Path(a.out))
    print(a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
