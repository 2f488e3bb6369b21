"""Onset detection: F-measure of the causal detector (the ``onset`` source) beside librosa's offline ``onset_detect``.

Scored with mir_eval (``mir_eval.onset.f_measure``, a hit within +/-50 ms) on signals made in code with known
onset times (several kinds: clicks, a drum kit, plucked tones, soft-attack tones, drums in noise) and on any
annotated recording given with ``--audio X.wav --onsets X.onsets`` (one time in seconds per line, the first
column; madmom's and the MIREX format). librosa (ISC) and mir_eval (MIT) are bench-only dependencies:
``pip install "aadiff-live[bench]"``.

    python tools/bench_onsets.py [--audio X.wav --onsets X.onsets] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np
from scipy.signal import butter, sosfilt

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aadiff_live.analysis.sources import sources_offline  # noqa: E402
from aadiff_live.config import Config  # noqa: E402

SR = 44100
DUR = 20.0


def _times(rng: np.random.Generator, gap_min: float, gap_max: float, dur: float = DUR) -> np.ndarray:
    t, out = 0.3, []
    while t < dur - 0.5:
        out.append(t)
        t += rng.uniform(gap_min, gap_max)
    return np.array(out)


def _place(x: np.ndarray, at: float, sound: np.ndarray) -> None:
    i = int(round(at * SR))
    n = min(sound.size, x.size - i)
    x[i:i + n] += sound[:n]


def _env(dur: float, decay: float, attack: float = 0.001) -> np.ndarray:
    t = np.arange(int(dur * SR)) / SR
    return np.exp(-t / decay) * np.minimum(1.0, t / attack)


def clicks(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Short noise clicks (2 ms) 80-400 ms apart, levels from -30 to 0 dB."""
    x = np.zeros(int(DUR * SR))
    on = _times(rng, 0.08, 0.4)
    for t in on:
        _place(x, t, 10 ** (rng.uniform(-30, 0) / 20) * 0.5 * rng.standard_normal(int(0.002 * SR)))
    return x, on


def drum_kit(rng: np.random.Generator, noise_db: float | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Kick (pitch drop 120->50 Hz), snare (200 Hz + noise), closed hat (7-12 kHz noise) on a random 16th
    grid at 110 bpm; with ``noise_db`` over pink-ish noise at that level."""
    x = np.zeros(int(DUR * SR))
    step = 60.0 / 110 / 4
    hat_sos = butter(4, [7000, 12000], btype="band", fs=SR, output="sos")
    t = np.arange(int(0.4 * SR)) / SR
    kick = 0.9 * _env(0.4, 0.08) * np.sin(2 * np.pi * np.cumsum(50 + 70 * np.exp(-t / 0.03)) / SR)
    on = []
    for k in range(int((DUR - 0.6) / step)):
        at = 0.3 + k * step
        hit = False
        if k % 4 == 0 and rng.random() < 0.8:
            _place(x, at, kick)
            hit = True
        if k % 8 == 4 and rng.random() < 0.9:
            _place(x, at, 0.5 * _env(0.25, 0.05) * (np.sin(2 * np.pi * 200 * t[:int(0.25 * SR)])
                                                    + rng.standard_normal(int(0.25 * SR))))
            hit = True
        if not hit and rng.random() < 0.5:
            _place(x, at, 0.25 * _env(0.1, 0.02) * sosfilt(hat_sos, rng.standard_normal(int(0.1 * SR))))
            hit = True
        if hit:
            on.append(at)
    if noise_db is not None:
        pink = sosfilt(butter(1, 500, fs=SR, output="sos"), rng.standard_normal(x.size))
        x += pink / pink.std() * 10 ** (noise_db / 20)
    return x, np.array(on)


def tones(rng: np.random.Generator, attack: float = 0.002) -> tuple[np.ndarray, np.ndarray]:
    """Plucked harmonic tones (100-1000 Hz, 6 partials, 0.3-1 s decay) 120-600 ms apart, overlapping, levels from
    -20 to 0 dB; ``attack`` the rise time (soft tones: 20 ms)."""
    x = np.zeros(int(DUR * SR))
    on = _times(rng, 0.12, 0.6)
    for at in on:
        f0 = 100 * 10 ** rng.uniform(0, 1)
        dur = 1.2
        t = np.arange(int(dur * SR)) / SR
        partials = sum(np.sin(2 * np.pi * f0 * h * t) / h for h in range(1, 7) if f0 * h < SR / 2)
        _place(x, at, 0.3 * 10 ** (rng.uniform(-20, 0) / 20) * _env(dur, rng.uniform(0.3, 1.0), attack) * partials)
    return x, on


SIGNALS = {
    "clicks": clicks,
    "drum kit": drum_kit,
    "drums in noise (-30 dB)": lambda rng: drum_kit(rng, -30.0),
    "plucked tones": tones,
    "soft tones (20 ms attack)": lambda rng: tones(rng, 0.02),
}


def causal_onsets(x: np.ndarray, sr: int, cfg: Config) -> np.ndarray:
    return sources_offline(x, sr, cfg.envelope, cfg.features, ["onset"], onset_hz=cfg.live.analysis_hz).onsets["onset"]


def librosa_onsets(x: np.ndarray, sr: int) -> np.ndarray:
    import librosa

    return librosa.onset.onset_detect(y=x.astype(np.float32), sr=sr, units="time")


def score(ref: np.ndarray, est: np.ndarray) -> dict:
    import mir_eval

    f, p, r = mir_eval.onset.f_measure(np.asarray(ref, float), np.asarray(est, float), window=0.05)
    # the mean offset of matched onsets (est - ref): the detector's timing bias
    pairs = mir_eval.util.match_events(np.asarray(ref, float), np.asarray(est, float), 0.05)
    bias = float(np.mean([est[j] - ref[i] for i, j in pairs])) if pairs else float("nan")
    return {"f": round(float(f), 4), "precision": round(float(p), 4), "recall": round(float(r), 4),
            "bias_ms": round(1000 * bias, 1), "n_ref": int(len(ref)), "n_est": int(len(est))}


def read_onsets(path: Path) -> np.ndarray:
    rows = [ln.split() for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return np.array(sorted(float(r[0]) for r in rows))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--audio", help="an annotated recording (any format soundfile or PyAV reads)")
    ap.add_argument("--onsets", help="its onset annotations: one time in seconds per line")
    ap.add_argument("--label", help="the recording's name in the table (default: its file name)")
    ap.add_argument("--seeds", type=int, default=3, help="signals made in code: how many of each kind")
    ap.add_argument("--json", help="write the results here")
    a = ap.parse_args()
    if bool(a.audio) != bool(a.onsets):
        ap.error("--audio and --onsets go together")
    cfg = Config()
    rows = []
    cases: list[tuple[str, np.ndarray, int, np.ndarray]] = []
    for name, make in SIGNALS.items():
        for seed in range(a.seeds):
            x, on = make(np.random.default_rng(seed))
            cases.append((name, x, SR, on))
    if a.audio:
        from aadiff_live.audio.decode import load_audio

        audio = load_audio(a.audio)
        cases.append((a.label or Path(a.audio).name, audio.mono(), audio.samplerate, read_onsets(Path(a.onsets))))
    by_kind: dict[str, dict[str, list[dict]]] = {}
    for name, x, sr, on in cases:
        t0 = time.process_time()
        ours = causal_onsets(x, sr, cfg)
        t1 = time.process_time()
        ref = librosa_onsets(x, sr)
        by_kind.setdefault(name, {"causal": [], "librosa": []})
        by_kind[name]["causal"].append(score(on, ours))
        by_kind[name]["librosa"].append(score(on, ref))
        rows.append({"signal": name, "duration_s": round(x.size / sr, 2), "causal_cpu_s": round(t1 - t0, 3)})
    print(f"{'signal':28s} {'causal F':>9s} {'librosa F':>10s} {'diff':>7s}   causal P/R, bias    librosa P/R, bias")
    summary = {}
    for name, res in by_kind.items():
        mean = {k: {m: float(np.mean([r[m] for r in v])) for m in ("f", "precision", "recall", "bias_ms")}
                for k, v in res.items()}
        c, lb = mean["causal"], mean["librosa"]
        summary[name] = {"runs": len(res["causal"]), **{k: {m: round(v, 4) for m, v in d.items()} for k, d in mean.items()}}
        print(f"{name:28s} {c['f']:9.3f} {lb['f']:10.3f} {c['f'] - lb['f']:+7.3f}   "
              f"{c['precision']:.2f}/{c['recall']:.2f} {c['bias_ms']:+5.1f} ms   "
              f"{lb['precision']:.2f}/{lb['recall']:.2f} {lb['bias_ms']:+5.1f} ms")
    if a.json:
        Path(a.json).write_text(json.dumps({"machine": platform.platform(), "processor": platform.processor(),
                                            "onset_hz": cfg.live.analysis_hz, "summary": summary, "runs": rows},
                                           indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
