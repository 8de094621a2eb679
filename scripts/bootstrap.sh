#!/usr/bin/env bash
# Create or reuse .venv and install what Unisight needs; re-installs only when the
# requirement files change. Sourced by ./run and ./run-tests.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="$ROOT/.venv"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3

# System libraries PyQt5 (its xcb platform: the window on a desktop or under Xvfb) and OpenCV
# need on a bare Debian/Ubuntu (root or sudo only).
need_apt=()
# Listed once, searched per library: `ldconfig -p | grep -q` under `set -o pipefail` fails
# whenever grep stops reading early (ldconfig gets SIGPIPE), which made present libraries
# look missing and sent every few runs to apt-get.
known_libs="$(ldconfig -p 2>/dev/null || true)"
for lib in libGL.so.1 libEGL.so.1 libxkbcommon.so.0 libfontconfig.so.1 libdbus-1.so.3 libglib-2.0.so.0 \
           libxkbcommon-x11.so.0 libxcb-icccm.so.4 libxcb-keysyms.so.1 libxcb-xinerama.so.0 libxcb-image.so.0 \
           libxcb-render-util.so.0 libxcb-xkb.so.1 libxcb-shape.so.0 libxcb-randr.so.0; do
  [[ "$known_libs" == *"$lib"* ]] || need_apt+=("$lib")
done
if [ ${#need_apt[@]} -gt 0 ] && command -v apt-get >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
  echo "bootstrap: installing system libraries for Qt/OpenCV (${need_apt[*]})" >&2
  $SUDO apt-get update -qq >&2 && $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
    libgl1 libegl1 libxkbcommon0 libxkbcommon-x11-0 libfontconfig1 libdbus-1-3 libglib2.0-0 \
    libxcb-icccm4 libxcb-keysyms1 libxcb-xinerama0 libxcb-image0 libxcb-render-util0 libxcb-xkb1 \
    libxcb-shape0 libxcb-randr0 >&2 || \
    echo "bootstrap: could not install system libraries; Qt may not start" >&2
fi

if [ ! -x "$VENV/bin/python" ]; then
  echo "bootstrap: creating $VENV" >&2
  "$PY" -m venv "$VENV"
fi
STAMP="$VENV/.unisight-requirements"
WANT="$(cat "$ROOT/requirements.txt" "$ROOT/requirements-nodeps.txt" | sha256sum | cut -d' ' -f1)"
if [ "$(cat "$STAMP" 2>/dev/null)" != "$WANT" ]; then
  echo "bootstrap: installing Python packages (first run takes a few minutes)" >&2
  "$VENV/bin/python" -m pip install -q --upgrade pip >&2
  "$VENV/bin/python" -m pip install -q -r "$ROOT/requirements.txt" >&2
  "$VENV/bin/python" -m pip install -q --no-deps -r "$ROOT/requirements-nodeps.txt" >&2
  echo "$WANT" > "$STAMP"
fi
