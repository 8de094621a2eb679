#!/usr/bin/env bash
# The paper's ablations of the long run (issue 24): model B, C or D (engines/model/config.py,
# mnv2_s8_mnv2face_{b,c,d}) trained exactly as scripts/train_student.sh trains model A (same start,
# seed, data, 30,000-step schedule), cut at STOP_AT, to compare with A's kept checkpoint of that
# step (runs/student_mnv2face/step_NNNNNN.pt) by scripts/ablation_table.sh. D samples the box, not
# the aligned chip, so the ImageNet input hint cannot teach its branch: D trains without it.
# Resumes like the main run; both cores, nice 10 (run it while the main run is paused or shipped).
# The main run took the canvas augmentations from step 3,500 on (scripts/train_student.sh): so do
# these, in a second slice of the same run. Model A is mnv2_s8_mnv2face up to step 6,000 only (then
# the long run took face pixels, mnv2_s8_mnv2face_px): cut the ablations at 6,000 or before to
# compare each with A as the paper's table does, one change apart.
#
#   scripts/train_ablation.sh b|c|d STOP_AT [extra train options]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LABELS="${UNISIGHT_CACHE:-$HOME/.cache/unisight}/views-v1"
LETTER="${1:?usage: scripts/train_ablation.sh b|c|d STOP_AT}"
STOP="${2:?usage: scripts/train_ablation.sh b|c|d STOP_AT}"
shift 2
case "$LETTER" in
  b|c) HINT=(--input-hint-weight 1) ;;
  d) HINT=() ;;
  *) echo "unknown ablation '$LETTER': b, c or d" >&2; exit 2 ;;
esac
AUGMENTED_FROM=3500
run() {
  nice -n "${NICE:-10}" "$ROOT/run" train --labels "$LABELS" --out "$ROOT/runs/ablation_$LETTER" \
    --config "mnv2_s8_mnv2face_$LETTER" --init imagenet "${HINT[@]}" --steps 30000 --batch 4 --canvas 320x320 \
    --crop-batch 64 --crop-canvas 128 --lr 1e-3 --eval-every 250 --keep-every 1000 --workers 1 "$@"
}
run --stop-at "$(( STOP < AUGMENTED_FROM ? STOP : AUGMENTED_FROM ))" "$@"
if [ "$STOP" -gt "$AUGMENTED_FROM" ]; then
  run --stop-at "$STOP" --letterbox-p 0.3 --turn-p 0.5 --turn-degrees 30 --backdrop-p 0.5 --faceless-p 0.05 \
    --dark-p 0.2 "$@"
fi
