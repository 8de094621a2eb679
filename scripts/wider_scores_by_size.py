#!/usr/bin/env python3
"""How sure a checkpoint is of WIDER's faces, by face size: for each face of the hard setting, the
best score among the anchors whose decoded box overlaps it at IoU >= 0.5 (before NMS, without a
score threshold), then per size bin the share of faces whose best score reaches 0.1, 0.3 and 0.5.

`eval widerface` says which faces are found at the model's threshold; this says how far below it
the missed ones are, which moves long before the AP does. The image sits in the network's input as
the product places it (`engines.preprocess.letterbox_batch`, never enlarged).

    scripts/wider_scores_by_size.py --config C --weights W [--input-size 1024x768] [--images DIR]
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def main() -> int:
    import cv2
    import torch

    from engines.backends.uniface import DEFAULT_MAX_UPSCALE
    from engines.eval.widerface import SIZE_EDGES, find_images, load_ground_truth, overlaps
    from engines.model.anchors import decode_boxes
    from engines.model.weights import load_model
    from engines.preprocess import letterbox_batch

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--config", required=True)
    p.add_argument("--weights", required=True, type=Path)
    p.add_argument("--input-size", default="1024x768")
    p.add_argument("--images", type=Path, default=REPO.parent / "shared" / "data" / "widerface-sample")
    args = p.parse_args()
    width, height = map(int, args.input_size.lower().split("x"))
    model, meta = load_model(args.config, args.weights)
    found = find_images(args.images, load_ground_truth(args.images / "wider_face_val.mat"))
    sides, best = [], []
    for gt, path in found:
        batch, (placed,) = letterbox_batch([cv2.imread(str(path))], (width, height), max_scale=DEFAULT_MAX_UPSCALE)
        scale = placed.scale
        with torch.no_grad():
            out = model.forward_heads(model.normalise(torch.from_numpy(batch)))
        scores = out.logits.softmax(-1)[0, :, 1]
        keep = scores > 0.01
        boxes = decode_boxes(out.box_deltas[0][keep], out.anchors[keep]).numpy() / scale
        faces = gt.boxes[gt.keep["hard"]].astype(np.float64)
        sides += list(faces[:, 2:].max(1))
        faces[:, 2:] += faces[:, :2]
        iou = overlaps(boxes.astype(np.float64), faces) if len(boxes) else np.zeros((0, len(faces)))
        hit = np.where(iou >= 0.5, scores[keep].numpy()[:, None], 0.0)
        best += list(hit.max(0) if len(boxes) else np.zeros(len(faces)))
    sides, best = np.array(sides), np.array(best)
    print(f"{meta.model_id}: {len(sides)} hard-setting faces in {len(found)} images at {args.input_size}")
    which = np.digitize(sides, SIZE_EDGES[1:-1])
    for i, (lo, hi) in enumerate(zip(SIZE_EDGES[:-1], SIZE_EDGES[1:])):
        b = best[which == i]
        if len(b):
            print(f"  {lo:g}-{hi:g} px: {len(b):4d} faces, best score >= 0.1 / 0.3 / 0.5: "
                  f"{np.mean(b >= 0.1):.0%} / {np.mean(b >= 0.3):.0%} / {np.mean(b >= 0.5):.0%}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
