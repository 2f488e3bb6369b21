"""Faults a user meets in the field: an input device that appears after the app starts (boot), OSC
controllers that send floats for integers, MIDI knobs that do nothing or rebuild the atlas on every tick."""

from __future__ import annotations

import logging

import pytest

from aadiff_live.errors import UserError

USB = {"index": 3, "name": "USB Audio CODEC", "max_input_channels": 2, "default_samplerate": 48000.0}
SPEAKERS = {"index": 0, "name": "Speakers", "max_input_channels": 0, "default_samplerate": 48000.0}


class FakeClock:
    """``now`` / ``sleep``: time passes only when something sleeps."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> float:
        return self.t

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.t += s


def _devices_appearing_at(monkeypatch, clock: FakeClock, at_s: float | None) -> list[int]:
    """PortAudio's device list: the speakers only, the USB interface too from ``at_s`` on (None: never)."""
    import sounddevice as sd

    rescans: list[int] = []
    monkeypatch.setattr(sd, "query_devices",
                        lambda *a, **k: [SPEAKERS, USB] if at_s is not None and clock.t >= at_s else [SPEAKERS])
    monkeypatch.setattr(sd.default, "device", [-1, -1])
    return rescans


# ---------------------------------------------------------------- a device that appears 10 s after start
def test_a_device_that_appears_10_s_after_start_is_waited_for(monkeypatch, caplog):
    from aadiff_live.live.devices import wait_for_input

    clock = FakeClock()
    _devices_appearing_at(monkeypatch, clock, 10.0)
    rescans = []
    with caplog.at_level(logging.INFO, logger="aadiff_live.live.devices"):
        dev = wait_for_input("USB Audio", 60.0, rescan=lambda: rescans.append(clock.t), clock=clock.now,
                             sleep=clock.sleep)
    assert (dev.index, dev.name) == (3, "USB Audio CODEC")
    assert 10.0 <= clock.t <= 15.0  # found at the first look after it appeared (looks at most 5 s apart)
    assert clock.sleeps[:4] == [0.5, 1.0, 2.0, 4.0] and max(clock.sleeps) == 5.0  # back-off
    assert len(rescans) == len(clock.sleeps)  # a fresh device list before every look
    text = caplog.text
    assert "waiting up to 60 s for the input device 'USB Audio'" in text  # says what it waits for
    assert "appeared after" in text


def test_a_device_that_never_appears_exits_3_after_the_wait(monkeypatch):
    from aadiff_live.live.devices import DeviceTimeout, wait_for_input

    clock = FakeClock()
    _devices_appearing_at(monkeypatch, clock, None)
    with pytest.raises(DeviceTimeout, match="did not appear within --wait-for-device 30 s") as e:
        wait_for_input("USB Audio", 30.0, clock=clock.now, sleep=clock.sleep)
    assert e.value.exit_code == 3
    assert clock.t == pytest.approx(30.0)


def test_without_a_wait_a_missing_device_is_exit_2_at_once(monkeypatch):
    from aadiff_live.live.devices import wait_for_input

    clock = FakeClock()
    _devices_appearing_at(monkeypatch, clock, 10.0)
    with pytest.raises(UserError, match="no audio input device") as e:
        wait_for_input("USB Audio", 0.0, clock=clock.now, sleep=clock.sleep)
    assert e.value.exit_code == 2 and clock.sleeps == []


def test_an_ambiguous_name_is_not_waited_for(monkeypatch):
    """Several matches is a mistake in the name, not a device still on its way."""
    import sounddevice as sd

    from aadiff_live.live.devices import wait_for_input

    clock = FakeClock()
    monkeypatch.setattr(sd, "query_devices", lambda *a, **k: [USB, {**USB, "index": 4, "name": "USB Audio 2"}])
    with pytest.raises(UserError, match="matches several devices") as e:
        wait_for_input("USB Audio", 60.0, clock=clock.now, sleep=clock.sleep)
    assert e.value.exit_code == 2 and clock.sleeps == []


def test_the_live_command_waits_and_exits_3(monkeypatch, cli):
    """--wait-for-device through the CLI: the wait is logged, the timeout is one line with exit code 3."""
    import aadiff_live.live.capture as capture_mod
    import aadiff_live.live.devices as devices_mod

    clock = FakeClock()
    _devices_appearing_at(monkeypatch, clock, None)
    monkeypatch.setattr(capture_mod, "rescan_portaudio", lambda sd: None)
    monkeypatch.setattr(devices_mod.time, "monotonic", clock.now)
    monkeypatch.setattr(devices_mod.time, "sleep", clock.sleep)
    code, _out, err = cli("live", "--model", "tiny", "--prompt", "fire", "--no-display", "--input", "USB Audio",
                          "--wait-for-device", "20")
    assert code == 3, err
    assert "waiting up to 20 s for the input device 'USB Audio'" in err
    assert err.strip().splitlines()[-1].startswith("aadiff-live: error: --input 'USB Audio': the device did not "
                                                   "appear within --wait-for-device 20 s")
    assert "Traceback" not in err


def test_the_documented_unit_waits_and_restarts_after_a_timeout():
    from pathlib import Path

    docs = Path(__file__).resolve().parents[1] / "docs"
    units = [t[t.index("[Service]"):t.index("[Install]")] for t in
             (p.read_text(encoding="utf-8") for p in sorted(docs.rglob("*.md"))) if "[Service]" in t and "[Install]" in t]
    assert units, "the docs show a systemd unit"
    for unit in units:
        assert "--wait-for-device" in unit
        prevent = [ln for ln in unit.splitlines() if ln.startswith("RestartPreventExitStatus")]
        assert all("3" not in ln.split("=", 1)[1].split() for ln in prevent)  # 3 (the device never came): restarted


# ---------------------------------------------------------------- OSC: floats where integers are meant
@pytest.fixture
def osc():
    from aadiff_live.control.osc import OscServer
    from aadiff_live.control.params import ControlInbox

    box = ControlInbox()
    server = OscServer(box, "127.0.0.1", 0)
    server.start()
    yield server, box
    server.close()


def test_touchosc_floats_switch_scenes_and_press_buttons(osc, wait_until):
    """TouchOSC sends every fader and button as a float: a whole float is the integer it means."""
    from pythonosc.udp_client import SimpleUDPClient

    from aadiff_live.control.apply import apply_changes
    from aadiff_live.control.settings import SceneConfig

    server, box = osc
    c = SimpleUDPClient("127.0.0.1", server.port)
    for addr, v in (("/aadiff/scene", 2.0), ("/aadiff/freeze", 1.0), ("/aadiff/hud", 0.0), ("/aadiff/seed", 42.0)):
        c.send_message(addr, v)
    assert wait_until(lambda: box.received >= 4)
    got = box.take()
    assert got == {"scene": 2, "freeze": 1, "hud": 0, "seed": 42}
    assert all(type(v) is int for v in got.values())
    calls: list = []

    class Target:
        def set_render(self, **kw):
            calls.append(("render", kw))

        def set_scene(self, n, scene):
            calls.append(("scene", n))

        def set_freeze(self, on):
            calls.append(("freeze", on))

        def set_hud(self, on):
            calls.append(("hud", on))

        def set_envelope(self, **kw):
            calls.append(("envelope", kw))

        def set_gain(self, g):
            calls.append(("gain", g))

    scenes = [SceneConfig(name="calm", prompt="a calm sea"), SceneConfig(name="storm", prompt="a storm at sea")]
    apply_changes(got, Target(), scenes, box)
    assert ("scene", 2) in calls and ("freeze", True) in calls and ("hud", False) in calls
    assert ("render", {"seed": 42}) in calls
    assert box.ignored.total == 0


def test_toggles_sending_true_false_work_and_a_fraction_is_one_logged_line(osc, wait_until, caplog):
    from pythonosc.osc_message_builder import OscMessageBuilder
    from pythonosc.udp_client import SimpleUDPClient

    server, box = osc
    c = SimpleUDPClient("127.0.0.1", server.port)
    m = OscMessageBuilder("/aadiff/freeze")
    m.add_arg(True)  # OSC type tag T
    with caplog.at_level(logging.WARNING, logger="aadiff_live.control.params"):
        c.send(m.build())
        assert wait_until(lambda: box.received >= 1)
        c.send_message("/aadiff/scene", 2.5)  # a fader between two scenes: not an integer
        assert wait_until(lambda: box.ignored.total >= 1)
    assert box.take() == {"freeze": 1}
    lines = [r.getMessage() for r in caplog.records if r.name == "aadiff_live.control.params"]
    assert lines == ["osc: ignored: /aadiff/scene takes a whole number, got 2.5 (not a whole number)"]


# ---------------------------------------------------------------- MIDI: knobs that act, and knobs that settle
def test_the_default_midi_map_holds_only_knobs_that_act_under_the_default_live_settings():
    from aadiff_live.config import Config
    from aadiff_live.control.settings import idle_params
    from aadiff_live.live.analysis_thread import live_smoothing_mode

    cfg = Config()
    live_mode = live_smoothing_mode(cfg.envelope.mode)
    idle = [(n, m.param) for n, m in cfg.midi.cc.items() if m.param in idle_params(live_mode)]
    assert idle == []
    assert "window_ms" in idle_params(live_mode)  # the knob that did nothing


@pytest.fixture
def lpd8(monkeypatch):
    """mido without a MIDI system: one controller; opening it hands back rtmidi's callback."""
    mido = pytest.importorskip("mido")
    opened: dict = {}

    class Port:
        def close(self):
            pass

    def open_input(name, callback):
        opened["callback"] = callback
        return Port()

    monkeypatch.setattr(mido, "get_input_names", lambda: ["LPD8:LPD8 MIDI 1 20:0"])
    monkeypatch.setattr(mido, "open_input", open_input)
    return opened


class CountingTarget:
    def __init__(self) -> None:
        self.seeds: list[tuple[float, int]] = []
        self.scenes: list[int] = []
        self.gains: list[float] = []
        self.t = 0.0

    def set_render(self, **kw):
        if kw.get("seed") is not None:
            self.seeds.append((self.t, kw["seed"]))

    def set_scene(self, n, scene):
        self.scenes.append(n)

    def set_gain(self, g):
        self.gains.append(g)

    def set_envelope(self, **kw):
        pass

    def set_freeze(self, on):
        pass

    def set_hud(self, on):
        pass


def _play(cb, clock: FakeClock, box, target, events: list[tuple[float, object]], until: float) -> None:
    """MIDI messages at their times, interleaved with the display loop's take + apply at 60 Hz."""
    from aadiff_live.control.apply import apply_changes
    from aadiff_live.control.settings import SceneConfig

    scenes = [SceneConfig(name=f"s{i}", prompt=f"scene {i} fire") for i in range(1, 9)]
    frames = [k / 60.0 for k in range(int(until * 60) + 1)]
    timeline = sorted([(t, 0, m) for t, m in events] + [(t, 1, None) for t in frames], key=lambda e: (e[0], e[1]))
    for t, kind, msg in timeline:
        clock.t = target.t = t
        if kind == 0:
            cb(msg)
        else:
            apply_changes(box.take(), target, scenes, box)


def test_a_sweep_of_the_seed_knob_builds_one_atlas_when_it_comes_to_rest(lpd8):
    import mido

    from aadiff_live.config import Config
    from aadiff_live.control.midi import MidiInput
    from aadiff_live.control.params import ControlInbox

    clock = FakeClock()
    box = ControlInbox(clock=clock.now)
    cfg = Config().midi
    knob = next(n for n, m in cfg.cc.items() if m.param == "seed")
    MidiInput("lpd8", cfg, box)
    target = CountingTarget()
    # the knob turned from 0 to 127 over 1.27 s: 128 ticks, 10 ms apart (faster than the 60 Hz display)
    sweep = [(0.1 + k * 0.01, mido.Message("control_change", control=knob, value=k)) for k in range(128)]
    _play(lpd8["callback"], clock, box, target, sweep, until=3.0)
    last_tick = sweep[-1][0]
    assert len(target.seeds) == 1, target.seeds  # one new base picture, one atlas
    t, seed = target.seeds[0]
    assert seed == 127  # where the knob came to rest
    assert last_tick + cfg.settle_ms / 1000 <= t <= last_tick + cfg.settle_ms / 1000 + 1 / 60 + 1e-9


def test_a_knob_that_pauses_mid_travel_acts_at_each_rest_and_other_knobs_act_at_once(lpd8):
    import mido

    from aadiff_live.config import Config
    from aadiff_live.control.midi import MidiInput
    from aadiff_live.control.params import ControlInbox

    clock = FakeClock()
    box = ControlInbox(clock=clock.now)
    cfg = Config().midi.model_copy(update={"settle_ms": 100.0})
    cfg.cc[9] = cfg.cc[7].model_copy(update={"param": "scene", "min": 1, "max": 8})  # a knob on scenes too
    MidiInput("lpd8", cfg, box)
    target = CountingTarget()
    cc = lambda t, n, v: (t, mido.Message("control_change", control=n, value=v))  # noqa: E731
    events = [cc(0.0 + k * 0.01, 7, k) for k in range(20)]  # seed knob to 19 ...
    events += [cc(1.0 + k * 0.01, 7, 19 + k) for k in range(20)]  # ... a pause of 0.8 s, then on to 38
    events += [cc(0.0 + k * 0.02, 1, 4 * k) for k in range(30)]  # the gain knob, swept at the same time
    events += [cc(2.0 + i * 0.01, 9, 8 * i) for i in range(16)]  # the scene knob, swept once (to 120: scene 8)
    events += [(2.5, mido.Message("note_on", note=37, velocity=100))]  # a pad: at once, not held
    _play(lpd8["callback"], clock, box, target, events, until=3.5)
    assert [s for _, s in target.seeds] == [19, 38]
    assert len(target.gains) >= 25  # every frame that had a new gain value applied it
    assert target.scenes == [8, 2]  # the knob once at rest (last tick 2.15 s + 0.1 s), then the pad at once (2.5 s)
