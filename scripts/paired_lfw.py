#!/usr/bin/env python3
"""Paired LFW difference of two runs of `main.py eval lfw --json` over the same folds: B - A per
fold, its mean and standard error. Folds are the pairing unit (pairs.txt's 10 folds, each threshold
chosen on the other nine), so fold-to-fold difficulty cancels out.

    scripts/paired_lfw.py A.json B.json
"""
from __future__ import annotations

import json
import math
import sys


def main(a_path: str, b_path: str) -> int:
    a, b = (json.load(open(p)) for p in (a_path, b_path))
    if a["pairs"] != b["pairs"] or len(a["folds"]) != len(b["folds"]):
        print(f"not the same pairs: {a['pairs']} and {b['pairs']} pairs", file=sys.stderr)
        return 1
    diffs = [y - x for x, y in zip(a["folds"], b["folds"])]
    n = len(diffs)
    mean = sum(diffs) / n
    se = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1) / n) if n > 1 else float("nan")
    print(json.dumps({"a": a["accuracy"], "b": b["accuracy"], "b_minus_a": round(mean, 6),
                      "standard_error": round(se, 6), "folds": n, "pairs": a["pairs"],
                      "b_better_folds": sum(d > 0 for d in diffs), "b_worse_folds": sum(d < 0 for d in diffs)}))
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        sys.exit(2)
    sys.exit(main(sys.argv[1], sys.argv[2]))
