"""tools/bench_beats.py end to end on a recording given with --audio/--beats (a drum pattern written here)."""

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from aadiff_live.audio.drums import drum_pattern

REPO = Path(__file__).resolve().parents[1]


def test_bench_beats_scores_a_recording(tmp_path):
    pytest.importorskip("librosa")
    pytest.importorskip("mir_eval")
    audio, beats = drum_pattern(124.0, 20.0, 22050)
    sf.write(str(tmp_path / "d.wav"), audio, 22050)
    (tmp_path / "d.beats").write_text("# beats\n" + "\n".join(f"{b:.4f}\t{k % 4 + 1}" for k, b in enumerate(beats)))
    out = tmp_path / "b.json"
    proc = subprocess.run([sys.executable, str(REPO / "tools" / "bench_beats.py"), "--no-synth", "--audio",
                           str(tmp_path / "d.wav"), "--beats", str(tmp_path / "d.beats"), "--label", "drums",
                           "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    r = json.loads(out.read_text())["results"]["drums"]
    assert not r["short_scored_from_0_s"]
    assert r["causal"]["f"] >= 0.9 and r["causal"]["tempo_error_pct"] < 2.0
    assert r["offline"]["f"] >= 0.9 and np.isfinite(r["librosa"]["f"])
