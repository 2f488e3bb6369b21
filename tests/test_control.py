"""VJ-rig control without the live app: parameter checks, the inbox, OSC over real UDP, MIDI mapping, scenes."""

from __future__ import annotations

import logging
import os
import socket
import threading
import time

import pytest

from aadiff_live.config import Config, load_config
from aadiff_live.control.apply import KEEP, apply_changes
from aadiff_live.control.params import PARAMS, ControlError, ControlInbox, IgnoredLog, check_value
from aadiff_live.control.settings import CcMap, MidiConfig, SceneConfig
from aadiff_live.errors import UserError

ISSUE_ADDRESSES = {"/aadiff/gain": "f", "/aadiff/w_min": "f", "/aadiff/w_max": "f", "/aadiff/window_ms": "f",
                   "/aadiff/attack_ms": "f", "/aadiff/release_ms": "f", "/aadiff/prompt": "s", "/aadiff/words": "s",
                   "/aadiff/scene": "i", "/aadiff/seed": "i", "/aadiff/freeze": "i", "/aadiff/hud": "i",
                   "/aadiff/tempo": "f"}  # tempo: proposed to a Link session (docs/tempo.md)


def test_the_address_table_is_the_issues():
    assert {p.address: p.kind for p in PARAMS.values()} == ISSUE_ADDRESSES


@pytest.mark.parametrize("name,args,why", [
    ("gain", ("loud",), "takes a float (f), got str"),
    ("gain", (1.0, 2.0), "takes one argument (f), got 2"),
    ("gain", (), "takes one argument (f), got 0"),
    ("gain", (-0.5,), "-0.5 is outside 0..100"),
    ("gain", (float("nan"),), "nan is outside 0..100"),
    ("scene", (1.5,), "takes a whole number, got 1.5 (not a whole number)"),
    ("scene", (True,), "takes an int (i), got bool"),
    ("gain", (True,), "takes a float (f), got bool"),
    ("freeze", (2,), "2 is outside 0..1"),
    ("seed", (-1,), "-1 is outside 0..4.29497e+09"),
    ("prompt", (3,), "takes a string (s), got int"),
    ("prompt", ("x" * 1001,), "1001 characters, more than 1000"),
    ("volume", (1.0,), "unknown parameter 'volume'"),
])
def test_bad_values_are_refused_with_the_reason(name, args, why):
    with pytest.raises(ControlError, match=why.replace("(", r"\(").replace(")", r"\)").replace("+", r"\+")):
        check_value(name, args)


def test_good_values_pass():
    assert check_value("gain", (2.5,)) == 2.5
    assert check_value("w_min", (-1.0,)) == -1.0
    assert check_value("scene", (3,)) == 3
    assert check_value("words", ("",)) == ""
    # what controllers send: a float for an integer when it is whole, a boolean for a switch, an int for a float
    assert check_value("scene", (2.0,)) == 2 and type(check_value("scene", (2.0,))) is int
    assert check_value("freeze", (True,)) == 1 and check_value("hud", (0.0,)) == 0
    assert check_value("gain", (1,)) == 1.0 and type(check_value("gain", (1,))) is float


def test_inbox_coalesces_newest_wins():
    box = ControlInbox()
    for i in range(10000):
        box.put("gain", float(i))
    box.put("prompt", "a fire")
    assert box.take() == {"gain": 9999.0, "prompt": "a fire"}
    assert box.take() == {}
    assert box.received == 10001 and box.coalesced == 9999


def test_ignored_log_is_one_line_each_but_rate_limited(caplog):
    now = [0.0]
    ig = IgnoredLog(per_second=3, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="aadiff_live.control.params"):
        for i in range(10):
            ig("osc", f"bad {i}")
        now[0] = 1.5
        ig("osc", "later")
        for i in range(4):
            ig("osc", f"again {i}")
        ig.flush()  # within the second: nothing yet
        now[0] = 2.6
        ig.flush()
        ig.flush()
    lines = [r.getMessage() for r in caplog.records]
    assert lines == ["osc: ignored: bad 0", "osc: ignored: bad 1", "osc: ignored: bad 2",
                     "7 more control messages ignored in the last second", "osc: ignored: later",
                     "osc: ignored: again 0", "osc: ignored: again 1",
                     "2 more control messages ignored in the last second"]
    assert ig.total == 15


# ---------------------------------------------------------------- OSC over real UDP on 127.0.0.1
@pytest.fixture
def osc_server():
    from aadiff_live.control.osc import OscServer

    box = ControlInbox()
    server = OscServer(box, "127.0.0.1", 0)
    server.start()
    yield server, box
    server.close()
    assert not server.thread.is_alive()



def test_osc_in_takes_good_messages_and_survives_bad_ones(osc_server, caplog, wait_until):
    from pythonosc.udp_client import SimpleUDPClient

    server, box = osc_server
    c = SimpleUDPClient("127.0.0.1", server.port)
    raw = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    with caplog.at_level(logging.WARNING):
        c.send_message("/aadiff/scene", 2.5)  # not a whole number for an int
        c.send_message("/aadiff/nope", 1.0)  # unknown address
        c.send_message("/aadiff/gain", 500.0)  # out of range
        c.send_message("/aadiff/prompt", "x" * 60000)  # oversized (the largest a UDP datagram carries)
        raw.sendto(b"\x00garbage", ("127.0.0.1", server.port))  # not OSC
        raw.sendto(b"/aadiff/prompt\x00\x00,s\x00\x00abc", ("127.0.0.1", server.port))  # truncated string
        c.send_message("/aadiff/gain", 2.5)
        c.send_message("/aadiff/prompt", "a fire in the snow")
        assert wait_until(lambda: box.received >= 2)
        time.sleep(0.1)
    assert box.take() == {"gain": 2.5, "prompt": "a fire in the snow"}
    text = caplog.text
    assert "takes a whole number, got 2.5" in text and "unknown address '/aadiff/nope'" in text
    assert "500.0 is outside 0..100" in text and "60000 characters, more than 1000" in text
    assert "not OSC" in text and "malformed OSC datagram" in text
    assert "Traceback" not in text
    assert box.ignored.total == 6


def test_osc_bundle_time_tagged_in_the_future_is_applied_now(osc_server, wait_until):
    from pythonosc.osc_bundle_builder import OscBundleBuilder
    from pythonosc.osc_message_builder import OscMessageBuilder
    from pythonosc.udp_client import SimpleUDPClient

    server, box = osc_server
    b = OscBundleBuilder(time.time() + 3600)  # an hour ahead: python-osc's own dispatcher would sleep
    for addr, v in (("/aadiff/gain", 0.5), ("/aadiff/seed", 7)):
        m = OscMessageBuilder(addr)
        m.add_arg(v)
        b.add_content(m.build())
    SimpleUDPClient("127.0.0.1", server.port).send(b.build())
    assert wait_until(lambda: box.received >= 2, 2.0)
    assert box.take() == {"gain": 0.5, "seed": 7}


def test_osc_flood_is_coalesced_and_the_server_stays_responsive(osc_server, wait_until):
    from pythonosc.udp_client import SimpleUDPClient

    server, box = osc_server
    c = SimpleUDPClient("127.0.0.1", server.port)
    for i in range(10000):
        c.send_message("/aadiff/gain", float(i % 100))
        c.send_message("/aadiff/freeze", 7)  # each one refused (out of range)
    t0 = time.monotonic()
    while "w_max" not in box._pending and time.monotonic() - t0 < 10:  # UDP may have dropped one; resend
        c.send_message("/aadiff/w_max", 3.0)
        time.sleep(0.05)
    assert time.monotonic() - t0 < 10, "the server did not answer within 10 s of the flood"
    got = box.take()
    # UDP may drop datagrams under a flood; what arrives is coalesced into one value per name
    assert got["w_max"] == 3.0 and set(got) <= {"gain", "w_max"}
    assert box.received >= 100 and box.ignored.total >= 100
    c.send_message("/aadiff/hud", 0)
    assert wait_until(lambda: box.take() == {"hud": 0})


def test_osc_port_in_use_is_a_one_line_error(osc_server):
    from aadiff_live.control.osc import OscServer

    server, _ = osc_server
    with pytest.raises(UserError, match=f"--osc-port {server.port}: cannot listen on 127.0.0.1:{server.port}"):
        OscServer(ControlInbox(), "127.0.0.1", server.port)


def test_osc_send_goes_out_per_frame_and_words_on_change(wait_until):
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
        s.send_frame(envelope=0.5, weight=1.25, level_db=-20.0, latency_ms=40.0, words=("fire",))
        s.send_frame(envelope=0.25, weight=0.5, level_db=-30.0, latency_ms=41.0, words=("fire",))
        s.send_frame(envelope=0.0, weight=0.0, level_db=-90.0, latency_ms=42.0, words=("rain", "fire"))
        assert wait_until(lambda: len(got) >= 14)
    finally:
        srv.shutdown()
        srv.server_close()
    assert [g for g in got if g[0] == "/aadiff/words"] == [("/aadiff/words", "fire"), ("/aadiff/words", "rain,fire")]
    assert [g[1] for g in got if g[0] == "/aadiff/weight"] == [1.25, 0.5, 0.0]
    assert [g[1] for g in got if g[0] == "/aadiff/latency_ms"] == [40.0, 41.0, 42.0]
    assert [g[1] for g in got if g[0] == "/aadiff/level_db"] == [-20.0, -30.0, -90.0]
    assert [g[1] for g in got if g[0] == "/aadiff/envelope"] == [0.5, 0.25, 0.0]


@pytest.mark.parametrize("bad", ["9000", "host:", ":9000", "h:0", "h:70000", "h:x"])
def test_osc_send_target_must_be_host_port(bad):
    from aadiff_live.control.osc import parse_host_port

    with pytest.raises(UserError, match="expected HOST:PORT"):
        parse_host_port(bad)


# ---------------------------------------------------------------- MIDI
def test_midi_mapping_from_mido_messages():
    mido = pytest.importorskip("mido")
    from aadiff_live.control.midi import MidiMapper

    m = MidiMapper(MidiConfig())
    assert m.map(mido.Message("control_change", control=1, value=127)) == [("gain", (4.0,))]
    assert m.map(mido.Message("control_change", control=1, value=0)) == [("gain", (0.0,))]
    (name, (v,)), = m.map(mido.Message("control_change", control=3, value=64))
    assert name == "w_max" and v == pytest.approx(4.0 * 64 / 127)
    assert m.map(mido.Message("control_change", control=7, value=127)) == [("seed", (127,))]
    assert m.map(mido.Message("control_change", control=8, value=63)) == [("freeze", (0,))]
    assert m.map(mido.Message("control_change", control=8, value=64)) == [("freeze", (1,))]
    assert m.map(mido.Message("note_on", note=38, velocity=100)) == [("scene", (3,))]
    assert m.map(mido.Message("note_on", note=38, velocity=0)) == []  # a note-off in disguise
    assert m.map(mido.Message("control_change", control=99, value=5)) == []
    assert m.map(mido.Message("pitchwheel", pitch=100)) == []
    ch2 = MidiMapper(MidiConfig(channel=2, cc={10: CcMap(param="release_ms", min=100, max=1100)}))
    assert ch2.map(mido.Message("control_change", channel=0, control=10, value=127)) == []
    assert ch2.map(mido.Message("control_change", channel=1, control=10, value=127)) == [("release_ms", (1100.0,))]


def test_midi_values_pass_the_same_checks_as_osc():
    mido = pytest.importorskip("mido")
    from aadiff_live.control.midi import MidiMapper

    box = ControlInbox()
    m = MidiMapper(MidiConfig())
    for value in range(128):  # a knob swept end to end: every value is legal, the last one stays
        for name, args in m.map(mido.Message("control_change", control=5, value=value)):
            assert box.offer("midi", name, args)
    assert box.take() == {"release_ms": 2000.0} and box.ignored.total == 0


@pytest.mark.parametrize("yaml_text,why", [
    ("midi:\n  cc:\n    3: {param: prompt, min: 0, max: 1}\n", "'prompt' cannot be set by a knob"),
    ("midi:\n  cc:\n    3: {param: gain, min: 0, max: 500}\n", "gain: 500 is outside 0..100"),
    ("midi:\n  cc:\n    300: {param: gain, min: 0, max: 1}\n", "CC numbers are 0..127"),
    ("midi:\n  notes:\n    36: 0\n", "scene number"),
])
def test_midi_mapping_in_config_is_checked(tmp_path, yaml_text, why):
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml_text)
    with pytest.raises(UserError, match=why):
        load_config(cfg)


def test_midi_mapping_in_config_replaces_the_defaults(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("midi:\n  cc:\n    21: {param: w_max, min: 1, max: 3}\n  notes: {60: 2}\n")
    c = load_config(cfg)
    assert set(c.midi.cc) == {21} and c.midi.notes == {60: 2}


def test_missing_midi_port_lists_the_ports():
    from aadiff_live.control.midi import find_port

    assert find_port("lpd", ["Midi Through:0", "LPD8:LPD8 MIDI 1 20:0"]) == "LPD8:LPD8 MIDI 1 20:0"
    with pytest.raises(UserError) as e:
        find_port("nano", ["Midi Through:0", "LPD8:LPD8 MIDI 1 20:0"])
    assert str(e.value) == ("--midi 'nano': no MIDI input port matches (ports: Midi Through:0; LPD8:LPD8 MIDI 1 "
                            "20:0); pass part of one of these names (`aadiff-live midi-ports`)")


def test_midi_through_a_real_virtual_port(wait_until):
    mido = pytest.importorskip("mido")
    if not os.path.exists("/dev/snd/seq"):
        pytest.skip("no ALSA sequencer here (/dev/snd/seq missing: the snd-seq kernel module is not available "
                    "in this container), so no virtual MIDI port can be made")
    from aadiff_live.control.midi import MidiInput

    out = mido.open_output("aadiff-test-knobs", virtual=True)
    try:
        box = ControlInbox()
        inp = MidiInput("aadiff-test-knobs", MidiConfig(), box)
        try:
            out.send(mido.Message("control_change", control=1, value=127))
            out.send(mido.Message("note_on", note=37, velocity=90))
            assert wait_until(lambda: box.received >= 2)
            assert box.take() == {"gain": 4.0, "scene": 2}
        finally:
            inp.close()
    finally:
        out.close()


# ---------------------------------------------------------------- scenes and applying changes
def test_scenes_in_config(tmp_path):
    cfg = tmp_path / "c.yaml"
    cfg.write_text("scenes:\n  - {name: storm, prompt: a city in a thunderstorm, words: [thunderstorm], gain: 2}\n"
                   "  - {name: fire, prompt: a forest on fire}\n")
    c = load_config(cfg)
    assert [s.name for s in c.scenes] == ["storm", "fire"] and c.scenes[0].gain == 2.0
    cfg.write_text("scenes:\n  - {name: storm, prompt: a city at night, words: [thunder]}\n")
    with pytest.raises(UserError, match="scene 'storm': 'thunder' is not a word of the prompt"):
        load_config(cfg)
    cfg.write_text("scenes:\n  - {name: storm, prompt: a city, colour: red}\n")
    with pytest.raises(UserError, match="unknown key 'scenes.0.colour'"):
        load_config(cfg)


class FakeTarget:
    def __init__(self, prompt_words=("fire", "forest", "city", "rain")):
        self.calls: list[tuple] = []
        self.known = prompt_words

    def set_gain(self, gain):
        self.calls.append(("gain", gain))

    def set_envelope(self, **values):
        self.calls.append(("envelope", values))

    def set_render(self, *, prompt=None, words=KEEP, seed=None, scene=None):
        if words is not KEEP and words is not None and any(w not in self.known for w in words):
            return f"'{words[0]}' is not a word of the prompt"
        self.calls.append(("render", prompt, words if words is not KEEP else "keep", seed, scene))
        return None

    def set_freeze(self, on):
        self.calls.append(("freeze", on))

    def set_hud(self, on):
        self.calls.append(("hud", on))

    def set_scene(self, number, scene):
        self.calls.append(("scene", number, scene.name))


SCENES = [SceneConfig(name="storm", prompt="a city in the rain", words=["rain"], seed=3, window=9, gain=2.0),
          SceneConfig(name="fire", prompt="a forest on fire")]


def test_a_scene_then_the_knobs_of_the_same_frame():
    t, box = FakeTarget(), ControlInbox()
    apply_changes({"gain": 0.5, "scene": 1, "w_max": 3.0, "freeze": 1}, t, SCENES, box)
    assert t.calls == [("render", "a city in the rain", ["rain"], 3, "storm"), ("envelope", {"window": 9}), ("gain", 2.0),
                       ("scene", 1, "storm"), ("envelope", {"w_max": 3.0}), ("gain", 0.5), ("freeze", True)]


def test_words_pin_and_unpin_and_bad_scenes_are_ignored(caplog):
    t, box = FakeTarget(), ControlInbox()
    apply_changes({"words": "fire, forest"}, t, SCENES, box)
    apply_changes({"words": ""}, t, SCENES, box)
    apply_changes({"scene": 2}, t, SCENES, box)
    with caplog.at_level(logging.WARNING):
        apply_changes({"scene": 5}, t, SCENES, box)
        apply_changes({"words": "snow"}, t, SCENES, box)
    assert t.calls == [("render", None, ["fire", "forest"], None, None), ("render", None, None, None, None),
                       ("render", "a forest on fire", None, None, "fire"), ("scene", 2, "fire")]
    assert "scene 5 does not exist (2 in config.yaml 'scenes:')" in caplog.text
    assert "'snow' is not a word of the prompt" in caplog.text


def test_defaults_listen_to_nothing():
    c = Config()
    assert c.osc.port is None and c.osc.send is None and c.osc.host == "127.0.0.1" and c.midi.port is None


def test_midi_learn_maps_the_next_knob_and_writes_it_back(tmp_path, caplog, fake_midi):
    mido = pytest.importorskip("mido")
    from aadiff_live.live.rig import Rig

    cfg_path = tmp_path / "config.yaml"
    original = "# my show\nmidi:\n  channel: null   # every channel\nscenes: []\n"
    cfg_path.write_text(original)
    cfg = load_config(cfg_path, {"midi": {"port": "lpd8"}})
    rig = Rig(cfg, prompt="a fire", pinned=None, has_clap=True, headless=True, config_path=cfg_path)
    inp = rig.midi
    assert inp is not None and fake_midi["name"] == "LPD8:LPD8 MIDI 1 20:0"
    assert [inp.learn.next() for _ in range(3)] == ["gain", "w_min", "w_max"]  # L, L, L
    assert rig.hud_lines() == ["MIDI learn: move a knob for 'w_max' (L: next parameter)"]
    with caplog.at_level(logging.INFO):
        inp._on_message(mido.Message("control_change", control=21, value=30))  # learned, not applied
        inp._on_message(mido.Message("control_change", control=21, value=127))  # applied by the new mapping
        rig.poll()
    assert rig.hud_lines() == [] and inp.learn.param is None
    assert cfg.midi.cc[21] == CcMap(param="w_max", min=0.0, max=4.0) and 3 not in cfg.midi.cc  # moved from CC 3
    assert "MIDI learn: CC 21 -> w_max (0..4), written to" in caplog.text
    assert (tmp_path / "config.yaml.bak").read_text() == original  # the user's file, comments and all
    again = load_config(cfg_path)
    assert again.midi.cc[21].param == "w_max" and set(again.midi.cc) == set(cfg.midi.cc)
    inp._on_message(mido.Message("control_change", control=21, value=127))
    assert rig.inbox.take() == {"w_max": 4.0}
    rig.close()


def test_midi_learn_cycles_back_to_off():
    from aadiff_live.control.midi import MidiLearn
    from aadiff_live.control.settings import MIDI_PARAMS

    learn = MidiLearn(MidiConfig())
    seen = [learn.next() for _ in range(len(MIDI_PARAMS) + 1)]
    assert seen == [*MIDI_PARAMS, None]
    assert learn.range_for("hud") == CcMap(param="hud", min=0, max=1)
    assert learn.range_for("release_ms") == CcMap(param="release_ms", min=20.0, max=2000.0)


def test_midi_ports_lists_what_mido_sees(monkeypatch, capsys):
    mido = pytest.importorskip("mido")
    from aadiff_live.cli import main

    monkeypatch.setattr(mido, "get_input_names", lambda: ["Midi Through:Midi Through Port-0 14:0", "LPD8:LPD8 20:0"])
    assert main(["midi-ports"]) == 0
    assert capsys.readouterr().out.splitlines() == ["  0  Midi Through:Midi Through Port-0 14:0", "  1  LPD8:LPD8 20:0"]
    monkeypatch.setattr(mido, "get_input_names", lambda: [])
    assert main(["midi-ports"]) == 0
    assert "no MIDI input ports" in capsys.readouterr().out


@pytest.fixture
def fake_midi(monkeypatch):
    """mido without a MIDI system (this machine has none): two input ports, opening one records its callback."""
    mido = pytest.importorskip("mido")
    opened: dict = {}

    class Port:
        def close(self):
            opened["closed"] = True

    def open_input(name, callback):
        opened["name"], opened["callback"] = name, callback
        return Port()

    monkeypatch.setattr(mido, "get_input_names", lambda: ["Midi Through:0", "LPD8:LPD8 MIDI 1 20:0"])
    monkeypatch.setattr(mido, "open_input", open_input)
    return opened


def test_midi_input_opens_the_matching_port_and_feeds_the_inbox(fake_midi):
    mido = pytest.importorskip("mido")
    from aadiff_live.control.midi import MidiInput

    opened = fake_midi
    box = ControlInbox()
    inp = MidiInput("lpd8", MidiConfig(), box)
    assert opened["name"] == "LPD8:LPD8 MIDI 1 20:0"
    opened["callback"](mido.Message("control_change", control=1, value=127))  # as rtmidi's thread calls it
    opened["callback"](mido.Message("note_on", note=43, velocity=1))
    assert box.take() == {"gain": 4.0, "scene": 8}
    inp.close()
    assert opened["closed"]


def test_a_bad_word_list_with_a_new_prompt_drops_only_the_words(caplog):
    t, box = FakeTarget(prompt_words=("fire", "snow")), ControlInbox()
    with caplog.at_level(logging.WARNING):
        apply_changes({"words": "rain", "prompt": "a fire in the snow", "seed": 42}, t, SCENES, box)
    assert t.calls == [("render", "a fire in the snow", "keep", 42, None)]
    assert "words: ignored: 'rain' is not a word of the prompt" in caplog.text


def test_osc_address_patterns_still_match(osc_server, wait_until):
    from pythonosc.udp_client import SimpleUDPClient

    server, box = osc_server
    c = SimpleUDPClient("127.0.0.1", server.port)
    c.send_message("/aadiff/{w_min,w_max}", 1.5)  # OSC 1.0 pattern: both addresses
    c.send_message("/aadiff/*", "x")  # every address: only the string ones accept it, the rest refuse it
    assert wait_until(lambda: box.received >= 4 and box.ignored.total >= 10)
    assert box.take() == {"w_min": 1.5, "w_max": 1.5, "prompt": "x", "words": "x"}
