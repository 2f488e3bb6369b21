"""Live mode end to end with a sound file played in real time as input (no sound card needed)."""

from __future__ import annotations

import json
import os
import threading

import numpy as np
import pytest

os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
os.environ.setdefault("HF_HUB_OFFLINE", "1")

from aadiff_live.config import load_config  # noqa: E402
from aadiff_live.live.app import run_live  # noqa: E402
from aadiff_live.output.sidecar import read_frames  # noqa: E402

SR = 48000


def bursts(path, seconds=4.0, period=1.0, seed=0):
    """Noise bursts, on for half of every period: a known, strongly varying envelope."""
    import soundfile as sf

    t = np.arange(int(seconds * SR)) / SR
    on = ((t % period) < period / 2).astype(np.float32)
    x = 0.3 * on * np.random.default_rng(seed).standard_normal(t.size).astype(np.float32)
    sf.write(str(path), x, SR)
    return x


def live_cfg(input_path, **tokens):
    return load_config(None, {"model": {"model": "tiny", "size": "64"}, "live": {"input": str(input_path)},
                              "tokens": tokens})


def decode(path):
    import av

    with av.open(str(path)) as c:
        audio = np.concatenate([f.to_ndarray() for f in c.decode(audio=0)], axis=1).mean(axis=0)
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    return audio, frames


def xcorr_lag_s(recorded, original, sr):
    from scipy.signal import correlate

    cc = correlate(recorded, original, mode="full", method="fft")
    lag = int(np.argmax(np.abs(cc))) - (original.size - 1)
    peak = float(np.max(np.abs(cc)) / np.sqrt(np.sum(original**2) * np.sum(recorded**2)))
    return lag / sr, peak


def live_threads():
    names = {"analysis", "clap", "renderer", "recorder", "capture-watchdog", "file-feeder"}
    return [t.name for t in threading.enumerate() if t.name in names]


def test_file_input_records_audio_in_sync_and_frames_follow_weights(tmp_path):
    src = tmp_path / "bursts.wav"
    x = bursts(src)
    out = tmp_path / "live.mp4"
    stats: dict = {}
    code = run_live(live_cfg(src), prompt="a fire in the rain", no_display=True, record=str(out),
                    stats_out=stats)
    assert code == 0
    assert live_threads() == []
    side = json.loads((tmp_path / "live.mp4.json").read_text())
    assert side["settings"]["smoothing"] == "attack-release" and side["settings"]["live"]
    assert side["summary"]["threads_stuck"] == []
    audio, frames = decode(out)
    lag, peak = xcorr_lag_s(audio, x, SR)
    assert abs(lag) < 0.05 and peak > 0.9, (lag, peak)
    assert side["frames_file"] == "live.mp4.frames.jsonl" and "frames" not in side
    f = read_frames(tmp_path / "live.mp4.json")
    n = len(frames)
    assert n == side["n_frames"] == len(f["weight"]) > 30
    # display times follow each other, capture precedes display, latency is what the sidecar says
    d, c, lat = (np.array(f[k]) for k in ("time", "capture_time", "latency_s"))
    assert np.all(np.diff(d) > 0) and np.all(lat >= 0)
    # d: the file's frame time (from the first sound sample), filled by the refresh nearest it, so within half a
    # frame of it (the grid lies on the file's frame times: no rounding onto them, which added up to half a frame;
    # the last frame too: at the end the last refresh takes the next frame only when it is its nearest); a frame
    # the display could not fill (held: the refresh before it repeated, a display stall) lies whole frames later.
    # Beside a stall longer than a frame (a busy machine) no refresh lies within half a frame of a frame time:
    # the nearest one fills it, up to a frame away (the pick before or after it is then more than a frame apart)
    held = np.array([bool(h) for h in f.get("held", [None] * n)])
    shown, period = c + lat, 1 / 30
    gap = np.diff(shown) > period + 1e-3
    beside_stall = np.r_[False, gap] | np.r_[gap, False]
    off = np.abs((d - c) - lat)
    calm = ~held & ~beside_stall
    assert np.all(off[calm] <= 0.5 * period + 1e-3), (np.flatnonzero(calm & (off > 0.5 * period + 1e-3)), off.max())
    assert np.all(off[~held] <= period + 1e-3) and (off[~held] > 0.5 * period + 1e-3).sum() <= 3
    assert np.all((d - c)[held] >= lat[held] + 0.5 * period - 1e-3) and held.sum() <= 3
    # the latency split: sound -> weight -> blend -> flip, each part >= 0, adding up to the latency
    parts = np.array([f[k] for k in ("sound_to_weight_s", "weight_to_blend_s", "blend_to_flip_s")])
    assert np.all(parts >= 0) and np.allclose(parts.sum(axis=0), lat, atol=1e-6)
    assert set(side["summary"]["latency_split_ms"]) == {"sound_to_weight", "weight_to_blend", "blend_to_flip"}
    # the weight follows the bursts: high while a burst sounds, w_min in the gaps
    w = np.array(f["weight"])
    on = ((c % 1.0) > 0.1) & ((c % 1.0) < 0.45)
    off = ((c % 1.0) > 0.75)
    assert w[on].mean() > 1.5 and w[off].max() == 0.0
    # and the picture follows the weight (sync measure of docs/design.md §6), per choice of words (CLAP may
    # switch them mid-run, which changes the picture at a given weight)
    # (frames during the atlas fill, where a nearer level stands in, and during a cross-fade are left out:
    # they show another weight's or another atlas's picture by design)
    words = np.array([",".join(x) for x in f["words"]])
    settled = np.array([not s and fd is None for s, fd in zip(f["stand_in"], f["fade"], strict=True)])
    checked = 0
    for group in set(words):
        idx = np.flatnonzero((words == group) & settled)
        if idx.size < 20 or np.ptp(w[idx]) < 1.0:
            continue
        base = frames[idx[int(np.argmin(w[idx]))]].astype(np.float32)
        mad = np.array([np.abs(frames[i].astype(np.float32) - base).mean() for i in idx])
        r = np.corrcoef(mad, w[idx])[0, 1]
        assert r > 0.9, (group, r)
        checked += 1
    assert checked >= 1
    # the display refreshes at --display-fps; the recording keeps the video rate (one frame per 1/fps at most)
    assert stats["frames_shown"] > n and stats["latency_ms_median"] is not None
    assert np.all(np.diff(d) >= 0.999 / 30 - 1e-6)


def test_renderer_crash_stops_cleanly_and_keeps_the_recording(tmp_path, monkeypatch, caplog):
    from aadiff_live.live import supervisor
    from aadiff_live.rendering.pipeline import Renderer

    src = tmp_path / "bursts.wav"
    bursts(src, seconds=6.0)
    real = Renderer.render_batch
    calls = {"n": 0}

    def flaky(self, weights, positions, profile=False):  # every render goes through render_batch (atlas or not)
        calls["n"] += 1
        if calls["n"] > 4:
            raise RuntimeError("simulated GPU fault")
        return real(self, weights, positions, profile)

    monkeypatch.setattr(Renderer, "render_batch", flaky)
    monkeypatch.setattr(supervisor, "BACKOFF_S", 0.05)
    out = tmp_path / "crash.mp4"
    cfg = load_config(None, {"model": {"model": "tiny", "size": "64"}, "tokens": {"tokens": ["fire"]},
                             "live": {"input": str(src), "thread_restarts": 1}})
    code = run_live(cfg, prompt="a fire in the rain", no_display=True, record=str(out))
    assert code == 1
    assert "the renderer thread failed (RuntimeError: simulated GPU fault); restarting it" in caplog.text
    assert "renderer failed: RuntimeError: simulated GPU fault" in caplog.text  # failing again: it gives up
    assert live_threads() == []
    assert out.is_file() and (tmp_path / "crash.mp4.json").is_file()
    audio, frames = decode(out)
    assert len(frames) >= 1


@pytest.mark.parametrize("keys", [["h", "EQUALS", "SPACE", "SPACE", "q"]])
def test_window_mode_runs_and_quits_on_q(tmp_path, monkeypatch, keys):
    pygame = pytest.importorskip("pygame")
    from aadiff_live.live import display as display_mod

    src = tmp_path / "bursts.wav"
    bursts(src, seconds=30.0)
    shot = tmp_path / "shot.png"
    real_poll = display_mod.Display.poll
    state = {"n": 0}

    def scripted_poll(self):
        state["n"] += 1
        if state["n"] % 40 == 0 and keys:  # a key every ~2/3 s
            k = keys.pop(0)
            if k == "q":
                self.save(str(shot))
            pygame.event.post(pygame.event.Event(pygame.KEYDOWN, key=getattr(pygame, f"K_{k}"), mod=0,
                                                 unicode="", scancode=0))
        return real_poll(self)

    monkeypatch.setattr(display_mod.Display, "poll", scripted_poll)
    code = run_live(live_cfg(src, tokens=["fire"]), prompt="a fire in the rain", no_display=False, duration=20)
    assert code == 0
    assert not keys, "the app stopped before every key was pressed"
    assert shot.is_file() and live_threads() == []
