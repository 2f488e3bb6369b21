"""What the status page costs the display: fps and audio-to-photon latency without ``--web`` and with it while a
client polls the page's status and preview.

Each run is the whole live app headless in this process (``--model tiny``, a noise-burst file as input, the
renderer built once and shared by every run), for ``--run-s`` seconds; only the steady state counts (from
1 s after the atlas is complete). A: no ``--web``. B: ``--web`` with a client in another process polling
``/api/status`` twice a second and ``/api/preview.jpg`` at the preview rate (what an open page does;
``--clients`` of them). Rounds of three runs A, B, A' (the order rotating every round); per round the
ratios B/A and A'/A (the A/A control) of the display fps, the latency median and 95th percentile, and the
99th percentile of the interval between refreshes; reported: their medians and quartiles.

    python tools/bench_web.py [--rounds 5] [--run-s 8] [--json docs/bench_web.json]
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")
HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from benchstats import ratio_summary  # noqa: E402

TOKEN = "bench-token-000000"
CLIENT = textwrap.dedent("""
    import json, sys, threading, time, urllib.request
    base, token, preview_hz, n = sys.argv[1], sys.argv[2], float(sys.argv[3]), int(sys.argv[4])
    counts = {"status": 0, "preview": 0, "failed": 0}
    def poll(path, hz):
        req = urllib.request.Request(base + path, headers={"Authorization": "Bearer " + token})
        nxt = time.monotonic()
        while True:
            try:
                with urllib.request.urlopen(req, timeout=5) as r:
                    r.read()
                counts["status" if "status" in path else "preview"] += 1
            except Exception:
                counts["failed"] += 1
            nxt += 1.0 / hz
            time.sleep(max(0.0, nxt - time.monotonic()))
    for _ in range(n):
        threading.Thread(target=poll, args=("/api/status", 2.0), daemon=True).start()
        threading.Thread(target=poll, args=("/api/preview.jpg", preview_hz), daemon=True).start()
    sys.stdin.readline()
    print(json.dumps(counts), flush=True)
""")


def steady(stats: dict, settle_s: float = 1.0) -> dict:
    """Display fps, latency p50/p95 (ms) and the refresh interval's p99 (ms) from 1 s after the atlas filled."""
    shown = np.asarray(stats["shown_s"])
    lat = np.asarray(stats["latencies_s"])
    fill = stats["atlas_fill_s"]
    if fill is None:
        raise SystemExit("the atlas never filled: raise --run-s")
    keep = shown > fill + settle_s
    t, lat = shown[keep], lat[keep]
    if t.size < 30:
        raise SystemExit(f"only {t.size} frames in the steady state: raise --run-s")
    gaps = np.diff(t)
    return {"fps": (t.size - 1) / (t[-1] - t[0]), "latency_p50_ms": float(np.median(lat) * 1000),
            "latency_p95_ms": float(np.percentile(lat, 95) * 1000),
            "interval_p99_ms": float(np.percentile(gaps, 99) * 1000), "frames": int(t.size)}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--run-s", type=float, default=8.0)
    p.add_argument("--clients", type=int, default=1, help="pages polling at once during B")
    p.add_argument("--size", default="128")
    p.add_argument("--json", help="write the results here (e.g. docs/bench_web.json)")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.ERROR)
    import soundfile as sf

    from aadiff_live.backends.hardware import cpu_name
    from aadiff_live.config import load_config
    from aadiff_live.live.app import LiveApp
    from aadiff_live.output.sidecar import write_json_atomic
    from aadiff_live.rendering.build import build_renderer

    load_start = [round(x, 2) for x in os.getloadavg()]
    tmp = Path(tempfile.mkdtemp(prefix="bench_web_"))
    sr = 16000
    t = np.arange(int((a.run_s + 30) * sr)) / sr
    sf.write(str(tmp / "in.wav"), (0.3 * ((t % 1) < 0.5) * np.random.default_rng(0).standard_normal(t.size))
             .astype(np.float32), sr)

    def cfg(web: bool):
        return load_config(None, {"model": {"model": "tiny", "size": a.size}, "atlas": {"levels": 9},
                                  "live": {"input": str(tmp / "in.wav")}, "tokens": {"tokens": ["fire"]},
                                  "web": {"listen": "127.0.0.1:0", "token": TOKEN} if web else {}})

    components, renderer = build_renderer(cfg(False), "a fire")
    polled: list[dict] = []

    def run(web: bool) -> dict:
        stats: dict = {}
        app = LiveApp(cfg(web), prompt="a fire", no_display=True, duration=a.run_s, record=None, monitor=False,
                      prebuilt=(components, renderer), stats_out=stats)
        client = None
        if web:
            client = subprocess.Popen([sys.executable, "-c", CLIENT, f"http://127.0.0.1:{app.web.port}", TOKEN,
                                       str(app.cfg.web.preview_fps), str(a.clients)],
                                      stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        try:
            app.run()
        finally:
            if client is not None:
                out, _ = client.communicate("\n", timeout=10)
                polled.append(json.loads(out.strip() or "{}"))
        return steady(stats)

    run(False)  # warm-up (imports, first atlas)
    keys = ("fps", "latency_p50_ms", "latency_p95_ms", "interval_p99_ms")
    res: dict[str, list[dict]] = {"a": [], "b": [], "a2": []}
    order = [("a", False), ("b", True), ("a2", False)]
    for i in range(a.rounds):
        k = i % 3
        for name, web in order[k:] + order[:k]:
            res[name].append(run(web))
            print(f"round {i + 1} {name}: " + ", ".join(f"{key} {res[name][-1][key]:.2f}" for key in keys),
                  flush=True)
    load_end = [round(x, 2) for x in os.getloadavg()]
    out = {"what": f"the live app headless ({a.size}x{a.size} tiny model, 9 atlas levels, display 60 fps), "
                   f"{a.run_s:g} s runs, steady state: A without --web, B with --web and {a.clients} client(s) "
                   "polling /api/status at 2 Hz and /api/preview.jpg at the preview rate",
           "rounds": a.rounds, "run_s": a.run_s, "clients": a.clients,
           "medians": {name: {key: round(statistics.median(r[key] for r in runs), 3) for key in keys}
                       for name, runs in res.items()},
           "ratios": {key: ratio_summary([r[key] for r in res["a"]], [r[key] for r in res["b"]],
                                         [r[key] for r in res["a2"]]) for key in keys},
           "client_requests": polled, "runs": res, "cpu": cpu_name(), "cpu_count": os.cpu_count(),
           "loadavg_start": load_start, "loadavg_end": load_end}
    for key in keys:
        r = out["ratios"][key]
        print(f"{key}: B/A {r['ratio']['median']:.3f} [{r['ratio']['q1']:.3f}-{r['ratio']['q3']:.3f}] "
              f"(A/A {r['aa']['median']:.3f} [{r['aa']['q1']:.3f}-{r['aa']['q3']:.3f}]); medians A "
              f"{out['medians']['a'][key]:.2f}, B {out['medians']['b'][key]:.2f}")
    print(f"client requests answered per B run: {polled[-1] if polled else None}; load {load_start} -> {load_end}")
    if a.json:
        write_json_atomic(a.json, json.loads(json.dumps(out)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
