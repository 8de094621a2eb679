#!/usr/bin/env bash
# Issue 24's face-branch A/B: the deep branch of random separable stages (mnv2_s8_deep) against
# ImageNet's MobileNetV2 blocks 4-13 (mnv2_s8_mnv2face), from the same start (ImageNet backbone),
# seed, data and schedule as the long run (scripts/train_student.sh: 4 canvases + 64 views a
# step), side by side on one core each so both see the same machine. Each arm stops at STOP_AT
# with a checkpoint; the better one goes on as the long run.
#
#   scripts/ab_branch.sh STOP_AT
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LABELS="${UNISIGHT_CACHE:-$HOME/.cache/unisight}/views-v1"
STOP="${1:?usage: scripts/ab_branch.sh STOP_AT}"
common=(--labels "$LABELS" --init imagenet --steps 100000 --stop-at "$STOP" --batch 4 --canvas 320x320
        --crop-batch 64 --crop-canvas 128 --lr 1e-3 --eval-every 250 --workers 1)
mkdir -p "$ROOT/logs"
for config in mnv2_s8_deep mnv2_s8_mnv2face; do
  OMP_NUM_THREADS=1 nice -n 5 "$ROOT/run" train "${common[@]}" --config "$config" --out "$ROOT/runs/ab_$config" \
    > "$ROOT/logs/ab_$config.log" 2>&1 &
done
wait
