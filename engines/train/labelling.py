"""Pseudo-labels from the teachers: every face's box, 5 landmarks, score and 128-D embedding.

Layout of the output folder (regenerate it with `main.py label`):
    OUT/meta.json                 teacher settings the labels were made with
    OUT/SET/part-00000.npz        one shard per chunk of images, written atomically

A shard holds, per image: its path relative to the set's root, width, height, face count,
optional identity; and per face (concatenated): box, landmarks, score, float16 embedding.
A killed run leaves at most a `*.tmp` file, which the next run deletes; images already in a
shard are skipped, so re-running the command resumes where it stopped.
"""
from __future__ import annotations

import fcntl
import functools
import json
import multiprocessing
import os
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import cv2
import numpy as np

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")
SHARD_SIZE = 500
LABEL_VERSION = 2  # 2: MTCNN with the reference box arithmetic, dlib predictor boxes
BUILTIN_SETS = ("celeba-wild", "faces-misc", "lfw-train")


@dataclass(slots=True)
class ImageLabels:
    """The teacher's faces in one image (n faces), in that image's pixels."""

    path: str  # absolute image path
    set_name: str
    width: int
    height: int
    boxes: np.ndarray  # (n, 4) float32 x1 y1 x2 y2
    landmarks: np.ndarray  # (n, 5, 2) float32, engines.faces.LANDMARK_NAMES order
    scores: np.ndarray  # (n,) float32 teacher detector score (MTCNN O-Net, or YuNet)
    embeddings: np.ndarray  # (n, 128) float32 teacher embedding, unit length (stored float16); zero: none
    identity: str | None = None  # CelebA identity or LFW name, when the set has them
    teacher: str = "mtcnn-dlib"  # who labelled it: its scores mean different things (`dataset.TEACHER_SCORES`)


@dataclass(slots=True)
class ImageSet:
    """A folder of training images to label."""

    name: str
    root: Path
    files: list[str]  # paths relative to root, sorted
    identities: dict[str, str] | None = None  # relative path -> identity


@dataclass(slots=True)
class TeacherSettings:
    """How the labels are made (stored in meta.json; a resume must use the same)."""

    min_face_size: float = 20.0
    score_threshold: float = 0.5  # O-Net score kept; training can raise it (0.5..0.8 = ignore zone)
    version: int = LABEL_VERSION


@dataclass(slots=True)
class LabelSummary:
    """What a labelling run did."""

    images: int = 0  # images in the requested sets
    already_done: int = 0
    labelled: int = 0  # images labelled by this run
    faces: int = 0  # faces found by this run
    no_face: int = 0  # labelled images with zero faces
    unreadable: int = 0
    seconds: float = 0.0
    per_set: dict[str, int] = field(default_factory=dict)

    @property
    def images_per_second(self) -> float:
        return self.labelled / self.seconds if self.seconds > 0 else 0.0


# ---------------------------------------------------------------------------- image sets


def list_images(root: Path) -> list[str]:
    """Image files under root (recursive), relative, sorted."""
    root = Path(root)
    return sorted(
        p.relative_to(root).as_posix() for p in root.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()
    )


def pair_identities(lfw_dir: Path) -> set[str]:
    """Every name in LFW's test protocols (pairs.txt, pairsDevTest.txt): never trained on."""
    names: set[str] = set()
    for fname in ("pairs.txt", "pairsDevTest.txt"):
        path = Path(lfw_dir) / fname
        if not path.is_file():
            continue
        for line in path.read_text().splitlines()[1:]:
            parts = line.split()
            if len(parts) == 3:
                names.add(parts[0])
            elif len(parts) == 4:
                names.update((parts[0], parts[2]))
    return names


def lfw_train_set(lfw_dir: Path) -> ImageSet:
    """Images of the identities in train_identities.txt, checked against the pairs files."""
    lfw_dir = Path(lfw_dir)
    ids_file = lfw_dir / "train_identities.txt"
    names = [line.split()[0] for line in ids_file.read_text().splitlines() if line.strip()]
    if not (lfw_dir / "pairs.txt").is_file():
        raise FileNotFoundError(f"{lfw_dir / 'pairs.txt'} is needed to check the LFW training identities")
    leaked = set(names) & pair_identities(lfw_dir)
    assert not leaked, f"train_identities.txt lists LFW test identities: {sorted(leaked)[:5]}"
    root = lfw_dir / "images"
    files, identities = [], {}
    for name in names:
        for rel in list_images(root / name):
            files.append(f"{name}/{rel}")
            identities[f"{name}/{rel}"] = name
    return ImageSet("lfw-train", root, sorted(files), identities)


def celeba_identities(path: Path) -> dict[str, str]:
    """`file id` lines -> {file: id}."""
    out = {}
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = parts[1]
    return out


def resolve_sets(names: Iterable[str], data_dir: Path, extra: dict[str, Path] | None = None) -> list[ImageSet]:
    """ImageSets for built-in set names (under data_dir) and extra NAME -> folder entries."""
    data_dir = Path(data_dir)
    sets = []
    for name in names:
        if name == "celeba-wild":
            root = data_dir / "celeba-wild" / "images"
            ident_file = data_dir / "celeba-wild" / "identity.txt"
            idents = celeba_identities(ident_file) if ident_file.is_file() else None
            sets.append(ImageSet(name, root, list_images(root), idents))
        elif name == "faces-misc":
            root = data_dir / "faces-misc" / "images"
            sets.append(ImageSet(name, root, list_images(root)))
        elif name == "lfw-train":
            sets.append(lfw_train_set(data_dir / "lfw"))
        else:
            raise ValueError(f"unknown image set {name!r}: choose from {', '.join(BUILTIN_SETS)} or use --extra")
    for name, root in (extra or {}).items():
        sets.append(ImageSet(name, Path(root), list_images(Path(root))))
    for s in sets:
        if not s.root.is_dir():
            raise FileNotFoundError(f"image set {s.name}: folder {s.root} not found")
        if not s.files:
            raise FileNotFoundError(f"image set {s.name}: no images in {s.root}")
    return sets


# ---------------------------------------------------------------------------- the teacher, per process

_teacher = None
_teacher_settings: dict | None = None


def _init_worker(settings: dict, threads: int | None) -> None:
    global _teacher, _teacher_settings
    if _teacher is not None and _teacher_settings == settings:
        return
    if threads is not None:
        import torch

        torch.set_num_threads(threads)
    from engines.teachers.mtcnn import MTCNNSettings
    from engines.teachers.mtcnn_dlib import MtcnnDlibEngine

    _teacher = (MtcnnDlibEngine(MTCNNSettings(min_face_size=settings["min_face_size"])), settings["score_threshold"])
    _teacher_settings = dict(settings)


def _label_one(task: tuple[str, str]) -> dict:
    """Label one image (absolute path, relative name) -> a plain dict record."""
    path, rel = task
    engine, threshold = _teacher
    image = cv2.imread(path, cv2.IMREAD_COLOR)
    if image is None:
        return {"rel": rel, "width": 0, "height": 0, "faces": None}
    faces = engine.infer([image], score_threshold=threshold)[0]
    return {"rel": rel, "width": image.shape[1], "height": image.shape[0], "faces": faces}


def _label_stream(tasks: list[tuple[str, str]], settings: dict, workers: int) -> Iterator[dict]:
    if workers <= 1:
        _init_worker(settings, None)
        yield from map(_label_one, tasks)
        return
    ctx = multiprocessing.get_context("spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(settings, 1)) as pool:
        yield from pool.imap(_label_one, tasks, chunksize=4)


# ---------------------------------------------------------------------------- shards


def _write_shard(path: Path, records: list[dict], image_set: ImageSet) -> None:
    """Write records to path atomically (temp file, fsync, rename)."""
    faces = [r["faces"] for r in records if r["faces"] is not None]
    counts = np.array([0 if r["faces"] is None else len(r["faces"]) for r in records], np.int32)

    def cat(attr: str, shape: tuple[int, ...], dtype) -> np.ndarray:
        parts = [np.asarray(getattr(f, attr), dtype) for f in faces if len(f)]
        return np.concatenate(parts) if parts else np.zeros((0, *shape), dtype)

    emb_parts = [f.embeddings for f in faces if len(f)]
    arrays = dict(
        **image_columns(records, image_set),
        counts=counts,
        boxes=cat("boxes", (4,), np.float32),
        landmarks=cat("landmarks", (5, 2), np.float32),
        scores=cat("scores", (), np.float32),
        embeddings=np.concatenate(emb_parts).astype(np.float16) if emb_parts else np.zeros((0, 128), np.float16),
    )
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def image_columns(records: list[dict], image_set: ImageSet) -> dict[str, np.ndarray]:
    """The per-image columns every label shard has: rel, width, height, identity, and the root folder."""
    return dict(
        rel=np.array([r["rel"] for r in records], dtype=str),
        width=np.array([r["width"] for r in records], np.int32),
        height=np.array([r["height"] for r in records], np.int32),
        identity=np.array([(image_set.identities or {}).get(r["rel"], "") for r in records], dtype=str),
        root=np.array(str(Path(image_set.root).resolve())),
    )


def _shards(set_dir: Path) -> list[Path]:
    return sorted(set_dir.glob("part-*.npz"))


def _done_names(set_dir: Path) -> set[str]:
    done: set[str] = set()
    for shard in _shards(set_dir):
        with np.load(shard) as z:
            done.update(z["rel"].tolist())
    return done


def plan_remaining(sets: list[ImageSet], out_dir: Path, done_names, limit: int | None
                   ) -> tuple[list[tuple[ImageSet, list[str]]], int, int]:
    """Per set, its images not yet in a complete shard (`done_names(set_dir)` gives those that
    are; half-written files are cleared), cut to `limit` new images in all; with the number of
    images in the sets and of those already done."""
    todo, total, done_count = [], 0, 0
    budget = limit
    for s in sets:
        set_dir = Path(out_dir) / s.name
        set_dir.mkdir(parents=True, exist_ok=True)
        for stale in set_dir.glob("*.tmp"):
            stale.unlink()
        done = done_names(set_dir)
        remaining = [rel for rel in s.files if rel not in done]
        total += len(s.files)
        done_count += len(s.files) - len(remaining)
        if budget is not None:
            remaining = remaining[: max(budget, 0)]
            budget -= len(remaining)
        todo.append((s, remaining))
    return todo, total, done_count


@contextmanager
def writer_lock(out_dir: Path) -> Iterator[None]:
    """Hold a label folder for one labelling run: a second run into it (two would write the same
    shard names, and each clears the other's half-written files) stops at once with ValueError."""
    out_dir.mkdir(parents=True, exist_ok=True)
    with open(out_dir / ".writer.lock", "a+") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            f.seek(0)
            holder = f.read().strip() or "another process"
            raise ValueError(f"another labelling run ({holder}) is writing {out_dir}: let it finish or stop it "
                             "first") from None
        f.seek(0)
        f.truncate()
        f.write(f"pid {os.getpid()}")
        f.flush()
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def writes_label_folder(label_fn):
    """Run a labelling function `label_fn(sets, out_dir, ...)` holding `out_dir`'s `writer_lock`."""
    @functools.wraps(label_fn)
    def locked(sets, out_dir, *args, **kwargs):
        with writer_lock(Path(out_dir)):
            return label_fn(sets, out_dir, *args, **kwargs)
    return locked


def check_meta(out_dir: Path, settings) -> None:
    """Pin a label folder to the settings (a dataclass) that made it: written once, compared on resume."""
    meta_path = out_dir / "meta.json"
    wanted = asdict(settings)
    if meta_path.is_file():
        found = json.loads(meta_path.read_text())
        if found != wanted:
            raise ValueError(
                f"{out_dir} holds labels made with {found}, not {wanted}: use another --out or delete it"
            )
        return
    out_dir.mkdir(parents=True, exist_ok=True)
    tmp = meta_path.with_suffix(".tmp")
    tmp.write_text(json.dumps(wanted, indent=1))
    os.replace(tmp, meta_path)


@writes_label_folder
def label_images(
    sets: list[ImageSet],
    out_dir: Path,
    workers: int = 2,
    shard_size: int = SHARD_SIZE,
    limit: int | None = None,
    settings: TeacherSettings | None = None,
    progress: bool = True,
) -> LabelSummary:
    """Label every image of `sets` not yet in `out_dir`; resumable. limit: stop after N new images."""
    from tqdm import tqdm

    settings = settings or TeacherSettings()
    out_dir = Path(out_dir)
    check_meta(out_dir, settings)
    summary = LabelSummary()
    todo, summary.images, summary.already_done = plan_remaining(sets, out_dir, _done_names, limit)

    tasks, owners = [], []
    for s, remaining in todo:
        tasks += [(str(s.root / rel), rel) for rel in remaining]
        owners += [s] * len(remaining)
    start = time.monotonic()
    bar = tqdm(total=len(tasks), desc="labelling", unit="img", disable=not progress, dynamic_ncols=True)
    pending: list[dict] = []
    current: ImageSet | None = None

    def flush() -> None:
        if not pending:
            return
        set_dir = out_dir / current.name
        shards = _shards(set_dir)
        index = int(shards[-1].stem.split("-")[1]) + 1 if shards else 0
        _write_shard(set_dir / f"part-{index:05d}.npz", pending, current)
        pending.clear()

    try:
        for owner, record in zip(owners, _label_stream(tasks, asdict(settings), workers)):
            if owner is not current:
                flush()
                current = owner
            pending.append(record)
            faces = record["faces"]
            if faces is None:
                summary.unreadable += 1
            else:
                summary.faces += len(faces)
                summary.no_face += len(faces) == 0
            summary.labelled += 1
            summary.per_set[owner.name] = summary.per_set.get(owner.name, 0) + 1
            bar.update(1)
            if len(pending) >= shard_size:
                flush()
        flush()
    finally:
        bar.close()
        summary.seconds = time.monotonic() - start
    return summary


def load_labels(
    out_dir: Path, sets: Iterable[str] | None = None, data_roots: dict[str, Path] | None = None
) -> list[ImageLabels]:
    """Every labelled image under out_dir (all sets, or those named), shard order.

    Paths are absolute, under the image folder recorded when labelling; data_roots maps a set
    name to another folder (data moved). Unreadable images (width 0) are left out.
    """
    out_dir = Path(out_dir)
    wanted = None if sets is None else set(sets)
    result = []
    for set_dir in sorted(p for p in out_dir.iterdir() if p.is_dir()):
        if wanted is not None and set_dir.name not in wanted:
            continue
        for shard in _shards(set_dir):
            with np.load(shard) as z:
                arrays = {k: z[k] for k in z.files}
            root = Path((data_roots or {}).get(set_dir.name) or str(arrays["root"]))
            offsets = np.concatenate([[0], np.cumsum(arrays["counts"])])
            for i, rel in enumerate(arrays["rel"].tolist()):
                if arrays["width"][i] == 0:
                    continue
                a, b = offsets[i], offsets[i + 1]
                ident = str(arrays["identity"][i]) or None
                result.append(
                    ImageLabels(
                        path=str(root / rel),
                        set_name=set_dir.name,
                        width=int(arrays["width"][i]),
                        height=int(arrays["height"][i]),
                        boxes=arrays["boxes"][a:b].copy(),
                        landmarks=arrays["landmarks"][a:b].copy(),
                        scores=arrays["scores"][a:b].copy(),
                        embeddings=arrays["embeddings"][a:b].astype(np.float32),
                        identity=ident,
                    )
                )
    return result
