"""Audio in: a PortAudio input device, or a sound file played in real time as if it were live.

Both write into a :class:`RingBuffer` with the capture time of every block on ``time.monotonic``'s
clock. The PortAudio callback only copies (docs/design.md §4). A watchdog thread notices a device
that stops delivering (unplugged mid-set), reports "no input" and keeps trying to reopen it:
each try re-initialises PortAudio (its device list is fixed when it initialises, so a replugged
USB interface would otherwise never show up) and looks the input up again by what the user
asked for (``--input "USB Audio"``), not by its old index, which a replug may change. Opening and
closing the stream share a lock, and a stream opened after :meth:`DeviceCapture.stop` is closed
at once, so a quit during a reopen never leaves a stream writing into the ring.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import numpy as np

from aadiff_live.audio.rates import AAC_RATES, FALLBACK_RATE
from aadiff_live.audio.stream import AudioSource
from aadiff_live.errors import UserError
from aadiff_live.live.devices import InputDevice, resolve_input, sounddevice_module, wait_for_input
from aadiff_live.live.ring import RingBuffer

log = logging.getLogger(__name__)

FIRST_BLOCK_GRACE_S = 5.0  # an idle PulseAudio source can take ~2 s to deliver its first block
STALL_S = 1.0  # no block for this long after the first one: the device is gone
RETRY_S = 1.0


def _stream_time_to_monotonic(adc_time: float, current_time: float, now: float, block_s: float) -> float:
    """The capture time of a block's first sample on monotonic's clock. PortAudio reports times on the stream's
    own clock: keep the offset to 'now'. A block of ``block_s`` seconds is complete when the callback runs, so
    its first sample is at least that old: some backends (PulseAudio through ALSA) report an ADC time that
    would put the block's end in the future, which would make a latency negative."""
    if adc_time > 0 and current_time > 0 and 0.0 <= current_time - adc_time < 1.0:
        return now - max(current_time - adc_time, block_s)
    return now - block_s  # the backend reports no ADC time: the block's first sample is at least this old


class Capture:
    """Common interface of the two sources."""

    ring: RingBuffer
    samplerate: int
    channels: int
    description: str

    def __init__(self) -> None:
        self.finished = threading.Event()  # a file source has played to its end
        # NB: written by the watchdog, read by the display thread (a str assignment is atomic)
        self.status = "starting"
        self.overflows = 0  # NB: incremented by the callback, read by the HUD

    def start(self) -> None:
        raise NotImplementedError

    def stop(self) -> None:
        raise NotImplementedError


def rescan_portaudio(sd) -> None:
    """Re-initialise PortAudio so that its device list is read again (no stream may be open)."""
    try:
        sd._terminate()
    except Exception as exc:  # noqa: BLE001 - already terminated, or a backend quirk: initialise anyway
        log.debug("terminating PortAudio: %s", exc)
    sd._initialize()


class DeviceCapture(Capture):
    def __init__(self, device: InputDevice, samplerate: int | None, blocksize: int, ring_seconds: float,
                 spec: str | None = None) -> None:
        super().__init__()
        self.sd = sounddevice_module()
        self.device = device
        # what to look for after a replug: the name the user gave (an index may change), else the device's name
        spec = (spec or "").strip()
        self.spec = device.name if not spec or spec.lstrip("-").isdigit() else spec
        sr = int(samplerate or device.default_samplerate or FALLBACK_RATE)
        if sr not in AAC_RATES:
            log.info("device rate %d Hz is not an AAC rate: capturing at %d Hz", sr, FALLBACK_RATE)
            sr = FALLBACK_RATE
        self.samplerate = sr
        self.channels = max(1, min(2, device.channels))
        self.blocksize = int(blocksize)
        self.ring = RingBuffer(int(ring_seconds * sr), self.channels, sr)
        self.description = f"input device {device.index} ({device.name}), {sr} Hz, {self.channels} ch"
        self._stream = None
        self._stop = threading.Event()
        self._lock = threading.Lock()  # open vs close: stop() and the watchdog never race on the stream
        self._watchdog = threading.Thread(target=self._watch, name="capture-watchdog", daemon=False)

    # PortAudio's real-time thread: copy, nothing else
    def _callback(self, indata, frames, time_info, status) -> None:
        now = time.monotonic()
        cap = _stream_time_to_monotonic(time_info.inputBufferAdcTime, time_info.currentTime, now,
                                        frames / self.samplerate)
        self.ring.write(indata, cap)
        if status:
            self.overflows += 1

    def _open(self, device: InputDevice) -> bool:
        """Open and start a stream on ``device``; False (and nothing left open) if stop() came first."""
        stream = self.sd.InputStream(device=device.index, channels=self.channels, samplerate=self.samplerate,
                                     blocksize=self.blocksize, dtype="float32", callback=self._callback,
                                     # PortAudio's low input latency (sounddevice's default is 'high': tens
                                     # of ms more between the microphone and the callback)
                                     latency="low")
        with self._lock:
            if self._stop.is_set():  # stop() ran while the stream was being opened: never leak it
                stream.close(ignore_errors=True)
                return False
            try:
                stream.start()
            except BaseException:
                stream.close(ignore_errors=True)
                raise
            self._stream = stream
            self.device = device
        return True

    def _close(self) -> None:
        with self._lock:
            stream, self._stream = self._stream, None
        if stream is not None:
            try:
                stream.close(ignore_errors=True)
            except self.sd.PortAudioError as exc:
                log.debug("closing the input stream: %s", exc)

    def start(self) -> None:
        try:
            self._open(self.device)
        except self.sd.PortAudioError as exc:
            raise UserError(f"cannot open input device {self.device.index} ({self.device.name}) at "
                            f"{self.samplerate} Hz: {exc}; try another --input (see `aadiff-live devices`) "
                            f"or set live.samplerate") from None
        self.status = "waiting for input"
        log.info("capturing from %s", self.description)
        self._watchdog.start()

    def _watch(self) -> None:
        last_written = self.ring.written
        last_change = time.monotonic()
        seen_data = False
        while not self._stop.wait(0.2):
            now = time.monotonic()
            written = self.ring.written
            if written != last_written:
                last_written, last_change = written, now
                if not seen_data or self.status != "ok":
                    self.status = "ok"
                seen_data = True
                continue
            active = self._stream is not None and self._stream.active
            limit = STALL_S if seen_data else FIRST_BLOCK_GRACE_S
            if active and now - last_change < limit:
                continue
            log.warning("no input from %s for %.1f s: reopening it", self.device.name, now - last_change)
            self.status = "no input"
            self._close()
            while not self._stop.is_set():
                try:
                    rescan_portaudio(self.sd)  # a replugged interface appears only in a fresh device list
                    device = resolve_input(self.spec)
                    if self._open(device):
                        log.info("input device reopened: %d (%s)", device.index, device.name)
                    break
                except (UserError, self.sd.PortAudioError) as exc:
                    log.debug("reopening the input failed: %s", exc)
                    self._stop.wait(RETRY_S)
            last_change = time.monotonic()
            seen_data = False

    def stop(self) -> None:
        self._stop.set()
        if self._watchdog.is_alive():
            self._watchdog.join(timeout=1.0)
        self._close()


PREFETCH_S = 2.0  # a file input is decoded this far ahead of the player: memory stays flat however long the file
DECODE_BLOCK = 4096  # samples per block read from the file by the decoder thread


class Prefetch:
    """A sound file decoded ahead of its player in a thread of its own, into a fixed buffer of
    ``seconds``; ``loop`` starts the file again at its end. One writer (the decoder) and one reader (the
    feeder, or PortAudio's output callback): each position is written by one side only, so the reader
    takes no lock and allocates nothing (:meth:`read_into`)."""

    def __init__(self, source: AudioSource, rate: int, channels: int, seconds: float, loop: bool,
                 stop: threading.Event) -> None:
        self.source, self.rate, self.channels, self.loop = source, int(rate), int(channels), loop
        self.buf = np.zeros((max(DECODE_BLOCK * 2, int(seconds * rate)), channels), dtype=np.float32)
        self.written = 0  # NB: advanced by the decoder thread only
        self.read_pos = 0  # NB: advanced by the reader only
        self.eof = False  # NB: set by the decoder thread: nothing more will be written
        self.error: BaseException | None = None
        self._stop = stop
        self._thread = threading.Thread(target=self._run, name="file-decoder", daemon=False)

    def start(self) -> None:
        self._thread.start()

    def join(self, timeout: float) -> None:
        if self._thread.is_alive():
            self._thread.join(timeout=timeout)

    @property
    def available(self) -> int:
        return self.written - self.read_pos

    @property
    def finished(self) -> bool:
        """The file has ended (no ``loop``) and every sample was read."""
        return self.eof and self.written == self.read_pos

    def wait_ready(self, samples: int, timeout: float) -> None:
        """Until ``samples`` are decoded ahead, the file ended, or ``timeout`` s (the decoder's head start)."""
        end = time.monotonic() + timeout
        while self.available < samples and not self.eof and time.monotonic() < end:
            if self._stop.wait(0.005):
                return

    def read_into(self, out: np.ndarray) -> int:
        """Copy up to ``len(out)`` decoded samples into ``out``; how many (0 when none are ready)."""
        cap = self.buf.shape[0]
        n = min(out.shape[0], self.written - self.read_pos)
        if n <= 0:
            return 0
        start = self.read_pos % cap
        first = min(n, cap - start)
        out[:first] = self.buf[start:start + first]
        if n > first:
            out[first:n] = self.buf[:n - first]
        self.read_pos += n
        return n

    def _put(self, block: np.ndarray) -> bool:
        """Write ``block`` as room allows; False once stopped."""
        cap = self.buf.shape[0]
        pos = 0
        while pos < block.shape[0]:
            room = cap - (self.written - self.read_pos)
            if room <= 0:
                if self._stop.wait(0.02):  # the reader frees room at the pace of the sound: look again soon
                    return False
                continue
            n = min(room, block.shape[0] - pos)
            at = self.written % cap
            first = min(n, cap - at)
            self.buf[at:at + first] = block[pos:pos + first]
            if n > first:
                self.buf[:n - first] = block[pos + first:pos + n]
            self.written += n  # after the samples: the reader never sees a position before its data
            pos += n
        return True

    def _run(self) -> None:
        try:
            while not self._stop.is_set():
                got = False
                for block in self.source.blocks(DECODE_BLOCK, rate=self.rate):
                    got = True
                    if not self._put(block[:, :self.channels]):
                        return
                if not (self.loop and got):
                    return
        except Exception as exc:  # noqa: BLE001 - a file that fails mid-way ends the input, loudly
            self.error = exc
            log.error("file input: decoding stopped at %.1f s (%s: %s); the input ends there",
                      self.written / self.rate, type(exc).__name__, exc)
        finally:
            self.eof = True


class FileCapture(Capture):
    """A sound file delivered block by block at the pace of the clock (``monitor``: through the speakers,
    whose output callback then sets the pace and the capture time is when the block is heard). The file is
    decoded a little ahead (:class:`Prefetch`), never whole: an hour-long set starts at once, in flat memory."""

    def __init__(self, path: str, blocksize: int, ring_seconds: float, monitor: bool = False,
                 loop: bool = False) -> None:
        super().__init__()
        from aadiff_live.audio.stream import open_audio

        source = open_audio(path, arg="--input")
        self.samplerate = source.samplerate if source.samplerate in AAC_RATES else FALLBACK_RATE
        self.channels = min(int(source.channels), 2)
        self.blocksize = int(blocksize)
        self.duration: float | None = source.duration
        self.monitor = monitor
        self.loop = loop  # start again at the end, on the same clock (soak tests, unattended rehearsals)
        self.ring = RingBuffer(int(ring_seconds * self.samplerate), self.channels, self.samplerate)
        length = f"{self.duration:.1f} s" if self.duration is not None else "length known at its end"
        self.description = f"file {path} ({length}, {self.samplerate} Hz, {self.channels} ch)" + (
            ", monitored on the speakers" if monitor else "") + (", in a loop" if loop else "")
        self._stop = threading.Event()
        self._prefetch = Prefetch(source, self.samplerate, self.channels, PREFETCH_S, loop, self._stop)
        self._thread: threading.Thread | None = None
        self._stream: Any = None
        self._callback_stop: type[Exception] = RuntimeError

    def start(self) -> None:
        log.info("playing %s in real time as input", self.description)
        self._prefetch.start()
        self._prefetch.wait_ready(4 * self.blocksize, timeout=2.0)
        if self.monitor:
            sd = sounddevice_module()
            self._callback_stop = sd.CallbackStop
            try:
                self._stream = sd.OutputStream(samplerate=self.samplerate, channels=self.channels,
                                               blocksize=self.blocksize, dtype="float32", callback=self._play,
                                               # robust playback; the capture time is the DAC time anyway
                                               latency="high",
                                               finished_callback=self.finished.set)
                self._stream.start()
            except sd.PortAudioError as exc:
                raise UserError(f"--monitor: cannot open the speakers ({exc}); drop --monitor to play the file "
                                f"silently") from None
        else:
            self._thread = threading.Thread(target=self._feed, name="file-feeder", daemon=False)
            self._thread.start()
        self.status = "ok"

    # PortAudio's real-time thread (monitor): copy the next block out and into the ring
    def _play(self, outdata, frames, time_info, status) -> None:
        now = time.monotonic()
        n = self._prefetch.read_into(outdata)
        if n < frames:
            outdata[n:] = 0.0
        if n > 0:
            dac = time_info.outputBufferDacTime
            lead = dac - time_info.currentTime if dac > 0 and time_info.currentTime > 0 else 0.0
            self.ring.write(outdata[:n], now + max(0.0, min(lead, 1.0)))
        if self._prefetch.finished:
            raise self._callback_stop

    def _feed(self) -> None:
        sr = self.samplerate
        block = np.zeros((self.blocksize, self.channels), dtype=np.float32)
        t0 = time.monotonic()
        done = 0  # samples delivered (more than the file's length when looping)
        while not self._stop.is_set():
            n = self._prefetch.read_into(block)
            if n == 0:
                if self._prefetch.finished:
                    break
                self._stop.wait(0.005)  # the decoder is behind (a slow disk): the sound arrives late, then stale
                continue
            due = t0 + (done + n) / sr  # a block is available once its last sample has "arrived"
            delay = due - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                break
            self.ring.write(block[:n], t0 + done / sr)
            done += n
        if self._prefetch.finished:
            self.finished.set()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None and self._thread.is_alive():
            self._thread.join(timeout=1.0)
        if self._stream is not None:
            self._stream.close(ignore_errors=True)
            self._stream = None
        self._prefetch.join(timeout=1.0)


def open_capture(spec: str, *, samplerate: int | None, blocksize: int, ring_seconds: float,
                 monitor: bool, loop: bool = False, wait_s: float = 0.0) -> Capture:
    """A file played in real time, or the input device (waited for up to ``wait_s`` seconds if it is missing)."""
    from pathlib import Path

    from aadiff_live.live.devices import is_file_input

    if is_file_input(spec):
        if not Path(spec).is_file():
            raise UserError(f"--input {spec}: no such sound file; check the path, or pass a device "
                            f"(see `aadiff-live devices`)")
        return FileCapture(spec, blocksize, ring_seconds, monitor=monitor, loop=loop)
    if monitor:
        log.warning("--monitor only applies to a sound file --input; ignored for a device")
    device = wait_for_input(spec, wait_s, rescan=lambda: rescan_portaudio(sounddevice_module()))
    return DeviceCapture(device, samplerate, blocksize, ring_seconds, spec=spec)
