"""`main.py label`: teacher pseudo-labels (MTCNN + dlib) for the training images, resumable."""
from __future__ import annotations

import json
from pathlib import Path

from engines.errors import UserError
from engines.paths import REPO_ROOT, user_cache_dir

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data"


def register(sub) -> None:
    p = sub.add_parser(
        "label",
        description="Run MTCNN and dlib's ResNet over the training images and store, per image, every "
        "face's box, 5 landmarks, score and 128-D embedding in shards. Re-running resumes.",
    )
    p.add_argument("--out", type=Path, default=None, help="output folder (default: USER_CACHE/labels)")
    p.add_argument("--data", type=Path, default=DEFAULT_DATA, help=f"shared data folder (default: {DEFAULT_DATA})")
    p.add_argument("--sets", default="celeba-wild,faces-misc,lfw-train",
                   help="comma-separated built-in sets: celeba-wild, faces-misc, lfw-train (default: all)")
    p.add_argument("--extra", action="append", default=[], metavar="NAME=DIR",
                   help="also label every image under DIR as set NAME (repeatable)")
    p.add_argument("--workers", type=int, default=2, help="worker processes (2)")
    p.add_argument("--limit", type=int, default=None, help="label at most N new images, then stop")
    p.add_argument("--min-face", type=float, default=20.0, help="MTCNN minimum face size in pixels (20)")
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")
    p.set_defaults(func=run)


def _parse_extra(items: list[str]) -> dict[str, Path]:
    extra = {}
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or not name or not folder:
            raise UserError(f"--extra expects NAME=DIR, got {item!r}")
        if not Path(folder).is_dir():
            raise UserError(f"--extra {name}: folder {folder} not found")
        extra[name] = Path(folder)
    return extra


def run(args) -> int:
    from engines.errors import EngineUnavailable
    from engines.train.labelling import TeacherSettings, label_images, resolve_sets

    if args.workers < 1:
        raise UserError("--workers must be at least 1")
    names = [n.strip() for n in args.sets.split(",") if n.strip()]
    out = args.out or user_cache_dir() / "labels"
    try:
        sets = resolve_sets(names, args.data, _parse_extra(args.extra))
    except (ValueError, FileNotFoundError) as exc:
        raise UserError(f"{exc} (see --data, --sets, --extra)") from None
    settings = TeacherSettings(min_face_size=args.min_face)
    try:
        summary = label_images(sets, out, workers=args.workers, limit=args.limit, settings=settings)
    except EngineUnavailable as exc:
        raise UserError(str(exc)) from None
    except ValueError as exc:
        raise UserError(str(exc)) from None
    result = {
        "out": str(out),
        "images": summary.images,
        "already_done": summary.already_done,
        "labelled": summary.labelled,
        "faces": summary.faces,
        "no_face": summary.no_face,
        "unreadable": summary.unreadable,
        "seconds": round(summary.seconds, 1),
        "images_per_s": round(summary.images_per_second, 2),
        "per_set": summary.per_set,
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(f"labels in {out}: {summary.labelled} images labelled now ({summary.already_done} already done, "
              f"{summary.images} in the sets); {summary.faces} faces; {summary.no_face} images with no face; "
              f"{summary.unreadable} unreadable; {summary.images_per_second:.2f} images/s")
    return 0
