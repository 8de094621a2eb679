#!/usr/bin/env bash
# Every session's first command: resume the long run, and finish the label cache beside it.
# It labels the run's core first, in the foreground: the shared sets and WIDER's odd events (~40 min
# on a fresh machine, a minute's check on one that has them). Then the run trains, and the other extra
# sets are labelled in the background at nice 19, on what the run leaves of the CPU (logs/label.log;
# one labelling run per cache, so a second start only notes that one is going). The run takes up the
# sets labelled beside it at its next start. It stops before anything when a set is missing:
# the run's data must not change under it. The extra sets' git mirrors come from the workplace's
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
# fails when a labelling run holds the cache already (its lock): the run then starts on what is there
EXTRA_SETS="wider-odd" "$ROOT/scripts/label_all.sh" --quiet || echo "long_run: the core sets' labelling stopped (above); training on what the cache holds" >&2
mkdir -p "$ROOT/logs"
LABEL_NICE=19 nohup "$ROOT/scripts/label_all.sh" --quiet >> "$ROOT/logs/label.log" 2>&1 &
exec "$ROOT/scripts/train_student.sh" "$@"
