#!/usr/bin/env bash
# Every session's first command: finish (or check) the label cache, then resume the long run.
# On a machine that has the cache this only checks it (a minute) before training resumes; on a
# fresh one it extracts the extra sets and labels everything first (~3 h on 2 cores). It stops
# before training when a set is missing: the run's data (and the teacher mean it centres SFace's
# embeddings on) must not change under it. The extra sets' git mirrors come from the workplace's
# fetch tool; scripts/extra_sets.sh names any that are missing.
# The run itself resumes from runs/student_mnv2face/last.pt, or from the committed
# engines/train/carried/student_mnv2face.pt where that holds a later step (scripts/train_student.sh).
#
#   nohup scripts/long_run.sh > logs/long_run.log 2>&1 &
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
if ! "$ROOT/scripts/extra_sets.sh"; then
  echo "long_run: an extra set is missing (above); fetch its mirror, then start this again" >&2
  exit 1
fi
"$ROOT/scripts/label_all.sh" --quiet
exec "$ROOT/scripts/train_student.sh" "$@"
