#!/usr/bin/env bash
# Issue 24's face-pixels A/B on the long run: the run's last.pt carried into mnv2_s8_mnv2face_px (the
# face branch also sees the aligned chip's pixels through ImageNet's blocks 0-3; `scripts/carry_run.py`
# keeps the step, optimiser state, random state and so the batches) and trained beside the long run
# to STOP_AT on one core (runs/ab_pixels). The long run itself is the other arm. Compare the kept
# checkpoints of one step with scripts/lfw_teacher_landmarks.py and scripts/paired_lfw.py; if the
# pixel arm wins, it becomes the long run (copy its last.pt into runs/student_mnv2face and set
# --config mnv2_s8_mnv2face_px in scripts/train_student.sh).
#
#   scripts/ab_pixels.sh STOP_AT [SOURCE]      (SOURCE: the last.pt to carry; default the long run's)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STOP="${1:?usage: scripts/ab_pixels.sh STOP_AT [SOURCE]}"
MAIN="$ROOT/runs/student_mnv2face" ARM="$ROOT/runs/ab_pixels"
if [ ! -f "$ARM/last.pt" ]; then
  "$ROOT/.venv/bin/python" "$ROOT/scripts/carry_run.py" --from "${2:-$MAIN/last.pt}" --config mnv2_s8_mnv2face_px \
    --out "$ARM/last.pt"
fi
# the carried last.pt is there, so ab_arm.sh trains it as it stands
exec "$ROOT/scripts/ab_arm.sh" pixels "$STOP" --config mnv2_s8_mnv2face_px
