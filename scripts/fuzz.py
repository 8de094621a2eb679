#!/usr/bin/env python3
"""Fuzz Unisight's input surfaces for longer than the test suite does.

    .venv/bin/python scripts/fuzz.py [--target all|image|video|import|settings] [--seconds 60] [--json]

Each target (tests/support/fuzz_targets.py) must end every input in a result or a one-line error;
`import` also checks that the gallery still recognises afterwards. Inputs come from
hypothesis in rounds of 100 with fresh random seeds until the time is up; a crash is shrunk
to a minimal input, printed, and the run goes on. Prints inputs tried, seconds, crashes and
the outcomes per target; exit status 1 when any target crashed.

(atheris 2.3.0 installs here, but its bytecode instrumentation of any app module ends in a
libFuzzer "deadly signal" on Python 3.11.7, so coverage-guided runs are not offered.)
"""
from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def run_target(target: str, seconds: float) -> dict:
    """Fuzz one target for `seconds`; returns inputs, seconds, crashes and outcome counts."""
    from hypothesis import HealthCheck, given, settings, strategies as st

    from tests.support.fuzz_targets import RUNNERS, Seeds

    seeds, run = Seeds.make(), RUNNERS[target]
    outcomes: collections.Counter = collections.Counter()
    crashes: list[str] = []
    started = time.monotonic()
    while time.monotonic() - started < seconds:
        @settings(max_examples=100, deadline=None, database=None, suppress_health_check=list(HealthCheck))
        @given(st.binary(max_size=600))
        def check(data):
            outcomes[run(data, seeds)] += 1

        try:
            check()
        except Exception as exc:  # noqa: BLE001 - a crash: keep its (shrunk) report and go on
            text = str(exc)
            crashes.append(f"{type(exc).__name__}: {text.splitlines()[0] if text else ''}")
            outcomes["crash"] += 1
    return {"target": target, "inputs": sum(outcomes.values()), "seconds": round(time.monotonic() - started, 1),
            "crashes": len(crashes), "crash_messages": crashes[:5], "outcomes": dict(outcomes)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--target", default="all", choices=["all", "image", "video", "import", "settings"])
    p.add_argument("--seconds", type=float, default=60.0, help="per target (default 60)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args()
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    logging.basicConfig(level=logging.CRITICAL)  # damaged inputs log warnings by the thousand
    from tests.support.fuzz_targets import TARGETS

    targets = TARGETS if args.target == "all" else (args.target,)
    results = []
    for target in targets:
        r = run_target(target, args.seconds)
        results.append(r)
        if not args.json:
            print(f"{target:9s} {r['inputs']:7d} inputs in {r['seconds']:6.1f} s  crashes {r['crashes']}  "
                  f"{r['outcomes']}", flush=True)
            for m in r["crash_messages"]:
                print(f"    crash: {m}")
    total = sum(r["crashes"] for r in results)
    if args.json:
        print(json.dumps({"results": results, "inputs": sum(r["inputs"] for r in results), "crashes": total}))
    return 1 if total else 0


if __name__ == "__main__":
    sys.exit(main())
