#!/usr/bin/env bash
# One arm of an A/B on the long run (issue 24): a copy of the long run's last.pt, trained on one core
# with extra train options to STOP_AT in runs/ab_NAME, the same batches as the long run from that step
# unless the options change the canvas data (--set-repeat changes the epoch's order). The long run
# itself is the other arm, unchanged: restart it with OMP_NUM_THREADS=1 for the A/B (a two-thread
# run beside a one-thread one ran ~5x slower on this 2-core machine, its threads waiting on a busy
# core). Compare the two at one step: the kept
# checkpoints (runs/student_mnv2face/step_NNNNNN.pt and runs/ab_NAME/step_NNNNNN.pt, every 1,000) or
# last.pt copies, with scripts/lfw_teacher_landmarks.py + scripts/paired_lfw.py for recognition and
# scripts/ship_check.py --quick for detection. If the arm wins, copy its last.pt over the long run's
# and add its options to scripts/train_student.sh.
#
#   scripts/ab_arm.sh NAME STOP_AT [train options]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
NAME="${1:?usage: scripts/ab_arm.sh NAME STOP_AT [train options]}"
STOP="${2:?usage: scripts/ab_arm.sh NAME STOP_AT [train options]}"
shift 2
MAIN="$ROOT/runs/student_mnv2face" ARM="$ROOT/runs/ab_$NAME"
if [ ! -f "$ARM/last.pt" ]; then
  mkdir -p "$ARM"
  cp "$MAIN/last.pt" "$ARM/"
fi
mkdir -p "$ROOT/logs"
# the arm's carried copy stays in its own folder: the committed one is the long run's
OMP_NUM_THREADS=1 CARRIED="$ARM/carried.pt" "$ROOT/scripts/train_student.sh" --stop-at "$STOP" --out "$ARM" "$@" > "$ROOT/logs/ab_$NAME.log" 2>&1
