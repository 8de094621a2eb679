"""Training samples from the teachers' label cache: augmented canvases with anchor targets."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING

import cv2
import numpy as np
import torch
from torch.utils.data import Dataset

from engines.faces import box_sides
from engines.train.augment import AugmentSettings, Sample, augment, finish, small_face_grid
from engines.train.backdrops import backdrop_sources, maybe_backdrop
from engines.train.labelling import ImageLabels
from engines.train.targets import match_anchors

if TYPE_CHECKING:  # identities imports this module
    from engines.train.identities import IdentityTable

POSITIVE_SCORE = 0.9  # MTCNN faces below this are ignored, not taught as faces
MIMIC_SCORE = 0.95
MIMIC_MIN_SIZE = 40.0  # teacher embeddings of smaller faces are too poor to mimic
# (positive, mimic) score per teacher. YuNet's int8 scores sit lower and tighter than MTCNN's
# (median 0.93, 5th percentile 0.82, 1.5% of faces at 0.95 or more, measured on the first
# 2,124 faces of the view cache): its own points keep the same share of faces on each side.
TEACHER_SCORES = {"mtcnn-dlib": (POSITIVE_SCORE, MIMIC_SCORE), "yunet-sface": (0.8, 0.85)}


def positive_score(label: ImageLabels) -> float:
    """The teacher score from which a face of this label is taught as a face (below: ignored)."""
    return TEACHER_SCORES[label.teacher][0]


def is_validation(path: str, fraction: float = 0.05) -> bool:
    """A fixed, content-independent split: the same image is always on the same side."""
    digest = hashlib.sha1(path.rsplit("/", 1)[-1].encode()).digest()
    return digest[0] / 256.0 < fraction


@dataclass(slots=True)
class LabelSplit:
    """The label cache divided for training."""

    train: list[ImageLabels]
    validation: list[ImageLabels]
    teacher_missed: int  # training images left out because the teacher found no face in them


def split_labels(labels: list[ImageLabels], val_images: int) -> LabelSplit:
    """Readable images into training and (the first `val_images` of the) validation side.

    Training leaves out images where the teacher found no face: every training set is a set of
    face photos, so such an image is a teacher miss (masked, turned away, dark: of 1,415 in
    62,318, 11 of 12 looked at showed a face), and taught as background it would teach the
    detector to miss those faces. Validation keeps them, so its figures stay comparable.
    """
    readable = [l for l in labels if l.width > 0]
    train = [l for l in readable if not is_validation(l.path)]
    with_faces = [l for l in train if len(l.boxes)]
    validation = [l for l in readable if is_validation(l.path)][:val_images]
    return LabelSplit(train=with_faces, validation=validation, teacher_missed=len(train) - len(with_faces))


def mimic_eligible(label: ImageLabels) -> np.ndarray:
    """Per face, whether its teacher embedding is good enough to mimic (sure and large enough)."""
    sure = label.scores >= TEACHER_SCORES[label.teacher][1]
    return sure & (box_sides(label.boxes) >= MIMIC_MIN_SIZE) & (np.abs(label.embeddings).sum(1) > 0)


def centred_teacher(embeddings: np.ndarray, centre: np.ndarray) -> np.ndarray:
    """Teacher embeddings (n, 128) as the student mimics them: unit, minus the training mean
    (`centre`), unit again (float32)."""
    emb = np.asarray(embeddings, np.float32).reshape(-1, len(centre))
    emb = emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12) - centre
    return emb / np.maximum(np.linalg.norm(emb, axis=1, keepdims=True), 1e-12)


def to_sample(label: ImageLabels, identities: np.ndarray | None = None) -> Sample | None:
    """Load the image and turn its teacher faces into a `Sample` (None if unreadable);
    `identities`: each face's identity class (-1 none; None: no face has one)."""
    image = cv2.imread(label.path, cv2.IMREAD_COLOR)
    if image is None:
        return None
    return Sample(
        image=image,
        boxes=label.boxes.astype(np.float32).reshape(-1, 4),
        landmarks=label.landmarks.astype(np.float32).reshape(-1, 5, 2),
        embeddings=label.embeddings.astype(np.float32).reshape(-1, 128),
        mimic=mimic_eligible(label),
        ignore=label.scores < positive_score(label),
        identities=identities,
    )


@dataclass(slots=True)
class TrainItem:
    image: np.ndarray  # (H, W, 3) uint8
    labels: np.ndarray
    box_t: np.ndarray
    lmk_t: np.ndarray
    mimic_boxes: np.ndarray  # (m, 4)
    mimic_landmarks: np.ndarray  # (m, 5, 2)
    mimic_targets: np.ndarray  # (m, 128)
    mimic_identities: np.ndarray  # (m,) int64 identity class of each mimicked face, -1 none


def repeated_order(labels: list[ImageLabels], repeats: dict[str, int] | None) -> np.ndarray:
    """Label index of each dataset item: every image of set S `repeats[S]` times (default once), so
    a small set (WIDER's crowds among ~60k portraits) makes a larger share of the canvases.
    ValueError for a set not among the labels or a repeat below 1."""
    repeats = repeats or {}
    known = {label.set_name for label in labels}
    unknown = sorted(set(repeats) - known)
    if unknown:
        raise ValueError(f"set repeat for {', '.join(unknown)}: no such set among the labels ({', '.join(sorted(known))})")
    if any(n < 1 for n in repeats.values()):
        raise ValueError(f"set repeats must be at least 1, got {repeats}")
    counts = [repeats.get(label.set_name, 1) for label in labels]
    return np.repeat(np.arange(len(labels)), counts)


def with_surroundings(labels: list[ImageLabels], most: float = 0.7) -> np.ndarray:
    """Per photo, whether it shows its faces with surroundings: each face's side is at most `most`
    of the photo's long side (face crops fill their photo)."""
    return np.array([len(l.boxes) > 0 and float(box_sides(l.boxes).max()) <= most * max(l.width, l.height)
                     for l in labels], bool)


class FaceDataset(Dataset):
    """Each item: one augmented canvas (or mosaic) and its targets; random but seeded per item.
    repeats: set name -> times each of its images appears (`repeated_order`)."""

    def __init__(self, labels: list[ImageLabels], anchors: np.ndarray, settings: AugmentSettings, seed: int = 0,
                 identities: IdentityTable | None = None, repeats: dict[str, int] | None = None):
        self.labels = labels
        self.order = repeated_order(labels, repeats)
        self.anchors = anchors
        self.settings = settings
        self.seed = seed
        self.epoch = 0
        self.backdrop_sources = backdrop_sources(labels)  # photos with a face-free region
        self.identities = identities  # classes of `labels`' faces, for the identity loss
        # small-face grids draw photos with surroundings: a face crop shrunk to 10 px is a patch on a
        # flat colour, which crowds never show
        self.grid_order = self.order[with_surroundings(labels)[self.order]] if settings.small_p > 0 else self.order[:0]

    def __len__(self) -> int:
        return len(self.order)

    def __getitem__(self, index: int) -> TrainItem:
        rng = np.random.default_rng((self.seed, self.epoch, index))
        cfg = self.settings
        faceless = maybe_backdrop(self.backdrop_sources, cfg.canvas, rng, cfg.faceless_p)
        if faceless is not None:
            return to_item(finish(faceless_sample(faceless), rng, cfg.flip_p, cfg.dark_p), self.anchors)
        if cfg.small_p > 0 and rng.random() < cfg.small_p:  # no draw at 0: earlier runs' canvases stay
            cells = int(rng.choice(cfg.small_cells))
            pool = self.grid_order if len(self.grid_order) else self.order
            picks = [int(i) for i in pool[rng.integers(0, len(pool), cells * cells)]]
            samples = [sample_of(self.labels, self.identities, i) for i in picks]
            samples = [s if s is not None else faceless_sample(np.zeros((64, 64, 3), np.uint8)) for s in samples]
            backdrop = maybe_backdrop(self.backdrop_sources, cfg.canvas, rng, cfg.backdrop_p)
            return to_item(small_face_grid(samples, rng, cfg, backdrop), self.anchors)
        mosaic = bool(rng.random() < cfg.mosaic_p)
        picks = [int(i) for i in self.order[[index, *rng.integers(0, len(self.order), 3)] if mosaic else [index]]]
        samples = [s for s in (sample_of(self.labels, self.identities, i) for i in picks) if s is not None]
        if not samples:
            samples = [faceless_sample(np.zeros((64, 64, 3), np.uint8))]
        backdrop = maybe_backdrop(self.backdrop_sources, cfg.canvas, rng, cfg.backdrop_p)
        return to_item(augment(samples, rng, cfg, mosaic=mosaic, backdrop=backdrop), self.anchors)


def sample_of(labels: list[ImageLabels], identities: IdentityTable | None, index: int) -> Sample | None:
    """`to_sample` of `labels[index]` with its faces' classes from `identities` (if given)."""
    label = labels[index]
    classes = None if identities is None else identities.face_classes(index, len(label.boxes))
    return to_sample(label, classes)


def faceless_sample(image: np.ndarray) -> Sample:
    """`image` with no faces (an unreadable image's stand-in: it still teaches background)."""
    return Sample(image, np.zeros((0, 4), np.float32), np.zeros((0, 5, 2), np.float32),
                  np.zeros((0, 128), np.float32), np.zeros(0, bool), np.zeros(0, bool))


def to_item(s: Sample, anchors: np.ndarray) -> TrainItem:
    """A finished canvas and its anchor targets; its mimicked faces with their teacher embeddings."""
    t = match_anchors(anchors, s.boxes, s.landmarks, s.ignore)
    m = s.mimic
    return TrainItem(s.image, t.labels, t.box, t.landmarks, s.boxes[m], s.landmarks[m], s.embeddings[m],
                     s.identities[m])


def collate(items: list[TrainItem]) -> dict[str, torch.Tensor]:
    """Stack a batch; mimic faces are flattened with their image index."""
    counts = [len(i.mimic_boxes) for i in items]
    return {
        "images": torch.from_numpy(np.stack([i.image for i in items])),
        "labels": torch.from_numpy(np.stack([i.labels for i in items])),
        "box_t": torch.from_numpy(np.stack([i.box_t for i in items])),
        "lmk_t": torch.from_numpy(np.stack([i.lmk_t for i in items])),
        "mimic_boxes": torch.from_numpy(np.concatenate([i.mimic_boxes for i in items]).reshape(-1, 4)),
        "mimic_landmarks": torch.from_numpy(np.concatenate([i.mimic_landmarks for i in items]).reshape(-1, 5, 2)),
        "mimic_targets": torch.from_numpy(np.concatenate([i.mimic_targets for i in items]).reshape(-1, 128)),
        "mimic_identities": torch.from_numpy(np.concatenate([i.mimic_identities for i in items]).astype(np.int64)),
        "mimic_index": torch.repeat_interleave(torch.arange(len(items)), torch.tensor(counts, dtype=torch.long)),
    }
