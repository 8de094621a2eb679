"""Enrol people: find the face in each photo (or crop), check it is usable, warn about
look-alikes, store what passed in one transaction, and report every decision.

The look-alike check runs before anything is written: with `confirm=False` a request whose
faces look like someone else already enrolled writes nothing and comes back with
`needs_confirmation` set (the window shows the warning and asks again). A face whose stored
crop would be byte-identical to one of the person's samples (the same crop or photo saved
twice) is refused, so pressing Save twice never stores a duplicate."""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence, Union

import numpy as np

from engines.errors import UserError
from app.gallery.face_crop import storage_crop
from app.gallery.store import Gallery, NewSample
from app.imageio import load_image
from app.gallery.quality import FaceQuality, QualityThresholds, assess, enrolment_problems
from app.storage import StorageError
from engines.faces import Faces

FaceChoice = Union[str, int]  # "only", "largest", "centre" or an index (0 = leftmost face)


@dataclass(slots=True)
class Added:
    sample_id: int
    source: str
    quality: FaceQuality


@dataclass(slots=True)
class Refusal:
    source: str
    reason: str


@dataclass(slots=True)
class EnrolmentResult:
    """What happened to each input: added, refused (with the reason), and warnings."""

    name: str
    created: bool = False  # the identity is new
    added: list[Added] = field(default_factory=list)
    refused: list[Refusal] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    unsaved: list[str] = field(default_factory=list)  # sources that passed but could not be stored
    error: str | None = None  # why they could not (a full disk, ...)
    needs_confirmation: bool = False  # look-alikes found and confirm=False: nothing was written

    @property
    def ok(self) -> bool:
        return bool(self.added) and self.error is None

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "created": self.created,
            "added": [{"sample_id": a.sample_id, "source": a.source, "quality": a.quality.to_dict()} for a in self.added],
            "refused": [{"source": r.source, "reason": r.reason} for r in self.refused],
            "warnings": list(self.warnings),
            "unsaved": list(self.unsaved),
            "error": self.error,
            "needs_confirmation": self.needs_confirmation,
        }

    def summary_lines(self) -> list[str]:
        """Human-readable report, one line per decision."""
        lines = [f"added {a.source} (sample {a.sample_id})" for a in self.added]
        lines += [f"refused {r.source}: {r.reason}" for r in self.refused]
        lines += [f"warning: {w}" for w in self.warnings]
        lines += [f"not saved {source}: passed the checks, but the gallery could not store it" for source in self.unsaved]
        if self.error is not None:
            lines.append(f"{self.name}: nothing saved: {self.error}")
            return lines
        verb = "created" if self.created else "updated"
        lines.append(f"{self.name}: {verb}, {len(self.added)} sample(s) added, {len(self.refused)} refused"
                     if self.added else f"{self.name}: nothing enrolled ({len(self.refused)} refused)")
        return lines


@dataclass(slots=True)
class _Candidate:
    source: str
    image: np.ndarray
    faces: Faces
    index: int
    quality: FaceQuality


def enrol_images(gallery: Gallery, engine, name: str, paths: Sequence[str | os.PathLike], *,
                 face: FaceChoice = "only", limits: QualityThresholds | None = None,
                 confirm: bool = True) -> EnrolmentResult:
    """Enrol `name` from photo files (several at once): one usable face per photo, chosen by
    `face` when a photo holds several ("largest", or an index counted from the left).
    confirm=False: write nothing when a face looks like another enrolled person (see module)."""
    _check_choice(face)
    items = []
    refused = []
    for p in paths:
        if not Path(p).exists():
            refused.append(Refusal(str(p), "file not found"))
            continue
        try:
            image = load_image(p)
        except UserError as exc:
            refused.append(Refusal(str(p), str(exc)))
            continue
        items.append((str(p), image))
    return _enrol(gallery, engine, name, items, face, limits, refused, confirm)


def enrol_crops(gallery: Gallery, engine, name: str, crops: Sequence[np.ndarray],
                sources: Sequence[str] | None = None, *, limits: QualityThresholds | None = None,
                confirm: bool = True) -> EnrolmentResult:
    """Enrol `name` from face crops (e.g. `Appearance.best_crop` of a track, chosen in the GUI);
    the engine re-detects the face, taking the one nearest the crop centre."""
    sources = list(sources) if sources is not None else [f"crop {i + 1}" for i in range(len(crops))]
    if len(sources) != len(crops):
        raise ValueError("one source description per crop")
    return _enrol(gallery, engine, name, list(zip(sources, crops)), "centre", limits, [], confirm)


def _enrol(gallery: Gallery, engine, name: str, items: list[tuple[str, np.ndarray]], face: FaceChoice,
           limits: QualityThresholds | None, refused: list[Refusal], confirm: bool = True) -> EnrolmentResult:
    model_id = engine.info.model_id
    gallery.check_writable(f"enrolling {name}")  # before any inference: a read-only or full gallery fails now
    result = EnrolmentResult(name=name, refused=refused)
    candidates: list[_Candidate] = []
    for source, image in items:
        faces = engine.infer([image])[0]
        index, why = _choose_face(faces, face, image.shape)
        if index is None:
            result.refused.append(Refusal(source, why))
            continue
        if faces.embeddings is None:
            result.refused.append(Refusal(source, f"engine {engine.info.engine} gives no embeddings"))
            continue
        quality = assess(image, faces.boxes[index], faces.landmarks[index], float(faces.scores[index]))
        problems = enrolment_problems(quality, limits)
        if problems:
            result.refused.append(Refusal(source, "; ".join(problems)))
            continue
        candidates.append(_Candidate(source, image, faces, index, quality))
    candidates = _drop_duplicates(gallery, name, candidates, result)
    if not candidates:
        return result

    embeddings = np.stack([c.faces.embeddings[c.index] for c in candidates])
    warnings, look_alike = _look_alike_warnings(gallery, name, model_id, embeddings, [c.source for c in candidates])
    if look_alike and not confirm:
        result.warnings += [w.replace(f": enrolled as {name!r} anyway;", ":") for w in warnings]
        result.needs_confirmation = True
        return result
    result.warnings += warnings
    samples = []
    for c in candidates:
        crop = storage_crop(c.image, c.faces.boxes[c.index], c.faces.landmarks[c.index])
        samples.append(NewSample(embedding=c.faces.embeddings[c.index], crop=crop, quality=c.quality.weight,
                                 source=c.source))
    result.created = name not in gallery
    try:
        ids = gallery.add_samples(name, samples, model_id)
    except StorageError as exc:  # the disk filled meanwhile: keep the per-photo report
        result.created = False
        result.unsaved = [c.source for c in candidates]
        result.error = str(exc)
        return result
    result.added = [Added(sid, c.source, c.quality) for sid, c in zip(ids, candidates)]
    return result


def photo_problems(engine, image: np.ndarray, limits: QualityThresholds | None = None) -> list[str]:
    """Why the largest face of a photo would be refused (empty: it would be enrolled), as
    `enrol_images(face="largest")` decides, without writing anything."""
    faces = engine.infer([image])[0]
    index, why = _choose_face(faces, "largest", image.shape)
    if index is None:
        return [why]
    return enrolment_problems(assess(image, faces.boxes[index], faces.landmarks[index], float(faces.scores[index])),
                              limits)


def _check_choice(face: FaceChoice) -> None:
    if isinstance(face, int):
        if face < 0:
            raise UserError(f"--face {face}: an index must be 0 or more (0 = leftmost face)")
    elif face not in ("only", "largest", "centre"):
        raise UserError(f"--face {face!r}: use 'largest' or an index (0 = leftmost face)")


def _choose_face(faces: Faces, face: FaceChoice, image_shape: tuple[int, ...]) -> tuple[int | None, str]:
    """The index of the face to enrol, or None and the reason."""
    n = len(faces)
    if n == 0:
        return None, "no face found"
    if face == "only":
        if n > 1:
            return None, (f"{n} faces found: choose one with --face largest or --face INDEX "
                          "(counted from the left, 0 = leftmost)")
        return 0, ""
    if face == "largest":
        return int(np.argmax(faces.widths * faces.heights)), ""
    if face == "centre":
        middle = np.array([image_shape[1] / 2, image_shape[0] / 2])
        return int(np.argmin(np.linalg.norm(faces.centres - middle, axis=1))), ""
    order = np.argsort(faces.centres[:, 0], kind="stable")
    if face >= n:
        return None, f"--face {face} asked, but only {n} face(s) found (0 = leftmost)"
    return int(order[face]), ""


def _drop_duplicates(gallery: Gallery, name: str, candidates: list[_Candidate],
                     result: EnrolmentResult) -> list[_Candidate]:
    """The candidates that are not already one of the person's stored samples (the same crop:
    Save pressed twice); the others are refused with the reason."""
    if name not in gallery:
        return candidates
    kept = []
    for c in candidates:
        if gallery.has_crop(name, storage_crop(c.image, c.faces.boxes[c.index], c.faces.landmarks[c.index])):
            result.refused.append(Refusal(c.source, f"already enrolled: this face is one of {name!r}'s samples"))
        else:
            kept.append(c)
    return kept


def _look_alike_warnings(gallery: Gallery, name: str, model_id: str, embeddings: np.ndarray,
                         sources: list[str]) -> tuple[list[str], bool]:
    """Warnings: a new face that matches another identity, one that does not match the
    person's existing samples, one that does not match the other new photos; and whether
    any face looks like another identity."""
    warnings = []
    look_alike = False
    threshold = gallery.threshold
    matches = gallery.match(embeddings, model_id)
    own = next((n for n in matches.identity_names if n.casefold() == name.strip().casefold()), None)
    for i, source in enumerate(sources):
        for j, other in enumerate(matches.identity_names):
            sim = float(matches.identity_similarities[i, j])
            if other != own and sim >= threshold:
                look_alike = True
                warnings.append(f"{source} looks like {other!r} already in the gallery (similarity {sim:.2f}): "
                                f"enrolled as {name!r} anyway; check it is the right person")
        if own is not None:
            sim = matches.similarity_to(i, own)
            if sim < threshold:
                warnings.append(f"{source} does not match the existing samples of {own!r} (similarity {sim:.2f}, "
                                f"threshold {threshold:.2f}): is it the same person?")
    if len(embeddings) >= 2:
        unit = embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)
        sims = unit @ unit.T
        np.fill_diagonal(sims, -1.0)
        for i, source in enumerate(sources):
            if sims[i].max() < threshold:
                warnings.append(f"{source} matches none of the other new photos (best similarity {sims[i].max():.2f}): "
                                "is it the same person?")
    return warnings, look_alike
