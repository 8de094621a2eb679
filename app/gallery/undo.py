"""Undo for gallery deletions: what a sample or an identity held, taken before it goes, and
put back on request. Uses only the gallery's public API (crops are re-encoded as JPEG)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.gallery.face_crop import FaceCrop
from app.gallery.store import Gallery, NewSample


@dataclass(slots=True)
class SampleSnapshot:
    """One sample as it was: its identity, crop, quality, origin and every model's embedding."""

    name: str
    crop: FaceCrop | None
    quality: float | None
    source: str
    enrolled_model: str
    embeddings: dict[str, np.ndarray]


def snapshot_samples(gallery: Gallery, sample_ids: list[int]) -> list[SampleSnapshot]:
    """What `sample_ids` hold now (call before removing them)."""
    wanted = {int(s) for s in sample_ids}
    out = []
    for info in gallery.samples():
        if info.id not in wanted:
            continue
        out.append(SampleSnapshot(name=info.name, crop=gallery.sample_crop(info.id), quality=info.quality,
                                  source=info.source, enrolled_model=info.enrolled_model,
                                  embeddings=gallery.sample_embeddings(info.id)))
    return out


def snapshot_identity(gallery: Gallery, name: str) -> list[SampleSnapshot]:
    """Every sample of `name` (call before removing or merging it away)."""
    return snapshot_samples(gallery, [s.id for s in gallery.samples(name)])


def restore(gallery: Gallery, snapshots: list[SampleSnapshot]) -> int:
    """Put the samples back (their identity is created again when it is gone); returns how
    many. Samples whose enrolment model left no embedding are stored with any other one."""
    restored = 0
    for snap in snapshots:
        model = snap.enrolled_model if snap.enrolled_model in snap.embeddings else next(iter(snap.embeddings), None)
        if model is None:
            continue
        [sid] = gallery.add_samples(snap.name, [NewSample(embedding=snap.embeddings[model], crop=snap.crop,
                                                          quality=snap.quality, source=snap.source)], model)
        others = {m: v for m, v in snap.embeddings.items() if m != model}
        for other, vector in others.items():
            gallery.set_embeddings(other, {sid: vector})
        restored += 1
    return restored
