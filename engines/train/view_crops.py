"""The consistent mimic stream: stored face crops shown as their labelled views.

Each item is one face's crop rendered as one of its stored views (`views.render_view`): the
pixels SFace embedded for that view's target, so the student is taught what the teacher said
of exactly what it sees (a flip has its own target, a turned or blurred view its own). The
other faces of the same photo are moved into the view too, as detection targets, so a
neighbour in the crop is never taught as background.
"""
from __future__ import annotations

import numpy as np
from torch.utils.data import Dataset

from engines.faces import FLIP_ORDER
from engines.train import views as V
from engines.train.augment import Sample, clip_to_canvas
from engines.train.dataset import TrainItem, positive_score, to_item
from engines.train.labelling import ImageLabels
from engines.train.view_labels import FaceViews

MIN_FACE = 8.0  # faces smaller than this in the view are ignored, not taught


def _apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    return points @ matrix[:, :2].T + matrix[:, 2]


def faces_in_view(label: ImageLabels, face: int, params: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Boxes (n, 4) and landmarks (n, 5, 2) of every face of `label` in the view of its face
    `face` with `params`: the crop's similarity, then the view's affine (boxes: the
    axis-aligned hull of the moved corners; landmarks reordered when mirrored)."""
    crop = V.crop_transform(label.landmarks[face])
    view = V.view_matrix(params)
    both = view @ np.vstack([crop, [0, 0, 1]])  # image -> view
    b = label.boxes.astype(np.float64)
    corners = np.stack([b[:, [0, 1]], b[:, [2, 1]], b[:, [0, 3]], b[:, [2, 3]]], axis=1)  # (n, 4, 2)
    moved = _apply(both, corners.reshape(-1, 2)).reshape(-1, 4, 2)
    boxes = np.concatenate([moved.min(1), moved.max(1)], axis=1)
    landmarks = _apply(both, label.landmarks.astype(np.float64).reshape(-1, 2)).reshape(-1, 5, 2)
    if params[0] >= 0.5:
        landmarks = landmarks[:, FLIP_ORDER]
    return boxes.astype(np.float32), landmarks.astype(np.float32)


def training_rows(views: FaceViews, labels: list[ImageLabels]) -> tuple[np.ndarray, np.ndarray]:
    """For the stored faces whose photo is among `labels` (the training side: validation photos
    are left out), their rows in `views` and the index of their photo in `labels`."""
    where = {label.path: i for i, label in enumerate(labels)}
    rows, label_index = [], []
    for row, path in enumerate(views.path):
        i = where.get(str(path))
        if i is not None:
            rows.append(row)
            label_index.append(i)
    return np.asarray(rows, np.int64), np.asarray(label_index, np.int64)


class ViewCropDataset(Dataset):
    """Each item: a stored face in one of its labelled views (drawn per epoch), with its targets."""

    def __init__(self, views: FaceViews, labels: list[ImageLabels], anchors: np.ndarray, seed: int = 0):
        self.views = views
        self.labels = labels
        self.rows, self.label_index = training_rows(views, labels)
        if len(self.rows) == 0:
            raise ValueError("no stored face crop belongs to a training image")
        self.anchors = anchors
        self.seed = seed
        self.epoch = 0

    def __len__(self) -> int:
        return len(self.rows)

    def item(self, index: int, view: int) -> TrainItem:
        """Stored face `index` (of this dataset) in its view `view`."""
        row = int(self.rows[index])
        label = self.labels[int(self.label_index[index])]
        face = int(self.views.face[row])
        params = self.views.params[row, view]
        image = V.render_view(self.views.crop(row), params)
        boxes, landmarks = faces_in_view(label, face, params)
        n = len(boxes)
        embeddings = np.zeros((n, 128), np.float32)
        embeddings[face] = self.views.view_embeddings[row, view].astype(np.float32)
        mimic = np.zeros(n, bool)
        mimic[face] = True
        # the view's own landmarks for the mimicked face: those the teacher's chip was aligned on
        landmarks[face] = V.view_landmarks(self.views.crop_landmarks[row], params)
        sample = Sample(image, boxes, landmarks, embeddings, mimic, label.scores < positive_score(label))
        sample = clip_to_canvas(sample, MIN_FACE, 0.0)
        # the teacher embedded this view as it is, cut or not: the face stays mimicked
        sample.mimic = np.abs(sample.embeddings).sum(1) > 0
        return to_item(sample, self.anchors)

    def __getitem__(self, index: int) -> TrainItem:
        rng = np.random.default_rng((self.seed, self.epoch, index))
        return self.item(index, int(rng.integers(0, self.views.params.shape[1])))
