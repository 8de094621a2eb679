#!/usr/bin/env bash
# Issue 24's hint A/B: the same network (mnv2_s8_deep), start (ImageNet), seed, data and schedule,
# with and without the dense hint from SFace's last map, side by side (one core each, so both see
# the same machine). Each arm stops at --stop-at with a checkpoint; the better one goes on as the
# long run (scripts/train_student.sh).
#
#   scripts/ab_hints.sh STOP_AT [HINT_WEIGHT]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LABELS="${UNISIGHT_CACHE:-$HOME/.cache/unisight}/views-v1"
STOP="${1:?usage: scripts/ab_hints.sh STOP_AT [HINT_WEIGHT]}"
HINT="${2:-4}"
common=(--labels "$LABELS" --config mnv2_s8_deep --init imagenet --steps 100000 --stop-at "$STOP" --batch 8
        --canvas 320x320 --crop-batch 32 --crop-canvas 128 --lr 1e-3 --eval-every 125 --workers 1)
mkdir -p "$ROOT/logs"
OMP_NUM_THREADS=1 nice -n 5 "$ROOT/run" train "${common[@]}" --out "$ROOT/runs/ab_hint" --hint-weight "$HINT" \
  > "$ROOT/logs/ab_hint.log" 2>&1 &
OMP_NUM_THREADS=1 nice -n 5 "$ROOT/run" train "${common[@]}" --out "$ROOT/runs/ab_nohint" \
  > "$ROOT/logs/ab_nohint.log" 2>&1 &
wait
