"""Analysis thread: ring buffer -> streaming STFT per hop -> causal envelope -> AGC and gate -> weight.

The same :class:`FrameSTFT`, smoothers and :class:`LiveNormaliser` as the offline render; only the
newest frame's weight is posted (latest-value mailbox), so the display never sees a stale one.

Live, the hop is ``samplerate / live.analysis_hz`` (10 ms by default), not the video frame: the
display shows a new weight at every refresh. The STFT window (``n_fft``), the smoothing window,
attack, release and the AGC are defined in time (the config's ``window`` is in video frames at
``envelope.fps``), so the envelope looks the same whatever the hop. Audio that is already stale
(a backlog of more than :data:`MAX_BACKLOG_S`, e.g. at start-up while the first atlas level
renders) is skipped: the analysis jumps to the newest audio instead of catching up through it.
A device can also hand over sound it queued before the show started (PulseAudio: up to about a
second, delivered a little faster than real time until it has caught up): that backlog never sits
unread in the ring, so at start-up a weight from sound older than :data:`FRESH_S` is not posted
(counted as skipped) until fresh sound arrives; the first refresh never shows stale sound.

Every hop also steps every live source (bands, onsets: :class:`~aadiff_live.analysis.sources.SourceStepper`)
on the same STFT frame, and the show's tempo (:class:`~aadiff_live.live.tempo.LiveTempo`: the beat tracker on the
onset strength, the beat-locked sources); the posted sample carries their values, and ``on_hop`` (OSC out) gets
every hop's.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import replace

import numpy as np

from aadiff_live.analysis.envelope import FrameSTFT, LiveNormaliser, make_causal_smoother, to_weight
from aadiff_live.analysis.sources import LOUDNESS, Smoothing, SourceStepper
from aadiff_live.config import EnvelopeConfig, FeaturesConfig, LiveConfig
from aadiff_live.live.messages import WeightSample
from aadiff_live.live.ring import RingBuffer, RingReader
from aadiff_live.live.supervisor import Supervisor
from aadiff_live.live.tempo import LiveTempo
from aadiff_live.mailbox import Mailbox

log = logging.getLogger(__name__)
MAX_BACKLOG_S = 0.05  # more unread audio than this (beyond one STFT window) is stale: skipped, never shown
# at start-up, a weight from sound older than this is not posted (a refresh and a blend still follow: <= 100 ms)
FRESH_S = 0.06
# a device whose sound is always older than FRESH_S when it arrives (a large buffer) is shown anyway after this
STARTUP_WAIT_S = 5.0


def live_smoothing_mode(mode: str) -> str:
    """Live smoothing must be causal: 'centred' (the offline default) becomes 'attack-release'."""
    if mode == "centred":
        log.info("live mode: smoothing 'centred' needs future audio; using 'attack-release' "
                 "(pass --smoothing trailing for a trailing mean)")
        return "attack-release"
    return mode


class AnalysisThread(threading.Thread):
    def __init__(self, ring: RingBuffer, env: EnvelopeConfig, live: LiveConfig, out: Mailbox[WeightSample],
                 stop: threading.Event, *, features: FeaturesConfig | None = None,
                 on_hop: Callable[[WeightSample], None] | None = None,
                 smoothing_for: Mapping[str, Smoothing] | None = None, tempo: LiveTempo | None = None) -> None:
        """``smoothing_for``: a source's own smoothing (a route's attack/release) instead of the envelope's;
        ``tempo``: stepped every hop with the onset strength (the beat tracker), it gives the beat-locked sources."""
        super().__init__(name="analysis", daemon=False)
        self.ring = ring
        self.out = out
        self.stop_event = stop
        self.video_fps = env.fps
        self.fps = float(live.analysis_hz)  # weights per second
        self.mode = live_smoothing_mode(env.mode)
        n_fft = FrameSTFT(ring.samplerate, env.fps, env.n_fft).n_fft  # the same window as offline at the video rate
        self.stft = FrameSTFT(ring.samplerate, self.fps, n_fft, fit=False)
        self.smoother = self.make_smoother(env.window, env.attack_ms, env.release_ms)
        self.normaliser = LiveNormaliser(self.fps, live.agc_release_s, live.gate_db)
        self.sources = SourceStepper(features or FeaturesConfig(), ring.samplerate, n_fft, self.stft.norm, self.fps,
                                     Smoothing(self.mode, env.window, env.attack_ms, env.release_ms),
                                     video_fps=env.fps, agc_release_s=live.agc_release_s, gate_db=live.gate_db,
                                     smoothing_for=smoothing_for)
        self.tempo = tempo if tempo is not None and tempo.on else None
        self.on_hop = on_hop  # called on this thread with every hop's sample (OSC out of the sources)
        self.skipped = 0  # stale samples skipped (start-up backlog, a device's queued sound, a stall)
        self.fresh = False  # a weight from fresh sound has been posted (the start-up check is over)
        self._first_read: float | None = None
        self.w_min, self.w_max = env.w_min, env.w_max
        self.gain = float(env.gain)  # NB: written by the display thread (+/- keys), read here per frame
        self.latest: WeightSample | None = None  # NB: read by the HUD
        self.n_frames = 0
        self._pushed = 0  # samples given to the STFT
        self.supervisor = Supervisor("analysis", stop, restarts=live.thread_restarts)

    @property
    def error(self) -> BaseException | None:
        """The failure that made the thread give up (after its restarts), else None."""
        return self.supervisor.error

    def make_smoother(self, window: int, attack_ms: float, release_ms: float):
        """A causal smoother at the analysis rate; ``window`` in video frames (at ``envelope.fps``), as configured."""
        frames = max(1, round(window / self.video_fps * self.fps))
        return make_causal_smoother(self.mode, frames, self.fps, attack_ms, release_ms)

    def skip_stale(self, reader: RingReader) -> int:
        """Jump over unread audio older than one STFT window plus :data:`MAX_BACKLOG_S`; samples skipped."""
        keep = self.stft.n_fft + int(MAX_BACKLOG_S * self.ring.samplerate)
        behind = reader.available()
        if behind <= keep:
            return 0
        skip = behind - self.stft.n_fft  # keep one window: the next frame sees only fresh, contiguous audio
        reader.pos += skip
        self.skipped += skip
        return skip

    def _fresh_enough(self, sample: WeightSample, n_read: int, now: float | None = None) -> bool:
        """At start-up: post ``sample`` only if its sound is at most :data:`FRESH_S` old; otherwise count the
        ``n_read`` samples just read as skipped. After :data:`STARTUP_WAIT_S` without fresh sound the device's
        latency is what it is: post, and say so once."""
        now = time.monotonic() if now is None else now
        if self._first_read is None:
            self._first_read = now
        age = now - sample.capture_time
        if sample.capture_time <= 0.0 or age <= FRESH_S:  # 0: the capture time is unknown
            self.fresh = True
            if self.skipped:
                log.info("analysis: skipped %.0f ms of sound queued before the show", 1000 * self.skipped / self.ring.samplerate)
            return True
        if now - self._first_read >= STARTUP_WAIT_S:
            log.warning("analysis: the input's sound is %.0f ms old when it arrives (a large device buffer?); "
                        "showing it anyway", 1000 * age)
            self.fresh = True
            return True
        self.skipped += n_read
        return False

    def step(self, mono: np.ndarray, first_sample: int) -> WeightSample | None:
        """Push samples (the first at absolute ring index ``first_sample``); the newest completed frame."""
        spectra, mags, dbs = self.stft.push_spectra(mono)
        newest = None
        # ring index = STFT sample index + samples lost to overruns before this block
        offset = first_sample - self._pushed
        self._pushed += mono.size
        fired: list[str] = []
        for spectrum, mag, db in zip(spectra, mags, dbs, strict=True):
            i = self.n_frames
            smoothed = self.smoother.step(float(mag))
            e = self.normaliser.step(smoothed, float(db))
            w = float(to_weight(e, self.w_min, self.w_max, self.gain))
            last_sample = int(self.stft.frame_end(i)) - 1 + offset
            t = self.ring.capture_time(last_sample)
            values = self.sources.step(spectrum, float(db))
            values[LOUDNESS] = e  # the envelope's own smoother (the rig may change it live)
            if self.tempo is not None:  # the beat at the hop's capture time (now, when it is unknown)
                values.update(self.tempo.step(float(self.sources.detector.flux[0]),
                                              float(t) if t is not None else time.monotonic()))
            fired += self.sources.fired
            newest = WeightSample(i, w, e, float(db), float(t) if t is not None else 0.0, values,
                                  tuple(self.sources.fired))
            if self.on_hop is not None:
                self.on_hop(newest)
            self.n_frames += 1
        if newest is not None and fired != list(newest.onsets):
            newest = replace(newest, onsets=tuple(dict.fromkeys(fired)))  # every onset since the last post
        return newest

    def run(self) -> None:
        self.supervisor.run(self._run)

    def _run(self) -> None:
        # from the start of the capture; after a restart from now (the STFT's time mapping skips the gap)
        reader = RingReader(self.ring, start=0 if self.supervisor.restarts == 0 else None)
        lost = 0
        sr = self.ring.samplerate
        while not self.stop_event.is_set():
            # sleep until the next frame's last sample is due: one wake-up per frame, not per block
            # (the writer may take no lock, so it cannot wake us; the stop Event still does at once)
            missing = int(self.stft.frame_end(self.n_frames)) - self._pushed - reader.available()
            if missing > 0:
                if self.stop_event.wait(max(0.001, missing / sr)):
                    break
                continue
            skipped = self.skip_stale(reader)
            if skipped:
                log.log(logging.INFO if self.n_frames == 0 else logging.WARNING,
                        "analysis: skipped %.0f ms of stale audio%s", 1000 * skipped / sr,
                        " at start-up" if self.n_frames == 0 else " (the machine was busy)")
            start, data = reader.read()
            if reader.lost != lost:
                log.warning("analysis fell behind: %d samples dropped", reader.lost - lost)
                lost = reader.lost
            if data.shape[0] == 0:
                continue
            sample = self.step(data.mean(axis=1), start)
            if sample is not None and not self.fresh and not self._fresh_enough(sample, data.shape[0]):
                continue
            if sample is not None:
                sample = replace(sample, posted_time=time.monotonic())
                self.latest = sample
                self.out.put(sample)
