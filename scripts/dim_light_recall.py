"""Faces found on the held-out photos as they are and dimmed, with the teacher's faces on the
undimmed photo as the truth (the teacher itself fails in the dark, so it cannot label a dark photo).

    .venv/bin/python scripts/dim_light_recall.py [--weights W --config C] [--labels DIR]

Per light level and detection threshold, counted as `eval agreement` counts a video frame
(`engines.eval.agreement`): the share of the teacher's sure faces (score >= 0.9, side >= 20 px)
that the engine finds (IoU 0.5), and the engine boxes that overlap no teacher box (IoU 0.3). The dimming is not training's `--dark-p` (x0.15-0.5 of the sRGB values plus
Gaussian noise): light is scaled in linear light, shot and read noise added there, then back to
sRGB and through JPEG at quality 60, as a camera in a dark room delivers it.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.paths import user_cache_dir  # noqa: E402
from engines.backends.registry import create_engine  # noqa: E402
from engines.eval.agreement import TEACHER_SURE, AgreementResult, agreement_at  # noqa: E402
from engines.faces import Faces, box_sides  # noqa: E402
from engines.model.config import SHIPPED_CONFIG  # noqa: E402
from engines.train.dataset import split_labels  # noqa: E402
from engines.train.labelling import load_labels  # noqa: E402

THRESHOLDS = (0.5, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)
GAINS = (1.0, 0.1, 0.04)  # linear light kept: 1 = the photo as it is
MIN_SIDE = 20  # teacher faces smaller than this are not counted as faces to find


def dim(image: np.ndarray, gain: float, seed: int) -> np.ndarray:
    """`image` (BGR uint8) with `gain` of its linear light, sensor noise and JPEG compression."""
    rng = np.random.default_rng(seed)
    linear = (image.astype(np.float32) / 255) ** 2.2 * gain
    noise_sd = np.sqrt(linear * 0.002 + 0.0004**2)  # shot noise grows with the light, read noise does not
    linear = np.clip(linear + rng.normal(0, 1, linear.shape).astype(np.float32) * noise_sd, 0, 1)
    out = (linear ** (1 / 2.2) * 255).round().astype(np.uint8)
    _, jpeg = cv2.imencode(".jpg", out, [cv2.IMWRITE_JPEG_QUALITY, 60])
    return cv2.imdecode(jpeg, cv2.IMREAD_COLOR)


def teacher_faces(label) -> Faces:
    """The teacher's faces of a labelled photo, those under MIN_SIDE px scored below
    TEACHER_SURE: they still confirm an engine box but are not faces to find."""
    small = box_sides(label.boxes) < MIN_SIDE
    scores = np.where(small, np.minimum(label.scores, TEACHER_SURE / 2), label.scores).astype(np.float32)
    return Faces(boxes=label.boxes.astype(np.float32), scores=scores, landmarks=label.landmarks.astype(np.float32))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--weights", type=Path, default=None, help="weights (default: the shipped model)")
    p.add_argument("--config", default=SHIPPED_CONFIG)
    p.add_argument("--labels", type=Path, default=user_cache_dir() / "labels", help="label cache (main.py label)")
    args = p.parse_args()
    held_out = split_labels(load_labels(args.labels, None, None), 300).validation
    photos = [(image, label) for image, label in ((cv2.imread(l.path), l) for l in held_out) if image is not None]
    engine = create_engine("uniface", "onnxruntime", config=args.config, weights=args.weights,
                           cache_dir=user_cache_dir())
    print(f"{len(photos)} held-out photos  [{engine.info.model_id}, its own threshold {engine.score_threshold:g}]")
    for gain in GAINS:
        totals = [AgreementResult() for _ in THRESHOLDS]
        for k, (image, label) in enumerate(photos):
            faces = engine.infer([image if gain == 1.0 else dim(image, gain, k)], score_threshold=min(THRESHOLDS))[0]
            for total, counts in zip(totals, agreement_at(faces, teacher_faces(label), image.shape[0], THRESHOLDS)):
                total.add(k, counts)
        print(f"light x{gain:g} ({totals[0].teacher_faces} sure teacher faces): found / unconfirmed at each threshold")
        print("  " + "  ".join(f"{t:g}: {100 * r.found_share:.1f}% / {r.unconfirmed}" for t, r in zip(THRESHOLDS, totals)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
