"""The live show in a window against headless: audio-to-photon latency and where it goes.

The real live app (tiny model, 128x128, the frame atlas, ``ibm_thunder.flac`` played in real
time, looped, the word pinned) at ``--display-fps 60``, in these modes, each ``--rounds`` times,
alternating (one mode after the other, round after round, so drift in the machine's load falls
on every mode alike):

- ``headless`` (``--no-display``), twice per round as ``headless`` and ``headless_b``: the A/A
  control (two runs of the same thing differ by this much with nothing changed);
- ``window``: a window with the HUD on and vsync asked for (the defaults), under Xvfb when there
  is no ``$DISPLAY`` (started here);
- ``window_plain``: the same with ``live.late_latch: false`` (each refresh starts right after the
  previous flip, as before late latching);
- ``window_no_hud``: ``window`` without the HUD.

For each mode: display frames/s and audio-to-photon p50/p95/p99 over the frames shown after the
atlas is complete (all rounds pooled), and the split (sound -> weight, weight -> blend, blend ->
flip: p50/p95 of each part). Random weights draw noise: the figures are time, not imagery.

    python tools/bench_window.py --json docs/bench_window.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_atlas import (  # noqa: E402
    PROMPT,
    SPECS,
    THUNDER,
    WORD,
    Xvfb,
    build,
    machine,
    ms_summary,
    steady_indices,
    steady_state,
)
from liverun import run_watched  # noqa: E402

# mode -> (headless, HUD, late latching)
MODES = {"headless": (True, True, True), "headless_b": (True, True, True), "window": (False, True, True),
         "window_plain": (False, True, False), "window_no_hud": (False, False, True)}


def one_run(components, renderer, *, headless: bool, hud: bool, late: bool, steady_s: float) -> dict:
    from aadiff_live.config import load_config
    from aadiff_live.live.app import LiveApp

    cfg = load_config(None, {"model": SPECS["tiny"].config(), "tokens": {"tokens": [WORD]},
                             "live": {"input": str(THUNDER), "loop": True, "display_fps": 60, "hud": hud,
                                      "late_latch": late}})
    stats: dict = {}
    app = LiveApp(cfg, prompt=PROMPT, no_display=headless, duration=120.0, record=None, monitor=False,
                  prebuilt=(components, renderer), stats_out=stats)

    def stop_when_steady() -> None:
        while not app.stop.is_set() and app.render_thread.first_fill_s is None:
            app.stop.wait(0.05)
        app.stop.wait(steady_s)
        app.stop.set()

    code = run_watched(app, stop_when_steady)
    if code != 0:
        raise RuntimeError(f"live run exited {code}")
    keep = steady_indices(stats)
    times = [stats["shown_s"][i] for i in keep]
    split = {k: [v[i] for i in keep if i < len(v)] for k, v in stats["latency_split_s"].items()}
    return {"latency": steady_state(stats)[0], "split": split, "frames": len(times), "missed": app.pacer.missed,
            "span_s": times[-1] - times[0] if len(times) > 1 else 0.0,
            "vsync": bool(app.display is not None and app.display.vsync)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--steady", type=float, default=10.0, help="seconds of show per run after the atlas is complete")
    p.add_argument("--modes", default=",".join(MODES))
    p.add_argument("--json")
    a = p.parse_args(argv)
    modes = a.modes.split(",")
    _, components, renderer = build(SPECS["tiny"])
    pooled: dict[str, dict] = {m: {"latency": [], "split": {}, "frames": 0, "span_s": 0.0} for m in modes}
    load = [round(v, 2) for v in os.getloadavg()]
    with Xvfb() as where:
        for r in range(a.rounds):
            for m in modes:
                headless, hud, late = MODES[m]
                got = one_run(components, renderer, headless=headless, hud=hud, late=late, steady_s=a.steady)
                acc = pooled[m]
                acc["latency"] += got["latency"]
                acc["frames"] += got["frames"]
                acc["span_s"] += got["span_s"]
                acc["vsync"] = got["vsync"]
                acc["missed"] = acc.get("missed", 0) + got["missed"]
                for k, v in got["split"].items():
                    acc["split"].setdefault(k, []).extend(v)
                print(f"round {r + 1} {m}: p95 {ms_summary(got['latency'])['p95_ms']} ms", file=sys.stderr, flush=True)
    out = {"what": (__doc__ or "").splitlines()[0], "random_weights": True, "model": SPECS["tiny"].label(),
           "display_fps_setting": 60, "window": "the default --window-size (768), the picture scaled to it", "where": where,
           "rounds": a.rounds, "steady_s_per_run": a.steady, "machine": machine(), "loadavg_at_start": load,
           "loadavg_at_end": [round(v, 2) for v in os.getloadavg()], "modes": {}}
    for m, acc in pooled.items():
        out["modes"][m] = {
            "hud": MODES[m][1], "window": not MODES[m][0], "late_latch": MODES[m][2], "vsync": acc.get("vsync", False),
            "fps": round(acc["frames"] / acc["span_s"], 2) if acc["span_s"] else None,
            "frames": acc["frames"], "missed_screen_refreshes": acc.get("missed", 0),
            "latency": ms_summary(acc["latency"]),
            "split": {k: ms_summary(v) for k, v in acc["split"].items()},
        }
    text = json.dumps(out, indent=1)
    if a.json:
        Path(a.json).write_text(text + "\n", encoding="utf-8")
    for m, r in out["modes"].items():
        s = r["split"]
        print(f"{m:14s} {r['fps']} fps missed {r['missed_screen_refreshes']}  p50 {r['latency']['p50_ms']}  p95 {r['latency']['p95_ms']} ms   split p50 "
              + " / ".join(f"{s[k]['p50_ms']}" for k in s) + "   p95 " + " / ".join(f"{s[k]['p95_ms']}" for k in s))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
