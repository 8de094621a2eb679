"""LFW verification, the official 10-fold protocol (View 2, `pairs.txt`).

Each unique image goes whole (250x250, no crop) through the engine; the face nearest the
image centre gives its embedding. Pairs are scored by cosine similarity; for each fold the
threshold that maximises accuracy on the other nine folds is applied to it. A pair with an
image where no face was found is predicted "different".
"""
from __future__ import annotations

import hashlib
import multiprocessing
import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np

from engines.engine import FaceEngine
from engines.faces import EMBEDDING_DIM, Faces

EngineFactory = Callable[[], FaceEngine]
# (image, faces) -> something small to send back from a worker
Reducer = Callable[[np.ndarray, Faces], object]
ImageReader = Callable[[str], "np.ndarray | None"]


@dataclass(slots=True)
class Pair:
    """Two images (paths relative to the image folder) and whether they show one person."""

    a: str
    b: str
    same: bool
    fold: int


@dataclass(slots=True)
class LfwResult:
    """10-fold verification figures (accuracies as fractions)."""

    accuracy: float  # mean over folds
    std: float  # standard deviation over folds (population, as customary for LFW)
    threshold: float  # cosine threshold, mean over folds
    fold_accuracies: list[float]
    fold_thresholds: list[float]
    pairs: int
    images: int
    no_face: int  # images in which no face was found
    no_face_pairs: int  # pairs predicted "different" because of it
    no_face_images: list[str] = field(default_factory=list)
    seconds: float = 0.0  # embedding time (0 when all came from the cache)
    # stricter operating points for galleries (a stranger meets every identity), by false accept rate
    operating_points: dict[float, "OperatingPoint"] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class OperatingPoint:
    """The cosine that at most `far` of different-people pairs exceed, and the share of
    same-person pairs above it (true accept rate)."""

    far: float
    threshold: float
    tar: float


REPORTED_FARS = (0.01, 0.001)  # 1% and 0.1% false accepts


# ---------------------------------------------------------------------------- pairs


def image_name(person: str, number: str | int) -> str:
    """LFW's file naming: NAME/NAME_0001.jpg."""
    return f"{person}/{person}_{int(number):04d}.jpg"


def read_pairs(path: Path) -> list[Pair]:
    """Parse pairs.txt: a `folds n` header, then per fold n matched and n mismatched lines."""
    lines = [line.split() for line in Path(path).read_text().splitlines() if line.strip()]
    try:
        folds, per_fold = int(lines[0][0]), int(lines[0][1])
    except (IndexError, ValueError):
        raise ValueError(f"{path}: the first line must be '<folds> <pairs per fold>'") from None
    pairs = []
    for i, parts in enumerate(lines[1:]):
        fold = i // (2 * per_fold)
        if len(parts) == 3:
            pairs.append(Pair(image_name(parts[0], parts[1]), image_name(parts[0], parts[2]), True, fold))
        elif len(parts) == 4:
            pairs.append(Pair(image_name(parts[0], parts[1]), image_name(parts[2], parts[3]), False, fold))
        else:
            raise ValueError(f"{path}: line {i + 2} is neither a matched nor a mismatched pair")
    if len(pairs) != folds * 2 * per_fold:
        raise ValueError(f"{path}: expected {folds * 2 * per_fold} pairs from the header, found {len(pairs)}")
    return pairs


def limit_pairs(pairs: list[Pair], per_fold: int) -> list[Pair]:
    """The first per_fold pairs of each fold, half matched and half mismatched."""
    out = []
    for fold in sorted({p.fold for p in pairs}):
        in_fold = [p for p in pairs if p.fold == fold]
        same = [p for p in in_fold if p.same][: (per_fold + 1) // 2]
        diff = [p for p in in_fold if not p.same][: per_fold // 2]
        out += same + diff
    return out


def image_root(data_dir: Path) -> Path:
    """DIR/images when it exists (our layout), else DIR itself (the original lfw/ layout)."""
    data_dir = Path(data_dir)
    return data_dir / "images" if (data_dir / "images").is_dir() else data_dir


# ---------------------------------------------------------------------------- thresholds


def best_threshold(sims: np.ndarray, same: np.ndarray) -> tuple[float, float]:
    """The threshold t (predict "same" when sim > t) with the best accuracy, and that accuracy.

    Exact: every midpoint between consecutive distinct similarities is tried (ties go to the
    lowest such threshold). Missing faces (-inf) are "different" whatever t is.
    """
    sims = np.asarray(sims, np.float64)
    same = np.asarray(same, bool)
    finite = np.unique(sims[np.isfinite(sims)])
    if len(finite) == 0:
        return 0.0, float(np.mean(~same))
    candidates = np.concatenate([[finite[0] - 1e-6], (finite[1:] + finite[:-1]) / 2, [finite[-1] + 1e-6]])
    same_sorted = np.sort(sims[same])
    diff_sorted = np.sort(sims[~same])
    same_above = len(same_sorted) - np.searchsorted(same_sorted, candidates, side="right")
    diff_below = np.searchsorted(diff_sorted, candidates, side="right")
    acc = (same_above + diff_below) / len(sims)
    k = int(np.argmax(acc))
    return float(candidates[k]), float(acc[k])


def operating_point(sims: np.ndarray, same: np.ndarray, far: float) -> tuple[float, float]:
    """(t, TAR): the smallest threshold t with at most `far` of different pairs above it, and
    the share of same pairs above t (a missing face counts as below any threshold)."""
    diff = np.sort(sims[~same])[::-1]
    allowed = int(np.floor(far * len(diff)))
    if len(diff) == 0:
        return float("nan"), float("nan")
    t = float(diff[allowed]) if allowed < len(diff) else float("-inf")
    return t, float(np.mean(sims[same] > t)) if same.any() else float("nan")


def ten_fold(sims: np.ndarray, same: np.ndarray, folds: np.ndarray) -> tuple[list[float], list[float]]:
    """Per fold: the threshold chosen on the other folds and the accuracy it gives on this one."""
    sims, same, folds = np.asarray(sims, np.float64), np.asarray(same, bool), np.asarray(folds)
    accs, thresholds = [], []
    for fold in np.unique(folds):
        test = folds == fold
        t, _ = best_threshold(sims[~test], same[~test])
        pred = sims[test] > t
        accs.append(float(np.mean(pred == same[test])))
        thresholds.append(t)
    return accs, thresholds


def cosine(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise cosine similarity of (n, d) arrays."""
    a = a / np.maximum(np.linalg.norm(a, axis=1, keepdims=True), 1e-12)
    b = b / np.maximum(np.linalg.norm(b, axis=1, keepdims=True), 1e-12)
    return np.sum(a * b, axis=1)


# ---------------------------------------------------------------------------- running an engine over files


def central_embedding(image: np.ndarray, faces: Faces) -> np.ndarray | None:
    """The embedding of the face whose box centre is nearest the image centre (None: no face)."""
    if len(faces) == 0 or faces.embeddings is None:
        return None
    h, w = image.shape[:2]
    k = int(np.argmin(np.sum((faces.centres - [w / 2, h / 2]) ** 2, axis=1)))
    return faces.embeddings[k].astype(np.float32)


_worker_engine: FaceEngine | None = None


def _init_worker(make_engine: EngineFactory) -> None:
    global _worker_engine
    try:  # one thread per process: the processes share the cores instead
        import torch

        torch.set_num_threads(1)
    except ImportError:
        pass
    cv2.setNumThreads(1)
    _worker_engine = make_engine()


def read_colour(path: str) -> np.ndarray | None:
    """An image file as BGR (None: unreadable)."""
    return cv2.imread(path, cv2.IMREAD_COLOR)


@dataclass(frozen=True)
class PerturbedReader:
    """Reads an image, then (robustness tests) turns it about its centre by +degrees or
    -degrees, the sign fixed by the file name (so about half of the pairs differ by twice the
    angle), the corners black; then crops or pads each side by its own whole number of pixels
    in [-jitter, jitter] (negative: cropped, positive: black padding), also fixed by the file
    name: the Uniface paper's test of recognition on loosely framed faces."""

    degrees: float = 0.0
    jitter: int = 0

    def __call__(self, path: str) -> np.ndarray | None:
        image = read_colour(path)
        if image is None:
            return None
        if self.degrees:
            image = turn_image(image, tilt_sign(path) * self.degrees)
        if self.jitter:
            image = reframe_image(image, jitter_sides(path, self.jitter))
        return image


def tilt_sign(path: str) -> int:
    """+1 or -1 for a file, from its name alone (the same on every machine and run).

    A cryptographic hash, because a CRC is linear: names that differ only in their numbers
    (Name_0001, Name_0002: most LFW pairs) would get correlated signs.
    """
    return 1 if hashlib.sha256(Path(path).name.encode()).digest()[0] & 1 else -1


def turn_image(image: np.ndarray, degrees: float) -> np.ndarray:
    """The image turned counter-clockwise by `degrees` about its centre, same size, black corners."""
    h, w = image.shape[:2]
    matrix = cv2.getRotationMatrix2D(((w - 1) / 2, (h - 1) / 2), degrees, 1.0)
    return cv2.warpAffine(image, matrix, (w, h), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)


def jitter_sides(path: str, jitter: int) -> tuple[int, int, int, int]:
    """Pixels to add (positive) or remove (negative) at the left, top, right and bottom of a
    file's image, each in [-jitter, jitter], from its name alone (like `tilt_sign`)."""
    seed = int.from_bytes(hashlib.sha256(Path(path).name.encode()).digest()[:8], "little")
    left, top, right, bottom = np.random.default_rng(seed).integers(-jitter, jitter, size=4, endpoint=True)
    return int(left), int(top), int(right), int(bottom)


def reframe_image(image: np.ndarray, sides: tuple[int, int, int, int]) -> np.ndarray:
    """The image with each side (left, top, right, bottom) padded black by a positive amount
    or cropped by a negative one; at least one pixel of it is always kept."""
    h, w = image.shape[:2]
    left, top, right, bottom = sides
    x0, y0 = min(max(0, -left), w - 1), min(max(0, -top), h - 1)
    x1, y1 = max(min(w, w + right), x0 + 1), max(min(h, h + bottom), y0 + 1)
    kept = image[y0:y1, x0:x1]
    return cv2.copyMakeBorder(kept, max(0, top), max(0, bottom), max(0, left), max(0, right),
                              cv2.BORDER_CONSTANT, value=0)


def _infer_chunk(task: tuple[list[str], float | None, Reducer, ImageReader]) -> list[object]:
    paths, threshold, reduce, read = task
    return _infer_with(_worker_engine, paths, threshold, reduce, read)


def _infer_with(
    engine: FaceEngine, paths: Sequence[str], threshold: float | None, reduce: Reducer, read: ImageReader = read_colour
) -> list[object]:
    images = [read(p) for p in paths]
    readable = [im for im in images if im is not None]
    faces = iter(engine.infer(readable, score_threshold=threshold) if readable else [])
    return [None if im is None else reduce(im, next(faces)) for im in images]


def infer_files(
    paths: Sequence[str],
    make_engine: EngineFactory,
    reduce: Reducer,
    workers: int = 2,
    batch_size: int = 4,
    score_threshold: float | None = None,
    engine: FaceEngine | None = None,
    read: ImageReader = read_colour,
) -> Iterator[object]:
    """reduce(image, faces) for each image file, in order (None for unreadable files).

    workers > 1: that many spawned processes, each with its own engine from make_engine
    (picklable) and one torch thread. workers == 1: `engine` (or make_engine()) in this process.
    read: path -> BGR image or None (picklable).
    """
    chunks = [list(paths[i : i + batch_size]) for i in range(0, len(paths), batch_size)]
    if workers <= 1:
        engine = engine or make_engine()
        for chunk in chunks:
            yield from _infer_with(engine, chunk, score_threshold, reduce, read)
        return
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(make_engine,)) as pool:
        for result in pool.imap(_infer_chunk, [(c, score_threshold, reduce, read) for c in chunks]):
            yield from result


# ---------------------------------------------------------------------------- embedding cache


class EmbeddingCache:
    """Embeddings per image name for one engine + model, in one .npz written atomically."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, np.ndarray | None] = {}
        if path is not None and path.is_file():
            try:
                with np.load(path) as z:
                    names, emb, found = z["names"].tolist(), z["embeddings"], z["found"]
                self.entries = {n: (emb[i] if found[i] else None) for i, n in enumerate(names)}
            except (OSError, ValueError, KeyError):
                self.entries = {}  # unreadable cache: recompute

    @staticmethod
    def file_for(cache_dir: Path, dataset: str, engine: str, model_id: str) -> Path:
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", f"{dataset}-{engine}-{model_id}")
        return Path(cache_dir) / f"{safe}.npz"

    def save(self) -> None:
        if self.path is None:
            return
        self.path.parent.mkdir(parents=True, exist_ok=True)
        names = list(self.entries)
        emb = np.zeros((len(names), EMBEDDING_DIM), np.float32)
        found = np.zeros(len(names), bool)
        for i, n in enumerate(names):
            if self.entries[n] is not None:
                emb[i], found[i] = self.entries[n], True
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, names=np.array(names, dtype=str), embeddings=emb, found=found)
        os.replace(tmp, self.path)


# ---------------------------------------------------------------------------- the evaluation


def evaluate_lfw(
    data_dir: Path,
    make_engine: EngineFactory,
    engine: FaceEngine,
    cache_file: Path | None = None,
    limit: int | None = None,
    workers: int = 2,
    progress: bool = True,
    save_every: int = 500,
    tilt: float = 0.0,
    score_threshold: float | None = None,
    jitter: int = 0,
) -> LfwResult:
    """Run the 10-fold protocol on data_dir/pairs.txt with `engine` (or `workers` copies of it).

    cache_file: where embeddings per image are kept between runs (None: no cache).
    limit: only `limit` pairs per fold (half matched, half mismatched), for quick checks.
    tilt: turn every image by this many degrees, one way or the other (`PerturbedReader`);
    the cache file must be one for that tilt.
    jitter: crop or pad every side of every image by up to this many pixels (`PerturbedReader`);
    the cache file must be one for that jitter.
    score_threshold: the detection score a face needs (None: the engine's own); the cache file
    must be one for that threshold.
    """
    from tqdm import tqdm

    data_dir = Path(data_dir)
    pairs = read_pairs(data_dir / "pairs.txt")
    if limit is not None:
        pairs = limit_pairs(pairs, limit)
    root = image_root(data_dir)
    names = sorted({p.a for p in pairs} | {p.b for p in pairs})
    missing = [n for n in names if not (root / n).is_file()]
    if missing:
        raise FileNotFoundError(
            f"{len(missing)} LFW images named in pairs.txt are missing under {root}, e.g. {missing[0]}"
        )

    cache = EmbeddingCache(cache_file)
    todo = [n for n in names if n not in cache.entries]
    start = time.monotonic()
    if todo:
        stream = infer_files(
            [str(root / n) for n in todo], make_engine, central_embedding, workers=workers, engine=engine,
            read=PerturbedReader(tilt, jitter), score_threshold=score_threshold,
        )
        bar = tqdm(total=len(todo), desc="LFW embeddings", unit="img", disable=not progress, dynamic_ncols=True)
        try:
            for i, (name, emb) in enumerate(zip(todo, stream), 1):
                cache.entries[name] = emb
                bar.update(1)
                if i % save_every == 0:
                    cache.save()
        finally:
            bar.close()
            cache.save()
    seconds = time.monotonic() - start if todo else 0.0

    def emb_of(name: str) -> np.ndarray:
        e = cache.entries[name]
        return np.full(EMBEDDING_DIM, np.nan, np.float32) if e is None else e

    ea = np.stack([emb_of(p.a) for p in pairs])
    eb = np.stack([emb_of(p.b) for p in pairs])
    sims = cosine(ea, eb)
    lost = ~np.isfinite(sims)
    sims[lost] = -np.inf
    same = np.array([p.same for p in pairs])
    folds = np.array([p.fold for p in pairs])
    accs, thresholds = ten_fold(sims, same, folds)
    points = {far: OperatingPoint(far, *operating_point(sims, same, far)) for far in REPORTED_FARS}
    no_face = [n for n in names if cache.entries[n] is None]
    return LfwResult(
        accuracy=float(np.mean(accs)),
        std=float(np.std(accs)),
        threshold=float(np.mean(thresholds)),
        fold_accuracies=accs,
        fold_thresholds=thresholds,
        pairs=len(pairs),
        images=len(names),
        no_face=len(no_face),
        no_face_pairs=int(lost.sum()),
        no_face_images=no_face,
        seconds=seconds,
        operating_points=points,
    )
