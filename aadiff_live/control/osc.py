"""OSC in (``--osc-port``) and out (``--osc-send HOST:PORT``) with python-osc.

In: a UDP server on its own thread (127.0.0.1 unless ``--osc-host``), one handler per address of
:data:`~aadiff_live.control.params.PARAMS`; each message is checked and stored in the
:class:`ControlInbox` (newest wins), nothing more. Wrong types, unknown addresses, out-of-range
values, oversized strings, datagrams that are not OSC: one (rate-limited) log line, never a crash. With routes,
``/aadiff/route/<word>/gain f`` and ``/aadiff/route/<word>/range f f`` steer each routed word.

Out: per displayed frame ``/aadiff/envelope``, ``/aadiff/weight``, ``/aadiff/level_db``,
``/aadiff/latency_ms`` (floats) and ``/aadiff/words`` (a string) when the words change; per analysis
hop (100 a second), from the analysis thread, ``/aadiff/source/<name> f`` for every source (``loudness``,
``low``, ``onset:low``, ...) and ``/aadiff/onset s`` (the onset source's name) at each onset event. With routes,
per displayed frame ``/aadiff/weight/<word> f`` for each routed word. With a tempo (``--tempo``), on every beat
``/aadiff/beat i`` (1..beats per bar, 1 on the bar line) and ``/aadiff/bpm f``, from the analysis thread.
"""

from __future__ import annotations

import logging
import math
import socket
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from aadiff_live.control.params import PARAMS, ControlError, ControlInbox
from aadiff_live.errors import UserError

log = logging.getLogger(__name__)
_WILDCARDS = frozenset("*?[]{}")  # characters of an OSC address pattern
MAX_DATAGRAM = 65535  # the largest UDP payload; python-osc's default (8192) would cut long strings


def parse_host_port(text: str, flag: str = "--osc-send") -> tuple[str, int]:
    host, sep, port = str(text).rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise UserError(f"{flag} {text!r}: expected HOST:PORT, e.g. 127.0.0.1:9000")
    return host.strip("[]"), int(port)


def check_port(port: int, flag: str = "--osc-port") -> int:
    if not 0 <= int(port) < 65536:
        raise UserError(f"{flag} {port}: a UDP port is 1..65535 (0: any free port)")
    return int(port)


def route_address(word: str, what: str) -> str:
    """``/aadiff/route/<word>/gain`` (one float, at least 0) or ``.../range`` (two floats: w_min, w_max)."""
    return f"/aadiff/route/{word}/{what}"


def check_route_value(address: str, what: str, args: tuple[Any, ...]) -> float | tuple[float, float]:
    """A route's gain (one number >= 0) or range (two numbers); else :class:`ControlError`."""
    want = 1 if what == "gain" else 2
    if len(args) != want or not all(isinstance(a, int | float) and not isinstance(a, bool) for a in args):
        raise ControlError(f"{address} takes {'one float (f)' if want == 1 else 'two floats (f f)'}, got {args!r:.60}")
    vals = [float(a) for a in args]
    if not all(math.isfinite(v) for v in vals) or (what == "gain" and vals[0] < 0):
        raise ControlError(f"{address}: {args!r:.60} is not a {'gain >= 0' if want == 1 else 'pair of finite weights'}")
    return vals[0] if want == 1 else (vals[0], vals[1])


class OscServer:
    """Listens for control messages; ``start`` / ``close``; the bound port is ``self.port``."""

    def __init__(self, inbox: ControlInbox, host: str = "127.0.0.1", port: int = 0,
                 route_words: Sequence[str] = ()) -> None:
        """``route_words``: the routed words, each steerable at ``/aadiff/route/<word>/gain f`` and
        ``/aadiff/route/<word>/range f f`` (stored in ``inbox`` as ``route:<word>:gain`` / ``:range``)."""
        from pythonosc import osc_packet
        from pythonosc.dispatcher import Dispatcher
        from pythonosc.osc_server import BlockingOSCUDPServer

        self.inbox = inbox
        ignored = inbox.ignored

        exact: dict[str, Any] = {}  # address -> python-osc Handler: one dict lookup for a plain address
        unknown = self._unknown

        class _Dispatcher(Dispatcher):
            def call_handlers_for_packet(self, data: bytes, client_address) -> list:
                """As python-osc's, but a packet that does not parse is logged (not dropped silently), a
                bundle time-tagged in the future is applied now (python-osc would sleep until then), and a
                plain address is looked up, not matched against every mapped address as a pattern."""
                try:
                    packet = osc_packet.OscPacket(data)
                except osc_packet.ParseError as exc:
                    ignored("osc", f"a malformed OSC datagram ({str(exc)[:80]})")
                    return []
                for timed in packet.messages:
                    msg = timed.message
                    handler = exact.get(msg.address)
                    if handler is not None:
                        handler.invoke(client_address, msg)
                    elif _WILDCARDS.isdisjoint(msg.address):
                        unknown(msg.address)
                    else:  # an OSC address pattern (/aadiff/*, /aadiff/{gain,w_max}): python-osc matches it
                        for h in self.handlers_for_address(msg.address):
                            h.invoke(client_address, msg)
                return []

        disp = _Dispatcher()
        for name in PARAMS:
            exact[PARAMS[name].address] = disp.map(PARAMS[name].address, self._handler(name))
        for word in route_words:
            for what in ("gain", "range"):
                address = route_address(word, what)
                exact[address] = disp.map(address, self._route_handler(word, what))
        disp.set_default_handler(self._unknown)

        class _Server(BlockingOSCUDPServer):
            max_packet_size = MAX_DATAGRAM

            def verify_request(self, request, client_address) -> bool:  # type: ignore[override]
                ok = super().verify_request(request, client_address)
                if not ok:
                    ignored("osc", f"a datagram of {len(request[0])} bytes that is not OSC")
                return ok

            def handle_error(self, request, client_address) -> None:  # python-osc would print a traceback
                ignored("osc", "a malformed OSC datagram")

        try:
            self.server = _Server((host, check_port(port)), disp)
        except OSError as exc:
            raise UserError(f"--osc-port {port}: cannot listen on {host}:{port} ({exc.strerror or exc}); "
                            "pick another port or stop the program that uses it") from None
        except socket.gaierror as exc:
            raise UserError(f"--osc-host {host!r}: not an address of this machine ({exc})") from None
        addr = self.server.server_address
        self.host, self.port = str(addr[0]), int(addr[1])
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.1},
                                       name="osc-in", daemon=False)

    def _handler(self, name: str):
        def handle(address: str, *args: Any) -> None:
            self.inbox.offer("osc", name, args)

        return handle

    def _route_handler(self, word: str, what: str):
        def handle(address: str, *args: Any) -> None:
            try:
                value = check_route_value(address, what, args)
            except ControlError as exc:
                self.inbox.ignored("osc", str(exc))
                return
            self.inbox.put(f"route:{word}:{what}", value)

        return handle

    def _unknown(self, address: str, *args: Any) -> None:
        self.inbox.ignored("osc", f"unknown address {address[:80]!r}")

    def start(self) -> None:
        self.thread.start()
        log.info("OSC: listening on %s:%d (/aadiff/...)", self.host, self.port)

    def close(self) -> None:
        if self.thread.is_alive():
            self.server.shutdown()
            self.thread.join(timeout=1.0)
        self.server.server_close()


class OscSender:
    """Sends the analysis per displayed frame to ``HOST:PORT``."""

    def __init__(self, target: str) -> None:
        from pythonosc.udp_client import SimpleUDPClient

        self.host, self.port = parse_host_port(target)
        try:
            self.client = SimpleUDPClient(self.host, self.port)
        except (OSError, ValueError) as exc:
            raise UserError(f"--osc-send {target}: cannot send there ({exc})") from None
        self._words: tuple[str, ...] | None = None
        self.sent = 0
        self.failed = 0

    def send_frame(self, *, envelope: float, weight: float, level_db: float, latency_ms: float,
                   words: tuple[str, ...]) -> None:
        """One message per value (plain messages: every OSC receiver reads them; bundles are not universal)."""
        msgs: list[tuple[str, float | str]] = [("/aadiff/envelope", float(envelope)), ("/aadiff/weight", float(weight)),
                                               ("/aadiff/level_db", float(level_db)),
                                               ("/aadiff/latency_ms", float(latency_ms))]
        if words != self._words:
            msgs.append(("/aadiff/words", ",".join(words)))
        try:
            for addr, value in msgs:
                self.client.send_message(addr, value)
        except OSError as exc:  # the show goes on; say so once, then count
            self.failed += 1
            if self.failed == 1:
                log.warning("OSC out to %s:%d failed (%s); still trying every frame", self.host, self.port, exc)
            return
        self._words = words
        self.sent += 1

    def send_weights(self, weights: Mapping[str, float]) -> None:
        """``/aadiff/weight/<word> f`` for every routed word (per displayed frame)."""
        try:
            for word, w in weights.items():
                self.client.send_message(f"/aadiff/weight/{word}", float(w))
        except OSError as exc:
            self.failed += 1
            if self.failed == 1:
                log.warning("OSC out to %s:%d failed (%s); still trying every frame", self.host, self.port, exc)

    def send_beat(self, beat: int, bpm: float) -> None:
        """``/aadiff/beat i`` (the beat's number in the bar, 1 on the bar line) and ``/aadiff/bpm f`` on every beat
        (called by the analysis thread)."""
        try:
            self.client.send_message("/aadiff/beat", int(beat))
            self.client.send_message("/aadiff/bpm", float(bpm))
        except OSError as exc:
            self.failed += 1
            if self.failed == 1:
                log.warning("OSC out to %s:%d failed (%s); still trying every frame", self.host, self.port, exc)

    def send_sources(self, sources: Mapping[str, float], onsets: Iterable[str] = ()) -> None:
        """Every source's value, and one ``/aadiff/onset`` per onset event (called by the analysis thread)."""
        try:
            for name, value in sources.items():
                self.client.send_message(f"/aadiff/source/{name}", float(value))
            for name in onsets:
                self.client.send_message("/aadiff/onset", name)
        except OSError as exc:
            self.failed += 1
            if self.failed == 1:
                log.warning("OSC out to %s:%d failed (%s); still trying every frame", self.host, self.port, exc)
