"""Do two runs of the same network agree? Faces from one backend or precision (a GPU run)
against a reference run (the CPU's), frame by frame, within stated tolerances.

A face is matched to the reference face it overlaps most (IoU at least PAIR_IOU, highest
reference scores first). Numerics differ between devices and precisions, so a face whose
score lies within `tolerance.margin` of the detection threshold may appear in one run only;
any other face missing or extra, or a matched pair apart by more than the tolerance, fails.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from engines.faces import Faces, box_iou

PAIR_IOU = 0.5  # faces overlapping less than this are different faces, not a deviation


@dataclass(frozen=True, slots=True)
class MatchTolerance:
    """How far a run may stray from the reference and still count as the same detections."""

    iou: float  # a matched box overlaps its reference box at least this much
    score: float  # |score difference| at most this
    landmark_px: float  # largest landmark distance, frame pixels
    cosine: float  # embedding cosine similarity at least this
    margin: float = 0.05  # faces scoring within this of the threshold may be in one run only

    def as_dict(self) -> dict:
        return asdict(self)


# Neither is bit-equal to the CPU. FP16 rounds every activation to 11 significant bits, and where
# two anchors of one face score alike the other one may win NMS: a box a few pixels off, a ROI
# sampled there, an embedding a little apart. Measured with autocast FP16 on the CPU against FP32,
# over the shipped model's 52 faces in 32 frames of the sample clip: worst IoU 0.961, score
# 0.008, landmark 2.1 px, cosine 0.931 (5th percentile 0.991); the sample photo: IoU 0.928,
# cosine 0.967. "FP32" on a GPU runs convolutions in TF32 by default (Ampere and newer: the same
# 10-bit mantissa, FP32 accumulation), so it gets nearly as much room.
FP32_TOLERANCE = MatchTolerance(iou=0.9, score=0.02, landmark_px=3.0, cosine=0.95)
FP16_TOLERANCE = MatchTolerance(iou=0.9, score=0.03, landmark_px=3.0, cosine=0.9)


def tolerance_for(precision: str) -> MatchTolerance:
    """The tolerance for a run at "fp32" or "fp16" (TensorRT FP16 included)."""
    return FP16_TOLERANCE if precision == "fp16" else FP32_TOLERANCE


@dataclass(slots=True)
class MatchReport:
    """Totals over the frames compared; `ok` is the verdict, `problems` says why not."""

    frames: int = 0
    reference_faces: int = 0
    faces: int = 0
    matched: int = 0
    missing: int = 0  # reference faces with no match, scoring past the margin
    extra: int = 0  # faces with no reference match, scoring past the margin
    borderline_unmatched: int = 0  # unmatched faces within the margin of the threshold (allowed)
    min_iou: float | None = None
    max_score_diff: float | None = None
    max_landmark_px: float | None = None
    min_cosine: float | None = None
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems

    def as_dict(self) -> dict:
        d = asdict(self)
        for key in ("min_iou", "max_score_diff", "max_landmark_px", "min_cosine"):
            if d[key] is not None:
                d[key] = round(d[key], 5)
        d["problems"] = d["problems"][:10]
        d["ok"] = self.ok
        return d


def _unit(v: np.ndarray) -> np.ndarray:
    return v / np.maximum(np.linalg.norm(v, axis=-1, keepdims=True), 1e-12)


def compare_runs(reference: Sequence[Faces], other: Sequence[Faces], threshold: float,
                 tolerance: MatchTolerance) -> MatchReport:
    """Compare `other` with `reference`, one `Faces` per frame in both, found at `threshold`."""
    if len(reference) != len(other):
        raise ValueError(f"{len(other)} frames against {len(reference)} reference frames")
    r = MatchReport()
    worst = {"iou": [], "score": [], "landmark": [], "cosine": []}
    for i, (ref, run) in enumerate(zip(reference, other)):
        r.frames += 1
        r.reference_faces += len(ref)
        r.faces += len(run)
        iou = box_iou(ref.boxes, run.boxes) if len(ref) and len(run) else np.zeros((len(ref), len(run)))
        taken = np.zeros(len(run), bool)
        ref_matched = np.zeros(len(ref), bool)
        for a in np.argsort(-ref.scores, kind="stable"):
            candidates = np.where(taken, -1.0, iou[a]) if len(run) else np.zeros(0)
            if not len(candidates) or candidates.max() < PAIR_IOU:
                continue
            b = int(candidates.argmax())
            taken[b] = ref_matched[a] = True
            r.matched += 1
            pair_iou = float(iou[a, b])
            score = float(abs(ref.scores[a] - run.scores[b]))
            landmark = float(np.linalg.norm(ref.landmarks[a] - run.landmarks[b], axis=-1).max())
            worst["iou"].append(pair_iou)
            worst["score"].append(score)
            worst["landmark"].append(landmark)
            where = f"frame {i} face at {np.round(ref.boxes[a]).astype(int).tolist()}"
            if pair_iou < tolerance.iou:
                r.problems.append(f"{where}: IoU {pair_iou:.3f} < {tolerance.iou}")
            if score > tolerance.score:
                r.problems.append(f"{where}: score differs by {score:.4f} > {tolerance.score}")
            if landmark > tolerance.landmark_px:
                r.problems.append(f"{where}: a landmark moved {landmark:.2f} px > {tolerance.landmark_px}")
            if ref.embeddings is not None and run.embeddings is not None:
                cosine = float(_unit(ref.embeddings[a]) @ _unit(run.embeddings[b]))
                worst["cosine"].append(cosine)
                if cosine < tolerance.cosine:
                    r.problems.append(f"{where}: embedding cosine {cosine:.4f} < {tolerance.cosine}")
        for faces, unmatched, kind in ((ref, ~ref_matched, "missing"), (run, ~taken, "extra")):
            for s, box in zip(faces.scores[unmatched], faces.boxes[unmatched]):
                if s < threshold + tolerance.margin:
                    r.borderline_unmatched += 1
                    continue
                setattr(r, kind, getattr(r, kind) + 1)
                r.problems.append(f"frame {i}: {kind} face at {np.round(box).astype(int).tolist()} "
                                  f"(score {s:.3f})")
    r.min_iou = min(worst["iou"]) if worst["iou"] else None
    r.max_score_diff = max(worst["score"]) if worst["score"] else None
    r.max_landmark_px = max(worst["landmark"]) if worst["landmark"] else None
    r.min_cosine = min(worst["cosine"]) if worst["cosine"] else None
    return r
