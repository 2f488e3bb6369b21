"""MIDI clock and Link followers (analysis/clock.py), fed mido messages and a fake Link session."""

import mido
import numpy as np
import pytest

from aadiff_live.analysis.clock import CLOCK_TIMEOUT_S, PPQN, LinkFollower, MidiClock


def _pulses(clock, bpm, n, t0, jitter_s=0.0, seed=0):
    """Feed ``n`` clock pulses at ``bpm`` from ``t0``; returns (time after the last pulse, beat flags)."""
    rng = np.random.default_rng(seed)
    dt = 60.0 / bpm / PPQN
    flags = []
    for k in range(n):
        flags.append(clock.feed(mido.Message("clock"), t0 + k * dt + rng.uniform(-jitter_s, jitter_s)))
    return t0 + (n - 1) * dt, flags


@pytest.mark.parametrize("bpm", [87.0, 128.0, 174.0])
def test_bpm_within_half_a_bpm_with_jittery_pulses(bpm):
    clock = MidiClock()
    clock.feed(mido.Message("start"), 0.0)
    t, _ = _pulses(clock, bpm, 4 * PPQN, 0.01, jitter_s=0.001)
    assert clock.reading(t).bpm == pytest.approx(bpm, abs=0.5)
    assert clock.reading(t).heard


def test_beats_fall_on_every_24th_pulse_from_start():
    clock = MidiClock()
    clock.feed(mido.Message("start"), 0.0)
    _, flags = _pulses(clock, 120.0, 3 * PPQN + 1, 0.0)
    assert [k for k, f in enumerate(flags) if f] == [0, 24, 48, 72]


def test_stop_and_continue_keep_the_phase_and_a_stopped_clock_freewheels():
    clock = MidiClock()
    clock.feed(mido.Message("start"), 0.0)
    t, _ = _pulses(clock, 120.0, 2 * PPQN + 13, 0.0)  # pulses 0..60: stopped half way through beat 3
    clock.feed(mido.Message("stop"), t + 0.01)
    assert clock.reading(t).beats == pytest.approx(2.5)
    r = clock.reading(t + 1.0)  # a second later: freewheeling at 120 BPM, said so
    assert not r.heard and r.detail == "midi stopped" and r.beats == pytest.approx(2.5 + 2.0, abs=1e-6)
    clock.feed(mido.Message("continue"), t + 5.0)
    t2, flags = _pulses(clock, 120.0, 12, t + 5.0)
    assert clock.reading(t2).beats == pytest.approx(3.0)  # resumed from the song position
    assert flags[-1] is True and clock.reading(t2).heard


def test_a_clock_that_goes_silent_freewheels_then_recovers():
    clock = MidiClock()
    clock.feed(mido.Message("start"), 0.0)
    t, _ = _pulses(clock, 100.0, 4 * PPQN, 0.0)
    r = clock.reading(t + CLOCK_TIMEOUT_S + 0.6)
    assert not r.heard and r.bpm == pytest.approx(100.0, abs=0.5)
    t2, _ = _pulses(clock, 140.0, 3 * PPQN, t + 2.0)
    r = clock.reading(t2)
    assert r.heard and r.bpm == pytest.approx(140.0, abs=0.5)


class FakeLink:
    """Link's interface (tempo, beat, phase, num_peers), driven by the test as a peer would."""

    def __init__(self):
        self.tempo, self.beat, self.num_peers = 120.0, 0.0, 1

    @property
    def phase(self):
        return self.beat % 4.0


def test_link_follower_follows_tempo_phase_and_peers_and_proposes_tempo():
    link = FakeLink()
    f = LinkFollower(link, quantum=4)
    link.tempo, link.beat = 133.0, 9.25
    r = f.reading()
    assert r.bpm == 133.0 and r.phase == pytest.approx(0.25) and r.bar_position(4) == pytest.approx(1.25)
    assert r.heard and r.detail == "link 1 peer"
    link.num_peers = 0  # the peer left: freewheeling, said so
    r = f.reading()
    assert not r.heard and "no peer" in r.detail and r.bpm == 133.0
    f.propose(90.0)
    assert link.tempo == 90.0


def test_a_change_lands_on_the_next_bar_with_its_fade_complete_and_the_lookahead():
    from aadiff_live.analysis.clock import ClockReading, change_start

    r = ClockReading(120.0, 9.5, True, "midi")  # half way through beat 2 of the third bar (0.5 s per beat)
    assert change_start(10.0, r, "off") == 10.0
    assert change_start(10.0, r, "beat") == pytest.approx(10.25)  # beat 10 is 0.25 s away
    assert change_start(10.0, r, "bar", quantum=4) == pytest.approx(10.0 + 2.5 * 0.5)  # beat 12
    # a 0.3 s fade and 50 ms lookahead: started 0.35 s before the line, complete 50 ms before it is heard
    assert change_start(10.0, r, "bar", fade_s=0.3, lookahead_s=0.05) == pytest.approx(10.0 + 1.25 - 0.35)
    # too close to the next beat to fade in time: the beat after
    assert change_start(10.0, r, "beat", fade_s=0.3) == pytest.approx(10.0 + 0.75 - 0.3)
