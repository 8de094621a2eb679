#!/usr/bin/env bash
# Build (or resume) the whole YuNet + SFace view-label cache: the shared sets, then every extra set
# that scripts/extra_sets.sh extracted. Runs niced; safe to stop and start again at any time.
#
#   scripts/label_all.sh [extra label-views options, e.g. --workers 1]
#
# LABEL_NICE=19 leaves the CPU to the long run. EXTRA_SETS="wider-odd" labels the shared sets and
# only the named extra sets (the long run's core: scripts/long_run.sh).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
EXTRA="${UNISIGHT_CACHE:-$HOME/.cache/unisight}/extra-sets"
"$ROOT/scripts/extra_sets.sh" "$EXTRA" || echo "label_all: some extra sets are missing; labelling the rest" >&2
args=()
for set in ${EXTRA_SETS:-wider-odd utkface celeba-aligned face-mask web-humans}; do  # WIDER first: the crowds a run may start on
  [ -f "$EXTRA/$set/.complete" ] && args+=(--extra "$set=$EXTRA/$set")
done
exec nice -n "${LABEL_NICE:-10}" "$ROOT/run" label-views "${args[@]}" "$@"
