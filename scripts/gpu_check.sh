#!/usr/bin/env bash
# The GPU check (issue 28) in one call, on a machine with an NVIDIA GPU, no network and no .venv:
# nvidia-smi's facts, then scripts/gpu_check.py's JSON (to $OUT/gpu_check.json, or --out FILE).
#   scripts/gpu_check.sh [gpu_check.py options]        from any folder; runs from the repository root
# `process` decodes with PyAV, which such a machine may lack: run scripts/gpu_wheels.sh where pip
# works and carry .whl; its wheels are installed here into a temporary folder (nothing else is).
# PYTHON picks the interpreter (default python3); GPU_CHECK_TIMEOUT caps the whole run (470 s).
set -uo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-python3}"

echo "== nvidia-smi"
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,driver_version,memory.total,compute_cap,clocks.max.sm,power.limit --format=csv \
    || echo "nvidia-smi failed (exit $?)"
else
  echo "nvidia-smi: not found (no NVIDIA driver on this machine)"
fi

if compgen -G ".whl/*.whl" >/dev/null && ! "$PY" -c "import av" >/dev/null 2>&1; then
  site="$(mktemp -d "${TMPDIR:-/tmp}/gpu-check-site.XXXXXX")"
  echo "== installing $(ls .whl | tr '\n' ' ')into $site"
  if "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --target "$site" .whl/*.whl; then
    export PYTHONPATH="$site${PYTHONPATH:+:$PYTHONPATH}"
  else
    echo "the carried wheels did not install: process will report PyAV missing"
  fi
fi

echo "== gpu_check.py"
export PYTHONUNBUFFERED=1
exec timeout -k 10 "${GPU_CHECK_TIMEOUT:-470}" "$PY" scripts/gpu_check.py "$@"
