"""Envelope golden values and invariances (docs/design.md §1)."""

from __future__ import annotations

import numpy as np
import pytest
from scipy.signal import get_window

from aadiff_live.analysis.envelope import (
    AttackRelease,
    FrameSTFT,
    LiveNormaliser,
    analyse,
    centred_mean,
    raw_envelope,
    smooth,
    to_weight,
)
from aadiff_live.audio.decode import load_audio
from aadiff_live.config import EnvelopeConfig

SR = 44100


def test_sine_golden_value():
    # A sine on an exact FFT bin: the periodic Hann window puts A*sum(w)/2 in the bin and A*sum(w)/4 in
    # each neighbour, so the mean magnitude over n/2+1 bins is A*sum(w)/(n/2+1), divided by sqrt(sum w^2).
    n_fft, amp = 2048, 0.5
    f = 100 * SR / n_fft
    x = amp * np.sin(2 * np.pi * f * np.arange(SR) / SR)
    mag, db = raw_envelope(x, SR, 30, n_fft)
    w = get_window("hann", n_fft)
    expected = amp * w.sum() / (n_fft // 2 + 1) / np.sqrt((w**2).sum())
    assert mag[5:-5] == pytest.approx(np.full(mag[5:-5].size, expected), rel=1e-6)
    # RMS of a sine of amplitude A is A/sqrt(2): -9.03 dBFS for A = 0.5
    assert db[10] == pytest.approx(20 * np.log10(amp / np.sqrt(2)), abs=0.05)


def test_white_noise_reads_its_level_whatever_n_fft():
    x = np.random.default_rng(1).standard_normal(SR * 2) * 0.1
    for n_fft in (512, 2048):
        mag, _ = raw_envelope(x, SR, 30, n_fft)
        assert np.median(mag) == pytest.approx(0.1 * np.sqrt(np.pi) / 2, rel=0.05)


@pytest.mark.parametrize("sr,fps", [(44100, 30), (48000, 30), (22050, 24), (16000, 29.97)])
def test_one_value_per_frame_and_no_drift(sr, fps):
    dur = 6.0
    x = np.zeros(int(sr * dur))
    click_t = 5.013
    x[int(click_t * sr)] = 1.0
    mag, _ = raw_envelope(x, sr, fps)
    assert mag.size == round(dur * fps)
    # the first frame whose window contains the click is the frame the click sounds in
    assert int(np.flatnonzero(mag > 0)[0]) == int(click_t * fps)


def test_block_size_invariance(audio_dir):
    a = load_audio(audio_dir / "sonicpi_loop_amen_full.flac")
    mono = a.mono()
    whole, _ = raw_envelope(mono, a.samplerate, 30)
    for block in (1 if mono.size < 50000 else 97, 256, 4096, 44100):
        parts, _ = raw_envelope(mono, a.samplerate, 30, block=block)
        np.testing.assert_allclose(parts, whole, rtol=1e-12, atol=1e-15)


def test_window_one_is_raw_and_full_window_is_clip_mean():
    raw = np.random.default_rng(2).random(100)
    np.testing.assert_array_equal(smooth(raw, "centred", 1, 30), raw)
    np.testing.assert_array_equal(smooth(raw, "trailing", 1, 30), raw)
    for w in (100, 1000):
        np.testing.assert_allclose(smooth(raw, "centred", w, 30), np.full(100, raw.mean()))
        np.testing.assert_allclose(smooth(raw, "trailing", w, 30), np.full(100, raw.mean()))


def test_centred_vs_causal_on_a_click():
    raw = np.zeros(40)
    raw[20] = 1.0
    c = smooth(raw, "centred", 5, 30)
    t = smooth(raw, "trailing", 5, 30)
    ar = smooth(raw, "attack-release", 5, 30, attack_ms=1.0, release_ms=300.0)
    assert list(np.flatnonzero(c)) == [18, 19, 20, 21, 22]  # centred: symmetric around the click
    assert list(np.flatnonzero(t)) == [20, 21, 22, 23, 24]  # trailing: never before it (causal)
    assert np.flatnonzero(ar)[0] == 20 and ar[20] > 0.99  # fast attack, no anticipation
    assert ar[21] < ar[20] and ar[30] > 0.1  # slow release
    # the trailing window lags the centred one by (S - 1) / 2 frames
    assert np.argmax(np.convolve(t, c[::-1])) - (len(c) - 1) == 2


def test_centred_mean_edges_average_only_existing_frames():
    np.testing.assert_allclose(centred_mean(np.ones(10), 5), np.ones(10))


def test_silent_clip_gives_minimum_weight_without_nan():
    env = analyse(np.zeros(SR * 2), SR, EnvelopeConfig(fps=30, window=5, w_min=0.2, w_max=2.0))
    assert np.all(env.normalised == 0) and np.all(env.weights == 0.2)
    assert np.all(np.isfinite(env.weights))


def test_weight_mapping_and_normalisation():
    assert to_weight(0.0, -1.0, 3.0, 1.0) == -1.0
    assert to_weight(1.0, -1.0, 3.0, 0.5) == 1.0
    x = np.random.default_rng(3).standard_normal(SR * 3) * np.repeat([0.01, 0.1, 0.5], SR)
    env = analyse(x, SR, EnvelopeConfig(fps=30, window=3))
    assert env.normalised.max() == 1.0 and env.normalised.min() >= 0
    assert env.weights[10] < env.weights[40] < env.weights[70]


def test_attack_release_time_constants():
    ar = AttackRelease(fps=100, attack_ms=10, release_ms=100)
    ar.step(0.0)
    assert ar.step(1.0) == pytest.approx(1 - np.exp(-1))  # one attack constant in one 10 ms frame
    for _ in range(100):
        ar.step(1.0)
    for _ in range(10):  # 10 frames = one release constant
        y = ar.step(0.0)
    assert y == pytest.approx(np.exp(-1), rel=1e-3)


def test_live_normaliser_gate_and_floor():
    norm = LiveNormaliser(fps=30, release_s=10, gate_db=-55)
    # a quiet room above the gate is not pumped up to full weight: the floor caps the gain
    quiet_level = 0.89 * 10 ** (-50 / 20)
    vals = [norm.step(quiet_level, -50.0) for _ in range(600)]
    assert max(vals) == pytest.approx(10 ** (-19 / 20), rel=0.01)  # 19 dB under the floor (gate + 24 dB)
    # below the gate: exactly zero
    assert norm.step(quiet_level, -70.0) == 0.0
    # a loud frame reads 1, and a later quieter one reads relative to the remembered peak
    assert norm.step(0.5, -6.0) == 1.0
    assert norm.step(0.25, -12.0) == pytest.approx(0.5, rel=0.01)


def test_frame_stft_rejects_bad_rates():
    with pytest.raises(ValueError):
        FrameSTFT(0, 30)


def _plucked_music(sr: int, onsets: list[float], rng) -> np.ndarray:
    """A held chord (slowly swelling) with plucked notes at ``onsets``: a noise click and decaying
    harmonics of a random pitch, some notes soft (-9 dB), as in a played excerpt."""
    n = int(sr * (onsets[-1] + 0.6))
    t = np.arange(n) / sr
    x = 0.05 * (1 + 0.3 * np.sin(2 * np.pi * 0.4 * t)) * sum(np.sin(2 * np.pi * f * t) for f in (110.0, 138.6, 164.8))
    for k, t0 in enumerate(onsets):
        i = int(round(t0 * sr))
        m = n - i
        tt = np.arange(m) / sr
        f0 = 220.0 * 2 ** (rng.integers(0, 24) / 12)
        amp = 0.35 if k % 3 else 0.12
        note = sum(np.sin(2 * np.pi * f0 * h * tt) / h for h in (1, 2, 3, 4)) * np.exp(-tt / 0.25)
        click = rng.standard_normal(m) * np.exp(-tt / 0.004)
        x[i:] += amp * (note + 0.5 * click)
    return x


def test_envelope_peaks_at_the_onsets_of_played_notes():
    # a made excerpt with known onsets, irregular and off the 10 ms frame grid: the raw envelope
    # rises in the onset's frame or the next two
    rng = np.random.default_rng(3)
    onsets = list(np.cumsum(rng.uniform(0.09, 0.35, 24)) + 0.2)
    x = _plucked_music(SR, onsets, rng)
    raw, _ = raw_envelope(x, SR, 100, n_fft=1024)
    rise = np.diff(raw, prepend=raw[0])
    hits = 0
    for t in onsets:
        k = int(t * 100)
        lo = max(0, k - 2)
        window = rise[lo : k + 3]
        if window.size and window.max() > 0.5 * np.percentile(np.abs(rise), 95):
            hits += 1
    assert hits >= 0.8 * len(onsets)
