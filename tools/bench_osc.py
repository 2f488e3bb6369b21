"""What an OSC flood costs the display: frames shown per second with and without 10,000 messages arriving.

A headless live instance (``--model tiny``, a long noise file as input, ``--osc-port``, ``--osc-send``)
runs in this process; a python-osc listener counts the frames it reports (one ``/aadiff/weight`` per
displayed frame); a flooder in another process sends 10,000 messages on demand (half of them valid,
coalesced; half out of range, refused with a rate-limited log line). Each timed call waits for the next
``--frames`` displayed frames: A quietly, B while a flood is sent. Paired, alternating calls with an A/A
control (tools/benchstats.py). Also: the cost of handling one datagram, our dispatcher against python-osc's.
Run it alone (nothing else busy on the machine): ``python tools/bench_osc.py``.
"""

from __future__ import annotations

import argparse
import logging
import os
import socket
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchstats import fmt_ratio, ratio_with_control  # noqa: E402
from liverun import run_watched  # noqa: E402

FLOODER = textwrap.dedent("""
    import sys
    from pythonosc.udp_client import SimpleUDPClient
    c = SimpleUDPClient("127.0.0.1", int(sys.argv[1]))
    for line in sys.stdin:
        for i in range(int(line)):
            if i % 2:
                c.send_message("/aadiff/w_max", 2.0)
            else:
                c.send_message("/aadiff/freeze", 9)
        print("done", flush=True)
""")


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]




def dispatch_cost(pairs: int, n: int = 2000) -> dict:
    """Seconds to handle ``n`` datagrams (half valid, half refused): python-osc's Dispatcher (every mapped
    address matched as a pattern) as A, ours (a plain address is one dict lookup) as B; no sockets, no threads."""
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_message_builder import OscMessageBuilder

    from aadiff_live.control.osc import OscServer
    from aadiff_live.control.params import PARAMS, ControlInbox

    dgrams = []
    for i in range(n):
        m = OscMessageBuilder("/aadiff/w_max" if i % 2 else "/aadiff/freeze")
        m.add_arg(2.0 if i % 2 else 9)
        dgrams.append(m.build().dgram)
    box = ControlInbox()
    ours = OscServer(box, "127.0.0.1", 0)
    plain = Dispatcher()
    for name in PARAMS:
        plain.map(PARAMS[name].address, lambda _a, *args, name=name: box.offer("osc", name, args))
    logging.disable(logging.CRITICAL)  # the refused half logs (rate-limited) on both sides; not what is timed
    try:
        return ratio_with_control(lambda: [plain.call_handlers_for_packet(d, ("127.0.0.1", 1)) for d in dgrams],
                                  lambda: [ours.server.dispatcher.call_handlers_for_packet(d, ("127.0.0.1", 1))
                                           for d in dgrams], pairs)
    finally:
        logging.disable(logging.NOTSET)
        ours.close()


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--pairs", type=int, default=6)
    p.add_argument("--frames", type=int, default=10, help="displayed frames per timed call")
    p.add_argument("--messages", type=int, default=10000, help="messages per flood")
    p.add_argument("--json", help="also write the results to this JSON file")
    a = p.parse_args()
    logging.basicConfig(level=logging.ERROR)
    import soundfile as sf
    from pythonosc.dispatcher import Dispatcher
    from pythonosc.osc_server import BlockingOSCUDPServer

    from aadiff_live.backends.hardware import cpu_name
    from aadiff_live.config import load_config
    from aadiff_live.live.app import LiveApp
    from aadiff_live.output.sidecar import write_json_atomic

    tmp = Path(tempfile.mkdtemp(prefix="bench_osc_"))
    sr = 16000
    t = np.arange(600 * sr) / sr  # long enough for any run; the app is stopped when the benchmark ends
    sf.write(str(tmp / "in.wav"), (0.3 * ((t % 1) < 0.5) * np.random.default_rng(0).standard_normal(t.size))
             .astype(np.float32), sr)
    frames = threading.Event()
    count = [0]

    def on_weight(_addr, *_args):
        count[0] += 1
        frames.set()

    d = Dispatcher()
    d.map("/aadiff/weight", on_weight)
    listener = BlockingOSCUDPServer(("127.0.0.1", 0), d)
    threading.Thread(target=listener.serve_forever, daemon=True).start()
    port = _free_port()
    cfg = load_config(None, {"model": {"model": "tiny", "size": "64"}, "live": {"input": str(tmp / "in.wav")},
                             "tokens": {"tokens": ["fire"]},
                             "osc": {"port": port, "send": f"127.0.0.1:{listener.server_address[1]}"}})
    app = LiveApp(cfg, prompt="a fire in the rain", no_display=True, duration=None, record=None, monitor=False)
    flooder = subprocess.Popen([sys.executable, "-c", FLOODER, str(port)], stdin=subprocess.PIPE,
                               stdout=subprocess.PIPE, text=True)
    got: dict = {}

    def bench() -> None:  # beside the running app; stops it when done
        end = time.monotonic() + 120
        while count[0] < 3 and time.monotonic() < end:
            time.sleep(0.05)
        if count[0] < 3:
            raise SystemExit("the live instance showed no frame in 120 s")

        def wait_frames() -> None:
            target = count[0] + a.frames
            while count[0] < target:
                frames.wait(1.0)
                frames.clear()

        def quiet() -> None:
            wait_frames()

        def flood() -> None:
            assert flooder.stdin is not None and flooder.stdout is not None
            flooder.stdin.write(f"{a.messages}\n")
            flooder.stdin.flush()
            wait_frames()
            flooder.stdout.readline()  # the flood is over before the next call starts

        got["res"] = ratio_with_control(quiet, flood, a.pairs)
        got["received"], got["ignored"] = app.rig.inbox.received, app.rig.inbox.ignored.total
        app.stop.set()

    try:
        run_watched(app, bench)
    finally:
        flooder.kill()
        listener.shutdown()
    res, received, ignored = got["res"], got["received"], got["ignored"]
    disp = dispatch_cost(a.pairs)
    fps_quiet = a.frames / res["a_median_s"]
    fps_flood = a.frames / res["b_median_s"]
    out = {"what": f"seconds for {a.frames} displayed frames: A quiet, B during a flood of {a.messages} OSC "
                   "messages (tiny model, 64x64, headless)", **res, "fps_quiet": round(fps_quiet, 2),
           "fps_flood": round(fps_flood, 2), "messages_stored_by_app": received,
           "messages_refused_by_app": ignored, "cpu": cpu_name(), "cpu_count": os.cpu_count(),
           "loadavg": os.getloadavg(),
           "dispatch": {"what": "seconds to handle 2000 datagrams: A python-osc's Dispatcher, B ours", **disp,
                        "us_per_message_a": round(disp["a_median_s"] / 2000 * 1e6, 2),
                        "us_per_message_b": round(disp["b_median_s"] / 2000 * 1e6, 2)}}
    print(f"flood/quiet time for {a.frames} frames: {fmt_ratio(res)}; fps quiet {fps_quiet:.2f}, during a flood "
          f"{fps_flood:.2f}; {received} valid messages stored (coalesced), {ignored} refused; load {os.getloadavg()}")
    print(f"handling a datagram, ours/python-osc's dispatcher: {fmt_ratio(disp)}; "
          f"{out['dispatch']['us_per_message_b']} vs {out['dispatch']['us_per_message_a']} us")
    if a.json:
        write_json_atomic(a.json, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
