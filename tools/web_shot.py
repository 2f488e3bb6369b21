"""Screenshot of the status page (docs/img/web_page.png) in headless Chromium, from a file played as live input.

Runs the real live app headless with ``--web`` and ``--record`` (into a temporary folder), opens the page in
the system's Chromium through Playwright (no browser download) and saves it once the last minute's plot has
``--after`` seconds in it. ``--model tiny`` has random weights: with no picture to start from the preview
shows soft blotches of colour, not imagery.

    python tools/web_shot.py [--input tests/data/audio/ibm_thunder.flac] [--out docs/img/web_page.png]
    python tools/web_shot.py --width 390 --height 844 --no-full-page --out docs/img/web_page_phone.png
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from liverun import run_watched  # noqa: E402

TOKEN = "screenshot-token-0000"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--input", default=str(HERE.parent / "tests" / "data" / "audio" / "ibm_thunder.flac"))
    p.add_argument("--prompt", default="a thunderstorm at sea")
    p.add_argument("--out", default=str(HERE.parent / "docs" / "img" / "web_page.png"))
    p.add_argument("--after", type=float, default=25.0, help="seconds of plot before the shot")
    p.add_argument("--size", default="256")
    p.add_argument("--width", type=int, default=1200, help="browser window width (390: a phone)")
    p.add_argument("--height", type=int, default=900)
    p.add_argument("--full-page", action=argparse.BooleanOptionalAction, default=True,
                   help="the whole page (--no-full-page: what the window shows)")
    p.add_argument("--chromium", default=shutil.which("chromium") or shutil.which("chromium-browser"))
    a = p.parse_args(argv)
    if not a.chromium:
        print("web_shot: Chromium not found; install it (Debian: apt-get install chromium) or pass --chromium")
        return 2
    logging.basicConfig(level=logging.INFO, format="%(name)s: %(message)s")
    from playwright.sync_api import sync_playwright

    from aadiff_live.config import load_config
    from aadiff_live.live.app import LiveApp

    out = Path(a.out).resolve()
    tmp = Path(tempfile.mkdtemp(prefix="web_shot_"))
    src = tmp / Path(a.input).name
    shutil.copy(a.input, src)
    (tmp / "recordings").mkdir()
    os.chdir(tmp)  # the page shows the paths as given: short, relative ones (nothing of this machine)
    cfg = load_config(None, {"model": {"model": "tiny", "size": a.size},
                             "live": {"input": src.name, "loop": True, "display_fps": 30},
                             "tokens": {"tokens": ["thunderstorm"]},
                             "web": {"listen": "127.0.0.1:0", "token": TOKEN}})
    app = LiveApp(cfg, prompt=a.prompt, no_display=True, duration=120.0, record="recordings/show.mp4",
                  monitor=False)

    def shoot() -> None:
        with sync_playwright() as pw:
            browser = pw.chromium.launch(executable_path=a.chromium, headless=True)
            try:
                page = browser.new_page(viewport={"width": a.width, "height": a.height}, device_scale_factor=1)
                page.goto(f"http://127.0.0.1:{app.web.port}/?token={TOKEN}")
                page.wait_for_function("() => document.body.dataset.live === '1'", timeout=30000)
                page.wait_for_timeout(a.after * 1000)
                out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(out), full_page=a.full_page)
            finally:
                browser.close()
        app.stop.set()

    try:
        run_watched(app, shoot)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
