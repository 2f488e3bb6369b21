"""Analysis thread: ring buffer -> streaming STFT per hop -> causal envelope -> AGC and gate -> weight.

The same :class:`FrameSTFT`, smoothers and :class:`LiveNormaliser` as the offline render; only the
newest frame's weight is posted (latest-value mailbox), so the display never sees a stale one.

Live, the hop is ``samplerate / live.analysis_hz`` (10 ms by default), not the video frame: the
display shows a new weight at every refresh. The STFT window (``n_fft``), the smoothing window,
attack, release and the AGC are defined in time (the config's ``window`` is in video frames at
``envelope.fps``), so the envelope looks the same whatever the hop. Audio that is already stale
(a backlog of more than :data:`MAX_BACKLOG_S`, e.g. at start-up while the first atlas level
renders) is skipped: the analysis jumps to the newest audio instead of catching up through it.

Every hop also steps every live source (bands, onsets: :class:`~aadiff_live.analysis.sources.SourceStepper`)
on the same STFT frame; the posted sample carries their values, and ``on_hop`` (OSC out) gets every hop's.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping
from dataclasses import replace

import numpy as np

from aadiff_live.analysis.envelope import FrameSTFT, LiveNormaliser, make_causal_smoother, to_weight
from aadiff_live.analysis.sources import LOUDNESS, Smoothing, SourceStepper
from aadiff_live.config import EnvelopeConfig, FeaturesConfig, LiveConfig
from aadiff_live.live.messages import WeightSample
from aadiff_live.live.ring import RingBuffer, RingReader
from aadiff_live.live.supervisor import Supervisor
from aadiff_live.mailbox import Mailbox

log = logging.getLogger(__name__)
MAX_BACKLOG_S = 0.05  # more unread audio than this (beyond one STFT window) is stale: skipped, never shown


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
                 smoothing_for: Mapping[str, Smoothing] | None = None) -> None:
        """``smoothing_for``: a source's own smoothing (a route's attack/release) instead of the envelope's."""
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
        self.on_hop = on_hop  # called on this thread with every hop's sample (OSC out of the sources)
        self.skipped = 0  # stale samples skipped (start-up backlog, a stall)
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
            if sample is not None:
                self.latest = sample
                self.out.put(sample)
