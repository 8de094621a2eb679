"""WIDER FACE val easy/medium/hard AP, computed as the official evaluation does.

The official rules (`evaluation.py` / MATLAB `wider_eval`), restated:
- scores are min-max normalised over all images first;
- each detection, in descending score order, is matched to the ground-truth box it
  overlaps most (IoU with the "+1" pixel convention); at IoU >= 0.5 with a face outside the
  setting's `gt_list` it is ignored (neither true nor false positive), else it recalls that
  face if not yet recalled; everything else is a false positive;
- 1000 score thresholds t_k = 1 - k/1000 give a precision/recall curve summed over images;
- AP is the VOC area under the interpolated (monotone) precision envelope.
Only images present in the image folder count (their faces make up the recall denominator).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

from engines.eval.lfw import EngineFactory, infer_files
from engines.faces import Faces

SETTINGS = ("easy", "medium", "hard")
THRESHOLDS = 1000
IOU = 0.5
# face size bins (the longer side of the ground-truth box, original pixels) for `recall_by_size`
SIZE_EDGES = (0, 10, 16, 24, 32, 64, 128, float("inf"))


@dataclass(slots=True)
class GroundTruth:
    """One val image: its faces (x, y, w, h) and, per setting, the 0-based indices that count."""

    event: str
    name: str  # file name without .jpg, e.g. 0_Parade_marchingband_1_465
    boxes: np.ndarray  # (m, 4) x y w h
    keep: dict[str, np.ndarray]  # setting -> indices into boxes


@dataclass(slots=True)
class WiderResult:
    """AP per setting over the images evaluated."""

    easy: float
    medium: float
    hard: float
    images: int
    faces: dict[str, int] = field(default_factory=dict)  # counted faces per setting
    detections: int = 0
    # images whose ground truth reaches past their borders: resized copies, whose AP is
    # meaningless unless their original sizes are given
    resized: int = 0
    rescaled: int = 0  # images whose detections were mapped to their original size
    # the hard setting's faces (all that count) by size, recalled at the model's own score
    # threshold: where a detector's misses are, which the three APs hide
    by_size: list["SizeRecall"] = field(default_factory=list)
    by_size_score: float | None = None  # the score threshold of `by_size`


@dataclass(frozen=True, slots=True)
class SizeRecall:
    """Faces of one size bin and how many a detection at the threshold recalls (IoU >= 0.5)."""

    low: float
    high: float  # inf for the last bin
    faces: int
    recalled: int

    @property
    def label(self) -> str:
        return f"{self.low:g}-{self.high:g} px" if np.isfinite(self.high) else f">={self.low:g} px"

    @property
    def recall(self) -> float:
        return self.recalled / self.faces if self.faces else float("nan")


def read_sizes(path: Path) -> dict[str, tuple[int, int]]:
    """Original image sizes, one `NAME WIDTH HEIGHT` line each (NAME with or without .jpg)."""
    sizes = {}
    for i, line in enumerate(Path(path).read_text().splitlines(), 1):
        parts = line.replace(",", " ").split()
        if not parts or parts[0].startswith("#"):
            continue
        try:
            name, w, h = parts[0], int(parts[1]), int(parts[2])
        except (IndexError, ValueError):
            raise ValueError(f"{path}:{i}: expected 'NAME WIDTH HEIGHT', got {line!r}") from None
        sizes[name.removesuffix(".jpg")] = (w, h)
    return sizes


def looks_resized(gt: GroundTruth, width: int, height: int, tolerance: float = 0.02) -> bool:
    """True when the ground truth reaches well past the image (it is a resized copy)."""
    if len(gt.boxes) == 0:
        return False
    right = float((gt.boxes[:, 0] + gt.boxes[:, 2]).max())
    bottom = float((gt.boxes[:, 1] + gt.boxes[:, 3]).max())
    return right > width * (1 + tolerance) or bottom > height * (1 + tolerance)


def load_ground_truth(gt_mat: Path) -> list[GroundTruth]:
    """Read wider_face_val.mat and wider_{easy,medium,hard}_val.mat from its folder."""
    from scipy.io import loadmat

    gt_mat = Path(gt_mat)
    main = loadmat(str(gt_mat))
    lists = {}
    for s in SETTINGS:
        path = gt_mat.parent / f"wider_{s}_val.mat"
        if not path.is_file():
            raise FileNotFoundError(f"{path} is needed beside {gt_mat.name} (it lists the {s} faces)")
        lists[s] = loadmat(str(path))["gt_list"]
    out = []
    for e in range(len(main["event_list"])):
        event = str(main["event_list"][e][0][0])
        files = main["file_list"][e][0]
        boxes = main["face_bbx_list"][e][0]
        for j in range(len(files)):
            keep = {s: lists[s][e][0][j][0].reshape(-1).astype(np.int64) - 1 for s in SETTINGS}
            out.append(GroundTruth(event, str(files[j][0][0]), boxes[j][0].astype(np.float64).reshape(-1, 4), keep))
    return out


def find_images(images_dir: Path, gts: list[GroundTruth]) -> list[tuple[GroundTruth, Path]]:
    """The val images present in images_dir: flattened NAME.jpg or EVENT/NAME.jpg."""
    images_dir = Path(images_dir)
    found = []
    for gt in gts:
        for candidate in (images_dir / f"{gt.name}.jpg", images_dir / gt.event / f"{gt.name}.jpg"):
            if candidate.is_file():
                found.append((gt, candidate))
                break
    return found


def overlaps(pred: np.ndarray, gt: np.ndarray) -> np.ndarray:
    """IoU of (n, 4) with (m, 4) x1 y1 x2 y2 boxes, with the official inclusive "+1" areas."""
    iw = np.minimum(pred[:, None, 2], gt[None, :, 2]) - np.maximum(pred[:, None, 0], gt[None, :, 0]) + 1
    ih = np.minimum(pred[:, None, 3], gt[None, :, 3]) - np.maximum(pred[:, None, 1], gt[None, :, 1]) + 1
    inter = np.where((iw > 0) & (ih > 0), iw * ih, 0.0)
    area_p = (pred[:, 2] - pred[:, 0] + 1) * (pred[:, 3] - pred[:, 1] + 1)
    area_g = (gt[:, 2] - gt[:, 0] + 1) * (gt[:, 3] - gt[:, 1] + 1)
    union = area_p[:, None] + area_g[None, :] - inter
    return np.where(inter > 0, inter / union, 0.0)


def image_pr(pred: np.ndarray, gt_xywh: np.ndarray, counted: np.ndarray, iou: float = IOU) -> np.ndarray:
    """(THRESHOLDS, 2) [proposals counted, faces recalled] at each score threshold for one image.

    pred: (n, 5) x y w h score, sorted by descending (normalised) score.
    counted: boolean (m,) faces that count in this setting.
    """
    out = np.zeros((THRESHOLDS, 2))
    if len(pred) == 0 or len(gt_xywh) == 0:
        return out
    p = pred[:, :4].copy()
    p[:, 2:] += p[:, :2]
    g = gt_xywh.copy()
    g[:, 2:] += g[:, :2]
    ov = overlaps(p, g)
    recalled = np.zeros(len(g))  # 1 recalled, -1 matched but not counted
    proposal = np.ones(len(p))
    recall_after = np.zeros(len(p))
    for h in range(len(p)):
        k = int(np.argmax(ov[h]))
        if ov[h, k] >= iou:
            if not counted[k]:
                recalled[k] = -1
                proposal[h] = -1
            elif recalled[k] == 0:
                recalled[k] = 1
        recall_after[h] = np.sum(recalled == 1)
    thresholds = 1 - (np.arange(THRESHOLDS) + 1) / THRESHOLDS
    counted_props = np.cumsum(proposal == 1)
    for t, thr in enumerate(thresholds):
        above = np.nonzero(pred[:, 4] >= thr)[0]
        if len(above):
            last = above[-1]
            out[t] = counted_props[last], recall_after[last]
    return out


def voc_ap(recall: np.ndarray, precision: np.ndarray) -> float:
    """Area under the monotone precision envelope, summed where recall changes."""
    mrec = np.concatenate([[0.0], recall, [1.0]])
    mpre = np.concatenate([[0.0], precision, [0.0]])
    mpre = np.maximum.accumulate(mpre[::-1])[::-1]
    i = np.nonzero(mrec[1:] != mrec[:-1])[0]
    return float(np.sum((mrec[i + 1] - mrec[i]) * mpre[i + 1]))


def normalise_scores(preds: list[np.ndarray]) -> list[np.ndarray]:
    """Min-max normalise the score column over all images (as the official script does)."""
    scores = np.concatenate([p[:, 4] for p in preds if len(p)]) if any(len(p) for p in preds) else np.zeros(0)
    if len(scores) == 0:
        return preds
    lo, hi = min(scores.min(), 1.0), max(scores.max(), 0.0)  # the official script's start values
    span = hi - lo if hi > lo else 1.0
    out = []
    for p in preds:
        q = p.copy()
        q[:, 4] = (q[:, 4] - lo) / span
        out.append(q)
    return out


def average_precision(preds: list[np.ndarray], gts: list[GroundTruth]) -> dict[str, float]:
    """AP per setting. preds: per image (n, 5) x y w h score, any order, raw scores."""
    preds = normalise_scores(preds)
    preds = [p[np.argsort(-p[:, 4], kind="stable")] for p in preds]
    aps = {}
    for s in SETTINGS:
        curve = np.zeros((THRESHOLDS, 2))
        faces = 0
        for pred, gt in zip(preds, gts):
            counted = np.zeros(len(gt.boxes), bool)
            counted[gt.keep[s]] = True
            faces += len(gt.keep[s])
            curve += image_pr(pred, gt.boxes, counted)
        proposals, recalled = curve[:, 0], curve[:, 1]
        # no counted proposal above a threshold: the official 0/0; recall is 0 there, so
        # the value cannot change the area
        precision = np.divide(recalled, proposals, out=np.zeros_like(recalled), where=proposals > 0)
        recall = recalled / faces if faces else np.zeros_like(recalled)
        aps[s] = voc_ap(recall, precision)
    return aps


def recall_by_size(preds: list[np.ndarray], gts: list[GroundTruth], min_score: float, setting: str = "hard",
                   edges: tuple[float, ...] = SIZE_EDGES) -> list[SizeRecall]:
    """Per size bin (the longer side of a face's ground-truth box, in `edges`), the faces of
    `setting` and how many have a detection of score >= min_score at IoU >= 0.5 (any detection:
    this asks whether a face was found, not how the detections rank, which AP answers).
    preds: per image (n, 5) x y w h raw score, in the ground truth's pixels."""
    faces = np.zeros(len(edges) - 1, int)
    recalled = np.zeros(len(edges) - 1, int)
    for pred, gt in zip(preds, gts):
        g = gt.boxes[gt.keep[setting]].astype(np.float64)
        if not len(g):
            continue
        side = g[:, 2:].max(1)
        g[:, 2:] += g[:, :2]
        p = pred[pred[:, 4] >= min_score, :4].astype(np.float64)
        p[:, 2:] += p[:, :2]
        found = (overlaps(p, g) >= IOU).any(0) if len(p) else np.zeros(len(g), bool)
        which = np.digitize(side, edges[1:-1])  # bin index, 0 .. len(edges) - 2
        np.add.at(faces, which, 1)
        np.add.at(recalled, which, found.astype(int))
    return [SizeRecall(float(lo), float(hi), int(n), int(r))
            for lo, hi, n, r in zip(edges[:-1], edges[1:], faces, recalled)]


def faces_to_pred(faces: Faces) -> np.ndarray:
    """Faces -> (n, 5) x y w h score."""
    b = faces.boxes.astype(np.float64)
    return np.column_stack([b[:, :2], b[:, 2:] - b[:, :2], faces.scores.astype(np.float64)])


def _boxes_only(image: np.ndarray, faces: Faces) -> tuple[np.ndarray, tuple[int, int]]:
    return faces_to_pred(faces), (image.shape[1], image.shape[0])


def evaluate_widerface(
    images_dir: Path,
    gt_mat: Path,
    make_engine: EngineFactory,
    engine=None,
    workers: int = 1,
    score_threshold: float = 0.02,
    limit: int | None = None,
    progress: bool = True,
    original_sizes: dict[str, tuple[int, int]] | None = None,
    on_image: Callable[[str, np.ndarray], None] | None = None,
    size_score: float | None = None,
) -> WiderResult:
    """Detect faces in every val image found in images_dir and compute easy/medium/hard AP.

    original_sizes: NAME -> (width, height) of the original image, for resized copies:
    detections are scaled to it before matching the ground truth.
    on_image(name, pred): called with each image's (n, 5) x y w h score, in original pixels.
    size_score: the score threshold for `WiderResult.by_size` (None: not computed).
    """
    from tqdm import tqdm

    gts = load_ground_truth(gt_mat)
    found = find_images(images_dir, gts)
    if limit is not None:
        found = found[:limit]
    if not found:
        raise FileNotFoundError(f"no WIDER FACE val images from {Path(gt_mat).name} in {images_dir}")
    paths = [str(p) for _, p in found]
    preds = []
    resized = rescaled = 0
    stream = infer_files(paths, make_engine, _boxes_only, workers=workers, batch_size=1,
                         score_threshold=score_threshold, engine=engine)
    for (gt, path), out in tqdm(zip(found, stream), total=len(found), desc="WIDER FACE", unit="img",
                                disable=not progress, dynamic_ncols=True):
        if out is None:
            raise FileNotFoundError(f"cannot read image {path}")
        pred, (w, h) = out
        size = (original_sizes or {}).get(gt.name)
        if size is not None and size != (w, h):
            pred = pred.copy()
            pred[:, [0, 2]] *= size[0] / w
            pred[:, [1, 3]] *= size[1] / h
            rescaled += 1
        elif size is None and looks_resized(gt, w, h):
            resized += 1
        preds.append(pred)
        if on_image is not None:
            on_image(gt.name, pred)
    gt_list = [gt for gt, _ in found]
    aps = average_precision(preds, gt_list)
    return WiderResult(
        easy=aps["easy"], medium=aps["medium"], hard=aps["hard"], images=len(found),
        faces={s: int(sum(len(g.keep[s]) for g in gt_list)) for s in SETTINGS},
        detections=int(sum(len(p) for p in preds)),
        resized=resized,
        rescaled=rescaled,
        by_size=recall_by_size(preds, gt_list, size_score) if size_score is not None else [],
        by_size_score=size_score,
    )
