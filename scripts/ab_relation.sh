#!/usr/bin/env bash
# Issue 24's relation-loss A/B on the long run: from the long run's last checkpoint, two arms side
# by side on one core each to STOP_AT, the same batches: the long run itself as it is (in
# runs/student_mnv2face) and a copy of it with the relation loss (--relation-weight 1
# --relation-temp 0.05, as the shipped model's training used it; runs/ab_relation). Compare with
# scripts/lfw_teacher_landmarks.py on both last.pt and scripts/paired_lfw.py; if the relation arm
# wins, copy its last.pt over the long run's and add the two options to scripts/train_student.sh.
#
#   scripts/ab_relation.sh STOP_AT
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STOP="${1:?usage: scripts/ab_relation.sh STOP_AT}"
MAIN="$ROOT/runs/student_mnv2face" ARM="$ROOT/runs/ab_relation"
if [ ! -f "$ARM/last.pt" ]; then
  mkdir -p "$ARM"
  cp "$MAIN/last.pt" "$MAIN/train.jsonl" "$ARM/"
fi
mkdir -p "$ROOT/logs"
OMP_NUM_THREADS=1 NICE=5 "$ROOT/scripts/train_student.sh" --stop-at "$STOP" > "$ROOT/logs/ab_relation_none.log" 2>&1 &
OMP_NUM_THREADS=1 NICE=5 "$ROOT/scripts/train_student.sh" --stop-at "$STOP" --out "$ARM" --relation-weight 1 \
  --relation-temp 0.05 > "$ROOT/logs/ab_relation_on.log" 2>&1 &
wait
