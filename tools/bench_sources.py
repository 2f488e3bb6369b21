"""CPU cost of the live sources: the analysis thread's step per 10 ms hop, with every live source, beside the
loudness envelope alone.

A: the envelope alone (the streaming STFT, the smoother, the automatic gain, the weight: what the analysis thread
did before the sources). B: ``AnalysisThread.step`` with every live source (loudness, the bands, ``onset`` and
``onset:<band>``: the STFT frame's band means, the mel flux and the peak picking of each). Both get the same
audio (drums and tones made in code) one hop at a time, as live. Each round times A, B and A again (order
rotating, thread CPU time, ``ROUND_HOPS`` hops per call); reported: ms of CPU per hop of each, the sources' own
share (B - A), and the A/A control. Goal: B at most 1 ms per 10 ms hop.

    python tools/bench_sources.py [--rounds 60] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aadiff_live.analysis.envelope import FrameSTFT, LiveNormaliser, make_causal_smoother, to_weight  # noqa: E402
from aadiff_live.config import Config  # noqa: E402
from aadiff_live.live.analysis_thread import AnalysisThread  # noqa: E402
from aadiff_live.live.ring import RingBuffer  # noqa: E402
from aadiff_live.mailbox import Mailbox  # noqa: E402

SR = 48000
ROUND_HOPS = 100  # hops per timed call (1 s of audio)


def audio(seconds: float) -> np.ndarray:
    rng = np.random.default_rng(0)
    t = np.arange(int(seconds * SR)) / SR
    x = 0.2 * np.sin(2 * np.pi * 220 * t) * (np.sin(2 * np.pi * 0.5 * t) > 0)
    for k in np.arange(0.1, seconds, 0.25):
        i = int(k * SR)
        n = min(int(0.1 * SR), x.size - i)
        x[i:i + n] += 0.5 * np.exp(-np.arange(n) / (0.02 * SR)) * rng.standard_normal(n)
    return x.astype(np.float32)


class EnvelopeOnly:
    """The loudness path alone, as the analysis thread ran it before the sources."""

    def __init__(self, cfg: Config) -> None:
        env, live = cfg.envelope, cfg.live
        fps = live.analysis_hz
        self.stft = FrameSTFT(SR, fps, FrameSTFT(SR, env.fps, env.n_fft).n_fft, fit=False)
        self.smoother = make_causal_smoother("attack-release", 1, fps, env.attack_ms, env.release_ms)
        self.normaliser = LiveNormaliser(fps, live.agc_release_s, live.gate_db)
        self.env = env

    def step(self, mono: np.ndarray, first: int) -> float | None:
        mags, dbs = self.stft.push(mono)
        w = None
        for mag, db in zip(mags, dbs, strict=True):
            e = self.normaliser.step(self.smoother.step(float(mag)), float(db))
            w = float(to_weight(e, self.env.w_min, self.env.w_max, self.env.gain))
        return w


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=60)
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    cfg = Config()
    hop = int(SR / cfg.live.analysis_hz)
    x = audio(ROUND_HOPS * hop / SR * (a.rounds + 2) * 2 + 1)
    ring = RingBuffer(SR, 1, SR)
    full = AnalysisThread(ring, cfg.envelope, cfg.live, Mailbox(), threading.Event(), features=cfg.features)
    sides = {"a": EnvelopeOnly(cfg), "b": full, "a2": EnvelopeOnly(cfg)}
    pos = {k: 0 for k in sides}

    def run(name: str) -> float:
        step = sides[name].step
        p = pos[name]
        t0 = time.thread_time()
        for _ in range(ROUND_HOPS):
            step(x[p:p + hop], p)
            p += hop
        dt = time.thread_time() - t0
        pos[name] = p if p + ROUND_HOPS * hop < x.size else 0
        return dt / ROUND_HOPS

    order = ["a", "b", "a2"]
    for name in order:  # warm-up
        run(name)
    times: dict[str, list[float]] = {k: [] for k in order}
    for i in range(a.rounds):
        k = i % 3
        for name in order[k:] + order[:k]:
            times[name].append(run(name))
    med = {k: statistics.median(v) * 1000 for k, v in times.items()}
    share = statistics.median(b - (a1 + a2) / 2 for a1, b, a2 in zip(times["a"], times["b"], times["a2"], strict=True))
    aa = statistics.median(a2 / a1 for a1, a2 in zip(times["a"], times["a2"], strict=True))
    load = os.getloadavg()
    res = {"machine": platform.platform(), "processor": platform.processor() or platform.machine(),
           "cpus": os.cpu_count(), "load_1min": round(load[0], 2), "hop_ms": 1000 * hop / SR,
           "rounds": a.rounds, "hops_per_call": ROUND_HOPS, "sources": full.sources.names,
           "envelope_only_ms_per_hop": round((med["a"] + med["a2"]) / 2, 4),
           "with_sources_ms_per_hop": round(med["b"], 4), "sources_share_ms_per_hop": round(share * 1000, 4),
           "aa_ratio": round(aa, 4)}
    print(f"per 10 ms hop (thread CPU, median of {a.rounds} rounds, load {load[0]:.2f}): envelope alone "
          f"{res['envelope_only_ms_per_hop']:.3f} ms, with every live source {res['with_sources_ms_per_hop']:.3f} ms "
          f"(the sources' share {res['sources_share_ms_per_hop']:.3f} ms; A/A {aa:.3f}); goal <= 1 ms: "
          f"{'met' if res['with_sources_ms_per_hop'] <= 1.0 else 'NOT met'}")
    print("sources:", ", ".join(full.sources.names))
    if a.json:
        Path(a.json).write_text(json.dumps(res, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
