#!/usr/bin/env bash
# The paper's ablation table at one step of the schedule: LFW (and LFW with every side cropped or
# padded by up to 60 px, the paper's robustness test) of model A's kept checkpoint of STEP
# (runs/student_mnv2face/step_NNNNNN.pt, scripts/train_student.sh) and of B, C and D's
# (scripts/train_ablation.sh), each ablation's paired difference against A over the same folds.
# Rows whose checkpoint does not exist yet are skipped. JSON files go to runs/ablation_table/.
#
#   scripts/ablation_table.sh STEP [LIMIT]      (LIMIT: pairs per fold, for a quick look; default all)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STEP="${1:?usage: scripts/ablation_table.sh STEP [LIMIT]}"
LIMIT=(); [ -n "${2:-}" ] && LIMIT=(--limit "$2")
OUT="$ROOT/runs/ablation_table"
mkdir -p "$OUT"
ckpt=$(printf "step_%06d.pt" "$STEP")
for jitter in 0 60; do
  for letter in a b c d; do
    if [ "$letter" = a ]; then
      # the configuration the checkpoint was trained as
      weights="$ROOT/runs/student_mnv2face/$ckpt"
      [ -f "$weights" ] && config=$("$ROOT/.venv/bin/python" -c \
        "import sys, torch; print(torch.load(sys.argv[1], map_location='cpu', weights_only=False)['config'])" "$weights")
    else
      weights="$ROOT/runs/ablation_$letter/$ckpt" config="mnv2_s8_mnv2face_px_d8_$letter"
    fi
    [ -f "$weights" ] || { echo "model $letter: no $weights yet, skipped" >&2; continue; }
    json="$OUT/lfw_${letter}_${STEP}_jitter${jitter}.json"
    nice -n 5 "$ROOT/run" eval lfw --config "$config" --weights "$weights" --jitter "$jitter" "${LIMIT[@]}" \
      --json --quiet > "$json"
    if [ "$letter" = a ]; then
      echo "A step $STEP jitter $jitter: $(python3 -c "import json,sys; d=json.load(open(sys.argv[1])); \
print(f\"{100*d['accuracy']:.2f}% ± {100*d['std']:.2f}, no face in {d['no_face']} of {d['images']}\")" "$json")"
    else
      echo "$(echo "$letter" | tr a-z A-Z) - A, jitter $jitter: $("$ROOT/scripts/paired_lfw.py" "$OUT/lfw_a_${STEP}_jitter${jitter}.json" "$json")"
    fi
  done
done
