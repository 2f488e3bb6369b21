"""Long files are read in blocks (memory does not grow with the length) and ``aadiff-live analyse`` shows the
envelope, the weights and CLAP's ranking without rendering."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
import soundfile as sf

from aadiff_live.analysis.clip import CLAP_CHUNK_S, CLAP_CHUNKS, analyse_clip
from aadiff_live.analysis.envelope import analyse
from aadiff_live.audio.decode import load_audio
from aadiff_live.audio.stream import AudioFeed, open_audio
from aadiff_live.config import EnvelopeConfig
from aadiff_live.output.sidecar import read_frames


def _write_noise(path, seconds: float, sr: int = 16000, channels: int = 1) -> None:
    """A bursty noise file written block by block (the test itself never holds it whole)."""
    rng = np.random.default_rng(1)
    block = sr * 5
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=channels, subtype="PCM_16") as f:
        for k in range(int(seconds * sr) // block):
            amp = 0.05 + 0.4 * (k % 3 == 0)
            f.write((rng.standard_normal((block, channels)) * amp).astype(np.float32))


def _peak_bytes(path) -> int:
    tracemalloc.start()
    try:
        analyse_clip(open_audio(path), EnvelopeConfig())
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_peak_memory_does_not_grow_with_the_clip(tmp_path):
    short, long = tmp_path / "short.wav", tmp_path / "long.wav"
    _write_noise(short, 150)
    _write_noise(long, 300)
    p_short, p_long = _peak_bytes(short), _peak_bytes(long)
    whole_long = 300 * 16000 * 4  # the long clip decoded whole, float32 mono: 19 MB
    # twice the length costs at most 10 % (+1 MB) more: per-frame floats, not the samples (the old
    # whole-clip path peaked at several times the clip's size and doubled with it)
    assert p_long < 1.1 * p_short + 1e6, (p_short, p_long)
    assert p_long < 0.75 * whole_long, p_long


def test_streamed_analysis_equals_the_whole_clip_analysis(audio_dir):
    """Same envelope whether the clip goes through in blocks or whole (golden: the in-memory path)."""
    path = audio_dir / "sonicpi_loop_amen_full.flac"
    cfg = EnvelopeConfig()
    clip = analyse_clip(open_audio(path), cfg)
    a = load_audio(path)
    whole = analyse(a.mono(), a.samplerate, cfg)
    assert clip.envelope.n_frames == whole.n_frames == round(a.duration * cfg.fps)
    np.testing.assert_allclose(clip.envelope.raw, whole.raw, rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(clip.envelope.weights, whole.weights, rtol=1e-9, atol=1e-12)
    assert clip.n_samples == a.samples.shape[0]
    # a short clip: CLAP hears all of it
    np.testing.assert_allclose(clip.excerpt, a.mono(), atol=1e-6)


def test_long_clip_gives_clap_a_bounded_spread_excerpt(tmp_path):
    path = tmp_path / "long.wav"
    _write_noise(path, 300)
    clip = analyse_clip(open_audio(path), EnvelopeConfig())
    assert len(clip.excerpt_starts_s) == CLAP_CHUNKS
    assert clip.excerpt.size == CLAP_CHUNKS * CLAP_CHUNK_S * 16000
    assert clip.excerpt_starts_s[0] == 0.0 and clip.excerpt_starts_s[-1] == 290.0  # first to last chunk
    a = load_audio(path).mono()
    k = 5  # each chunk holds the audio of where it says it comes from
    s = int(clip.excerpt_starts_s[k] * 16000)
    np.testing.assert_array_equal(clip.excerpt[k * 160000:(k + 1) * 160000], a[s:s + 160000])


class _Collect:
    def __init__(self) -> None:
        self.blocks: list[np.ndarray] = []

    def append_audio(self, b: np.ndarray) -> None:
        self.blocks.append(b)


def test_audio_feed_hands_over_resampled_audio_as_the_picture_advances(tmp_path):
    path = tmp_path / "a.wav"
    src, dst, seconds = 44100, 48000, 10  # resampled to 48000 on the way, in blocks of ~1.5 s
    t = np.arange(seconds * src) / src
    sf.write(str(path), np.stack([0.5 * np.sin(2 * np.pi * 440 * t), 0.25 * np.sin(2 * np.pi * 1000 * t)], axis=1),
             src, subtype="FLOAT")
    w = _Collect()
    feed = AudioFeed(open_audio(path), w, dst)
    feed.until(2.0)
    # it stops at the first block that reaches 2 s: before the last block handed over it had less than 2 s
    assert feed.given >= 2.0 * dst > feed.given - w.blocks[-1].shape[0], (feed.given, [b.shape for b in w.blocks])
    n_early = len(w.blocks)
    feed.until(2.0)  # nothing more until the picture moves on
    assert len(w.blocks) == n_early
    feed.until(None)
    out = np.concatenate(w.blocks)
    assert abs(out.shape[0] - seconds * dst) <= 2 and out.shape[1] == 2
    # the content: the same two tones, now at 48 kHz (the first and last 10 ms, where the resampler starts and
    # ends, aside)
    td = np.arange(out.shape[0]) / dst
    inner = slice(dst // 100, out.shape[0] - dst // 100)
    np.testing.assert_allclose(out[inner, 0], 0.5 * np.sin(2 * np.pi * 440 * td[inner]), atol=2e-3)
    np.testing.assert_allclose(out[inner, 1], 0.25 * np.sin(2 * np.pi * 1000 * td[inner]), atol=2e-3)


def test_analyse_cli_end_to_end(cli, tmp_path, audio_dir):
    out = tmp_path / "a.json"
    clip = audio_dir / "ibm_thunder.flac"
    code, stdout, err = cli("analyse", clip, "--json", out, "--plot", "--window", "9", "--gain", "1.5",
                            "--prompt", "thunder over a rainy city", "--clap-model", "tiny", "--top-k", "2")
    assert code == 0, err
    data = json.loads(out.read_text())
    a = load_audio(clip)
    n = round(a.duration * 30)
    rows = read_frames(out)
    assert data["kind"] == "analyse" and data["frames_file"] == "a.frames.jsonl"
    assert data["stats"]["frames"] == n and len(rows["weight"]) == n
    assert data["settings"]["window"] == 9 and data["settings"]["gain"] == 1.5
    w = np.array(rows["weight"])
    assert data["stats"]["weight"]["median"] == pytest.approx(np.median(w), abs=1e-5)
    assert data["stats"]["weight"]["max"] == pytest.approx(w.max(), abs=1e-5)
    assert set(data["tokens"]["clap_scores"]) == {"thunder", "rainy", "city"}
    assert len(data["tokens"]["words"]) == 2
    assert (tmp_path / "a.json.png").stat().st_size > 10_000
    assert "CLAP ranking:" in stdout and "weight: min" in stdout and f"{n} frames" in stdout
    # a larger window smooths: the frame-to-frame change drops
    code, _, err = cli("analyse", clip, "--json", tmp_path / "b.json", "--window", "1")
    assert code == 0, err
    raw = json.loads((tmp_path / "b.json").read_text())
    assert raw["stats"]["frame_to_frame_change_median"] > data["stats"]["frame_to_frame_change_median"]
    assert raw["tokens"]["clap_scores"] is None  # no prompt: no CLAP


def test_analyse_pinned_words_skip_clap(cli, audio_dir):
    code, stdout, err = cli("analyse", audio_dir / "ibm_thunder.flac", "--prompt", "rain on a city", "--tokens", "rain")
    assert code == 0, err
    assert "rain (pinned" in stdout


def _one_line_error(code, err, *needles):
    assert code == 2, err
    lines = [ln for ln in err.strip().splitlines() if ln.startswith("aadiff-live: error:")]
    assert len(lines) == 1 and "Traceback" not in err, err
    for n in needles:
        assert n in lines[0], lines[0]


@pytest.mark.parametrize("case", ["missing", "folder", "garbage", "nothing", "json-folder", "tokens-alone",
                                  "not-in-prompt", "bad-window", "both", "plot-not-png"])
def test_analyse_bad_input(cli, tmp_path, audio_dir, case):
    good = audio_dir / "ibm_thunder.flac"
    (tmp_path / "bad.wav").write_text("not audio\n" * 50)
    args, needles = {
        "missing": ([tmp_path / "nope.wav"], ["not found", "aadiff-live analyse"]),
        "folder": ([tmp_path], ["is a folder"]),
        "garbage": ([tmp_path / "bad.wav"], ["cannot decode", "convert it"]),
        "nothing": ([], ["needs a sound file"]),
        "json-folder": ([good, "--json", tmp_path / "no" / "x.json"], ["does not exist", "--json"]),
        "tokens-alone": ([good, "--tokens", "rain"], ["--tokens needs --prompt"]),
        "not-in-prompt": ([good, "--prompt", "a city", "--tokens", "rain"], ["'rain' is not a word"]),
        "bad-window": ([good, "--window", "0"], ["window"]),
        "both": ([good, "--demo"], ["not both"]),
        "plot-not-png": (["--plot", good], ["the plot is a PNG file"]),
    }[case]
    code, _, err = cli("analyse", *args)
    _one_line_error(code, err, *needles)
    assert not list(tmp_path.glob("*.json"))
