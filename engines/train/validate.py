"""Held-out validation: teacher-agreement AP@0.5, the student's embedding cosine to the teacher,
whether the student's embedding picks its own teacher embedding out of many, and how many faces it
invents on face-free backgrounds."""
from __future__ import annotations

from dataclasses import asdict, dataclass

import cv2
import numpy as np
import torch

from engines.backends.uniface import DEFAULT_MAX_UPSCALE
from engines.faces import box_iou, box_sides
from engines.model.detection_threshold import DEFAULT_DETECTION_THRESHOLD
from engines.preprocess import RawOutputs, centred_in_frame, letterbox_batch, to_faces
from engines.train.backdrops import backdrop
from engines.train.dataset import centred_teacher, mimic_eligible, positive_score
from engines.train.labelling import ImageLabels

MIN_EVAL_FACE = 10.0  # teacher faces smaller than this (in the image) are neither hit nor miss


@dataclass(slots=True)
class ValidationResult:
    ap50: float  # average precision of the student's detections against the teacher's faces
    cosine: float  # mean cosine(student, teacher) over teacher faces the student found
    found: float  # share of mimic-sized teacher faces the student found (IoU >= 0.5)
    retrieval1: float  # share of found faces whose own teacher embedding is the student's nearest (`teacher_retrieval`)
    retrieval10: float  # ... is among the student's 10 nearest
    images: int
    faces: int
    background_boxes: float = float("nan")  # boxes at the product's threshold per face-free canvas (`background_boxes`)
    backgrounds: int = 0  # face-free canvases looked at

    def as_dict(self) -> dict:
        return {k: round(v, 4) if isinstance(v, float) else v for k, v in asdict(self).items()}


def teacher_retrieval(student: np.ndarray, teacher: np.ndarray, bank: np.ndarray, k: int) -> float:
    """Share of faces whose own teacher embedding is among the student's `k` most similar when
    hidden in a bank of other faces' teacher embeddings: (N, D), (N, D), (M, D) unit rows.

    The cosine to the teacher says how close each embedding is to its target; verification
    needs it closer to its target than to other people's, which this measures (it rose from 0.16
    to 0.28 while LFW rose 3 points and the cosine fell 0.02)."""
    if len(student) == 0 or len(bank) == 0:
        return float("nan")
    own = np.sum(student * teacher, axis=1)
    better = np.sum(student @ bank.T > own[:, None], axis=1)
    return float(np.mean(better < k))


def average_precision(scores: np.ndarray, hits: np.ndarray, positives: int) -> float:
    """All-point interpolated AP (VOC 2010+) from detections sorted or not."""
    if positives == 0:
        return float("nan")
    order = np.argsort(-scores, kind="stable")
    tp = np.cumsum(hits[order])
    fp = np.cumsum(~hits[order])
    recall = np.concatenate([[0], tp / positives, [tp[-1] / positives if len(tp) else 0]])
    precision = np.concatenate([[1], tp / np.maximum(tp + fp, 1e-9), [0]])
    precision = np.maximum.accumulate(precision[::-1])[::-1]
    return float(np.sum((recall[1:] - recall[:-1]) * precision[1:]))


def background_canvas(index: int, label: ImageLabels, input_size=(640, 480)) -> np.ndarray | None:
    """The face-free region of the `index`-th validation photo, enlarged to `input_size` (w, h):
    the same region every time (seeded by position and file name); None without room or image."""
    image = cv2.imread(label.path, cv2.IMREAD_COLOR)
    if image is None:
        return None
    rng = np.random.default_rng([index, *label.path.rsplit("/", 1)[-1].encode()])
    return backdrop(image, label.boxes, tuple(input_size), rng)


@torch.no_grad()
def background_boxes(model, labels: list[ImageLabels], input_size=(640, 480), device="cpu", batch: int = 8,
                     score: float = DEFAULT_DETECTION_THRESHOLD) -> tuple[float, int]:
    """Boxes the model draws at `score` on `background_canvas`es of these photos, per canvas,
    and how many canvases there were (photos without room give none). Anything found is
    invented: held-out AP never shows a large empty background, which a camera often does."""
    model.eval()
    found = seen = 0
    pending: list[np.ndarray] = []
    for i, lab in enumerate(labels):
        canvas = background_canvas(i, lab, input_size)
        if canvas is not None:
            pending.append(canvas)
        if pending and (len(pending) == batch or i == len(labels) - 1):
            found += int(model.detect(torch.from_numpy(np.stack(pending)).to(device), torch.tensor([score], device=device),
                                      torch.tensor([model.cfg.max_faces], dtype=torch.int32, device=device)).count.sum())
            seen += len(pending)
            pending = []
    return (found / seen if seen else float("nan")), seen


@torch.no_grad()
def validate(model, labels: list[ImageLabels], input_size=(640, 480), device="cpu", batch: int = 8,
             teacher_mean: np.ndarray | None = None, bank: np.ndarray | None = None,
             max_scale: float = DEFAULT_MAX_UPSCALE) -> ValidationResult:
    """Run the deployed graph (as exported) on held-out images and compare with the teacher.

    The graph's detections are all scored; only those that found a mimic-sized teacher face are
    embedded (`Uniface.detect`, then `Uniface.embed` as the graph calls it: the same embeddings).
    At the AP's 0.02 threshold a young network fills all K slots of every image, and embedding
    them all made one validation of 300 images cost as much as ~250 training steps.
    teacher_mean: subtracted from teacher embeddings before the cosine (the training target).
    bank: centred unit teacher embeddings of other (training) faces, for `teacher_retrieval`.
    max_scale: the most a small image is enlarged, as the product's backends do.
    """
    centre = np.zeros(128, np.float32) if teacher_mean is None else teacher_mean
    model.eval()
    all_scores, all_hits, students, teachers = [], [], [], []
    positives = mimic_faces = found = 0
    for start in range(0, len(labels), batch):
        chunk = labels[start : start + batch]
        frames = [cv2.imread(l.path, cv2.IMREAD_COLOR) for l in chunk]
        keep = [i for i, f in enumerate(frames) if f is not None]
        images, placements = letterbox_batch([frames[i] for i in keep], input_size, max_scale=max_scale)
        detections = model.detect(torch.from_numpy(images).to(device), torch.tensor([0.02], device=device),
                                  torch.tensor([model.cfg.max_faces], dtype=torch.int32, device=device))
        raw = RawOutputs(detections.boxes.cpu().numpy(), detections.scores.cpu().numpy(),
                         detections.landmarks.cpu().numpy(),  # embeddings: only the faces found, below
                         np.zeros((len(keep), model.cfg.max_faces, model.cfg.embedding_dim), np.float32),
                         detections.count.cpu().numpy())
        per_image = to_faces(raw, placements)  # as the backends do
        to_embed: list[tuple[int, int]] = []  # (image in the batch, slot) of each face found
        for j, (faces, i) in enumerate(zip(per_image, keep)):
            lab = chunk[i]
            det, det_scores = faces.boxes, faces.scores
            slots = np.flatnonzero(centred_in_frame(raw.boxes[j, :raw.count[j]] / placements[j].scale,
                                                    placements[j].frame_size))  # to_faces' own cut
            k = len(det)
            care = (lab.scores >= positive_score(lab)) & (box_sides(lab.boxes) >= MIN_EVAL_FACE)
            positives += int(care.sum())
            hits = np.zeros(k, bool)
            ignored = np.zeros(k, bool)
            if len(lab.boxes) and k:
                iou = box_iou(det, lab.boxes.astype(np.float32))
                taken = np.zeros(len(lab.boxes), bool)
                for d in range(k):  # detections are sorted by score
                    g = int(np.argmax(np.where(taken | ~care, -1, iou[d])))
                    if care[g] and not taken[g] and iou[d, g] >= 0.5:
                        hits[d], taken[g] = True, True
                    elif iou[d][~care].max(initial=0) >= 0.5:
                        ignored[d] = True
                for g in np.flatnonzero(mimic_eligible(lab)):
                    mimic_faces += 1
                    d = int(np.argmax(iou[:, g]))
                    if iou[d, g] >= 0.5:
                        found += 1
                        to_embed.append((j, int(slots[d])))
                        teachers.append(lab.embeddings[g])
            else:
                mimic_faces += int(mimic_eligible(lab).sum())
            all_scores.append(det_scores[~ignored])
            all_hits.append(hits[~ignored])
        if to_embed:
            image, slot = (torch.tensor(c, device=detections.boxes.device) for c in zip(*to_embed))
            heads = detections.heads
            students.extend(model.embed(heads.fr, detections.boxes[image, slot], detections.landmarks[image, slot],
                                        image, pixels=heads.pixels, folded=True).float().cpu().numpy())
    ap = average_precision(np.concatenate(all_scores) if all_scores else np.zeros(0),
                           np.concatenate(all_hits) if all_hits else np.zeros(0, bool), positives)
    students_m = np.array(students, np.float32).reshape(-1, len(centre))
    teachers_m = centred_teacher(np.array(teachers).reshape(-1, len(centre)), centre)
    cosines = np.sum(students_m * teachers_m, axis=1)
    bank = np.zeros((0, len(centre)), np.float32) if bank is None else bank
    invented, backgrounds = background_boxes(model, labels, input_size, device, batch)
    return ValidationResult(
        ap50=ap,
        cosine=float(np.mean(cosines)) if len(cosines) else 0.0,
        found=found / max(mimic_faces, 1),
        retrieval1=teacher_retrieval(students_m, teachers_m, bank, 1),
        retrieval10=teacher_retrieval(students_m, teachers_m, bank, 10),
        images=len(labels),
        faces=positives,
        background_boxes=invented,
        backgrounds=backgrounds,
    )
