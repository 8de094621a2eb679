"""`Faces`: what every engine returns for one image (struct of arrays)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np

EMBEDDING_DIM = 128
LANDMARK_NAMES = ("left_eye", "right_eye", "nose", "mouth_left", "mouth_right")
FLIP_ORDER = [1, 0, 2, 4, 3]  # left/right eye and mouth corners swap in a mirror image


def box_sides(boxes: np.ndarray) -> np.ndarray:
    """(n,) side of each box (n, 4) x1 y1 x2 y2 as the square root of its area; 0 for empty boxes."""
    return np.sqrt(np.prod(np.maximum(boxes[:, 2:] - boxes[:, :2], 0), axis=1))


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU of every box in a (m, 4) with every box in b (n, 4), x1 y1 x2 y2: (m, n).

    Computed in the inputs' float type (float32 at least): training matches thousands of anchors
    per image with it, where float64 would only cost time.
    """
    a, b = np.asarray(a), np.asarray(b)
    dtype = np.result_type(a.dtype, b.dtype, np.float32)
    a = a.astype(dtype, copy=False).reshape(-1, 4)
    b = b.astype(dtype, copy=False).reshape(-1, 4)
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    inter = np.prod(np.clip(rb - lt, 0, None), axis=2)
    area_a = np.prod(a[:, 2:] - a[:, :2], axis=1)
    area_b = np.prod(b[:, 2:] - b[:, :2], axis=1)
    return inter / np.maximum(area_a[:, None] + area_b[None, :] - inter, 1e-9)


@dataclass(slots=True)
class Faces:
    """Faces found in one image, in that image's pixel coordinates.

    Attributes (n = number of faces):
        boxes: (n, 4) float32, x1 y1 x2 y2.
        scores: (n,) float32 detection confidence in [0, 1].
        landmarks: (n, 5, 2) float32, in the order of `LANDMARK_NAMES`
            (left/right as seen in the image).
        embeddings: (n, 128) float32 unit vectors, or None when the engine gives none.
        names: identity per face (None = unknown), filled by gallery matching.
        similarities: (n,) float32 cosine similarity of the best match (NaN = none).
        track_ids: (n,) int64 track id per face (-1 = untracked).

    The arrays are owned by this object; slicing with `faces[mask]` returns copies.
    """

    boxes: np.ndarray
    scores: np.ndarray
    landmarks: np.ndarray
    embeddings: np.ndarray | None = None
    names: list[str | None] | None = None
    similarities: np.ndarray | None = None
    track_ids: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.boxes = np.asarray(self.boxes, dtype=np.float32).reshape(-1, 4)
        n = len(self.boxes)
        self.scores = np.asarray(self.scores, dtype=np.float32).reshape(n)
        self.landmarks = np.asarray(self.landmarks, dtype=np.float32).reshape(n, 5, 2)
        if self.embeddings is not None:
            self.embeddings = np.asarray(self.embeddings, dtype=np.float32)
            if self.embeddings.shape != (n, EMBEDDING_DIM):
                raise ValueError(f"embeddings must be ({n}, {EMBEDDING_DIM}), got {self.embeddings.shape}")
        if self.names is not None and len(self.names) != n:
            raise ValueError(f"names has {len(self.names)} entries for {n} faces")
        if self.similarities is not None:
            self.similarities = np.asarray(self.similarities, dtype=np.float32).reshape(n)
        if self.track_ids is not None:
            self.track_ids = np.asarray(self.track_ids, dtype=np.int64).reshape(n)

    @classmethod
    def empty(cls, with_embeddings: bool = True) -> "Faces":
        """No faces (keeps the embedding column when the engine produces one)."""
        return cls(
            boxes=np.zeros((0, 4), np.float32),
            scores=np.zeros((0,), np.float32),
            landmarks=np.zeros((0, 5, 2), np.float32),
            embeddings=np.zeros((0, EMBEDDING_DIM), np.float32) if with_embeddings else None,
        )

    def __len__(self) -> int:
        return len(self.boxes)

    def __getitem__(self, index) -> "Faces":
        """Faces selected by an int, a slice, an index array or a boolean mask."""
        if isinstance(index, (int, np.integer)):
            index = [int(index)]
        idx = np.arange(len(self))[index]
        return Faces(
            boxes=self.boxes[idx],
            scores=self.scores[idx],
            landmarks=self.landmarks[idx],
            embeddings=None if self.embeddings is None else self.embeddings[idx],
            names=None if self.names is None else [self.names[i] for i in idx],
            similarities=None if self.similarities is None else self.similarities[idx],
            track_ids=None if self.track_ids is None else self.track_ids[idx],
            extra=dict(self.extra),
        )

    @property
    def widths(self) -> np.ndarray:
        return self.boxes[:, 2] - self.boxes[:, 0]

    @property
    def heights(self) -> np.ndarray:
        return self.boxes[:, 3] - self.boxes[:, 1]

    @property
    def centres(self) -> np.ndarray:
        """(n, 2) box centres, x y."""
        return (self.boxes[:, :2] + self.boxes[:, 2:]) / 2

    def with_identities(self, names: list[str | None], similarities: np.ndarray) -> "Faces":
        """A copy with names and similarities set (one per face)."""
        return replace(self, names=list(names), similarities=np.asarray(similarities, np.float32))

    def to_records(self) -> list[dict]:
        """One JSON-ready dict per face (the `identify --json` face contract)."""
        out = []
        for i in range(len(self)):
            sim = None
            if self.similarities is not None and np.isfinite(self.similarities[i]):
                sim = round(float(self.similarities[i]), 4)
            rec = {
                "box": [round(float(v), 2) for v in self.boxes[i]],
                "score": round(float(self.scores[i]), 4),
                "landmarks": [[round(float(x), 2), round(float(y), 2)] for x, y in self.landmarks[i]],
                "name": None if self.names is None else self.names[i],
                "similarity": sim,
            }
            if self.track_ids is not None:
                rec["track_id"] = int(self.track_ids[i])
            out.append(rec)
        return out
