#!/usr/bin/env python3
"""Carry a run's resumable checkpoint (its last.pt) into a configuration that adds modules to the
network, at the same step, optimiser and random state (`engines.train.carry`): `train --config
NEW --out DIR` then continues the run's schedule and batches with the added modules (MobileNetV2
blocks from ImageNet).

    scripts/carry_run.py --from runs/RUN/last.pt --config NEW --out runs/ARM/last.pt
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))


def main() -> int:
    from engines.train.carry import carry_checkpoint

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--from", dest="source", type=Path, required=True, help="a run's last.pt")
    p.add_argument("--config", required=True, help="the configuration to continue in")
    p.add_argument("--out", type=Path, required=True, help="where to write the carried last.pt")
    args = p.parse_args()
    if args.out.exists():
        print(f"error: {args.out} exists: the arm has started already", file=sys.stderr)
        return 2
    try:
        carried = carry_checkpoint(args.source, args.config, args.out)
    except (ValueError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{carried.path}: step {carried.step}, {len(carried.added)} tensors added "
          f"({', '.join(sorted({k.rsplit('.', 2)[0] for k in carried.added})[:4])}...)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
