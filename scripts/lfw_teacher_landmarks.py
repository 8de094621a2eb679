#!/usr/bin/env python3
"""LFW accuracy of a checkpoint's recognition alone: every image is embedded by the PyTorch
network on YuNet's central face (its box and 5 landmarks) instead of the checkpoint's own
detection, so a detector that still swings between evaluations cannot decide the figure.

For A/Bs of recognition methods at early checkpoints; the product's figure stays
`main.py eval lfw`. The image sits in the network's input as the product places it (top-left,
not enlarged). Prints `eval lfw --json`'s fields that `scripts/paired_lfw.py` reads.

    scripts/lfw_teacher_landmarks.py --config C --weights W [--limit N] [--data LFW]
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engines.paths import user_cache_dir  # noqa: E402
from engines.eval.lfw import cosine, image_root, limit_pairs, read_colour, read_pairs, ten_fold  # noqa: E402
from engines.preprocess import letterbox_batch  # noqa: E402

BATCH = 8
SHARED_DATA = Path(__file__).resolve().parent.parent.parent / "shared" / "data"


def teacher_faces(names: list[str], root: Path, cache: Path) -> dict[str, tuple[np.ndarray, np.ndarray] | None]:
    """YuNet's face nearest the centre of each image: (box (4,), landmarks (5, 2)), or None; cached."""
    from engines.teachers.yunet import YuNetDetector

    known: dict[str, tuple[np.ndarray, np.ndarray] | None] = {}
    if cache.is_file():
        with np.load(cache) as f:
            for name, found, box, lmk in zip(f["names"].tolist(), f["found"], f["boxes"], f["landmarks"]):
                known[name] = (box, lmk) if found else None
    todo = [n for n in names if n not in known]
    if todo:
        detector = YuNetDetector()
        for name in todo:
            image = read_colour(str(root / name))
            faces = detector.detect(image) if image is not None else None
            if faces is None or len(faces) == 0:
                known[name] = None
                continue
            h, w = image.shape[:2]
            k = int(np.argmin(np.sum((faces.centres - [w / 2, h / 2]) ** 2, axis=1)))
            known[name] = (faces.boxes[k].astype(np.float32), faces.landmarks[k].astype(np.float32))
        cache.parent.mkdir(parents=True, exist_ok=True)
        every = sorted(known)
        np.savez(cache, names=np.array(every), found=np.array([known[n] is not None for n in every]),
                 boxes=np.stack([known[n][0] if known[n] is not None else np.zeros(4, np.float32) for n in every]),
                 landmarks=np.stack([known[n][1] if known[n] is not None else np.zeros((5, 2), np.float32)
                                     for n in every]))
    return known


def embed_on(model, images: list[np.ndarray], boxes: np.ndarray, landmarks: np.ndarray) -> np.ndarray:
    """The network's embeddings (N, 128) of one face per image, on the given box and landmarks."""
    batch, _ = letterbox_batch(images, model.cfg.input_size, max_scale=1.0)
    with torch.inference_mode():
        heads = model.forward_heads(model.normalise(torch.from_numpy(batch)))
        emb = model.embed(heads.fr, torch.from_numpy(boxes), torch.from_numpy(landmarks), torch.arange(len(images)),
                          pixels=heads.pixels)
    return emb.numpy()


def main() -> int:
    from engines.model.weights import load_model

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--weights", type=Path, required=True)
    p.add_argument("--data", type=Path, default=SHARED_DATA / "lfw")
    p.add_argument("--limit", type=int, default=None, help="only N pairs per fold, as `eval lfw --limit`")
    args = p.parse_args()
    pairs = read_pairs(args.data / "pairs.txt")
    if args.limit:
        pairs = limit_pairs(pairs, args.limit)
    root = image_root(args.data)
    names = sorted({q.a for q in pairs} | {q.b for q in pairs})
    faces = teacher_faces(names, root, user_cache_dir() / "eval" / "lfw-yunet-central.npz")
    model, _ = load_model(args.config, args.weights)
    found = [n for n in names if faces[n] is not None]
    embeddings: dict[str, np.ndarray] = {}
    for i in range(0, len(found), BATCH):
        chunk = found[i:i + BATCH]
        emb = embed_on(model, [read_colour(str(root / n)) for n in chunk],
                       np.stack([faces[n][0] for n in chunk]), np.stack([faces[n][1] for n in chunk]))
        embeddings.update(zip(chunk, emb))
    nan = np.full(model.cfg.embedding_dim, np.nan, np.float32)
    ea = np.stack([embeddings.get(q.a, nan) for q in pairs])
    eb = np.stack([embeddings.get(q.b, nan) for q in pairs])
    sims = cosine(ea, eb)
    lost = ~np.isfinite(sims)
    sims[lost] = -np.inf
    accs, _ = ten_fold(sims, np.array([q.same for q in pairs]), np.array([q.fold for q in pairs]))
    print(json.dumps({"benchmark": "lfw-teacher-landmarks", "accuracy": round(float(np.mean(accs)), 6),
                      "std": round(float(np.std(accs)), 6), "pairs": len(pairs), "images": len(names),
                      "no_face": len(names) - len(found), "no_face_pairs": int(lost.sum()),
                      "folds": [round(a, 6) for a in accs], "config": args.config, "weights": str(args.weights)}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
