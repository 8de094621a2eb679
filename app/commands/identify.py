"""`main.py identify IMAGE`: every face with box, landmarks, score, and name when a gallery exists."""
from __future__ import annotations

import json
import logging
from pathlib import Path

from app.engine_options import add_engine_options, make_engine

log = logging.getLogger(__name__)


def register(sub) -> None:
    p = sub.add_parser("identify")
    p.add_argument("image", type=Path, help="image file (JPEG, PNG, ...)")
    add_engine_options(p)
    p.add_argument("--gallery", type=Path, default=None,
                   help="gallery folder (default: the user's gallery, if it exists)")
    p.add_argument("--threshold", type=float, default=None, help="recognition threshold (cosine)")
    p.add_argument("--min-score", type=float, default=None, help="minimum detection score (default: the model's own, 0.9 for the shipped one)")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(func=run)


def run(args) -> int:
    from app.imageio import load_image
    from app.gallery.naming import name_faces

    image = load_image(args.image)
    engine = make_engine(args, background_build=False)
    try:
        faces = engine.infer([image], score_threshold=args.min_score)[0]
        faces, gallery_note = name_faces(faces, engine, args.gallery, args.threshold)
    finally:
        engine.close()
    info = engine.info
    if args.json:
        print(json.dumps({
            "image": str(args.image),
            "engine": info.engine,
            "backend": info.backend,
            "device": info.device,
            "model_id": info.model_id,
            "random_weights": info.random_weights,
            "size": [int(image.shape[1]), int(image.shape[0])],
            "min_score": args.min_score if args.min_score is not None else getattr(engine, "score_threshold", None),
            "gallery": gallery_note,
            "faces": faces.to_records(),
        }))
        return 0
    warn = "  [RANDOM WEIGHTS: meaningless]" if info.random_weights else ""
    print(f"{args.image}: {len(faces)} face(s)  [{info.engine}/{info.backend} {info.model_id}]{warn}")
    print(f"  gallery: {gallery_note}")
    for i, rec in enumerate(faces.to_records()):
        name = rec["name"] or "unknown"
        sim = "" if rec["similarity"] is None else f" (similarity {rec['similarity']:.3f})"
        x1, y1, x2, y2 = rec["box"]
        print(f"  #{i} {name}{sim}  score {rec['score']:.3f}  box [{x1:.0f}, {y1:.0f}, {x2:.0f}, {y2:.0f}]")
        print("     landmarks " + " ".join(f"({x:.0f},{y:.0f})" for x, y in rec["landmarks"]))
    return 0
