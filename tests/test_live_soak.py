"""A short soak (tools/soak.py) with --record and segments: no memory, thread or queue growth,
every segment playable with audio, every thread gone after quit."""

from __future__ import annotations

import importlib.util
import os
import threading
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

RUN_MIN = 0.75  # 45 s
SEGMENT_MIN = 0.15  # 9 s files: 5 of them
TOOL = Path(__file__).resolve().parents[1] / "tools" / "soak.py"


def load_soak():
    spec = importlib.util.spec_from_file_location("soak_tool", TOOL)
    assert spec is not None and spec.loader is not None
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.mark.slow
@pytest.mark.skipif(not os.path.exists("/proc/self/status"), reason="reads memory use from /proc (Linux)")
def test_short_soak_with_record_and_segments(tmp_path):
    import soundfile as sf

    sr = 48000
    rng = np.random.default_rng(1)
    t = np.arange(int(7 * sr)) / sr  # 7 s played in a loop
    x = (0.3 * (np.sin(2 * np.pi * 0.7 * t) > 0) * rng.standard_normal(t.size)).astype(np.float32)
    src = tmp_path / "loop.wav"
    sf.write(str(src), x, sr)
    before = {th.ident for th in threading.enumerate()}
    soak = load_soak()
    r = soak.soak(RUN_MIN, SEGMENT_MIN, tmp_path / "rec", src, every_s=1.0, warmup_minutes=RUN_MIN / 3)
    s = r["summary"]
    assert r["exit_code"] == 0
    left = [th.name for th in threading.enumerate() if th.ident not in before and th.is_alive()
            and th.name != "soak-watch"]
    assert left == []
    # every closed file decodes: as many video frames as its rows, audio as long as its sidecar says
    assert s["segments"] >= 4 and s["segments_ok"] == s["segments"], r["segments"]
    assert sum(c["audio_s"] for c in r["segments"]) == pytest.approx(RUN_MIN * 60, abs=3.0)
    # no growth: one thread count and a flat fd count after warm-up, mailboxes hold at most one value,
    # the recorder's audio queue stays short, memory flat (the median of the last samples vs after warm-up)
    assert len(s["threads_after_warmup"]) == 1, s
    assert max(s["fds_after_warmup"]) - min(s["fds_after_warmup"]) <= 3, s  # +3 while a file is rotated
    assert s["max_queue_depth"] <= 1 and s["max_recorder_audio_queued_s"] < 1.5
    after = [x for x in r["samples"] if x["t_s"] >= r["warmup_s"]]
    early = np.median([x["rss_mb"] for x in after[:3]])
    late = np.median([x["rss_mb"] for x in after[-3:]])
    assert late - early < 25.0, (early, late)
