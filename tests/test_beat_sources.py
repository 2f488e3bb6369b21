"""Beat-locked sources (beat, bar, lfo:SHAPE:BEATS) offline: in sources_offline, analyse --json and render."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf

from aadiff_live.analysis.sources import check_source, sources_offline
from aadiff_live.analysis.tempo import lfo_shape
from aadiff_live.audio.drums import drum_pattern
from aadiff_live.config import Config
from aadiff_live.errors import UserError
from aadiff_live.output.sidecar import read_frames

SR = 22050


@pytest.fixture(scope="module")
def drums():
    audio, beats = drum_pattern(120.0, 12.0, SR)
    return audio, beats


def test_beat_bar_and_lfo_follow_the_beats(drums):
    audio, ref = drums
    cfg = Config()
    f = sources_offline(audio, SR, cfg.envelope, cfg.features, ["beat", "bar", "lfo:saw:4", "lfo:square:2"],
                        n_frames=360)
    assert f.bpm == pytest.approx(120.0, rel=0.02)
    assert np.abs(f.beats[:, None] - ref[None, :]).min(axis=1).max() < 0.03  # every beat on a true beat
    assert np.allclose(np.diff(f.downbeats), 2.0, atol=0.03)  # a bar of 4 beats at 120 BPM
    fps, times = f.fps, f.times + 0.5 / f.fps
    beat = f.values["beat"]
    # the flash peaks on the frame after each beat and has decayed (150 ms) well before the next
    peaks = np.flatnonzero((beat[1:-1] > beat[:-2]) & (beat[1:-1] >= beat[2:])) + 1
    assert len(peaks) >= 22 and beat[peaks].min() > 0.75
    assert np.percentile(beat, 50) < 0.2
    bar = f.values["bar"]
    assert (bar > 0.75).sum() <= (beat > 0.75).sum() / 3
    # the saw rises over one bar: it wraps (falls) on the bar lines and only there
    saw = f.values["lfo:saw:4"]
    wraps = times[1:][np.diff(saw) < -0.5]
    assert np.abs(wraps[:, None] - f.downbeats[None, :]).min(axis=1).max() < 1.5 / fps
    sq = f.values["lfo:square:2"]
    assert 0.4 < sq.mean() < 0.6 and set(np.unique(sq)) <= {0.0, 1.0}
    assert np.all((saw >= 0) & (saw <= 1))


def test_lfo_shapes():
    p = np.array([0.0, 0.25, 0.5, 0.75])
    assert np.allclose(lfo_shape("sine", p), [0, 0.5, 1, 0.5])
    assert np.allclose(lfo_shape("saw", p), p)
    assert np.allclose(lfo_shape("square", p), [1, 1, 0, 0])
    assert np.allclose(lfo_shape("triangle", p), [0, 0.5, 1, 0.5])


@pytest.mark.parametrize("name,msg", [("lfo:blob:4", "SHAPE one of sine"), ("lfo:sine:0", "0 < BEATS"),
                                      ("lfo:sine", "lfo:SHAPE:BEATS"), ("beats", "beat, bar, lfo:SHAPE:BEATS")])
def test_bad_beat_sources_are_one_line_errors(name, msg):
    with pytest.raises(UserError, match=msg) as e:
        check_source(name, Config().features)
    assert "\n" not in str(e.value)


def test_beat_sources_are_live_sources_but_refused_with_tempo_off():
    from aadiff_live.live.routing import live_routes

    assert check_source("lfo:sine:16", Config().features, live=True) == "lfo:sine:16"
    routes = [{"source": "beat", "word": "lightning"}, {"source": "lfo:sine:16", "word": "fog"}]
    cfg = Config.model_validate({"routes": routes})
    assert [r.source for r in live_routes(cfg, "lightning and fog")] == ["beat", "lfo:sine:16"]
    with pytest.raises(UserError, match="--tempo is off") as e:
        live_routes(Config.model_validate({"routes": routes, "tempo": {"source": "off"}}), "lightning and fog")
    assert "\n" not in str(e.value)


def test_analyse_json_lists_the_beat_times_and_tempo(tmp_path, drums, cli):
    audio, ref = drums
    wav = tmp_path / "d.wav"
    sf.write(str(wav), audio, SR)
    code, out, err = cli("analyse", wav, "--tempo", "audio", "--json", tmp_path / "a.json")
    assert code == 0, err
    assert "tempo: 120.0 BPM" in out
    t = json.loads((tmp_path / "a.json").read_text())["tempo"]
    assert t["bpm"] == pytest.approx(120.0, rel=0.02)
    beats = np.array(t["beats_s"])
    assert beats.size == ref.size and np.abs(beats - ref).max() < 0.03
    code, _, _ = cli("analyse", wav, "--tempo", "off", "--json", tmp_path / "b.json")
    assert code == 0 and json.loads((tmp_path / "b.json").read_text())["tempo"] is None


def test_render_routes_beat_and_lfo(tmp_path, drums, cli):
    audio, _ = drums
    wav = tmp_path / "d.wav"
    sf.write(str(wav), audio[:6 * SR], SR)
    out = tmp_path / "v.mp4"
    code, _, err = cli("render", "--audio", wav, "--out", out, "--fps", "10", "--model", "tiny", "--size", "64",
                       "--prompt", "lightning and fog over a city", "--route", "beat=lightning",
                       "--route", "lfo:sine:16=fog")
    assert code == 0, err
    side = json.loads((tmp_path / "v.mp4.json").read_text())
    w = read_frames(tmp_path / "v.mp4.json")["weights"]
    assert side["settings"]["tempo"]["bpm"] == pytest.approx(120.0, rel=0.02)
    lightning = np.array(w["lightning"])
    assert lightning.max() > 1.2 and np.median(lightning) < 0.5  # flashes on the beats, low between them
    assert np.allclose(lightning[::5], lightning[5], atol=0.15)  # a beat every 5 frames (0.5 s at 10 fps)
    fog = np.array(w["fog"])
    assert fog[0] < 0.05 and np.all(np.diff(fog[:40]) > -1e-9)  # a 16-beat sine from the first bar line: up for 8 beats (4 s)
    assert np.argmax(fog) in (39, 40)


def test_render_beat_route_with_tempo_off_is_a_one_line_error(tmp_path, drums, cli):
    audio, _ = drums
    wav = tmp_path / "d.wav"
    sf.write(str(wav), audio[:SR], SR)
    code, _, err = cli("render", "--audio", wav, "--out", tmp_path / "v.mp4", "--model", "tiny", "--size", "64",
                       "--prompt", "lightning", "--route", "beat=lightning", "--tempo", "off")
    assert code == 2 and "--tempo audio" in err and "Traceback" not in err
