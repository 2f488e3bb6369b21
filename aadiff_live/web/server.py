"""The web thread: an aiohttp server on an event loop of its own (``--web [HOST:]PORT``).

    GET  /?token=T            the page (static HTML; everything it shows comes from /api/status)
    GET  /static/app.js|.css  the page's script and style (no data in them)
    GET  /api/status          the show's state as JSON (token)
    GET  /api/preview.jpg     the newest shown picture, a few a second (token)
    POST /api/control         {"name": "prompt"|"gain"|"scene"|"freeze"|"seed", "value": ...} (token)
    GET  /health              JSON; 200 while the show runs with no alert, else 503 (token, except from loopback)
    GET  /metrics             Prometheus text (token, except from loopback)

A control is checked against the same parameter table as OSC and MIDI (control/params.py) and stored in
the same inbox, so the display loop applies it through the same path (live/rig.py) and the recording's rows
show it the same way. The token goes in ``Authorization: Bearer T`` or ``?token=T``. Bodies are limited to
:data:`MAX_BODY` bytes; a bad request gets a 4xx and one rate-limited log line, never more. Every response
carries a Content-Security-Policy that allows no inline script: the page writes what it receives with
``textContent`` only.

The socket is bound in the constructor (a port in use is a one-line error before the model loads); the
thread serves until :meth:`WebServer.close`.
"""

from __future__ import annotations

import asyncio
import hmac
import ipaddress
import json
import logging
import os
import secrets
import shutil
import socket
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aadiff_live.control.params import ControlError, ControlInbox, check_value
from aadiff_live.errors import UserError
from aadiff_live.web.board import Board

log = logging.getLogger(__name__)
EXTRA = 'pip install "aadiff-live[web]"'
STATIC = Path(__file__).with_name("static")
MAX_BODY = 16 * 1024  # bytes of a control request (a prompt is at most 1000 characters)
CONTROLS = ("prompt", "gain", "scene", "freeze", "seed")  # what the page may change (the rest: OSC, MIDI)
SHUTDOWN_S = 0.5
STALE_S = 2.0  # a snapshot older than this: the display loop is not running (health 503)
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob:; connect-src 'self'; "
       "base-uri 'none'; form-action 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
           "X-Frame-Options": "DENY", "Cache-Control": "no-store"}


def require_aiohttp() -> None:
    """One line naming the install command when the extra is missing."""
    try:
        import aiohttp  # noqa: F401
        import prometheus_client  # noqa: F401
    except ImportError as exc:
        raise UserError(f"--web needs {exc.name} (the web extra): {EXTRA}") from None


def is_loopback(remote: str | None) -> bool:
    try:
        return remote is not None and ipaddress.ip_address(remote.split("%")[0]).is_loopback
    except ValueError:
        return False


def _local_name(host_header: str) -> bool:
    """The Host header names this machine by a loopback name (a page elsewhere that rebinds its own name to
    127.0.0.1 does not read /health or /metrics without the token)."""
    name = host_header.rsplit(":", 1)[0] if host_header.count(":") == 1 else host_header
    name = name.strip("[]").split("]")[0].strip("[")
    return name == "localhost" or is_loopback(name)


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``, or a one-line :class:`UserError`."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UserError(f"--web {host}:{port}: {host!r} is not an address of this machine ({exc.strerror})") from None
    family, _, _, _, addr = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    try:
        if os.name != "nt":
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(64)
    except OSError as exc:
        sock.close()
        raise UserError(f"--web {host}:{port}: cannot listen there ({exc.strerror or exc}); pick another port "
                        "or stop the program that uses it") from None
    sock.setblocking(False)
    return sock


class WebServer(threading.Thread):
    def __init__(self, board: Board, inbox: ControlInbox, *, host: str, port: int, token: str | None,
                 preview, record_dir: Path | None, recording_files: Callable[[], list[Path]],
                 started: Callable[[], float | None]) -> None:
        """``preview``: a :class:`~aadiff_live.web.preview.PreviewEncoder`; ``recording_files``: the files the
        recorder has begun (sizes for /metrics); ``started``: the monotonic start of the show (None before)."""
        require_aiohttp()
        super().__init__(name="web", daemon=False)
        self.board, self.inbox, self.preview = board, inbox, preview
        self.token = token or secrets.token_urlsafe(18)
        self.generated_token = token is None
        self.record_dir = record_dir
        self.recording_files = recording_files
        self.started = started
        self._sizes: dict[Path, int] = {}  # finished files' sizes (they no longer change)
        self.sock = bind(host, port)
        addr = self.sock.getsockname()
        self.host, self.port = host, int(addr[1])
        self.refused = 0  # NB: counted here (requests refused with a 4xx), read by tests
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._quit: asyncio.Event | None = None
        self._closing = False
        self._page = (STATIC / "index.html").read_bytes()
        if host not in ("127.0.0.1", "localhost", "::1"):
            log.warning("web: listening on %s (plain HTTP): anyone who can reach this machine on port %d and has the "
                        "token can steer the show; put it behind a TLS proxy on an open network", host, self.port)

    @property
    def url(self) -> str:
        host = self.host if ":" not in self.host else f"[{self.host}]"
        if host in ("0.0.0.0", "[::]"):
            host = socket.gethostname()
        return f"http://{host}:{self.port}/?token={self.token}"

    # ------------------------------------------------------------------ thread
    def run(self) -> None:
        loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            loop.run_until_complete(self._serve(loop))
        finally:
            loop.close()

    async def _serve(self, loop: asyncio.AbstractEventLoop) -> None:
        from aiohttp import web

        # at quit, requests still open get SHUTDOWN_S to finish (aiohttp's default: 60 s)
        runner = web.AppRunner(self.app(), access_log=None, handle_signals=False, shutdown_timeout=SHUTDOWN_S)
        await runner.setup()
        try:
            await web.SockSite(runner, self.sock).start()
            with self._lock:
                self._quit = asyncio.Event()
                self._loop = loop
                if self._closing:
                    self._quit.set()
            log.info("web: status and control page at %s%s", self.url,
                     " (token made for this show; set your own with --web-token)" if self.generated_token else "")
            await self._quit.wait()
        finally:
            await runner.cleanup()

    def close(self) -> None:
        with self._lock:
            self._closing = True
            if self._loop is not None and self._quit is not None:
                self._loop.call_soon_threadsafe(self._quit.set)
        if self.is_alive():
            self.join(timeout=2.0)
        elif self.ident is None:
            self.sock.close()
        self.preview.close()

    # ------------------------------------------------------------------ the application
    def app(self):
        from aiohttp import web

        @web.middleware
        async def headers(request, handler):
            try:
                resp = await handler(request)
            except web.HTTPException as exc:  # aiohttp's own: no such path, wrong method
                if exc.status >= 400:
                    self._refuse(request, exc.status, exc.reason)
                exc.headers.update(HEADERS)
                raise
            resp.headers.update(HEADERS)
            return resp

        app = web.Application(client_max_size=MAX_BODY, middlewares=[headers])
        app.router.add_get("/", self.page)
        app.router.add_get("/static/app.js", self._static("app.js", "text/javascript"))
        app.router.add_get("/static/app.css", self._static("app.css", "text/css"))
        app.router.add_get("/favicon.ico", self._no_icon)
        app.router.add_get("/api/status", self.status)
        app.router.add_get("/api/preview.jpg", self.preview_jpg)
        app.router.add_post("/api/control", self.control)
        app.router.add_get("/health", self.health)
        app.router.add_get("/metrics", self.metrics)
        return app

    def _refuse(self, request, status: int, why: str) -> None:
        self.refused += 1
        self.inbox.ignored("web", f"{request.method} {request.path[:60]} from {request.remote}: {status} {why}")

    def _error(self, request, status: int, message: str):
        from aiohttp import web

        self._refuse(request, status, message)
        return web.json_response({"error": message}, status=status)

    def _authorised(self, request) -> bool:
        auth = request.headers.get("Authorization", "")
        given = auth[7:] if auth.startswith("Bearer ") else request.query.get("token", "")
        return hmac.compare_digest(given.encode("utf-8", "replace"), self.token.encode())

    def _denied(self, request, open_on_loopback: bool = False):
        """None if the request may go on, else the 401 to answer."""
        if self._authorised(request) or (open_on_loopback and is_loopback(request.remote)
                                         and _local_name(request.host)):
            return None
        return self._error(request, 401, "a valid token is needed (the one printed at start, or --web-token)")

    def _static(self, name: str, ctype: str):
        from aiohttp import web

        body = (STATIC / name).read_bytes()

        async def handler(request):
            return web.Response(body=body, content_type=ctype)

        return handler

    async def _no_icon(self, request):
        from aiohttp import web

        return web.Response(status=204)

    async def page(self, request):
        from aiohttp import web

        return self._denied(request) or web.Response(body=self._page, content_type="text/html", charset="utf-8")

    # ------------------------------------------------------------------ the show's state
    def _extra(self, snap) -> dict[str, Any]:
        """What this thread works out itself: freshness, health, uptime, disk."""
        now = time.monotonic()
        fresh = snap is not None and snap.running and now - snap.time < STALE_S
        alerts = snap.status.get("alerts", []) if snap is not None else []
        t0 = self.started()
        out: dict[str, Any] = {"fresh": fresh, "healthy": fresh and not alerts,
                               "uptime_s": now - t0 if t0 is not None else 0.0,
                               "age_s": now - snap.time if snap is not None else None}
        folder = self.record_dir or Path.cwd()
        try:
            out["disk_free_bytes"] = shutil.disk_usage(folder).free
        except OSError:
            out["disk_free_bytes"] = None
        if self.record_dir is not None:
            out["recording_bytes"] = self._recording_bytes()
        return out

    def _recording_bytes(self) -> int:
        files = self.recording_files()
        total = 0
        for i, p in enumerate(files):
            if p in self._sizes:
                total += self._sizes[p]
                continue
            try:
                size = p.stat().st_size
            except OSError:
                continue
            if i < len(files) - 1:
                self._sizes[p] = size  # finished: it keeps its size
            total += size
        return total

    def _status_now(self) -> tuple[dict[str, Any] | None, dict[str, Any]]:
        snap = self.board.snapshot
        return (snap.status if snap is not None else None), self._extra(snap)

    async def status(self, request):
        from aiohttp import web

        denied = self._denied(request)
        if denied is not None:
            return denied
        status, extra = self._status_now()
        return web.json_response({**(status or {}), **extra, "controls": list(CONTROLS)},
                                 dumps=lambda o: json.dumps(o, allow_nan=False, default=str))

    async def preview_jpg(self, request):
        from aiohttp import web

        denied = self._denied(request)
        if denied is not None:
            return denied
        self.board.want_preview()
        jpeg = self.preview.jpeg
        if jpeg is None:
            return web.Response(status=204)
        return web.Response(body=jpeg, content_type="image/jpeg")

    async def health(self, request):
        from aiohttp import web

        denied = self._denied(request, open_on_loopback=True)
        if denied is not None:
            return denied
        status, extra = self._status_now()
        alerts = (status or {}).get("alerts", [])
        state = "ok" if extra["healthy"] else ("alert" if extra["fresh"] else
                                              "starting" if status is None else "not running")
        body = {"status": state, "alerts": alerts, "uptime_s": round(extra["uptime_s"], 1),
                "fps": (status or {}).get("fps"), "age_s": extra["age_s"]}
        return web.json_response(body, status=200 if extra["healthy"] else 503)

    async def metrics(self, request):
        from aiohttp import web

        from aadiff_live.web.metrics import CONTENT_TYPE, ShowCollector, metrics_text

        denied = self._denied(request, open_on_loopback=True)
        if denied is not None:
            return denied
        resp = web.Response(body=metrics_text(ShowCollector(self._status_now)))
        resp.headers["Content-Type"] = CONTENT_TYPE
        return resp

    # ------------------------------------------------------------------ controls
    async def control(self, request):
        from aiohttp import web

        denied = self._denied(request)
        if denied is not None:
            return denied
        if request.content_length is not None and request.content_length > MAX_BODY:
            return self._error(request, 413, f"the body is larger than {MAX_BODY} bytes")
        try:
            body = await request.json()
        except web.HTTPRequestEntityTooLarge:
            return self._error(request, 413, f"the body is larger than {MAX_BODY} bytes")
        except (ValueError, UnicodeDecodeError):
            return self._error(request, 400, 'the body is not JSON; send {"name": ..., "value": ...}')
        if not isinstance(body, dict) or set(body) != {"name", "value"} or not isinstance(body["name"], str):
            return self._error(request, 400, 'send one control as {"name": ..., "value": ...}')
        name = body["name"]
        if name not in CONTROLS:
            return self._error(request, 404, f"unknown control {name[:40]!r}; the page has {', '.join(CONTROLS)}")
        try:
            value = check_value(name, (body["value"],))
        except ControlError as exc:
            return self._error(request, 422, str(exc).replace("/aadiff/", ""))
        self.inbox.put(name, value)  # applied by the display loop, as OSC and MIDI are
        return web.json_response({"accepted": name}, status=202)
