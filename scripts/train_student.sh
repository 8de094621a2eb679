#!/usr/bin/env bash
# The single-shot network's long distillation run (issue 24): mnv2_s8_mnv2face_px_d8 (MobileNetV2 from
# ImageNet in the Uniface structure; its face branch ImageNet's blocks 4-13 on F_r's aligned region
# plus blocks 0-3 on the aligned chip's pixels; two more blocks at stride 8) with the ImageNet input
# hint, taught by YuNet + SFace through the view cache (`scripts/label_all.sh`). Start it first thing
# in every session, through `scripts/long_run.sh` (labels first, on a fresh machine).
#
# Its state is carried in the repository: every evaluation writes engines/train/carried/student_mnv2face.pt
# (`train --carried`, a third of last.pt's size) beside runs/student_mnv2face/last.pt, and a run whose
# folder is gone starts from that file. Commit it before a session stops. The first long run
# (2026-11/12) had only runs/student_mnv2face, and was lost with its machine at step
# ~14,000; this run started again on 2026-12-07 from ImageNet with, from step 0, every option that
# run had taken up along the way, each on an A/B (README, "The next student"):
#   --config mnv2_s8_mnv2face_px_d8    face pixels (step 6,000: LFW of the recognition +1.9 +- 0.7
#                                      points), two more stride-8 blocks (step 9,000: 16-24 px faces
#                                      scoring 0.3 17% against 1%)
#   --input-hint-weight 1              beat the arm without it and the mnv2_s8_deep arm (steps 0-1,000)
#   --letterbox-p .. --dark-p          the shipped model's canvas augmentations (step 3,500: without
#                                      them 89 large unconfirmed boxes per 100 clip frames)
#   --native-p 0.3 --set-repeat wider-odd=8 --faceless-p 0.15   (step 6,750: WIDER 640x480 0.447 /
#                                      0.212 / 0.019 against 0.369 / 0.174 / 0.015)
#   --small-p 0.3                      small-face grids (step 8,000: 10-16 px faces with an anchor
#                                      above 0.1 25% against 2%)
#   --official-boxes                   WIDER's own boxes on the odd-event photos (step 9,500)
#   --ema 0.998                        a weight average (step 10,750: single checkpoints swung by 0.06 AP)
#   --channels-last                    the same arithmetic ~1.2x faster on this CPU (step 11,500)
#   --batch 16 --crop-batch 16         16 canvases + 16 views a step (step 13,250: WIDER 1024x768
#                                      0.694 / 0.450 / 0.162 against 0.673 / 0.433 / 0.143 with 8 + 32,
#                                      recognition equal); ~1.5 s a step on one thread
# 30,000 steps of cosine schedule (~12.5 h of this machine); every 1,000th step's weights are
# kept in runs/student_mnv2face (step_NNNNNN.pt) for comparisons at equal steps.
#
#   scripts/train_student.sh [extra train options]      (NICE=15 to leave more room to other work)
#
# One thread (THREADS=N for more): on this 2-core machine, with the labelling at nice 19 beside it, the
# run did 10.2-11.4 canvases/s on one thread (2026-12-07, steps 2,680-2,740) against 8.0-9.8 on two
# (steps 1,500-2,000): its data worker takes most of the second core, and two compute threads then
# wait on each other. Two one-thread runs side by side (an A/B) did 7.0-7.9 each.
#
# CONFIG, OUT and CARRIED name another network, run folder and carried file for the same recipe
# (scripts/train_ablation.sh: the paper's ablations on exactly this run's schedule).
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
LABELS="${UNISIGHT_CACHE:-$HOME/.cache/unisight}/views-v1"
export OMP_NUM_THREADS="${THREADS:-${OMP_NUM_THREADS:-1}}"
exec nice -n "${NICE:-10}" "$ROOT/run" train --labels "$LABELS" --out "${OUT:-$ROOT/runs/student_mnv2face}" \
  --config "${CONFIG:-mnv2_s8_mnv2face_px_d8}" --init imagenet --input-hint-weight 1 --steps 30000 --batch 16 --canvas 320x320 \
  --crop-batch 16 --crop-canvas 128 --lr 1e-3 --eval-every 250 --keep-every 1000 --workers 1 \
  --carried "${CARRIED:-$ROOT/engines/train/carried/student_mnv2face.pt}" \
  --letterbox-p 0.3 --turn-p 0.5 --turn-degrees 30 --backdrop-p 0.5 --faceless-p 0.15 --dark-p 0.2 \
  --native-p 0.3 --set-repeat wider-odd=8 --small-p 0.3 --ema 0.998 --channels-last \
  --official-boxes "$ROOT/../shared/data/widerface-sample/wider_face_val.mat" "$@"
