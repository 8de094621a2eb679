#!/usr/bin/env bash
# The paper's ablations of the long run (issue 24): model B, C or D (engines/model/config.py,
# mnv2_s8_mnv2face_px_d8_{b,c,d}) trained by the long run's own command (scripts/train_student.sh:
# same start, seed, data, options and 30,000-step schedule), cut at STOP_AT, to compare with A's
# kept checkpoint of that step (runs/student_mnv2face/step_NNNNNN.pt) by scripts/ablation_table.sh.
# D samples the box, not the aligned chip, so the ImageNet input hint cannot teach its branch: D
# trains without it. Resumes like the main run (its state carried in
# engines/train/carried/ablation_X.pt); both cores: run it while the main run is paused or shipped.
#
#   scripts/train_ablation.sh b|c|d STOP_AT [extra train options]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LETTER="${1:?usage: scripts/train_ablation.sh b|c|d STOP_AT}"
STOP="${2:?usage: scripts/train_ablation.sh b|c|d STOP_AT}"
shift 2
case "$LETTER" in
  b|c) HINT=() ;;
  d) HINT=(--input-hint-weight 0) ;;  # the last of a repeated option is the one taken
  *) echo "unknown ablation '$LETTER': b, c or d" >&2; exit 2 ;;
esac
CONFIG="mnv2_s8_mnv2face_px_d8_$LETTER" OUT="$ROOT/runs/ablation_$LETTER" \
  CARRIED="$ROOT/engines/train/carried/ablation_$LETTER.pt" \
  exec "$ROOT/scripts/train_student.sh" --stop-at "$STOP" "${HINT[@]}" "$@"
