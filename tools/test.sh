#!/usr/bin/env bash
# Sets up everything the tests need on a fresh Debian machine and runs them:
# system packages (PortAudio, PulseAudio, Xvfb), a virtualenv with the project, a PulseAudio
# null sink for the real-capture tests, then ruff and pytest. Extra arguments go to pytest.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
need=""
for p in libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins xvfb; do
  dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then
  echo "== installing system packages:$need"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  python3 -m venv .venv
fi
echo "== installing the project (torch==2.13.0 pinned: the CPU build)"
.venv/bin/python -m pip install -q --upgrade pip >/dev/null
.venv/bin/python -m pip install -q -e '.[dev,ndi,virtualcam]'
# the GPU benchmark's peer (tools/bench_gpu.py); --no-deps: it pins diffusers 0.24, it runs with ours
.venv/bin/python -m pip install -q --no-deps streamdiffusion==0.1.1

echo "== PulseAudio null sink for the real-capture tests"
if [ -x tools/start_pulse.sh ] || [ -f tools/start_pulse.sh ]; then
  if ! bash tools/start_pulse.sh; then
    if [ "${CI:-}" = "true" ]; then echo "PulseAudio failed to start in CI" >&2; exit 1; fi
    echo "PulseAudio is not available: the capture tests will be skipped"
  fi
fi

echo "== ruff, mypy"
.venv/bin/ruff check aadiff_live tests tools
.venv/bin/mypy aadiff_live
echo "== pytest"
export HF_HUB_OFFLINE=1 SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy MPLBACKEND=Agg
exec .venv/bin/python -m pytest "$@"
