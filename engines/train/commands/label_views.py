"""`main.py label-views`: the YuNet + SFace label cache with stored face views (training input)."""
from __future__ import annotations

import json
from pathlib import Path

from engines.train.commands.label import DEFAULT_DATA, _parse_extra
from engines.errors import UserError
from engines.paths import user_cache_dir


def register(sub) -> None:
    p = sub.add_parser(
        "label-views",
        description="Per image: YuNet boxes, landmarks and scores. Per face: a loosely aligned crop, SFace's "
        "embedding of the face, and SFace's embeddings of the clean crop, its mirror and K random views "
        "(turn, zoom, shift, colour, blur) with their parameters, so training regenerates the exact view "
        "the teacher saw. Shards are written as they complete; re-running resumes.",
    )
    p.add_argument("--out", type=Path, default=None, help="cache folder (default: USER_CACHE/views-v1)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"shared data folder (default: {DEFAULT_DATA})")
    p.add_argument("--sets", default="celeba-wild,faces-misc,lfw-train",
                   help="comma-separated built-in sets: celeba-wild, faces-misc, lfw-train (default: all); "
                        "'' for none")
    p.add_argument("--extra", action="append", default=[], metavar="NAME=DIR",
                   help="also label every image under DIR as set NAME (repeatable)")
    p.add_argument("--views", type=int, default=8, help="K random views per face besides clean and mirror (8)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    p.add_argument("--limit", type=int, default=None, help="label at most N new images, then stop")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument("--status", action="store_true",
                   help="only report what the cache holds (per set: images, faces, views, rate) and exit")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from engines.errors import EngineUnavailable
    from engines.train.labelling import resolve_sets
    from engines.train.view_labels import ViewSettings, label_views

    if args.workers < 1 or args.views < 0 or (args.limit is not None and args.limit < 0):
        raise UserError("--workers must be at least 1, --views and --limit at least 0")
    out = args.out or user_cache_dir() / "views-v1"
    if args.status:
        return _status(out, args.json)
    names = [n.strip() for n in args.sets.split(",") if n.strip()]
    try:
        sets = resolve_sets(names, args.data, _parse_extra(args.extra))
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(f"{exc} (see --data, --sets, --extra)") from None
    if not sets:
        raise UserError("no image sets given (--sets, --extra)")
    try:
        summary = label_views(sets, out, ViewSettings(views=args.views), workers=args.workers, limit=args.limit,
                              progress=not args.quiet)
    except (EngineUnavailable, ValueError) as exc:
        raise UserError(str(exc)) from None
    if args.json:
        print(json.dumps(summary.as_dict()))
        return 0
    print(f"view labels in {out}: {summary.images_total} images in the sets, {summary.already_done} done before")
    for name, t in summary.per_set.items():
        rate = t.images / t.seconds if t.seconds else 0.0
        print(f"  {name:<14} {t.images:>6} images now ({rate:.1f}/s, {t.seconds:.0f} s): {t.faces} faces, "
              f"{t.embedded} with crops and {t.views} views; {t.no_face} without a face, {t.unreadable} unreadable")
    return 0


def _status(out: Path, as_json: bool) -> int:
    from engines.train.view_labels import cache_status

    try:
        status = cache_status(out)
    except FileNotFoundError as exc:
        raise UserError(str(exc)) from None
    if as_json:
        print(json.dumps(status))
        return 0
    print(f"view labels in {out} ({status['settings']['views']} random views a face):")
    for name, s in status["sets"].items():
        rate = "" if s["images_per_s"] is None else f", {s['images_per_s']} images/s"
        print(f"  {name:<14} {s['images']:>6} images ({s['unreadable']} unreadable), {s['faces']} faces, "
              f"{s['embedded']} with crops, {s['views']} views, {s['shards']} shards{rate}")
    return 0
