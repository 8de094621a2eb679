#!/usr/bin/env bash
# Issue 24's input-hint arm: mnv2_s8_mnv2face with the ImageNet input hint (engines/train/imagenet_hint.py)
# on the schedule of scripts/ab_branch.sh, whose mnv2_s8_mnv2face arm is the same run without it
# (same start, seed, data and steps; one core).
#
#   scripts/ab_input_hint.sh STOP_AT [WEIGHT]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LABELS="${UNISIGHT_CACHE:-$HOME/.cache/unisight}/views-v1"
STOP="${1:?usage: scripts/ab_input_hint.sh STOP_AT [WEIGHT]}"
WEIGHT="${2:-1}"
mkdir -p "$ROOT/logs"
OMP_NUM_THREADS=1 exec nice -n 5 "$ROOT/run" train --labels "$LABELS" --init imagenet --steps 100000 --stop-at "$STOP" \
  --batch 4 --canvas 320x320 --crop-batch 64 --crop-canvas 128 --lr 1e-3 --eval-every 250 --workers 1 \
  --config mnv2_s8_mnv2face --input-hint-weight "$WEIGHT" --out "$ROOT/runs/ab_mnv2face_input_hint" \
  > "$ROOT/logs/ab_mnv2face_input_hint.log" 2>&1
