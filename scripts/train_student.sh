#!/usr/bin/env bash
# The single-shot network's long distillation run (issue 24): MobileNetV2 from ImageNet in the
# Uniface structure with a deep face branch (mnv2_s8_deep), taught by YuNet + SFace through the
# view cache (`scripts/label_all.sh`). Resumes from runs/student_deep/last.pt whenever started
# again; start it first thing in every session.
# Its first 750 steps are the no-hint arm of the hint A/B (scripts/ab_hints.sh 750: batch 8 + 32
# views); from there each step takes 4 canvases + 64 views: the canvases are half of a step's
# compute and the views carry the recognition targets, so this doubles the faces the face branch
# learns from per step for ~10% more compute. No --hint-weight: at step 750 the hint gave no
# measurable gain for ~30% more time a step (README, "Deep face branch and dense hints").
# No --bf16: no faster than float32 on this CPU (measured on mnv2_lite_aligned).
#
#   scripts/train_student.sh [extra train options]
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LABELS="${UNISIGHT_CACHE:-$HOME/.cache/unisight}/views-v1"
exec nice -n 15 "$ROOT/run" train --labels "$LABELS" --out "$ROOT/runs/student_deep" --config mnv2_s8_deep \
  --init imagenet --steps 100000 --batch 4 --canvas 320x320 --crop-batch 64 --crop-canvas 128 \
  --lr 1e-3 --eval-every 250 --workers 1 "$@"
