"""The beat trackers (analysis/tempo.py) on drum patterns made in code, whose beats are known exactly."""

import mir_eval
import numpy as np
import pytest

from aadiff_live.analysis.sources import onset_strength
from aadiff_live.analysis.tempo import BeatTracker, offline_beats, track
from aadiff_live.audio.drums import drum_pattern
from aadiff_live.config import Config

SR = 22050
HZ = 100.0


def _strength(audio):
    cfg = Config()
    return onset_strength(audio, SR, cfg.envelope, cfg.features, HZ)


@pytest.mark.parametrize("bpm", [90.0, 128.0])
def test_causal_tracker_finds_steady_beats_after_warmup(bpm):
    audio, ref = drum_pattern(bpm, 24.0, SR)
    x, t0 = _strength(audio)
    tr = track(x, HZ, t0)
    est = np.array(tr.beats)
    assert mir_eval.beat.f_measure(ref[ref >= 8.0], est[est >= 8.0]) >= 0.9
    assert tr.bpm == pytest.approx(bpm, rel=0.02)
    assert tr.confidence > 0.5 and tr.locked


def test_causal_tracker_follows_a_tempo_change():
    audio, ref = drum_pattern(110.0, 30.0, SR, change_at_bar=8, bpm2=130.0)
    x, t0 = _strength(audio)
    tr = track(x, HZ, t0)
    est = np.array(tr.beats)
    assert tr.bpm == pytest.approx(130.0, rel=0.02)
    after = ref[ref >= ref[32] + 6.0]  # six seconds after the change
    assert mir_eval.beat.f_measure(after, est[est >= after[0] - 0.1]) >= 0.9


def test_silence_freewheels_the_last_tempo_and_the_beat_comes_back():
    audio, _ = drum_pattern(120.0, 12.0, SR)
    later, _ = drum_pattern(120.0, 12.0, SR, seed=1)
    gap = np.zeros(int(6.2 * SR), dtype=np.float32)  # not a whole number of beats: the phase must re-lock
    x, t0 = _strength(np.concatenate([audio, gap, later]))
    tr = BeatTracker(HZ, t0=t0)
    n_music, n_gap = int(12.0 * HZ), int(6.2 * HZ)
    for v in x[:n_music + n_gap]:
        tr.step(v)
    assert tr.confidence == 0.0 and not tr.locked  # silence: said so
    assert tr.bpm == pytest.approx(120.0, rel=0.02)  # ... and the tempo is kept
    in_gap = [b for b in tr.beats if 12.5 <= b <= 18.0]
    assert len(in_gap) >= 9 and np.allclose(np.diff(in_gap), 0.5, atol=0.02)  # beats go on freewheeling
    for v in x[n_music + n_gap:]:
        tr.step(v)
    assert tr.locked and tr.confidence > 0.5
    ref = 18.2 + np.arange(0, 12.0, 0.5)
    est = np.array(tr.beats)
    assert mir_eval.beat.f_measure(ref[ref >= 18.2 + 6.0], est[est >= 24.0]) >= 0.9


def test_phase_at_is_zero_on_the_beats():
    audio, _ = drum_pattern(120.0, 16.0, SR)
    x, t0 = _strength(audio)
    tr = track(x, HZ, t0)
    last = tr.beats[-1]
    assert min(tr.phase_at(last), 1 - tr.phase_at(last)) < 0.02
    assert tr.phase_at(last + 0.25) == pytest.approx(0.5, abs=0.03)
    assert tr.state().beat == len(tr.beats)


@pytest.mark.parametrize("kw", [dict(bpm=100.0, swing=0.33), dict(bpm=110.0, change_at_bar=8, bpm2=130.0)])
def test_offline_tracker_beats_from_the_start(kw):
    audio, ref = drum_pattern(seconds=24.0, sr=SR, **kw)
    x, t0 = _strength(audio)
    est, bpm = offline_beats(x, HZ, t0)
    assert mir_eval.beat.f_measure(ref, est) >= 0.95
    assert abs(est[0] - ref[0]) < 0.05 or abs(est[0] - ref[1]) < 0.05


def test_offline_tracker_on_silence_is_empty():
    est, bpm = offline_beats(np.zeros(500), HZ)
    assert est.size == 0 and bpm > 0
