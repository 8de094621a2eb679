#!/usr/bin/env bash
# The single-shot network's long distillation run (issue 24): MobileNetV2 from ImageNet in the
# Uniface structure, taught by YuNet + SFace through the view cache (`scripts/label_all.sh`).
# Resumes from runs/mnv2_lite/last.pt whenever started again; start it first thing in every session.
# mnv2_lite_aligned: ImageNet blocks from stride 8 on behind a cheap stem of our own (36 FPS at
# 640x480 against the shipped network's 64; mnv2_aligned, all of ImageNet's blocks: 26 FPS).
# No --bf16: on this network it measured no faster than float32 (2.3-2.4 against 2.6-2.7
# canvases/s, 40 steps each, same seed and losses, machine shared with a labelling job).
#
#   scripts/train_student.sh [extra train options]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LABELS="${UNISIGHT_CACHE:-$HOME/.cache/unisight}/views-v1"
exec nice -n 15 "$ROOT/run" train --labels "$LABELS" --out "$ROOT/runs/mnv2_lite" --config mnv2_lite_aligned \
  --init imagenet --steps 100000 --batch 8 --canvas 320x320 --crop-batch 32 --crop-canvas 128 \
  --lr 1e-3 --eval-every 2000 --workers 1 "$@"
