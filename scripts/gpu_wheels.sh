#!/usr/bin/env bash
# Fetch, where pip can reach the index, the wheels the GPU check needs on a device machine that
# lacks them (PyAV, pinned as in requirements.txt), into .whl/ (git-ignored): name .whl in the
# device call's carry, and scripts/gpu_check.sh installs them there. Linux x86-64, CPython 3.11+.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PYTHON:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
av="$(grep -E '^av==' requirements.txt)"
"$PY" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl "$av"
ls -l .whl
