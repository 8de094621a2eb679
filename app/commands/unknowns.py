"""`main.py unknowns EVENTS.jsonl`: group the unknown faces of a processed video by person."""
from __future__ import annotations

import json
from pathlib import Path


def register(sub) -> None:
    p = sub.add_parser("unknowns",
                       description="Cluster the unknown appearances of an event log (`main.py process --events`) "
                                   "by person, largest group first, each with its best crop, ready to enrol.")
    p.add_argument("events", type=Path, metavar="EVENTS.jsonl", help="event log written by `main.py process`")
    p.add_argument("--crops", type=Path, default=None, metavar="DIR",
                   help="write each group's best crop to DIR/unknown_NNN.jpg")
    p.add_argument("--threshold", type=float, default=None,
                   help="cosine similarity that makes two groups one person (default: the model's threshold)")
    p.add_argument("--min-frames", type=int, default=1, help="ignore appearances seen in fewer frames (default 1)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from engines.errors import UserError
    from app.gallery.recognition_defaults import threshold_for_model
    from app.offline.unknowns import cluster_unknowns, load_appearances, write_group_crops

    if args.threshold is not None and not -1.0 <= args.threshold <= 1.0:
        raise UserError(f"--threshold {args.threshold} is not a cosine similarity: use a value between -1 and 1")
    appearances = load_appearances(args.events, load_crops=args.crops is not None)
    unknown = [a for a in appearances if a.name is None]
    without = sum(1 for a in unknown if a.embedding is None)
    groups = cluster_unknowns(appearances, threshold=args.threshold, min_observations=args.min_frames)
    model = next((a.model_id for a in unknown if a.model_id), None)
    threshold = args.threshold if args.threshold is not None else threshold_for_model(model)
    crops = write_group_crops(groups, args.crops) if args.crops is not None else [None] * len(groups)
    if args.json:
        print(json.dumps({
            "events": str(args.events),
            "appearances": len(appearances),
            "unknown_appearances": len(unknown),
            "without_embedding": without,
            "threshold": threshold,
            "model_id": model,
            "groups": [g.to_dict(None if c is None else str(c)) for g, c in zip(groups, crops)],
        }))
        return 0
    print(f"{args.events}: {len(groups)} unknown people in {len(unknown)} unknown appearances "
          f"(of {len(appearances)}; threshold {threshold:.2f})")
    if without:
        print(f"  {without} unknown appearances have no embedding and are not grouped")
    for i, (g, crop) in enumerate(zip(groups, crops), 1):
        where = f", crop {crop}" if crop is not None else ""
        print(f"  #{i}: {g.count} appearance(s), {g.frames} frames, {_clock(g.first_time)}-{_clock(g.last_time)}, "
              f"source(s) {', '.join(g.sources)}{where}")
    if groups and args.crops is not None and crops[0] is not None:
        print(f"enrol one with: main.py enroll NAME {crops[0]}")
    return 0


def _clock(seconds: float) -> str:
    minutes, sec = divmod(max(0.0, seconds), 60)
    return f"{int(minutes):02d}:{sec:04.1f}"
