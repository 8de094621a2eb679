"""Teacher agreement on video: which of an engine's boxes the teacher detector confirms, and
which of the teacher's faces the engine finds.

Held-out AP measures detection on photos of faces, which have little large empty background; a
live camera shows plenty (dark rooms, curtains, out-of-focus crowds), and that is where a
distilled detector invents large faces. This counts those boxes on footage where no labels
exist: a box that overlaps no teacher box at all is unconfirmed. Some unconfirmed boxes are
faces the teacher misses (profiles, motion blur); large ones, on the sample clip, were all
background when looked at.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Sequence

import numpy as np

from engines.faces import Faces, box_iou, box_sides

CONFIRM_IOU = 0.3  # an engine box overlapping a teacher box this much is confirmed
FOUND_IOU = 0.5  # a teacher face is found by an engine box overlapping it this much
TEACHER_SURE = 0.9  # teacher faces at least this sure count as faces to find
LARGE_SHARE = 0.2  # a box whose side (sqrt of its area) is at least this share of the frame height is large


@dataclass(slots=True)
class FrameAgreement:
    """One frame's counts."""

    boxes: int  # engine boxes
    unconfirmed: int  # engine boxes overlapping no teacher box by CONFIRM_IOU
    unconfirmed_large: int  # ... of them, large (LARGE_SHARE)
    teacher_faces: int  # teacher faces at TEACHER_SURE or more
    found: int  # ... of them, overlapped by an engine box by FOUND_IOU


@dataclass(slots=True)
class AgreementResult:
    """Totals over the frames looked at."""

    frames: int = 0
    boxes: int = 0
    unconfirmed: int = 0
    unconfirmed_large: int = 0
    teacher_faces: int = 0
    found: int = 0
    large_frames: list[int] = field(default_factory=list)  # frame indices with an unconfirmed large box

    def add(self, index: int, frame: FrameAgreement) -> None:
        self.frames += 1
        self.boxes += frame.boxes
        self.unconfirmed += frame.unconfirmed
        self.unconfirmed_large += frame.unconfirmed_large
        self.teacher_faces += frame.teacher_faces
        self.found += frame.found
        if frame.unconfirmed_large:
            self.large_frames.append(index)

    @property
    def found_share(self) -> float:
        return self.found / self.teacher_faces if self.teacher_faces else float("nan")

    def per_100_frames(self, count: int) -> float:
        return 100.0 * count / self.frames if self.frames else float("nan")


def frame_agreement(engine_faces: Faces, teacher_faces: Faces, frame_height: int) -> FrameAgreement:
    """Compare an engine's faces with the teacher's (all of its boxes, however unsure) on one frame."""
    boxes = engine_faces.boxes.reshape(-1, 4).astype(np.float32)
    iou = box_iou(boxes, teacher_faces.boxes.reshape(-1, 4).astype(np.float32))  # (engine, teacher)
    sure = teacher_faces.scores >= TEACHER_SURE
    unconfirmed = iou.max(axis=1, initial=0.0) < CONFIRM_IOU
    large = box_sides(boxes) >= LARGE_SHARE * frame_height
    found = iou[:, sure].max(axis=0, initial=0.0) >= FOUND_IOU
    return FrameAgreement(boxes=len(boxes), unconfirmed=int(unconfirmed.sum()),
                          unconfirmed_large=int((unconfirmed & large).sum()),
                          teacher_faces=int(sure.sum()), found=int(found.sum()))


def agreement_at(engine_faces: Faces, teacher_faces: Faces, frame_height: int,
                 thresholds: Sequence[float]) -> list[FrameAgreement]:
    """`frame_agreement` of the engine's faces scoring over each threshold (the graph keeps
    scores strictly over its threshold; so does this): one frame's point on each threshold of a
    precision/recall curve, from one inference at the lowest of them."""
    return [frame_agreement(engine_faces[engine_faces.scores > t], teacher_faces, frame_height) for t in thresholds]
