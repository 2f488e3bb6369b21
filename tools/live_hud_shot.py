"""Screenshot of the live window with its HUD (docs/live_hud.png), from a file played as live input.

Runs the real live app with a window (under Xvfb where there is no screen:
``xvfb-run -a -s "-screen 0 1280x800x24" python tools/live_hud_shot.py``) and saves the window
once the atlas is complete and ``--after`` seconds have passed. ``--model tiny`` has random
weights: with no picture to start from it draws soft blotches of colour, not imagery.

    python tools/live_hud_shot.py [--input tests/data/audio/ibm_thunder.flac] [--out docs/live_hud.png]
"""

from __future__ import annotations

import argparse
import logging
import os
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", default=str(HERE.parent / "tests" / "data" / "audio" / "ibm_thunder.flac"))
    p.add_argument("--prompt", default="a thunderstorm at sea")
    p.add_argument("--out", default=str(HERE.parent / "docs" / "live_hud.png"))
    p.add_argument("--after", type=float, default=2.0, help="seconds after the atlas is complete")
    p.add_argument("--size", default="256")
    p.add_argument("--duration", type=float, default=300.0,
                   help="give up after this many seconds (the atlas fills slowly on a busy CPU)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    from aadiff_live.config import load_config
    from aadiff_live.live import display as display_mod
    from aadiff_live.live.app import LiveApp

    cfg = load_config(None, {"model": {"model": "tiny", "size": a.size}, "tokens": {"tokens": ["thunderstorm"]},
                             "live": {"input": a.input, "loop": True,
                                                                                   "window_size": 640}})
    app = LiveApp(cfg, prompt=a.prompt, no_display=False, duration=a.duration, record=None, monitor=False)
    real_draw = display_mod.Display.draw
    state: dict = {"ready": None, "saved": False}

    def draw(self, hud):
        real_draw(self, hud)
        rt = app.render_thread
        if rt.target is None or not rt.target.atlas.complete or app.present.screen.view is None:
            return
        state["ready"] = state["ready"] or time.monotonic()
        if time.monotonic() - state["ready"] >= a.after:
            self.save(a.out)
            logging.info("saved %s", a.out)
            state["saved"] = True
            app.stop.set()

    display_mod.Display.draw = draw  # type: ignore[method-assign]
    code = app.run()
    if not state["saved"]:
        print(f"live_hud_shot: no screenshot: the atlas was not complete within {a.duration:g} s; "
              "rerun with a larger --duration")
        return code or 1
    return code


if __name__ == "__main__":
    raise SystemExit(main())
