"""The mimic stream: small canvases centred on one teacher face, so a batch carries many faces.

A 320x320 canvas holds about one mimicked face, so most of a canvas batch's compute goes to
background. A 128x128 crop around a face costs a sixth of that and always carries a mimic
target (plus any neighbour that fits), so the embedding head sees several times more faces
per second. The crops also keep their detection targets: large faces stay taught.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch.utils.data import Dataset

from engines.train.augment import Sample, clip_to_canvas, finish, maybe_turn, place
from engines.train.backdrops import backdrop_sources, maybe_backdrop
from engines.train.dataset import TrainItem, faceless_sample, mimic_eligible, sample_of, to_item
from engines.train.identities import IdentityTable
from engines.train.labelling import ImageLabels


@dataclass(frozen=True, slots=True)
class CropSettings:
    canvas: int = 128  # square side in pixels; a multiple of 32
    context: tuple[float, float] = (1.3, 2.2)  # crop side / face size
    shift: float = 0.12  # centre jitter, as a share of the crop side
    flip_p: float = 0.5
    min_face: float = 6.0
    min_mimic_face: float = 28.0
    turn_p: float = 0.0  # share of crops whose source image is turned (`augment.turn`) first
    turn_degrees: float = 30.0
    backdrop_p: float = 0.0  # share of crops laid on a face-free photo region (`backdrops`), not flat colour
    faceless_p: float = 0.0  # share of crops that are only a face-free photo region (no mimic target)
    dark_p: float = 0.0  # share of crops dimmed to a dark room's light


def mimic_faces(labels: list[ImageLabels]) -> np.ndarray:
    """(M, 2) int array of (image index, face index) for every face whose teacher embedding
    is good enough to mimic (`mimic_eligible`)."""
    pairs = [(i, j) for i, label in enumerate(labels) for j in np.flatnonzero(mimic_eligible(label))]
    return np.array(pairs, dtype=np.int64).reshape(-1, 2)


def repeat_identified(faces: np.ndarray, table: IdentityTable | None, repeat: int) -> np.ndarray:
    """`faces` ((M, 2) image, face) with every face that has an identity class listed `repeat`
    times, so the mimic stream carries it that many times as often.

    With ~5 identified faces among ~40 per step, each of CelebA's 5,414 people is seen about
    once in 2,000 steps and the identity loss stays near chance; repeating them is the cheap
    way to see each person more often without more data.
    """
    if repeat < 1:
        raise ValueError(f"identity repeat must be at least 1, got {repeat}")
    if repeat == 1 or table is None or len(faces) == 0:
        return faces
    identified = table.image_face[faces[:, 0]] == faces[:, 1]
    return np.concatenate([faces] + [faces[identified]] * (repeat - 1))


def crop_region(box: np.ndarray, rng: np.random.Generator, s: CropSettings) -> tuple[float, float, float]:
    """A square (x1, y1, side) around `box`, with random context and centre jitter. The context
    is drawn log-uniformly, so every octave of face size on the canvas is taught equally."""
    w, h = box[2] - box[0], box[3] - box[1]
    context = float(np.exp(rng.uniform(np.log(s.context[0]), np.log(s.context[1]))))
    side = float(np.sqrt(max(w, 1.0) * max(h, 1.0)) * context)
    cx = (box[0] + box[2]) / 2 + rng.uniform(-s.shift, s.shift) * side
    cy = (box[1] + box[3]) / 2 + rng.uniform(-s.shift, s.shift) * side
    return float(cx - side / 2), float(cy - side / 2), side


def crop_to_canvas(sample: Sample, x1: float, y1: float, side: float, canvas: np.ndarray) -> Sample:
    """Cut the square (x1, y1, side) out of `sample` and scale it onto `canvas` (square)."""
    h, w = sample.image.shape[:2]
    ix1, iy1 = max(0, int(np.floor(x1))), max(0, int(np.floor(y1)))
    ix2, iy2 = min(w, int(np.ceil(x1 + side))), min(h, int(np.ceil(y1 + side)))
    if ix2 <= ix1 or iy2 <= iy1:
        raise ValueError(f"crop ({x1:.0f}, {y1:.0f}, side {side:.0f}) misses the {w}x{h} image")
    part = sample.transformed(sample.image[iy1:iy2, ix1:ix2], 1.0, -ix1, -iy1)
    scale = canvas.shape[0] / side
    return place(part, canvas, scale, int(round((ix1 - x1) * scale)), int(round((iy1 - y1) * scale)))


class FaceCropDataset(Dataset):
    """Each item: one face (cycled through all mimic-eligible faces) on a small augmented canvas."""

    def __init__(self, labels: list[ImageLabels], faces: np.ndarray, anchors: np.ndarray,
                 settings: CropSettings, seed: int = 0, identities: IdentityTable | None = None):
        if len(faces) == 0:
            raise ValueError("no face is eligible for the mimic stream")
        self.labels = labels
        self.faces = faces
        self.anchors = anchors
        self.settings = settings
        self.seed = seed
        self.epoch = 0
        self.backdrop_sources = backdrop_sources(labels)  # photos with a face-free region
        self.identities = identities  # classes of `labels`' faces, for the identity loss

    def __len__(self) -> int:
        return len(self.faces)

    def __getitem__(self, index: int) -> TrainItem:
        rng = np.random.default_rng((self.seed, self.epoch, index, 1))
        image_index, face_index = self.faces[index]
        s = self.settings
        side = (s.canvas, s.canvas)
        faceless = maybe_backdrop(self.backdrop_sources, side, rng, s.faceless_p)
        if faceless is not None:
            return to_item(finish(faceless_sample(faceless), rng, s.flip_p, s.dark_p), self.anchors)
        canvas = np.empty((s.canvas, s.canvas, 3), np.uint8)
        colour = rng.integers(0, 256, 3, dtype=np.uint8)
        backdrop = maybe_backdrop(self.backdrop_sources, side, rng, s.backdrop_p)
        canvas[:] = colour if backdrop is None else backdrop
        sample = sample_of(self.labels, self.identities, image_index)
        if sample is None:  # unreadable since labelling: a blank canvas still teaches background
            out = faceless_sample(canvas)
        else:
            sample = maybe_turn(sample, rng, s.turn_p, s.turn_degrees, colour)
            out = crop_to_canvas(sample, *crop_region(sample.boxes[face_index], rng, s), canvas)
            out = clip_to_canvas(out, s.min_face, s.min_mimic_face)
        return to_item(finish(out, rng, s.flip_p, s.dark_p), self.anchors)
