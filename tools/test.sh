#!/usr/bin/env bash
# Sets up everything the tests need on a fresh Debian machine and runs them:
# system packages (PortAudio, PulseAudio, Xvfb, Chromium for the web page's browser test), a virtualenv with the project, a PulseAudio
# null sink for the real-capture tests, then ruff, mypy, the docs build (mkdocs --strict) and pytest.
# Extra arguments go to pytest.
#
# AADIFF_VENV=/path/to/venv: use that virtualenv as it is (CI: the one of the checkout this tree
#   was cloned from, same commit, kept between runs); this tree is put first on the import path.
# AADIFF_SETUP_ONLY=1: install, then stop before the checks.
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
[ "$(id -u)" -ne 0 ] && command -v sudo >/dev/null 2>&1 && SUDO="sudo"
need=""
for p in libportaudio2 pulseaudio pulseaudio-utils libasound2-plugins xvfb chromium; do
  dpkg -s "$p" >/dev/null 2>&1 || need="$need $p"
done
if [ -n "$need" ]; then
  echo "== installing system packages:$need"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends $need >/dev/null
fi

if [ -n "${AADIFF_VENV:-}" ]; then
  VENV=$AADIFF_VENV
  [ -x "$VENV/bin/python" ] || { echo "AADIFF_VENV=$VENV holds no virtualenv" >&2; exit 1; }
  echo "== using the virtualenv $VENV with this tree first on the import path"
  export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
  VENV=.venv
  [ -x "$VENV/bin/python" ] || python3 -m venv "$VENV"
  echo "== installing the project (torch==2.13.0 pinned: the CPU build)"
  "$VENV/bin/python" -m pip install -q --upgrade pip >/dev/null
  "$VENV/bin/python" -m pip install -q -e '.[dev,docs,bench,stems,ndi,virtualcam,web,ray]'
  # the GPU benchmark's peer (tools/bench_gpu.py); --no-deps: it pins diffusers 0.24, it runs with ours
  "$VENV/bin/python" -m pip install -q --no-deps streamdiffusion==0.1.1
fi
[ "${AADIFF_SETUP_ONLY:-}" = 1 ] && exit 0

echo "== PulseAudio null sink for the real-capture tests"
if ! bash tools/start_pulse.sh; then
  if [ "${CI:-}" = "true" ]; then echo "PulseAudio failed to start in CI" >&2; exit 1; fi
  echo "PulseAudio is not available: the capture tests will be skipped"
fi

echo "== ruff, mypy"
"$VENV/bin/ruff" check aadiff_live tests tools
"$VENV/bin/mypy" aadiff_live
echo "== docs (mkdocs build --strict: a warning fails)"
NO_MKDOCS_2_WARNING=1 "$VENV/bin/mkdocs" build --strict --quiet --site-dir site
echo "== pytest"
export HF_HUB_OFFLINE=1 SDL_VIDEODRIVER=dummy SDL_AUDIODRIVER=dummy MPLBACKEND=Agg
exec "$VENV/bin/python" -m pytest "$@"
