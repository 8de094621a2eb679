"""WIDER FACE's official boxes merged into the teacher's labels of the odd-event val images.

The view cache labels those crowd photos with YuNet's detections (from score 0.5), which miss
most of their small faces: 9,754 faces against the official 13,758. Every face the teacher
missed was trained as background, in exactly the photos that teach the small faces. Here each
official box that no teacher face overlaps (IoU >= 0.5) becomes a face of its own, sure (score 1)
and without landmarks (NaN: `losses.detection_losses` then leaves its landmark terms out, as
RetinaFace does for its unannotated faces) or embedding (zero: never mimicked); the teacher faces
the official boxes confirm become sure. New faces go after the teacher's, so stored views keep
pointing at their faces.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from engines.faces import box_iou
from engines.train.labelling import ImageLabels

MATCH_IOU = 0.5


@dataclass(frozen=True)
class MergeCounts:
    """What `merge_official_boxes` did, over all labels."""

    images: int  # labels that had official boxes
    confirmed: int  # teacher faces an official box overlaps
    added: int  # official boxes no teacher face overlapped


def merge_official_boxes(labels: list[ImageLabels], official: dict[str, np.ndarray]) -> tuple[list[ImageLabels], MergeCounts]:
    """`labels` with the official boxes of each image (by file name without .jpg; (m, 4) x y w h)
    merged in; labels of other images come back unchanged."""
    out, images, confirmed, added = [], 0, 0, 0
    for label in labels:
        boxes_xywh = official.get(Path(label.path).stem)
        if boxes_xywh is None:
            out.append(label)
            continue
        xywh = np.asarray(boxes_xywh, np.float32).reshape(-1, 4)
        xywh = xywh[(xywh[:, 2] >= 1) & (xywh[:, 3] >= 1)]
        truth = np.concatenate([xywh[:, :2], xywh[:, :2] + xywh[:, 2:]], 1)
        teacher = label.boxes.astype(np.float32).reshape(-1, 4)
        match = box_iou(teacher, truth) >= MATCH_IOU  # (teacher, official); empty sides give empty axes
        seen, sure = match.any(0), match.any(1)
        new = truth[~seen]
        n = len(new)
        out.append(replace(
            label,
            boxes=np.concatenate([teacher, new]).astype(np.float32),
            landmarks=np.concatenate([label.landmarks.astype(np.float32).reshape(-1, 5, 2),
                                      np.full((n, 5, 2), np.nan, np.float32)]),
            scores=np.concatenate([np.where(sure, 1.0, label.scores), np.ones(n)]).astype(np.float32),
            embeddings=np.concatenate([label.embeddings.astype(np.float32).reshape(-1, 128),
                                       np.zeros((n, 128), np.float32)]),
        ))
        images += 1
        confirmed += int(sure.sum())
        added += n
    return out, MergeCounts(images, confirmed, added)


def read_official_boxes(gt_mat: Path) -> dict[str, np.ndarray]:
    """Every image's official boxes (x y w h) in a WIDER FACE ground-truth file, by file name."""
    from engines.eval.widerface import load_ground_truth

    return {gt.name: gt.boxes for gt in load_ground_truth(Path(gt_mat))}
