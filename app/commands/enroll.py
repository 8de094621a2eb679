"""`main.py enroll NAME IMAGE...`: add a person's photos to the gallery, with quality checks."""
from __future__ import annotations

import argparse
import json
from pathlib import Path

from app.engine_options import add_engine_options, make_engine


def parse_face_choice(text: str):
    """--face: "largest" or an index (0 = leftmost face)."""
    if text == "largest":
        return "largest"
    try:
        index = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--face must be 'largest' or a number (0 = leftmost), got {text!r}") from None
    if index < 0:
        raise argparse.ArgumentTypeError(f"--face index must be 0 or more, got {index}")
    return index


def register(sub) -> None:
    p = sub.add_parser("enroll",
                       description="Enrol NAME from photos: one clear, frontal face per photo. Every photo is "
                                   "reported as added or refused (with the reason); look-alikes are warned about.")
    p.add_argument("name", help="the person's name (created if new, else samples are added)")
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE", help="photo files (JPEG, PNG, ...)")
    p.add_argument("--gallery", type=Path, default=None, help="gallery folder (default: the user's gallery)")
    p.add_argument("--face", type=parse_face_choice, default=None, metavar="largest|INDEX",
                   help="which face to take when a photo holds several (default: refuse such photos)")
    p.add_argument("--min-face", type=float, default=None, metavar="PX",
                   help="smallest face box height accepted (default 60)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    add_engine_options(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from app.gallery.enrollment import enrol_images
    from app.gallery.store import open_gallery
    from app.gallery.quality import QualityThresholds

    limits = QualityThresholds()
    if args.min_face is not None:
        limits = QualityThresholds(min_height=args.min_face, min_interocular=args.min_face * 0.4)
    engine = make_engine(args, background_build=False)
    try:
        with open_gallery(args.gallery, engine) as gallery:
            face = "only" if args.face is None else args.face
            result = enrol_images(gallery, engine, args.name, args.images, face=face, limits=limits)
            folder = gallery.folder
    finally:
        engine.close()
    if args.json:
        print(json.dumps({**result.to_dict(), "gallery": str(folder), "model_id": engine.info.model_id}))
    else:
        for line in result.summary_lines():
            print(line)
    if result.error is not None:
        return 1
    return 0 if result.ok else 2
