"""`main.py label-views`: YuNet + SFace labels of every training image, with stored face views.

Per image: YuNet's boxes, 5 landmarks and scores (the detection targets). Per face big and
sure enough to recognise: its loosely aligned crop (uint8, `views.CROP_SIZE`), SFace's
embedding of the face aligned from the original image, and SFace's embeddings of V views of the
crop (the clean crop, its mirror, K random views) with each view's parameters, so training
shows the student exactly the pixels the teacher embedded.

Written per set in shards (`part-NNNNN`): `images.npz` (per image), `faces.npz` (per face,
views and embeddings included) and `crops.npy` (a plain array, memory-mapped by training so a
step never decodes a JPEG). A shard is written atomically once complete; re-running resumes at
the first image not in a shard. `meta.json` pins the settings: a resume must use the same.
"""
from __future__ import annotations

import hashlib
import json
import multiprocessing
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterator

import cv2
import numpy as np

from engines.train import views as V
from engines.train.labelling import (ImageLabels, ImageSet, check_meta, image_columns, plan_remaining,
                                     writes_label_folder)

LABEL_VERSION = 1
SHARD_SIZE = 500  # images per shard
SMALL_IMAGE = 400  # images smaller than this on both sides are padded before detection
PAD_SHARE = 1 / 3  # ... by this share of their longer side on each side: tight crops lose their face to YuNet otherwise


@dataclass(frozen=True, slots=True)
class ViewSettings:
    """How the labels are made (meta.json; a resume must use the same)."""

    views: int = 8  # K random views per face, besides the clean crop and its mirror
    detect_score: float = 0.5  # YuNet score kept as a detection label (training may raise it)
    embed_score: float = 0.7  # faces at least this sure ...
    embed_min_side: float = 24.0  # ... and at least this many pixels (box side) get a crop and views
    seed: int = 0
    version: int = LABEL_VERSION


@dataclass(slots=True)
class SetTiming:
    """What one run did for one set."""

    images: int = 0
    faces: int = 0  # detection labels
    embedded: int = 0  # faces with a crop and views
    views: int = 0
    no_face: int = 0
    unreadable: int = 0
    seconds: float = 0.0


@dataclass(slots=True)
class ViewSummary:
    """What a labelling run did, per set and in all."""

    out: str
    images_total: int = 0
    already_done: int = 0
    per_set: dict[str, SetTiming] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"out": self.out, "images_total": self.images_total, "already_done": self.already_done,
                "per_set": {k: asdict(v) for k, v in self.per_set.items()}}


# ---------------------------------------------------------------------------- one image


def pad_small(image: np.ndarray) -> tuple[np.ndarray, int]:
    """The image with a black border when small (and the border width), so a face filling it is found."""
    h, w = image.shape[:2]
    if max(h, w) >= SMALL_IMAGE:
        return image, 0
    pad = int(round(max(h, w) * PAD_SHARE))
    return cv2.copyMakeBorder(image, pad, pad, pad, pad, cv2.BORDER_CONSTANT, value=(0, 0, 0)), pad


def face_seed(seed: int, set_name: str, rel: str, index: int) -> int:
    """A stable seed per face: the same views whichever worker or run labels it."""
    digest = hashlib.blake2b(f"{seed}/{set_name}/{rel}/{index}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little")


class ViewLabeller:
    """YuNet + SFace, and the views; one per process."""

    def __init__(self, settings: ViewSettings, threads: int | None = None) -> None:
        from engines.teachers.sface import SFaceEmbedder
        from engines.teachers.yunet import YuNetDetector

        if threads is not None:
            cv2.setNumThreads(threads)
        self.settings = settings
        self.detector = YuNetDetector(score_threshold=settings.detect_score)
        self.embedder = SFaceEmbedder(threads=threads)

    def label(self, path: str, set_name: str, rel: str) -> dict:
        """One image -> a plain record (picklable): detection labels and the embedded faces."""
        s = self.settings
        image = cv2.imread(path, cv2.IMREAD_COLOR)
        if image is None:
            return {"rel": rel, "width": 0, "height": 0, "faces": None}
        padded, pad = pad_small(image)
        faces = self.detector.detect(padded, s.detect_score)
        boxes, landmarks = faces.boxes - pad, faces.landmarks - pad
        record = {"rel": rel, "width": image.shape[1], "height": image.shape[0],
                  "faces": (boxes, landmarks, faces.scores), "embedded": []}
        sides = np.sqrt(np.clip(boxes[:, 2] - boxes[:, 0], 0, None) * np.clip(boxes[:, 3] - boxes[:, 1], 0, None))
        for i in np.flatnonzero((faces.scores >= s.embed_score) & (sides >= s.embed_min_side)):
            cropped = V.extract_crop(image, landmarks[i])
            chip = None if cropped is None else _aligned(image, landmarks[i])
            if chip is None:
                continue
            crop, crop_points = cropped
            rng = np.random.default_rng(face_seed(s.seed, set_name, rel, int(i)))
            params = np.concatenate([V.IDENTITY[None], V.MIRROR[None], V.random_params(rng, s.views)])
            chips = [chip] + [V.teacher_chip(V.render_view(crop, p), V.view_landmarks(crop_points, p)) for p in params]
            emb = self.embedder.embed_chips(np.stack(chips))
            record["embedded"].append({"face": int(i), "crop": crop, "crop_landmarks": crop_points,
                                       "embedding": emb[0], "params": params, "view_embeddings": emb[1:]})
        return record


def _aligned(image: np.ndarray, landmarks: np.ndarray) -> np.ndarray | None:
    from engines.teachers.sface import align_chip

    return align_chip(image, landmarks)


_labeller: ViewLabeller | None = None


def _init_worker(settings: dict, threads: int | None) -> None:
    global _labeller
    _labeller = ViewLabeller(ViewSettings(**settings), threads)


def _label_task(task: tuple[str, str, str]) -> dict:
    return _labeller.label(*task)


def _stream(tasks: list[tuple[str, str, str]], settings: ViewSettings, workers: int) -> Iterator[dict]:
    if workers <= 1:
        _init_worker(asdict(settings), None)
        yield from map(_label_task, tasks)
        return
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(asdict(settings), 1)) as pool:
        yield from pool.imap(_label_task, tasks, chunksize=2)


# ---------------------------------------------------------------------------- shards


def _atomic_save(path: Path, save) -> None:
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        save(f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def write_shard(set_dir: Path, index: int, records: list[dict], image_set: ImageSet, settings: ViewSettings) -> None:
    """Write one shard's three files; `faces.npz` last, so its presence marks the shard complete."""
    stem = set_dir / f"part-{index:05d}"
    views = settings.views + 2
    counts, boxes, landmarks, scores = [], [], [], []
    emb = {"image": [], "face": [], "crop_landmarks": [], "embedding": [], "params": [], "view_embeddings": []}
    crops = []
    for n, r in enumerate(records):
        if r["faces"] is None:
            counts.append(-1)
            continue
        b, lm, sc = r["faces"]
        counts.append(len(b))
        boxes.append(b), landmarks.append(lm), scores.append(sc)
        for e in r["embedded"]:
            emb["image"].append(n)
            for key in ("face", "crop_landmarks", "embedding", "params", "view_embeddings"):
                emb[key].append(e[key])
            crops.append(e["crop"])

    def cat(parts, shape, dtype):
        return np.concatenate(parts).astype(dtype) if parts else np.zeros((0, *shape), dtype)

    images = dict(
        **image_columns(records, image_set),
        counts=np.array(counts, np.int32),  # -1: unreadable
        boxes=cat(boxes, (4,), np.float32),
        landmarks=cat(landmarks, (5, 2), np.float32),
        scores=cat(scores, (), np.float32),
    )
    k = len(crops)
    faces = dict(
        image=np.array(emb["image"], np.int32).reshape(k),
        face=np.array(emb["face"], np.int32).reshape(k),
        crop_landmarks=np.array(emb["crop_landmarks"], np.float32).reshape(k, 5, 2),
        embedding=np.array(emb["embedding"], np.float16).reshape(k, 128),
        params=np.array(emb["params"], np.float32).reshape(k, views, len(V.PARAM_NAMES)),
        view_embeddings=np.array(emb["view_embeddings"], np.float16).reshape(k, views, 128),
    )
    crop_array = np.array(crops, np.uint8).reshape(k, V.CROP_SIZE, V.CROP_SIZE, 3)
    _atomic_save(stem.with_name(stem.name + "-images.npz"), lambda f: np.savez(f, **images))
    _atomic_save(stem.with_name(stem.name + "-crops.npy"), lambda f: np.save(f, crop_array))
    _atomic_save(stem.with_name(stem.name + "-faces.npz"), lambda f: np.savez(f, **faces))


def complete_shards(set_dir: Path) -> list[Path]:
    """The shard stems (`.../part-NNNNN`) whose three files are all written."""
    return [p.with_name(p.name[: -len("-faces.npz")]) for p in sorted(set_dir.glob("part-*-faces.npz"))]


def _done(set_dir: Path) -> set[str]:
    done: set[str] = set()
    for stem in complete_shards(set_dir):
        with np.load(stem.with_name(stem.name + "-images.npz")) as z:
            done.update(z["rel"].tolist())
    return done


@writes_label_folder
def label_views(sets: list[ImageSet], out_dir: Path, settings: ViewSettings = ViewSettings(), workers: int = 2,
                limit: int | None = None, shard_size: int = SHARD_SIZE, progress: bool = True) -> ViewSummary:
    """Label every image of `sets` not yet in a complete shard under `out_dir`; resumable.

    limit: stop after N new images (in all). The progress bar shows images and an ETA.
    """
    from tqdm import tqdm

    out_dir = Path(out_dir)
    check_meta(out_dir, settings)
    summary = ViewSummary(out=str(out_dir))
    plan, summary.images_total, summary.already_done = plan_remaining(sets, out_dir, _done, limit)
    tasks = [(str(s.root / rel), s.name, rel) for s, remaining in plan for rel in remaining]
    owners = [s for s, remaining in plan for _ in remaining]
    bar = tqdm(total=len(tasks), desc="label-views", unit="img", disable=not progress, dynamic_ncols=True)
    pending: list[dict] = []
    current: ImageSet | None = None
    started = time.monotonic()

    def flush() -> None:
        if pending:
            set_dir = out_dir / current.name
            stems = complete_shards(set_dir)
            index = int(stems[-1].name.split("-")[1]) + 1 if stems else 0
            write_shard(set_dir, index, pending, current, settings)
            pending.clear()

    try:
        for owner, record in zip(owners, _stream(tasks, settings, workers)):
            if owner is not current:
                flush()
                if current is not None:
                    summary.per_set[current.name].seconds = time.monotonic() - started
                current, started = owner, time.monotonic()
            timing = summary.per_set.setdefault(owner.name, SetTiming())
            timing.images += 1
            if record["faces"] is None:
                timing.unreadable += 1
            else:
                timing.faces += len(record["faces"][0])
                timing.no_face += len(record["faces"][0]) == 0
                timing.embedded += len(record["embedded"])
                timing.views += len(record["embedded"]) * (settings.views + 2)
            pending.append(record)
            bar.update(1)
            if len(pending) >= shard_size:
                flush()
        flush()
    finally:
        bar.close()
        if current is not None:
            summary.per_set[current.name].seconds = time.monotonic() - started
    return summary


def cache_status(out_dir: Path) -> dict:
    """Per set of a label cache: images, faces, embedded faces, views, shards, and the images per
    second between its first and last shard (file times: what a run that was stopped and started
    again still shows)."""
    out_dir = Path(out_dir)
    if not (out_dir / "meta.json").is_file():
        raise FileNotFoundError(f"no view labels in {out_dir}: run `main.py label-views` first")
    meta = json.loads((out_dir / "meta.json").read_text())
    sets = {}
    for set_dir in sorted(p for p in out_dir.iterdir() if p.is_dir()):
        stems = complete_shards(set_dir)
        images = faces = embedded = unreadable = 0
        times, counts = [], []
        for stem in stems:
            with np.load(stem.with_name(stem.name + "-images.npz")) as im, \
                    np.load(stem.with_name(stem.name + "-faces.npz")) as f:
                counts.append(len(im["rel"]))
                unreadable += int((im["counts"] < 0).sum())
                faces += len(im["boxes"])
                embedded += len(f["image"])
            times.append(stem.with_name(stem.name + "-faces.npz").stat().st_mtime)
        images = sum(counts)
        rate = None
        if len(times) > 1:
            # each shard's images over the time since the one before (the first shard's own time is
            # unknown); the median, so a set labelled over several sessions, or paused, is not
            # charged for the time nothing ran
            rates = [n / max(t - t0, 1e-9) for n, t, t0 in zip(counts[1:], times[1:], times[:-1])]
            rate = round(float(np.median(rates)), 2)
        sets[set_dir.name] = {"images": images, "unreadable": unreadable, "faces": faces, "embedded": embedded,
                              "views": embedded * (meta["views"] + 2), "shards": len(stems),
                              "images_per_s": rate}
    return {"out": str(out_dir), "settings": meta, "sets": sets}


@dataclass(slots=True)
class FaceViews:
    """Every embedded face of a label cache, for training: arrays over all shards of the sets read."""

    crops: list[np.ndarray]  # per shard, (k, S, S, 3) uint8, memory-mapped
    shard_of: np.ndarray  # (n,) shard index of each face
    row: np.ndarray  # (n,) row in its shard's crops
    crop_landmarks: np.ndarray  # (n, 5, 2) float32
    embedding: np.ndarray  # (n, 128) float16: SFace on the face aligned from the original image
    params: np.ndarray  # (n, V, P) float32
    view_embeddings: np.ndarray  # (n, V, 128) float16
    identity: np.ndarray  # (n,) str, "" when unknown
    set_name: np.ndarray  # (n,) str
    path: np.ndarray  # (n,) str: the photo each face is in (as `load_view_labels` gives it)
    face: np.ndarray  # (n,) int: the face's index among its photo's faces

    def __len__(self) -> int:
        return len(self.row)

    def crop(self, i: int) -> np.ndarray:
        """Face i's stored crop (S, S, 3) BGR uint8."""
        return np.asarray(self.crops[self.shard_of[i]][self.row[i]])


def load_face_views(out_dir: Path, sets: list[str] | None = None) -> FaceViews:
    """The embedded faces of a label cache (all sets, or the named ones), crops memory-mapped."""
    out_dir = Path(out_dir)
    if not (out_dir / "meta.json").is_file():
        raise FileNotFoundError(f"no view labels in {out_dir}: run `main.py label-views` first")
    names = sets or sorted(p.name for p in out_dir.iterdir() if p.is_dir())
    crops, shard_of, rows, parts, idents, set_names, paths = [], [], [], [], [], [], []
    for name in names:
        for stem in complete_shards(out_dir / name):
            with np.load(stem.with_name(stem.name + "-faces.npz")) as f, \
                    np.load(stem.with_name(stem.name + "-images.npz")) as im:
                part = {k: f[k] for k in f.files}
                idents.append(im["identity"][part["image"]] if len(part["image"]) else np.zeros(0, str))
                root = Path(str(im["root"]))
                paths.append(np.array([str(root / r) for r in im["rel"][part["image"]].tolist()], dtype=str))
            crops.append(np.load(stem.with_name(stem.name + "-crops.npy"), mmap_mode="r"))
            shard_of.append(np.full(len(part["image"]), len(crops) - 1, np.int32))
            rows.append(np.arange(len(part["image"]), dtype=np.int32))
            set_names.append(np.full(len(part["image"]), name))
            parts.append(part)
    if not parts:
        raise FileNotFoundError(f"no complete shards in {out_dir} for sets {names}")

    def cat(key):
        return np.concatenate([p[key] for p in parts])

    return FaceViews(crops=crops, shard_of=np.concatenate(shard_of), row=np.concatenate(rows),
                     crop_landmarks=cat("crop_landmarks"), embedding=cat("embedding"), params=cat("params"),
                     view_embeddings=cat("view_embeddings"), identity=np.concatenate(idents),
                     set_name=np.concatenate(set_names), path=np.concatenate(paths), face=cat("face"))


def load_view_labels(out_dir: Path, sets: list[str] | None = None,
                     data_roots: dict[str, Path] | None = None) -> list[ImageLabels]:
    """Every readable image of a view-label cache as `ImageLabels` (teacher "yunet-sface"), for
    the full-image stream of training: YuNet's boxes, landmarks and scores; SFace's embedding of
    each face it embedded (aligned from the original image), zeros for the faces it did not
    (too small or unsure: never mimicked, `dataset.mimic_eligible`)."""
    out_dir = Path(out_dir)
    if not (out_dir / "meta.json").is_file():
        raise FileNotFoundError(f"no view labels in {out_dir}: run `main.py label-views` first")
    wanted = None if sets is None else set(sets)
    result = []
    for set_dir in sorted(p for p in out_dir.iterdir() if p.is_dir()):
        if wanted is not None and set_dir.name not in wanted:
            continue
        for stem in complete_shards(set_dir):
            with np.load(stem.with_name(stem.name + "-images.npz")) as z:
                im = {k: z[k] for k in z.files}
            with np.load(stem.with_name(stem.name + "-faces.npz")) as z:
                faces = {k: z[k] for k in ("image", "face", "embedding")}
            root = Path((data_roots or {}).get(set_dir.name) or str(im["root"]))
            offsets = np.concatenate([[0], np.cumsum(np.maximum(im["counts"], 0))])
            embedded = {(int(i), int(f)): e for i, f, e in zip(faces["image"], faces["face"], faces["embedding"])}
            for i, rel in enumerate(im["rel"].tolist()):
                if im["counts"][i] < 0:
                    continue
                a, b = offsets[i], offsets[i + 1]
                emb = np.zeros((b - a, 128), np.float32)
                for f in range(b - a):
                    if (i, f) in embedded:
                        emb[f] = embedded[(i, f)]
                result.append(ImageLabels(
                    path=str(root / rel), set_name=set_dir.name, width=int(im["width"][i]),
                    height=int(im["height"][i]), boxes=im["boxes"][a:b].copy(), landmarks=im["landmarks"][a:b].copy(),
                    scores=im["scores"][a:b].copy(), embeddings=emb, identity=str(im["identity"][i]) or None,
                    teacher="yunet-sface"))
    return result


def is_view_cache(folder: Path) -> bool:
    """Whether a label folder holds view labels (`label-views`) rather than `label`'s."""
    meta = Path(folder) / "meta.json"
    return meta.is_file() and "views" in json.loads(meta.read_text())
