#!/usr/bin/env bash
# Extract the extra face-image sets of ../shared/data/README.md from their git mirrors into OUT,
# one folder per set, at the pinned commits; WIDER FACE val keeps only odd-numbered events
# (even-numbered ones are for evaluation only). Re-running skips sets already extracted.
#
#   scripts/extra_sets.sh [OUT]        (default OUT: ~/.cache/unisight/extra-sets)
#
# The mirrors come from the workplace's `fetch` tool (github:OWNER/NAME -> /work/.mirror/OWNER+NAME/repo);
# MIRRORS overrides where they are. Nothing here downloads anything.
set -euo pipefail
OUT="${1:-${UNISIGHT_CACHE:-$HOME/.cache/unisight}/extra-sets}"
MIRRORS="${MIRRORS:-/work/.mirror}"
mkdir -p "$OUT"

# name | repository | commit | path inside it
SETS="utkface|mattans/AgeProgression|2d937c615a3d10408db0ea795842e569bc9eedb0|data/UTKFace/unlabeled
celeba-aligned|karthikSingireddy/cs389-hw4|702f8f7bdf59386959872d52879faac800f20ab1|celebA
face-mask|Karimashraf01/Face-Mask-Detection-using-MobilenetV2|1aeb6dd6ffcfe71609ebdd45eaea621b92a6df4b|Face Mask Dataset
web-humans|logicdeveloperTR/Manually-Created-Face-Recognition-Model|5f6ff72|Humans
wider-odd|Yusepp/YOLOv8-Face|4ed272dfa4bb6a6de95496d8c9c90bb3af8e3c5d|WIDER_val/images"

missing=0
while IFS='|' read -r name repo commit path; do
  dest="$OUT/$name"
  if [ -f "$dest/.complete" ]; then echo "$name: already in $dest"; continue; fi
  git_dir="$MIRRORS/${repo/\//+}/repo"
  if ! git --git-dir="$git_dir" cat-file -e "$commit^{commit}" 2>/dev/null; then
    echo "$name: no mirror of $repo at $git_dir (fetch github:$repo first)" >&2; missing=1; continue
  fi
  rm -rf "$dest.partial"; mkdir -p "$dest.partial"
  if [ "$name" = "wider-odd" ]; then
    # event folders are NUMBER--Name: keep the odd numbers
    events=$(git --git-dir="$git_dir" ls-tree --name-only "$commit:$path" | awk -F'--' '$1 % 2 == 1')
    for event in $events; do
      git --git-dir="$git_dir" archive "$commit" "$path/$event" | tar -x -C "$dest.partial"
    done
  else
    git --git-dir="$git_dir" archive "$commit" "$path" | tar -x -C "$dest.partial"
  fi
  # flatten the repository path away: DEST/<files under path>
  mv "$dest.partial/$path" "$dest.tmp" && rm -rf "$dest.partial" && mv "$dest.tmp" "$dest"
  touch "$dest/.complete"
  echo "$name: $(find "$dest" -type f \( -iname '*.jpg' -o -iname '*.jpeg' -o -iname '*.png' \) | wc -l) images in $dest"
done <<< "$SETS"
exit $missing
