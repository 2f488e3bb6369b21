"""Soak test: headless live mode with ``--record --segment-minutes N`` on a sound file played in a loop.

Every ``--every`` seconds it samples the process's resident memory (RSS), thread count, open file
descriptors, the mailbox and recorder queue depths, the audio waiting in the recorder, and the
dropped-frame counters. At the end every closed segment is decoded and checked (video frames =
its sidecar's row count, an audio stream as long as the sidecar says, ``complete``). The RSS slope
after warm-up is a least-squares fit in MB per minute. Everything goes to one JSON file.

    python tools/soak.py --minutes 60 --segment-minutes 5 --out /tmp/soak --json docs/soak_1h.json

The tiny random-weight model draws noise: the soak measures the app's plumbing, not pictures.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import platform
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from liverun import run_watched  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
DEFAULT_INPUT = REPO / "tests" / "data" / "audio" / "ibm_thunder.flac"
log = logging.getLogger("soak")


def rss_mb() -> float:
    with open("/proc/self/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status (Linux only)")


def open_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd"))
    except OSError:
        return -1


def cpu_name() -> str:
    try:
        from aadiff_live.backends.hardware import cpu_name as name

        return name()
    except Exception:  # noqa: BLE001 - descriptive only
        return platform.processor() or platform.machine()


def sample(app, t0: float) -> dict:
    rec = app.recorder
    return {
        "t_s": round(time.monotonic() - t0, 2), "rss_mb": round(rss_mb(), 2), "threads": threading.active_count(),
        "fds": open_fds(), "frames_shown": app.present.stats.n_shown,
        "queues": {"weights": app.weights.qsize(), "frames": app.frames.qsize(), "choices": app.choices.qsize(),
                   "requests": app.requests.qsize(), "recorder": rec.pending() if rec else 0},
        "recorder_audio_queued_s": round(rec.audio_queued_s(), 3) if rec else 0.0,
        "dropped": {"recorder": rec.dropped if rec else 0, "weights_unrendered": app.weights.dropped,
                    "frames_unshown": app.frames.dropped, "input_overflows": app.capture.overflows},
        "segments_closed": len(rec.closed) if rec else 0, "alerts": app.health.alerts(),
        "loadavg": list(os.getloadavg()),
    }


def check_segment(path: Path) -> dict:
    """Decode one recorded file and compare it with its sidecar."""
    import av

    from aadiff_live.output.sidecar import read_frames, sidecar_path

    out: dict = {"file": path.name, "ok": False}
    try:
        side = json.loads(sidecar_path(path).read_text(encoding="utf-8"))
        with av.open(str(path)) as c:
            has_audio = bool(c.streams.audio)
            sr = c.streams.audio[0].rate if has_audio else 0
            n_video = n_audio = 0
            for packet in c.demux():
                for f in packet.decode():
                    if isinstance(f, av.VideoFrame):
                        n_video += 1
                    elif isinstance(f, av.AudioFrame):
                        n_audio += f.samples
        rows = len(read_frames(sidecar_path(path)).get("time", []))
        audio_s = n_audio / sr if sr else 0.0
        out.update(video_frames=n_video, rows=rows, sidecar_frames=side["n_frames"], audio_s=round(audio_s, 3),
                   sidecar_audio_s=side["audio"]["duration_s"], complete=side["complete"],
                   start_utc=side.get("segment", {}).get("start_utc"), bytes=path.stat().st_size)
        out["ok"] = bool(has_audio and n_video > 0 and n_video == rows == side["n_frames"] and side["complete"]
                         and abs(audio_s - side["audio"]["duration_s"]) < 0.1)
    except Exception as exc:  # noqa: BLE001 - a broken file is what the soak looks for
        out["error"] = f"{type(exc).__name__}: {exc}"
    return out


def slope_mb_per_min(samples: list[dict], after_s: float) -> float | None:
    pts = [(s["t_s"], s["rss_mb"]) for s in samples if s["t_s"] >= after_s]
    if len(pts) < 3:
        return None
    t, r = np.array(pts).T
    return float(np.polyfit(t / 60.0, r, 1)[0])


def _shown(path: Path) -> str:
    """A path for the JSON: relative to the repository when inside it (no machine's folders in the docs)."""
    try:
        return str(path.resolve().relative_to(REPO))
    except ValueError:
        return path.name


def soak(minutes: float, segment_minutes: float, out_dir: Path, input_path: Path, *, model: str = "tiny",
         size: str = "64", every_s: float = 10.0, warmup_minutes: float | None = None,
         prompt: str = "a storm over the sea", pinned: str | None = None) -> dict:
    from aadiff_live.config import load_config
    from aadiff_live.live.app import LiveApp

    out_dir.mkdir(parents=True, exist_ok=True)
    cfg = load_config(None, {"model": {"model": model, "size": size},
                             "live": {"input": str(input_path), "loop": True, "segment_minutes": segment_minutes},
                             "tokens": {"tokens": [pinned] if pinned else None}})
    duration = minutes * 60.0
    stats: dict = {}
    app = LiveApp(cfg, prompt=prompt, no_display=True, duration=duration, record=str(out_dir / "soak.mp4"),
                  monitor=False, stats_out=stats)
    samples: list[dict] = []
    t0 = time.monotonic()

    def watch() -> None:
        while not app.stop.wait(every_s):
            samples.append(sample(app, t0))
            s = samples[-1]
            log.info("%6.0f s  rss %.1f MB  threads %d  fds %d  shown %d  queues %s  dropped %s  segments %d",
                     s["t_s"], s["rss_mb"], s["threads"], s["fds"], s["frames_shown"], s["queues"],
                     s["dropped"], s["segments_closed"])

    code = run_watched(app, watch)
    files = app.recorder.closed if app.recorder is not None else []
    checks = [check_segment(f) for f in files]
    warm = warmup_minutes * 60 if warmup_minutes is not None else min(300.0, duration / 3)
    after = [s for s in samples if s["t_s"] >= warm]
    first, last = (after[0], after[-1]) if after else ({}, {})
    return {
        "tool": "tools/soak.py", "exit_code": code, "minutes": minutes, "segment_minutes": segment_minutes,
        "input": _shown(input_path), "model": model, "size": size, "every_s": every_s, "warmup_s": warm,
        "machine": {"cpu": cpu_name(), "cores": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "loadavg_end": list(os.getloadavg()),
        "loadavg_mean_1min": float(np.mean([s["loadavg"][0] for s in samples])) if samples else None,
        "summary": {
            "rss_mb_start_after_warmup": first.get("rss_mb"), "rss_mb_end": last.get("rss_mb"),
            "rss_mb_max": max((s["rss_mb"] for s in samples), default=None),
            "rss_slope_mb_per_min_after_warmup": slope_mb_per_min(samples, warm),
            "threads_after_warmup": sorted({s["threads"] for s in after}),
            "fds_after_warmup": sorted({s["fds"] for s in after}),
            "max_queue_depth": max((max(s["queues"].values()) for s in samples), default=None),
            "max_recorder_audio_queued_s": max((s["recorder_audio_queued_s"] for s in samples), default=None),
            "dropped_end": last.get("dropped"), "frames_shown": stats.get("frames_shown"),
            "fps": stats.get("fps"), "latency_ms_median": stats.get("latency_ms_median"),
            "segments": len(files), "segments_ok": sum(c["ok"] for c in checks),
            "alerts_seen": sorted({a for s in samples for a in s["alerts"]}),
        },
        "segments": checks,
        "samples": samples,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--minutes", type=float, default=60.0)
    p.add_argument("--segment-minutes", type=float, default=5.0)
    p.add_argument("--input", default=str(DEFAULT_INPUT), help="sound file played in a loop")
    p.add_argument("--out", default="soak-out", help="folder for the recorded segments")
    p.add_argument("--json", default="soak.json")
    p.add_argument("--every", type=float, default=10.0, help="seconds between samples")
    p.add_argument("--warmup-minutes", type=float, help="excluded from the RSS slope (default min(5, a third))")
    p.add_argument("--model", default="tiny")
    p.add_argument("--size", default="64")
    a = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", stream=sys.stderr)
    result = soak(a.minutes, a.segment_minutes, Path(a.out), Path(a.input), model=a.model, size=a.size,
                  every_s=a.every, warmup_minutes=a.warmup_minutes)
    Path(a.json).write_text(json.dumps(result, indent=1) + "\n", encoding="utf-8")
    s = result["summary"]
    print(json.dumps(s, indent=1))
    ok = s["segments"] > 0 and s["segments_ok"] == s["segments"] and result["exit_code"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
