"""The live show's tempo (live/tempo.py): MIDI clock through the rig's MIDI handler, Link through the plug-in
point, the beat tracker on the input; the beat-locked sources live against render's; a clock lost freewheels,
says so and recovers."""

from __future__ import annotations

import logging
from pathlib import Path
from types import SimpleNamespace

import mido
import numpy as np
import pytest

from aadiff_live.analysis.clock import CLOCK_TIMEOUT_S, PPQN
from aadiff_live.config import Config, TempoConfig
from aadiff_live.control.params import ControlInbox
from aadiff_live.errors import UserError
from aadiff_live.live.tempo import LiveTempo

HZ, SR, N_FFT = 100.0, 48000, 1600


def tempo(source: str, **kw) -> LiveTempo:
    return LiveTempo(TempoConfig(source=source, **{k: v for k, v in kw.items() if k in TempoConfig.model_fields}),
                     hz=HZ, samplerate=SR, n_fft=N_FFT,
                     **{k: v for k, v in kw.items() if k not in TempoConfig.model_fields})


class FakePort:
    def __init__(self, callback):
        self.callback = callback

    def close(self):
        pass


@pytest.fixture()
def midi_in(monkeypatch):
    """A MidiInput on a fake port (rtmidi's thread is the test): the same handler clock messages arrive at."""
    from aadiff_live.control import midi

    fake = SimpleNamespace(get_input_names=lambda: ["Fake Clock 0"],
                           open_input=lambda name, callback: FakePort(callback))
    monkeypatch.setattr(midi, "_mido", lambda: fake)
    t = tempo("midi", midi_port="Fake")
    cfg = Config().midi
    cfg.notes = {36: 2}
    inbox = ControlInbox()
    port = midi.MidiInput("Fake", cfg, inbox, clock=t.midi)
    now = [0.0]
    port.now = lambda: now[0]
    return t, port, inbox, now


def _pulses(port, now, bpm, n, t0):
    dt = 60.0 / bpm / PPQN
    for k in range(n):
        now[0] = t0 + k * dt
        port._on_message(mido.Message("clock"))
    return now[0]


def test_midi_clock_through_the_midi_handler_gives_bpm_and_beats_on_the_pulses(midi_in):
    t, port, inbox, now = midi_in
    port._on_message(mido.Message("start"))
    beats = []
    for k in range(3 * PPQN + 1):  # pulses at 128 BPM; after each, the beat position the show reads
        now[0] = k * 60.0 / 128.0 / PPQN
        port._on_message(mido.Message("clock"))
        beats.append(t.reading(now[0]).beats)
    assert t.reading(now[0]).bpm == pytest.approx(128.0, abs=0.5)
    assert [k for k, b in enumerate(beats) if b == int(b)] == [0, 24, 48, 72]  # beat k on pulse 24 k
    assert np.allclose(beats, np.arange(len(beats)) / PPQN)
    port._on_message(mido.Message("note_on", note=36, velocity=100))  # a pad still switches a scene
    assert inbox.take() == {"scene": 2}  # and no clock message reached the control inbox


def test_midi_stop_and_continue_keep_the_phase_and_a_stop_freewheels_with_an_alert(midi_in, caplog):
    t, port, _, now = midi_in
    port._on_message(mido.Message("start"))
    end = _pulses(port, now, 120.0, 2 * PPQN + 13, 0.0)  # stopped half way through beat 3
    t.check(end)
    assert t.alert(end) is None and not t.lost
    port._on_message(mido.Message("stop"))
    with caplog.at_level(logging.INFO):
        t.check(end + 1.0)
        t.check(end + 1.5)
    r = t.reading(end + 1.0)
    assert r.beats == pytest.approx(2.5 + 2.0) and not r.heard  # the beat runs on at the last tempo
    assert "TEMPO FREEWHEELING at 120.0 BPM: midi stopped" == t.alert(end + 1.0)
    assert sum("freewheeling" in m for m in caplog.messages) == 1 and t.freewheels == 1
    now[0] = end + 5.0
    port._on_message(mido.Message("continue"))
    end2 = _pulses(port, now, 120.0, 12, end + 5.0)
    assert t.reading(end2).beats == pytest.approx(3.0)  # resumed from the song position
    t.check(end2)
    assert not t.lost and t.alert(end2) is None


def test_midi_clock_that_goes_silent_freewheels_and_recovers(midi_in):
    t, port, _, now = midi_in
    port._on_message(mido.Message("start"))
    end = _pulses(port, now, 100.0, 4 * PPQN, 0.0)
    late = end + CLOCK_TIMEOUT_S + 0.5
    t.check(late)
    assert t.lost and "midi clock lost" in t.alert(late)
    assert t.reading(late).beats > t.reading(end).beats  # never a stall
    end2 = _pulses(port, now, 140.0, 3 * PPQN, late + 1.0)
    t.check(end2)
    assert not t.lost and t.reading(end2).bpm == pytest.approx(140.0, abs=0.5)


def test_tempo_midi_without_a_midi_port_is_one_line():
    with pytest.raises(UserError, match="--midi NAME") as e:
        tempo("midi")
    assert "\n" not in str(e.value)


def test_link_through_the_plug_in_point_follows_proposes_and_freewheels_when_the_peer_leaves(monkeypatch):
    import helpers

    monkeypatch.setattr(helpers, "LINK", [])
    t = tempo("link", link_session="helpers:fake_link_session")
    link = helpers.LINK[0]
    link.tempo = 97.0
    r = t.reading()
    assert r.bpm == 97.0 and r.heard and t.status(0.0)[0].endswith("link 1 peer")
    assert t.propose(133.0) is None and link.tempo == 133.0
    link.num_peers = 0  # the last peer leaves: Link's beat runs on, the HUD says so
    t.check(0.0)
    assert t.lost and "no peer" in t.alert(0.0) and t.reading().beats > r.beats
    link.num_peers = 2
    t.check(0.0)
    assert not t.lost and t.alert(0.0) is None and "link 2 peers" in t.status(0.0)[0]


@pytest.mark.parametrize("spec,msg", [("nomodule", "MODULE:CALLABLE"), ("no_such_mod_xyz:f", "cannot load"),
                                      ("helpers:bursts_wav", "failed"), (None, "tempo.link_session")])
def test_link_plug_in_mistakes_are_one_line(spec, msg):
    with pytest.raises(UserError, match=msg) as e:
        tempo("link", link_session=spec)
    assert "\n" not in str(e.value)


def test_a_proposed_tempo_without_link_is_refused_with_a_reason():
    assert "follows audio" in tempo("audio").propose(120.0)


def test_audio_tempo_locks_freewheels_in_silence_and_locks_again():
    """The beat tracker stepped as the analysis thread steps it, on drums, silence, drums."""
    from aadiff_live.analysis.sources import onset_strength
    from aadiff_live.audio.drums import drum_pattern

    cfg = Config()
    sr = 22050
    drums, _ = drum_pattern(120.0, 12.0, sr)
    audio = np.concatenate([drums, np.zeros(4 * sr, dtype=drums.dtype), drums])
    x, _ = onset_strength(audio, sr, cfg.envelope, cfg.features, HZ)
    t = tempo("audio", in_use=True)
    beats: list[int] = []
    t.on_beat = lambda b, bpm: beats.append(b)
    states = []
    for k, s in enumerate(x):
        now = k / HZ
        t.step(float(s), now)
        t.check(now)
        if k % 50 == 0:
            states.append((now, t.lost, t.alert(now)))
    def at(sec):
        return next(s for s in states if s[0] >= sec)
    assert not at(11.5)[1] and at(11.5)[2] is None  # locked on the drums
    assert at(15.5)[1] and "no beat in the sound" in at(15.5)[2]  # silence: freewheeling, said so
    assert not at(27.5)[1] and at(27.5)[2] is None  # the drums again: locked again
    assert t.freewheels == 1 and t.reading(27.5).bpm == pytest.approx(120.0, rel=0.03)
    assert len(beats) >= 40 and set(beats) == {1, 2, 3, 4}  # beats kept coming through the silence


def test_live_beat_sources_match_the_render_for_the_same_beats(monkeypatch):
    """The same beat times into render's analysis and the live stepper: the same values at the same times."""
    from aadiff_live.analysis import sources
    from aadiff_live.analysis.beat_live import LiveBeatSources
    from aadiff_live.analysis.clock import ClockReading
    from aadiff_live.analysis.tempo import beat_position

    bpm, sr = 128.0, 16000
    beats = 0.3 + np.arange(40) * 60.0 / bpm
    monkeypatch.setattr(sources, "offline_beats", lambda x, hz, t0: (beats, bpm))
    names = ["beat", "bar", "lfo:sine:16", "lfo:saw:2", "lfo:square:4", "lfo:triangle:8"]
    cfg = Config()
    render = sources.sources_offline(np.zeros(15 * sr, dtype=np.float32), sr, cfg.envelope, cfg.features, names)
    centres = render.times + 0.5 / render.fps  # render's value of a frame is at its centre
    live = LiveBeatSources(names, cfg.tempo)
    keep = centres >= beats[0]
    got = {n: [] for n in names}
    for c in centres[keep]:
        r = ClockReading(bpm, float(beat_position(np.array([c]), beats)[0]), True, "test")
        for n, v in live.values(r, float(c)).items():
            got[n].append(v)
    for n in names:
        want = render.values[n][keep]
        assert np.ptp(want) > 0.5, n
        np.testing.assert_allclose(got[n], want, atol=1e-9, err_msg=n)


# ---------------------------------------------------------------------------------------------- the live show


@pytest.mark.parametrize("lookahead_ms,routed", [(0.0, True), (150.0, False)])
def test_a_scene_switch_mid_bar_completes_on_the_next_bar_line(tmp_path, monkeypatch, wait_until, lookahead_ms,
                                                                 routed):
    """A headless show on a (fake) Link session at 120 BPM with --quantise bar: a scene asked for mid-bar is
    complete on the next bar line (less the lookahead), read from the recording's rows. Pinned words: the scene's
    atlas is filled ahead, so it makes the next line; routed words (beat=fire, lfo:sine:4=rain, which run live):
    its atlas fills after the switch and takes the first line it can still make. The peer leaving freewheels
    the tempo with an alert; its return clears it."""
    import json
    import time

    import helpers
    from helpers import bursts_wav, run_watched

    from aadiff_live.config import load_config
    from aadiff_live.live.app import LiveApp
    from aadiff_live.output.sidecar import read_rows

    monkeypatch.setattr(helpers, "LINK", [])
    src = bursts_wav(tmp_path / "b.wav", 14.0)
    cfg_file = tmp_path / "c.yaml"
    cfg_file.write_text("scenes:\n  - {name: storm, prompt: a fire in the rain at night, seed: 5}\n" + (
        "routes:\n  - {source: beat, word: fire}\n  - {source: 'lfo:sine:4', word: rain}\n" if routed
        else "tokens: {tokens: [fire]}\n"))
    cfg = load_config(cfg_file, {"model": {"model": "tiny", "size": "64"}, "live": {"input": str(src)},
                                 "atlas": {"levels_2": 3, "levels": 9},
                                 "tempo": {"source": "link", "link_session": "helpers:fake_link_session",
                                           "quantise": "bar", "lookahead_ms": lookahead_ms}})
    out = tmp_path / "q.mp4"
    app = LiveApp(cfg, prompt="a fire in the rain", no_display=True, duration=None, record=str(out), monitor=False)
    link = helpers.LINK[0]
    seen: dict = {}
    spb = 0.5  # 120 BPM
    fade = cfg.live.fade_s / spb  # in beats
    lookahead = lookahead_ms / 1000.0 / spb

    def watch():
        screen = app.present.screen
        assert wait_until(lambda: screen.view is not None and screen.view.atlas.complete
                          and (routed or app.render_thread.n_prefilled >= 9), 60), "the atlases did not fill"
        assert wait_until(lambda: 0.1 <= link.beat % 4 < 0.4, 5)  # early in a bar
        seen["asked"] = link.beat
        app.rig.inbox.put("scene", 1)
        assert wait_until(lambda: screen.pending is not None or screen.view.scene == "storm", 5)
        seen["ready"] = link.beat  # the scene's atlas is there (at once when it was filled ahead)
        assert wait_until(lambda: screen.view.scene == "storm" and screen.fading_from is None, 8)
        seen["complete"] = link.beat
        assert app.health.alerts() == []
        link.num_peers = 0  # the peer leaves: the beat runs on, the HUD says so, the show goes on
        assert wait_until(lambda: any("TEMPO FREEWHEELING" in a for a in app.health.alerts()), 2)
        n = app.present.stats.n_shown
        time.sleep(0.5)
        assert app.present.stats.n_shown > n + 5
        link.num_peers = 1
        assert wait_until(lambda: app.health.alerts() == [], 2)
        time.sleep(0.5)

    assert run_watched(app, watch) == 0
    line = (seen["asked"] // 4 + 1) * 4  # the next bar line after the request ...
    while line - fade - lookahead < seen["ready"] - 0.05:  # ... or the first its atlas can still make
        line += 4
    if not routed:
        assert line == (seen["asked"] // 4 + 1) * 4
    assert line - lookahead - 0.05 <= seen["complete"] <= line - lookahead + 0.1, (seen, line)
    side = json.loads((tmp_path / "q.mp4.json").read_text())
    assert side["settings"]["tempo"] == "link" and side["settings"]["quantise"] == "bar"
    assert side["summary"]["tempo_freewheels"] == 1
    rows = read_rows(tmp_path / "q.mp4.json")
    assert all(0 <= r["beat_phase"] < 1 and 0 <= r["bar_position"] < 4 for r in rows)
    jsonschema = pytest.importorskip("jsonschema")
    schema = json.loads((Path(__file__).resolve().parents[1] / "docs" / "sidecar.schema.json").read_text())
    check = jsonschema.validators.validator_for(schema)({"$ref": "#/$defs/row", "$defs": schema["$defs"]})
    for r in rows:
        check.validate(r)
    new = [k for k, r in enumerate(rows) if r["scene"] == "storm"]
    done = next(k for k in new if rows[k].get("fade") is None)
    # the first row showing the new scene complete lies within one video frame after the line (less the lookahead)
    late = (rows[done]["bar_position"] + lookahead + 2.0) % 4 - 2.0  # beats after the line
    assert 0.0 <= late * spb <= 1.0 / cfg.envelope.fps + 1e-3, (late, rows[done])
    # the fade started fade_s earlier (start = line - fade - lookahead): each fading row's share is the time since
    # then (its beat position is taken a moment after the blend, when the frame is on screen)
    fading = [rows[k] for k in new[:new.index(done)]]
    assert fading and fading[0]["fade"] < 0.5
    for r in fading:
        since = ((r["bar_position"] + fade + lookahead + 2.0) % 4 - 2.0) * spb
        assert r["fade"] == pytest.approx(since / cfg.live.fade_s, abs=0.06), (r, since)
    if routed:  # the beat-locked routes ran live: the beat flashes, the oscillator sweeps its range
        fire = np.array([r["sources"]["beat"] for r in rows])
        rain = np.array([r["sources"]["lfo:sine:4"] for r in rows])
        assert fire.max() > 0.8 and fire.min() < 0.1 and rain.max() > 0.95 and rain.min() < 0.05


def test_live_audio_tempo_follows_a_drum_file_shows_its_phase_and_sends_beats_over_osc(tmp_path, wait_until):
    """Drums at 120 BPM played in real time into a headless show with --tempo audio: after the tracker's
    warm-up the recording's beat phase is the music's (the tracker's time on the sound's timeline, extrapolated
    to the moment each frame was shown), and OSC out carries /aadiff/beat 1..4 and /aadiff/bpm."""
    import threading
    import time

    import soundfile as sf
    from helpers import run_watched
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import BlockingOSCUDPServer

    from aadiff_live.audio.drums import drum_pattern
    from aadiff_live.config import load_config
    from aadiff_live.live.app import LiveApp
    from aadiff_live.output.sidecar import read_rows

    sr = 22050
    audio, beats = drum_pattern(120.0, 16.0, sr)
    sf.write(str(tmp_path / "d.wav"), audio, sr)
    got: list[tuple] = []
    d = Dispatcher()
    d.map("/aadiff/beat", lambda addr, *a: got.append((addr, *a)))
    d.map("/aadiff/bpm", lambda addr, *a: got.append((addr, *a)))
    server = BlockingOSCUDPServer(("127.0.0.1", 0), d)
    listener = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    listener.start()
    cfg = load_config(None, {"model": {"model": "tiny", "size": "64"}, "live": {"input": str(tmp_path / "d.wav")},
                             "tokens": {"tokens": ["fire"]}, "atlas": {"levels": 9},
                             "osc": {"send": f"127.0.0.1:{server.server_address[1]}"}})
    app = LiveApp(cfg, prompt="a fire in the rain", no_display=True, duration=None,
                  record=str(tmp_path / "a.mp4"), monitor=False)
    seen = {}

    def watch():
        assert wait_until(lambda: app.tempo.reading() is not None and app.tempo.reading().heard, 14)
        time.sleep(4.0)
        seen["status"] = app.tempo.status(time.monotonic())[0]
        seen["bpm"] = app.tempo.reading().bpm

    try:
        assert run_watched(app, watch) == 0
        time.sleep(0.2)
    finally:
        server.shutdown()
        server.server_close()
    assert seen["bpm"] == pytest.approx(120.0, rel=0.04) and "BPM  audio 0." in seen["status"], seen
    rows = [r for r in read_rows(tmp_path / "a.mp4.json") if r["time"] >= 10.0 and r["time"] <= 15.5]
    assert len(rows) > 100
    truth = ((np.array([r["time"] for r in rows]) - beats[0]) * 2.0) % 1.0
    err = (np.array([r["beat_phase"] for r in rows]) - truth + 0.5) % 1.0 - 0.5  # beats, circular
    assert np.abs(np.median(err)) * 0.5 < 0.03 and np.percentile(np.abs(err), 90) * 0.5 < 0.06, (
        np.median(err), np.percentile(np.abs(err), 90))
    beat_no = [a[1] for a in got if a[0] == "/aadiff/beat"]
    bpm = [a[1] for a in got if a[0] == "/aadiff/bpm"]
    assert len(beat_no) >= 12 and set(beat_no) == {1, 2, 3, 4}
    steps = np.diff(beat_no) % 4
    assert (steps == 1).mean() >= 0.9  # one beat after another (a phase correction may repeat or skip one)
    assert bpm[-1] == pytest.approx(120.0, rel=0.04)


def test_tap_tempo_proposes_from_the_third_tap_and_a_pause_starts_over():
    from aadiff_live.analysis.clock import TAP_RESET_S, TapTempo

    taps = TapTempo()
    assert taps.tap(0.0) is None and taps.tap(0.5) is None
    assert taps.tap(1.0) == pytest.approx(120.0) and taps.tap(1.52) == pytest.approx(120.0)
    assert taps.tap(1.52 + TAP_RESET_S + 0.1) is None  # a pause: a new tempo is being tapped
    assert taps.tap(4.0) is None and taps.tap(4.4) == pytest.approx(150.0, rel=0.2)


def test_the_tap_key_proposes_to_link_through_the_rig(monkeypatch):
    import helpers

    from aadiff_live.live.display import Actions
    from aadiff_live.live.rig import Rig

    monkeypatch.setattr(helpers, "LINK", [])
    t = tempo("link", link_session="helpers:fake_link_session")
    rig = Rig(Config(), prompt="a fire", pinned=["fire"], has_clap=False, headless=True)
    rig.show = SimpleNamespace(propose_tempo=t.propose)
    clock = iter([0.0, 0.6, 1.2])
    monkeypatch.setattr("aadiff_live.live.rig.time.monotonic", lambda: next(clock))
    for _ in range(3):
        rig.keys(Actions(tap=True))
    assert helpers.LINK[0].tempo == pytest.approx(100.0)


@pytest.mark.parametrize("flags,msg", [(("--quantise", "bar", "--tempo", "off"), "--tempo is off"),
                                       (("--quantise", "beat", "--levels", "0"), "--levels 0 has no atlas"),
                                       (("--tempo", "link"), "tempo.link_session"),
                                       (("--tempo", "midi"), "--midi NAME")])
def test_live_tempo_flag_mistakes_are_one_line(cli, tmp_path, flags, msg):
    from helpers import bursts_wav

    wav = bursts_wav(tmp_path / "b.wav", 1.0)
    code, _, err = cli("live", "--model", "tiny", "--prompt", "a fire", "--no-display", "--duration", "1",
                       "--input", wav, *flags)
    assert code == 2 and err.strip().count("\n") == 0 and msg in err, err


def test_the_hud_shows_the_tempo_and_lights_the_current_beat():
    pytest.importorskip("pygame")
    from aadiff_live.live.display import Display, HudInfo

    d = Display(64, 64, window_size=320, fullscreen=False, display=0, hud=True)
    yellow, blue = (240, 200, 60), (90, 160, 230)

    def lit(beats):
        d.draw(HudInfo(words=("fire",), prompt="a fire", tempo=("120.0 BPM  midi", beats, 4.0)))
        px = d.pg.surfarray.array3d(d.screen).reshape(-1, 3)
        return {name: int(np.all(px == c, axis=1).sum()) for name, c in (("yellow", yellow), ("blue", blue))}

    try:
        d.set_picture(np.zeros((64, 64, 3), np.uint8))
        on_one, later_in_one, on_two = lit(8.0), lit(8.75), lit(9.1)
    finally:
        d.close()
    assert on_one["yellow"] >= 3 * later_in_one["yellow"] > 0 and on_one["blue"] == 0  # beat 1: yellow, emptying
    assert on_two["blue"] > 0 and on_two["yellow"] == 0  # beat 2: blue
