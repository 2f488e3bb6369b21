"""Beat tracking: F-measure and tempo error of the causal tracker (live) and the offline one (render, analyse),
beside librosa's offline ``beat_track``, on drum patterns made in code with known beats.

Scored with mir_eval (``mir_eval.beat.f_measure``, a hit within +/-70 ms). The causal tracker is scored after
an 8 s warm-up (beats before 8 s are left out of both lists), the offline trackers on the whole signal (from
5 s, mir_eval's usual trim); a recording shorter than 16 s is scored whole, warm-up included. The tempo error is the tracker's tempo at the end against the true tempo at the
end (offline: the median tempo against the median true tempo), in percent. An annotated recording may be
added with ``--audio X.wav --beats X.beats`` (one beat time in seconds per line, the first column). librosa
(ISC) and mir_eval (MIT) are bench-only dependencies: ``pip install "aadiff-live[bench]"``.

    python tools/bench_beats.py [--audio X.wav --beats X.beats --label NAME] [--json out.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from aadiff_live.analysis.sources import onset_strength  # noqa: E402
from aadiff_live.analysis.tempo import offline_beats, track  # noqa: E402
from aadiff_live.audio.drums import drum_pattern  # noqa: E402
from aadiff_live.config import Config  # noqa: E402

SR = 22050
DUR = 40.0
WARMUP_S = 8.0
HZ = 100.0

# name -> keyword arguments of drum_pattern; "steady" cases are the ones the goal (F >= 0.8, tempo within 4 %) is for
CASES = {
    "steady 90 BPM": dict(bpm=90.0),
    "steady 120 BPM": dict(bpm=120.0),
    "steady 128 BPM, busy kick": dict(bpm=128.0, busy=True),
    "steady 150 BPM": dict(bpm=150.0),
    "steady 174 BPM": dict(bpm=174.0),
    "swing 100 BPM (triplet feel)": dict(bpm=100.0, swing=0.33),
    "tempo change 110 -> 130 BPM": dict(bpm=110.0, change_at_bar=8, bpm2=130.0),
}


def read_beats(path: Path) -> np.ndarray:
    rows = [ln.split()[0] for ln in path.read_text().splitlines() if ln.strip() and not ln.startswith("#")]
    return np.array([float(r) for r in rows])


def librosa_beats(x: np.ndarray, sr: int) -> tuple[np.ndarray, float]:
    import librosa

    tempo, frames = librosa.beat.beat_track(y=x.astype(np.float32), sr=sr, units="frames")
    return librosa.frames_to_time(frames, sr=sr), float(np.atleast_1d(tempo)[0])


def tempo_error(bpm: float, true_bpm: float) -> float:
    return 100.0 * abs(bpm / true_bpm - 1.0)


def run_case(x: np.ndarray, sr: int, ref: np.ndarray, cfg: Config) -> dict:
    import mir_eval

    t0 = time.process_time()
    strength, start = onset_strength(x, sr, cfg.envelope, cfg.features, HZ)
    t_flux = time.process_time() - t0
    t0 = time.process_time()
    tr = track(strength, HZ, start)
    t_causal = time.process_time() - t0
    t0 = time.process_time()
    off, off_bpm = offline_beats(strength, HZ, start)
    t_offline = time.process_time() - t0
    lib, lib_bpm = librosa_beats(x, sr)
    causal = np.array(tr.beats)
    end_bpm = 60.0 / float(np.median(np.diff(ref[-9:])))
    med_bpm = 60.0 / float(np.median(np.diff(ref)))
    dur = x.size / sr
    short = dur < 2 * WARMUP_S  # a short excerpt: scored from 0 s, warm-up included (mir_eval would trim it all)
    warm = 0.0 if short else WARMUP_S
    trim = (lambda b: b) if short else mir_eval.beat.trim_beats
    return {
        "short_scored_from_0_s": short,
        "causal": {"f": float(mir_eval.beat.f_measure(ref[ref >= warm], causal[causal >= warm])),
                   "bpm": tr.bpm, "tempo_error_pct": tempo_error(tr.bpm, end_bpm), "confidence": tr.confidence},
        "offline": {"f": float(mir_eval.beat.f_measure(trim(ref), trim(off))), "bpm": off_bpm,
                    "tempo_error_pct": tempo_error(off_bpm, med_bpm)},
        "librosa": {"f": float(mir_eval.beat.f_measure(trim(ref), trim(lib))), "bpm": lib_bpm,
                    "tempo_error_pct": tempo_error(lib_bpm, med_bpm)},
        "cpu_s": {"onset_strength": t_flux, "causal": t_causal, "offline": t_offline},
        "duration_s": x.size / sr,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--audio", help="an annotated recording (any format soundfile or PyAV reads)")
    ap.add_argument("--beats", help="its beat annotations: one time in seconds per line")
    ap.add_argument("--label", help="the recording's name in the table (default: its file name)")
    ap.add_argument("--json", help="write the results here")
    ap.add_argument("--no-synth", action="store_true", help="only the recording given with --audio")
    a = ap.parse_args()
    if bool(a.audio) != bool(a.beats):
        ap.error("--audio and --beats go together")
    cfg = Config()
    cases: list[tuple[str, np.ndarray, int, np.ndarray]] = []
    for name, kw in ({} if a.no_synth else CASES).items():
        x, ref = drum_pattern(seconds=DUR, sr=SR, **kw)  # type: ignore[arg-type]
        cases.append((name, x, SR, ref))
    if a.audio:
        from aadiff_live.audio.decode import load_audio

        audio = load_audio(a.audio)
        cases.append((a.label or Path(a.audio).name, audio.mono(), audio.samplerate, read_beats(Path(a.beats))))
    results = {}
    print(f"{'signal':30s} {'causal F':>8s} {'tempo err':>9s} {'offline F':>9s} {'tempo err':>9s} "
          f"{'librosa F':>9s} {'tempo err':>9s}")
    for name, x, sr, ref in cases:
        r = run_case(x, sr, ref, cfg)
        results[name] = r
        c, o, lb = r["causal"], r["offline"], r["librosa"]
        print(f"{name:30s} {c['f']:8.3f} {c['tempo_error_pct']:8.1f}% {o['f']:9.3f} {o['tempo_error_pct']:8.1f}% "
              f"{lb['f']:9.3f} {lb['tempo_error_pct']:8.1f}%")
    cpu = sum(r["cpu_s"]["causal"] for r in results.values())
    dur = sum(r["duration_s"] for r in results.values())
    print(f"causal tracker: {1e6 * cpu / (dur * HZ):.0f} us of CPU per 10 ms hop (beside the onset strength)")
    if a.json:
        Path(a.json).write_text(json.dumps({"machine": platform.platform(), "processor": platform.processor(),
                                            "hz": HZ, "warmup_s": WARMUP_S, "results": results}, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
