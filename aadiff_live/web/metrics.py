"""``GET /metrics``: the show's numbers in the Prometheus text format, written by ``prometheus_client``.

One custom collector turns the newest status (plain data, see live/web_feed.py) into metric families at
each scrape; nothing is counted twice and nothing here touches the show's threads.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ShowCollector:
    """``status()`` -> (the status dict or None before the show runs, the web thread's own figures)."""

    def __init__(self, status: Callable[[], tuple[dict[str, Any] | None, dict[str, Any]]]) -> None:
        self.status = status

    def collect(self) -> Iterator[Metric]:
        s, extra = self.status()
        yield GaugeMetricFamily("aadiff_up", "1 while the show runs and its display loop reports",
                                value=1.0 if extra["fresh"] else 0.0)
        yield GaugeMetricFamily("aadiff_healthy", "1 when /health answers 200 (running, no alert)",
                                value=1.0 if extra["healthy"] else 0.0)
        yield GaugeMetricFamily("aadiff_uptime_seconds", "seconds since the show started", value=extra["uptime_s"])
        if extra.get("disk_free_bytes") is not None:
            yield GaugeMetricFamily("aadiff_disk_free_bytes", "free space where the recording is written",
                                    value=extra["disk_free_bytes"])
        if s is None:
            return
        c = s["counters"]
        yield GaugeMetricFamily("aadiff_alerts", "alerts the HUD shows now", value=len(s["alerts"]))
        yield GaugeMetricFamily("aadiff_display_fps", "pictures shown per second (last second)", value=s["fps"])
        lat = GaugeMetricFamily("aadiff_latency_seconds", "audio-to-photon latency over the last frames shown",
                                labels=["quantile"])
        for q, key in (("0.5", "latency_ms_p50"), ("0.95", "latency_ms_p95")):
            if s[key] is not None:
                lat.add_metric([q], s[key] / 1000.0)
        yield lat
        yield GaugeMetricFamily("aadiff_input_level_dbfs", "input level (RMS dBFS)", value=s["level_db"])
        yield GaugeMetricFamily("aadiff_gain", "gain applied to the envelope", value=s["gain"])
        yield CounterMetricFamily("aadiff_frames_shown", "pictures shown", value=c["frames_shown"])
        dropped = CounterMetricFamily("aadiff_frames_dropped", "refreshes missed by the display loop (display) "
                                      "and frames the recorder could not keep (recording)", labels=["where"])
        dropped.add_metric(["display"], c["display_late"])
        dropped.add_metric(["recording"], c["recording_dropped"])
        yield dropped
        yield CounterMetricFamily("aadiff_renders", "UNet renders (atlas levels or exact frames)",
                                  value=c["renders"])
        yield CounterMetricFamily("aadiff_render_stalls", "times the renderer stalled (live.stall_s)",
                                  value=c["render_stalls"])
        restarts = CounterMetricFamily("aadiff_thread_restarts", "restarts of a worker thread after a fault",
                                       labels=["thread"])
        for name, n in c["thread_restarts"].items():
            restarts.add_metric([name], n)
        yield restarts
        yield CounterMetricFamily("aadiff_input_overflows", "input overflows reported by the sound device",
                                  value=c["input_overflows"])
        yield CounterMetricFamily("aadiff_controls_received", "control values received (keys, OSC, MIDI, web)",
                                  value=c["controls_received"])
        yield CounterMetricFamily("aadiff_controls_refused", "control values refused (bad value, bad prompt)",
                                  value=c["controls_refused"])
        rec = s.get("recording")
        if rec is not None:
            yield CounterMetricFamily("aadiff_recording_segments", "recording files begun",
                                      value=rec["segments"])
            if extra.get("recording_bytes") is not None:
                yield GaugeMetricFamily("aadiff_recording_bytes", "size on disk of this show's recording files",
                                        value=extra["recording_bytes"])


def metrics_text(collector: ShowCollector) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(collector)  # type: ignore[arg-type]
    return generate_latest(registry)
