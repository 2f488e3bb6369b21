#!/usr/bin/env bash
# Download the wheels that tools/bench_gpu.py needs on the bare GPU machine into .whl/ (git-ignored).
#
# The list is computed, not written by hand: the benchmark's smoke run (every section, on this CPU,
# with av/pygame/sounddevice/soxr/soundfile made unimportable as they are there) records every
# top-level module it imported; each is mapped to its distribution, and what
# tools/gpu_bare_packages.txt (the machine's own packages) lacks is downloaded at the version installed
# here, for CPython 3.12 manylinux x86-64, without dependencies. The total must stay under the
# 64 MiB that travels with a run (the working tree counts too).
#
#   bash tools/gpu_wheels.sh                 # runs the smoke (about a minute), then downloads
#   bash tools/gpu_wheels.sh smoke.json      # reuse a smoke JSON written with the same venv
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-.venv/bin/python}
[ -x "$PY" ] || PY=python3
LIMIT_MIB=64
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

smoke=${1:-}
if [ -z "$smoke" ]; then
  smoke=$tmp/smoke.json
  echo "== the benchmark's smoke run records its imports"
  HF_HUB_OFFLINE=1 PYTHONPATH=$PWD "$PY" - "$smoke" >"$tmp/smoke.log" 2>&1 <<'EOF' || { tail -20 "$tmp/smoke.log"; exit 1; }
import runpy, sys
for m in ("av", "pygame", "sounddevice", "soxr", "soundfile"):
    sys.modules[m] = None  # absent on the GPU machine
out = sys.argv[1]
sys.argv = ["bench_gpu.py", "--smoke", "--budget", "1000", "--json", out]
runpy.run_path("tools/bench_gpu.py", run_name="__main__")
EOF
fi

echo "== distributions imported that the GPU machine lacks"
"$PY" - "$smoke" tools/gpu_bare_packages.txt >"$tmp/need.txt" <<'EOF'
import importlib.metadata as md, json, re, sys
mods = json.load(open(sys.argv[1]))["modules"]
bare = {ln.strip() for ln in open(sys.argv[2]) if ln.strip() and not ln.startswith("#")}
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
dists = md.packages_distributions()
need = {}
for m in mods:
    if m in sys.stdlib_module_names or m.startswith("_") or m in ("benchstats", "aadiff_live"):
        continue
    for d in dists.get(m, []):
        if norm(d) not in bare and norm(d) != "aadiff-live":
            need[norm(d)] = md.version(d)
for d, v in sorted(need.items()):
    print(f"{d}=={v}")
EOF
cat "$tmp/need.txt"
[ -s "$tmp/need.txt" ] || { echo "nothing to carry"; exit 0; }

echo "== downloading into .whl/ (CPython 3.12, manylinux x86-64, no dependencies)"
rm -rf .whl && mkdir -p .whl
plat=()
for p in manylinux_2_28_x86_64 manylinux_2_27_x86_64 manylinux_2_17_x86_64 manylinux2014_x86_64 manylinux1_x86_64; do
  plat+=(--platform "$p")
done
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp "${plat[@]}" \
  -d .whl -r "$tmp/need.txt"

echo "== dependencies the wheels declare that neither the machine nor .whl/ has (informative: the smoke's"
echo "   imports decide; a dependency imported only on the GPU would have to be added here)"
"$PY" - tools/gpu_bare_packages.txt .whl <<'EOF'
import re, sys, zipfile, pathlib
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
have = {ln.strip() for ln in open(sys.argv[1]) if ln.strip() and not ln.startswith("#")}
wheels = sorted(pathlib.Path(sys.argv[2]).glob("*.whl"))
have |= {norm(w.name.split("-")[0]) for w in wheels}
for w in wheels:
    with zipfile.ZipFile(w) as z:
        meta = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        for ln in z.read(meta).decode().splitlines():
            if ln.startswith("Requires-Dist:") and "extra ==" not in ln:
                name = norm(re.split(r"[ ;<>=!~\[(]", ln.split(":", 1)[1].strip())[0])
                if name not in have:
                    print(f"   {w.name}: {name} (not carried)")
EOF

echo "== sizes"
total=0
for f in .whl/*.whl; do
  s=$(stat -c %s "$f"); total=$((total + s))
  printf '%10.2f MiB  %s\n' "$(echo "$s / 1048576" | bc -l)" "$(basename "$f")"
done
tree=$(git ls-files -z | xargs -0 stat -c %s 2>/dev/null | awk '{s+=$1} END {print s+0}')
printf '%10.2f MiB  wheels in total\n%10.2f MiB  tracked working tree\n' \
  "$(echo "$total / 1048576" | bc -l)" "$(echo "$tree / 1048576" | bc -l)"
if [ $(((total + tree) / 1048576)) -ge $LIMIT_MIB ]; then
  echo "wheels + working tree exceed the ${LIMIT_MIB} MiB that travel with a run" >&2
  exit 1
fi
echo "ok: under ${LIMIT_MIB} MiB with the working tree; carry .whl in the run (docs/gpu.md)"
