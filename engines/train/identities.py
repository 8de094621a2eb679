"""Which person each training face is: CelebA identities as dense class indices, for the
identity loss (`losses.identity_loss`).

Two label sets hold CelebA photos under their CelebA file names (`000001.jpg` ...): the
in-the-wild subset and the aligned crops. CelebA's `identity_all.txt` names the person in
each; the label cache records each image's absolute path and set, so the file name is the
path's last part. CelebA's people (those of CelebFaces+) were chosen apart from LFW's, so none
is an LFW evaluation identity.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engines.faces import box_sides
from engines.train.dataset import centred_teacher, is_validation, mimic_eligible
from engines.train.labelling import ImageLabels

DEFAULT_IDENTITIES = Path(__file__).resolve().parents[2].parent / "shared" / "data" / "celeba-wild" / "identity_all.txt"
CELEBA_SETS = ("celeba-wild", "celeba_aligned")  # label sets whose file names are CelebA's


@dataclass(slots=True)
class IdentityTable:
    """Training images' faces as identity classes: at most one face per image has one."""

    classes: int  # number of classes
    image_class: np.ndarray  # (images,) int64: class of the image's identified face, -1 none
    image_face: np.ndarray  # (images,) int64: which of its teacher faces that is, -1 none
    names: list[str]  # class -> identity as written in the identities file

    def face_classes(self, index: int, faces: int) -> np.ndarray:
        """(faces,) int64 class of each teacher face of image `index`, -1 for faces without one."""
        out = np.full(faces, -1, np.int64)
        if self.image_face[index] >= 0:
            out[self.image_face[index]] = self.image_class[index]
        return out

    @property
    def faces(self) -> int:
        """Number of faces with a class."""
        return int((self.image_class >= 0).sum())

    @property
    def single_classes(self) -> int:
        """Number of classes with one face."""
        return int((np.bincount(self.image_class[self.image_class >= 0], minlength=self.classes) == 1).sum())


def read_identities(path: Path) -> dict[str, str]:
    """`file identity` lines -> {file: identity}; a header line (`image identity`) is skipped
    because its identity is not a number."""
    out = {}
    for line in Path(path).read_text().splitlines():
        parts = line.split()
        if len(parts) == 2 and parts[1].isdigit():
            out[parts[0]] = parts[1]
    return out


def identified_face(label: ImageLabels) -> int:
    """The face an image's identity belongs to, or -1 when that is ambiguous.

    CelebA names one person per photo, but the teacher may find bystanders too. A face is
    assigned only when it is the image's one mimic-eligible face (sure and large enough to
    have a usable teacher embedding) and no other teacher face is larger: then it is the
    photo's subject. Of the 15,430 CelebA training images, 14,969 qualify; the rest have no
    eligible face (376), several (50, 36 of them with one clearly largest: too few to be
    worth a rule) or a larger unsure face beside the eligible one (35).
    """
    eligible = np.flatnonzero(mimic_eligible(label))
    if len(eligible) != 1:
        return -1
    sides = box_sides(label.boxes)
    return int(eligible[0]) if sides[eligible[0]] >= sides.max() else -1


def identity_table(labels: list[ImageLabels], identities: dict[str, str], sets=CELEBA_SETS,
                   min_images: int = 1) -> IdentityTable:
    """Classes for the training images `labels` of the CelebA `sets`, by file name.

    Validation images (`is_validation`) never get a class, even if passed in, so the head
    never learns from what validation measures. Identities with fewer than `min_images`
    identified training faces get no class. Classes are numbered in order of first appearance.

    Keeping identities with a single image (`min_images` 1, the default) costs nothing and
    helps a little: such a class teaches its own face only what the mimic loss already does
    (its weight starts at that face's teacher embedding), but it is a negative for every other
    face, and in the aligned CelebA set nearly half the people are seen once.
    """
    image_face = np.full(len(labels), -1, np.int64)
    keys: list[str | None] = [None] * len(labels)
    for i, label in enumerate(labels):
        if label.set_name not in sets or is_validation(label.path):
            continue
        ident = identities.get(label.path.replace("\\", "/").rsplit("/", 1)[-1])
        face = identified_face(label) if ident is not None else -1
        if face >= 0:
            image_face[i], keys[i] = face, ident
    counts = Counter(k for k in keys if k is not None)
    index: dict[str, int] = {}
    image_class = np.full(len(labels), -1, np.int64)
    for i, key in enumerate(keys):
        if key is None or counts[key] < min_images:
            image_face[i] = -1
            continue
        image_class[i] = index.setdefault(key, len(index))
    return IdentityTable(classes=len(index), image_class=image_class, image_face=image_face, names=list(index))


def class_centres(table: IdentityTable, labels: list[ImageLabels], centre: np.ndarray) -> np.ndarray:
    """(classes, D) float32: per class, the unit mean of its faces' centred teacher embeddings
    (`centred_teacher`), the targets the student is trained towards: where the identity head
    starts, so its classes begin in the student's space rather than at random."""
    sums = np.zeros((table.classes, len(centre)), np.float64)
    for i in np.flatnonzero(table.image_class >= 0):
        sums[table.image_class[i]] += centred_teacher(labels[i].embeddings[table.image_face[i]], centre)[0]
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.maximum(norms, 1e-12)).astype(np.float32)
