"""Sources (docs/design.md §1.5): bands follow their part of the sound, onsets fire at the hits, offline = live."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import butter, sosfilt

from aadiff_live.analysis.envelope import FrameSTFT, analyse
from aadiff_live.analysis.sources import (
    STEMS_INSTALL,
    Smoothing,
    SourceStepper,
    check_source,
    flash_at,
    known_sources,
    onset_time,
    sources_offline,
)
from aadiff_live.config import Config, load_config
from aadiff_live.errors import UserError
from aadiff_live.output.sidecar import read_frames

SR = 44100


def kicks_and_hats(dur: float = 8.0, seed: int = 0):
    """Kicks (60 Hz, 60 ms decay) every 0.5 s from 0.25 s; hi-hats (6-10 kHz noise, 30 ms) halfway between."""
    rng = np.random.default_rng(seed)
    n = int(dur * SR)
    kicks, hats = np.zeros(n), np.zeros(n)
    kick_t = np.arange(0.25, dur - 0.5, 0.5)
    hat_t = kick_t + 0.25
    t = np.arange(int(0.3 * SR)) / SR
    sos = butter(4, [6000, 10000], btype="band", fs=SR, output="sos")
    for k in kick_t:
        i = int(k * SR)
        kicks[i:i + t.size] += 0.8 * np.exp(-t / 0.06) * np.minimum(1, t / 0.002) * np.sin(2 * np.pi * 60 * t)
    for h in hat_t:
        i = int(h * SR)
        hats[i:i + t.size] += 0.3 * np.exp(-t / 0.03) * np.minimum(1, t / 0.001) * sosfilt(sos, rng.standard_normal(t.size))
    return kicks + hats, kicks, hats, kick_t, hat_t


def r(a, b) -> float:
    return float(np.corrcoef(a, b)[0, 1])


@pytest.fixture(scope="module")
def drums():
    return kicks_and_hats()


def test_low_follows_the_kicks_and_high_the_hats(drums):
    mix, kicks, hats, _, _ = drums
    cfg = Config()
    sf = sources_offline(mix, SR, cfg.envelope, cfg.features)
    kick_env = sources_offline(kicks, SR, cfg.envelope, cfg.features, ["loudness"]).values["loudness"]
    hat_env = sources_offline(hats, SR, cfg.envelope, cfg.features, ["loudness"]).values["loudness"]
    assert r(sf.values["low"], kick_env) >= 0.9 and r(sf.values["low"], hat_env) <= 0.2
    assert r(sf.values["high"], hat_env) >= 0.9 and r(sf.values["high"], kick_env) <= 0.2
    for name, v in sf.values.items():
        assert v.shape == (sf.n_frames,) and v.min() >= 0 and v.max() <= 1, name
    # the whole mix's loudness follows both: neither alone
    assert r(sf.values["loudness"], kick_env) < 0.9 and r(sf.values["loudness"], hat_env) < 0.9


def test_loudness_source_is_todays_envelope(drums):
    mix = drums[0]
    cfg = Config()
    env = analyse(mix, SR, cfg.envelope)
    sf = sources_offline(mix, SR, cfg.envelope, cfg.features, ["loudness"])
    np.testing.assert_array_equal(sf.raw["loudness"], env.raw)
    np.testing.assert_array_equal(sf.values["loudness"], env.normalised)
    np.testing.assert_array_equal(sf.rms_db, env.rms_db)


def test_onsets_fire_at_every_hit_and_per_band(drums):
    mix, _, _, kick_t, hat_t = drums
    cfg = Config()
    sf = sources_offline(mix, SR, cfg.envelope, cfg.features)
    truth = np.sort(np.concatenate([kick_t, hat_t]))
    found = sf.onsets["onset"]
    assert found.size == truth.size
    assert np.abs(found - truth).max() < 0.03
    low, high = sf.onsets["onset:low"], sf.onsets["onset:high"]
    assert low.size == kick_t.size and np.abs(low - kick_t).max() < 0.03
    assert high.size == hat_t.size and np.abs(high - hat_t).max() < 0.03
    # the flash: 1 in the frame the hit is known in, then down with onset_decay_ms
    v = sf.values["onset:low"]
    assert v.max() == pytest.approx(1.0, abs=0.2) and v.min() >= 0
    assert r(v, sf.values["low"]) > 0.5 and r(v, sf.values["high"]) < 0


def test_the_live_stepper_gives_the_offline_numbers(drums):
    mix, kicks, hats, _, _ = drums
    cfg = Config()
    env, hz = cfg.envelope, 100.0
    offline = sources_offline(mix, SR, env, cfg.features, onset_hz=hz)
    n_fft = FrameSTFT(SR, env.fps, env.n_fft).n_fft
    stft = FrameSTFT(SR, hz, n_fft, fit=False)
    stepper = SourceStepper(cfg.features, SR, n_fft, stft.norm, hz, Smoothing("attack-release", env.window, 10, 300),
                            video_fps=env.fps, agc_release_s=10.0, gate_db=-55.0)
    assert set(stepper.names) == set(known_sources(cfg.features, live=True))
    values, raw_low, fired = [], [], {n: [] for n in stepper.detector.names}
    for s in range(0, mix.size, 256):  # the capture's block size
        spectra, _, dbs = stft.push_spectra(mix[s:s + 256])
        for spec, db in zip(spectra, dbs, strict=True):
            values.append(stepper.step(spec, float(db)))
            raw_low.append(stepper.bank.levels(spec)["low"][0])
            for name in stepper.fired:
                fired[name].append(len(values) - 1)
    # raw band values: the same window ends at 30 and 100 frames/s every 3 video frames (4410 samples)
    video = np.arange(2, offline.n_frames, 3)
    hop = (video + 1) * 10 // 3 - 1
    np.testing.assert_allclose(np.array(raw_low)[hop], offline.raw["low"][video], rtol=1e-9, atol=1e-12)
    # onset events: the very same
    for name, idx in fired.items():
        live_t = onset_time((np.array(idx) + 1) / hz, n_fft, SR)
        np.testing.assert_allclose(live_t, offline.onsets[name], atol=1e-9)
    # smoothed, normalised values: the same up to the normalisation (live: automatic gain) with the live smoothing
    causal = env.model_copy(update={"mode": "attack-release"})
    offline_ar = sources_offline(mix, SR, causal, cfg.features, onset_hz=hz)
    kick_env = sources_offline(kicks, SR, causal, cfg.features, ["loudness"]).values["loudness"]
    hat_env = sources_offline(hats, SR, causal, cfg.features, ["loudness"]).values["loudness"]
    at_frames = (np.arange(offline.n_frames) + 1) * 10 // 3 - 1
    # where the windows end together (every 3rd frame) and the gate (-55 dB) lets the sound through
    heard = np.zeros(offline.n_frames, bool)
    heard[video] = offline_ar.rms_db[video] > -52.0
    for band, follows, ignores in (("low", kick_env, hat_env), ("high", hat_env, kick_env)):
        live = np.array([v[band] for v in values])[at_frames]
        assert r(live[heard], offline_ar.values[band][heard]) >= 0.95, band
        assert r(live[heard], follows[heard]) >= 0.9 and r(live[heard], ignores[heard]) <= 0.2, band
    # the flash: live, the value at each hop; offline, each frame's peak (1 in the frame an onset is known in)
    live_flash = np.array([v["onset"] for v in values])
    hop_ends = (np.arange(live_flash.size) + 1) / hz
    detected = (np.array(fired["onset"]) + 1) / hz
    np.testing.assert_allclose(live_flash, flash_at(hop_ends, detected, cfg.features.onset_decay_ms), atol=1e-9)
    frame_ends = (np.arange(offline.n_frames) + 1) / env.fps
    k = np.searchsorted(frame_ends, detected - 1e-9)  # the frame each onset is known in
    assert (offline.values["onset"][k] == 1.0).all()
    assert (offline.values["onset"] >= live_flash[at_frames] - 1e-9).all()


def test_flash_decays_from_each_event():
    t = np.array([0.0, 0.1, 0.2, 0.35, 0.5])
    f = flash_at(t, np.array([0.1, 0.35]), decay_ms=100.0)
    np.testing.assert_allclose(f, [0.0, 1.0, np.exp(-1.0), 1.0, np.exp(-1.5)])


def test_the_render_plot_shows_routed_sources_and_each_words_weight(drums, tmp_path):
    from aadiff_live.analysis.envelope import envelope_from_raw
    from aadiff_live.output.plot import plot_sources

    cfg = Config()
    sf = sources_offline(drums[0], SR, cfg.envelope, cfg.features, ["loudness", "low", "onset:high"])
    env = envelope_from_raw(sf.raw["loudness"], sf.rms_db, cfg.envelope)
    png = plot_sources(sf, env, tmp_path / "r.png", "thunder and rain",
                       weights={"thunder": 2 * sf.values["low"], "rain": 2 * sf.values["onset:high"]})
    assert png.stat().st_size > 10_000


def test_unknown_source_is_one_line_listing_the_known_ones():
    cfg = Config()
    with pytest.raises(UserError) as err:
        check_source("kick", cfg.features, flag="--route")
    msg = str(err.value)
    assert "\n" not in msg and msg.startswith("--route: unknown source 'kick'")
    for name in ("loudness", "low", "mid", "high", "onset", "onset:low", "drums", "vocals"):
        assert name in msg
    assert check_source("onset:high", cfg.features, live=True) == "onset:high"
    with pytest.raises(UserError, match="offline only"):
        check_source("drums", cfg.features, live=True)
    with pytest.raises(ValueError, match="stem"):
        sources_offline(np.zeros(SR), SR, cfg.envelope, cfg.features, ["drums"])
    assert STEMS_INSTALL == 'pip install "aadiff-live[stems]"'


def test_bands_come_from_the_config(tmp_path):
    path = tmp_path / "c.yaml"
    path.write_text("features:\n  bands:\n    sub: [20, 60]\n    air: [10000, 20000]\n")
    cfg = load_config(path)
    assert known_sources(cfg.features) == ["loudness", "sub", "air", "onset", "onset:sub", "onset:air",
                                           "drums", "bass", "vocals", "other"]
    for bad, what in (("    loudness: [1, 2]\n", "band name 'loudness'"), ("    x: [200, 100]\n", "need 0 <= low < high"),
                      ("    Bad: [1, 2]\n", "band name 'Bad'")):
        path.write_text("features:\n  bands:\n" + bad)
        with pytest.raises(UserError, match=what):
            load_config(path)


def test_the_analysis_thread_carries_every_source_and_every_onset(drums):
    import threading

    from aadiff_live.live.analysis_thread import AnalysisThread
    from aadiff_live.live.ring import RingBuffer
    from aadiff_live.mailbox import Mailbox

    mix, _, _, kick_t, hat_t = drums
    cfg = Config()
    ring = RingBuffer(SR * 10, 1, SR)
    hops: list = []
    a = AnalysisThread(ring, cfg.envelope, cfg.live, Mailbox(), threading.Event(), features=cfg.features,
                       on_hop=hops.append)
    posted = []
    for s in range(0, mix.size, 1024):  # several hops a block: the posted sample keeps every onset of the block
        blk = mix[s:s + 1024, None].astype(np.float32)
        ring.write(blk, s / SR)
        sample = a.step(blk[:, 0], s)
        if sample is not None:
            posted.append(sample)
    assert len(hops) == int(mix.size / SR * cfg.live.analysis_hz)
    assert all(set(h.sources) == set(known_sources(cfg.features, live=True)) for h in hops)
    assert all(h.sources["loudness"] == h.normalised for h in hops)
    n_hits = kick_t.size + hat_t.size
    assert sum("onset" in h.onsets for h in hops) == n_hits
    assert sum("onset" in p.onsets for p in posted) == n_hits
    assert sum("onset:low" in p.onsets for p in posted) == kick_t.size


def test_osc_out_sends_every_source_and_each_onset(wait_until):
    import threading

    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import ThreadingOSCUDPServer

    from aadiff_live.control.osc import OscSender

    got: list[tuple] = []
    d = Dispatcher()
    d.map("/aadiff/*", lambda addr, *a: got.append((addr, *a)))
    srv = ThreadingOSCUDPServer(("127.0.0.1", 0), d)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        s = OscSender(f"127.0.0.1:{srv.server_address[1]}")
        s.send_sources({"loudness": 0.5, "low": 0.25, "onset:low": 1.0}, ("onset:low",))
        s.send_sources({"loudness": 0.5, "low": 0.125, "onset:low": 0.5})
        assert wait_until(lambda: len(got) >= 7)
    finally:
        srv.shutdown()
        srv.server_close()
    assert [g[1] for g in got if g[0] == "/aadiff/source/low"] == [0.25, 0.125]
    assert [g[1] for g in got if g[0] == "/aadiff/source/onset:low"] == [1.0, 0.5]
    assert [g for g in got if g[0] == "/aadiff/onset"] == [("/aadiff/onset", "onset:low")]


def test_analyse_writes_every_source_and_the_onset_times(drums, tmp_path):
    import json

    import soundfile as sf

    from aadiff_live.analyse import run_analyse

    mix, _, _, kick_t, hat_t = drums
    wav = tmp_path / "drums.wav"
    sf.write(str(wav), mix.astype(np.float32), SR)
    cfg = Config()
    assert run_analyse(cfg, audio_path=str(wav), prompt=None, json_out=str(tmp_path / "a.json"),
                       plot=str(tmp_path / "a.png")) == 0
    data = json.loads((tmp_path / "a.json").read_text())
    src = data["sources"]
    assert src["names"] == known_sources(cfg.features, live=True)
    n = data["stats"]["frames"]
    rows = read_frames(tmp_path / "a.json")
    assert list(rows["sources"]) == src["names"] and all(len(v) == n for v in rows["sources"].values())
    assert rows["sources"]["loudness"] == pytest.approx(rows["normalised"])
    expected = sources_offline(mix.astype(np.float32), SR, cfg.envelope, cfg.features)
    assert src["onsets_s"]["onset:low"] == pytest.approx(expected.onsets["onset:low"].tolist())
    assert len(src["onsets_s"]["onset"]) == kick_t.size + hat_t.size
    assert (tmp_path / "a.png").stat().st_size > 10_000


def test_live_from_a_file_sends_every_source_and_the_onsets_over_osc(drums, tmp_path):
    import threading
    import time

    import soundfile as sf
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import ThreadingOSCUDPServer

    from aadiff_live.cli import main

    wav = tmp_path / "drums.wav"
    sf.write(str(wav), drums[0][:3 * SR].astype(np.float32), SR)
    got: list[tuple] = []
    d = Dispatcher()
    d.map("/aadiff/*", lambda addr, *a: got.append((addr, *a)))
    srv = ThreadingOSCUDPServer(("127.0.0.1", 0), d)
    threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    try:
        code = main(["--input", str(wav), "--model", "tiny", "--size", "64", "--prompt", "thunder and rain",
                     "--tokens", "thunder", "--no-display", "--osc-send", f"127.0.0.1:{srv.server_address[1]}"])
        time.sleep(0.2)
    finally:
        srv.shutdown()
        srv.server_close()
    assert code == 0
    cfg = Config()
    counts = {n: sum(g[0] == f"/aadiff/source/{n}" for g in got) for n in known_sources(cfg.features, live=True)}
    assert min(counts.values()) >= 100, counts  # 100 a second (the start-up may skip stale audio; UDP may drop)
    assert all(0.0 <= g[1] <= 1.0 for g in got if g[0].startswith("/aadiff/source/"))
    onsets = [g[1] for g in got if g[0] == "/aadiff/onset"]
    assert onsets.count("onset") >= 5 and onsets.count("onset:low") >= 2 and onsets.count("onset:high") >= 2, onsets
    assert set(onsets) <= {n for n in counts if n.startswith("onset")}
