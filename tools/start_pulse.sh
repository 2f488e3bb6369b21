#!/usr/bin/env bash
# Start a PulseAudio server with a null sink `v` whose monitor is the default source, so that
# PortAudio (through ALSA's pulse plugin) can capture what `paplay --device=v` plays.
# Idempotent: safe to run again. Needs: apt-get install -y libportaudio2 pulseaudio pulseaudio-utils
# (libasound2-plugins comes with pulseaudio and provides ALSA's "pulse"/"default" devices).
set -euo pipefail

if ! pactl info >/dev/null 2>&1; then
    # As root pulseaudio prints "not intended to be run as root" and runs anyway (per-user mode).
    pulseaudio -D --exit-idle-time=-1 --disallow-exit 2>&1 | grep -v "not intended to be run as root" || true
    for _ in $(seq 50); do pactl info >/dev/null 2>&1 && break; sleep 0.1; done
    pactl info >/dev/null 2>&1 || { echo "start_pulse.sh: pulseaudio did not start" >&2; exit 1; }
fi
if ! pactl list short sinks | awk '{print $2}' | grep -qx v; then
    pactl load-module module-null-sink sink_name=v >/dev/null
fi
pactl set-default-sink v
pactl set-default-source v.monitor
pactl info | grep -E "^Default (Sink|Source)"
