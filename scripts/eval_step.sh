#!/usr/bin/env bash
# The long run's figures at one kept checkpoint, as the issue notes quote them, into runs/eval/:
# WIDER at 1024x768 (the 50 sample images), LFW of the recognition alone on YuNet's landmarks
# (3,000 pairs, `scripts/lfw_teacher_landmarks.py`) and `scripts/ship_check.py --quick` (LFW with
# its own detection on 1,000 pairs, WIDER 640x480 on 20 images, the clips, the cat, the astronaut).
# Niced: it runs beside the long run.
#
#   scripts/eval_step.sh STEP [RUN]      (RUN: a run folder, default runs/student_mnv2face; STEP
#                                         is a kept step_NNNNNN.pt, or "last" for last.pt)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
STEP="${1:?usage: scripts/eval_step.sh STEP [RUN]}"
RUN="${2:-$ROOT/runs/student_mnv2face}"
if [ "$STEP" = last ]; then weights="$RUN/last.pt"; else weights="$RUN/$(printf "step_%06d.pt" "$STEP")"; fi
[ -f "$weights" ] || { echo "eval_step: no $weights" >&2; exit 1; }
PY="$ROOT/.venv/bin/python"
config=$("$PY" -c "import sys, torch; print(torch.load(sys.argv[1], map_location='cpu', weights_only=False)['config'])" "$weights")
step=$("$PY" -c "import sys, torch; print(torch.load(sys.argv[1], map_location='cpu', weights_only=False)['step'])" "$weights")
OUT="$ROOT/runs/eval" && mkdir -p "$OUT"
tag="$(basename "$RUN")_$step"
nice -n 5 "$ROOT/run" eval widerface --images "$ROOT/../shared/data/widerface-sample" --input-size 1024x768 \
  --config "$config" --weights "$weights" --json > "$OUT/wider1024_$tag.json"
nice -n 5 "$PY" "$ROOT/scripts/lfw_teacher_landmarks.py" --config "$config" --weights "$weights" --limit 300 \
  > "$OUT/lfw_teacher_$tag.json"
nice -n 5 "$PY" "$ROOT/scripts/ship_check.py" --config "$config" --weights "$weights" --quick \
  --out "$OUT/ship_quick_$tag.json" > "$OUT/ship_quick_$tag.txt" || true   # exit 1: "keep training"
"$PY" - "$OUT" "$tag" <<'PY'
import json, sys
out, tag = sys.argv[1], sys.argv[2]
w = json.load(open(f"{out}/wider1024_{tag}.json"))
l = json.load(open(f"{out}/lfw_teacher_{tag}.json"))
ap = " / ".join(f"{w[k]:.3f}" for k in ("easy", "medium", "hard"))
print(f"{tag}: WIDER 1024x768 {ap}; LFW on YuNet's landmarks {100 * l['accuracy']:.2f}% "
      f"(+- {100 * l['std']:.2f}, {l['pairs']} pairs)")
PY
tail -n 25 "$OUT/ship_quick_$tag.txt"
