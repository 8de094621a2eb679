"""Group the unknown faces of a run by person, ready to be enrolled.

Each unknown appearance (a track nobody in the gallery matched) carries the mean embedding
of its frames; appearances are clustered agglomeratively (average linkage, cosine distance)
and a group is cut where the mean similarity between two groups falls below the threshold.
Each group shows its best-quality crop.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import cv2
import numpy as np
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import pdist

from engines.errors import UserError
from app.live.recognition import Appearance
from app.gallery.recognition_defaults import threshold_for_model
from app.storage import classify_os_error, make_private_folder, write_private


@dataclass(slots=True)
class UnknownGroup:
    """One probable person among the unknowns."""

    appearances: list[Appearance]  # best quality first
    embedding: np.ndarray  # (128,) mean of the members' embeddings, unit length

    @property
    def representative(self) -> Appearance:
        """The member with the best-quality crop."""
        return self.appearances[0]

    @property
    def count(self) -> int:
        return len(self.appearances)

    @property
    def frames(self) -> int:
        return sum(a.observations for a in self.appearances)

    @property
    def first_time(self) -> float:
        return min(a.first_time for a in self.appearances)

    @property
    def last_time(self) -> float:
        return max(a.last_time for a in self.appearances)

    @property
    def sources(self) -> list[str]:
        return sorted({a.source_id for a in self.appearances})

    @property
    def cohesion(self) -> float:
        """Lowest similarity of a member to the group mean (1 = all identical)."""
        sims = [float(a.embedding @ self.embedding) for a in self.appearances]
        return min(sims)

    def to_dict(self, crop: str | None = None) -> dict:
        return {
            "appearances": self.count,
            "frames": self.frames,
            "first_time": round(self.first_time, 3),
            "last_time": round(self.last_time, 3),
            "sources": self.sources,
            "cohesion": round(self.cohesion, 4),
            "tracks": [[a.source_id, a.track_id] for a in self.appearances],
            "crop": crop,
        }


def cluster_unknowns(appearances: Sequence[Appearance], threshold: float | None = None,
                     min_observations: int = 1) -> list[UnknownGroup]:
    """Group the unknown appearances (name None, with an embedding, seen at least
    `min_observations` frames) by person; largest groups first.

    threshold: cosine similarity above which two groups are the same person (default: the
    recognition threshold of the model that made the embeddings). Appearances from different
    models cannot be compared: `UserError`."""
    members = [a for a in appearances
               if a.name is None and a.embedding is not None and a.observations >= min_observations]
    if not members:
        return []
    models = sorted({a.model_id for a in members if a.model_id is not None})
    if len(models) > 1:
        raise UserError(f"the unknown faces come from {len(models)} different models ({', '.join(models)}): "
                        "their embeddings cannot be compared; cluster each run separately")
    thr = threshold_for_model(models[0] if models else None) if threshold is None else float(threshold)
    embs = np.stack([_unit(a.embedding) for a in members])
    if len(members) == 1:
        labels = np.array([1])
    else:
        tree = linkage(pdist(embs, metric="cosine"), method="average")
        labels = fcluster(tree, t=1.0 - thr, criterion="distance")
    groups = []
    for label in np.unique(labels):
        idx = np.flatnonzero(labels == label)
        chosen = sorted((members[i] for i in idx), key=lambda a: (a.best_crop is None, -a.quality))
        mean = embs[idx].mean(axis=0)
        groups.append(UnknownGroup(appearances=chosen, embedding=_unit(mean)))
    groups.sort(key=lambda g: (-g.count, -g.frames, g.first_time))
    return groups


def load_appearances(events_path: str | os.PathLike, load_crops: bool = True) -> list[Appearance]:
    """Appearances from a JSON-lines event log written by `main.py process --events`;
    crop paths are relative to the log's folder. Lines of other types are skipped."""
    path = Path(events_path)
    if not path.is_file():
        raise UserError(f"event log not found: {path}")
    out = []
    with open(path, encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            line = line.strip()
            if not line:
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UserError(f"{path} line {number} is not JSON ({exc.msg}): give a .jsonl event log") from None
            if not isinstance(record, dict) or record.get("type", "appearance") != "appearance":
                continue
            try:
                out.append(Appearance.from_record(record, base_dir=path.parent, load_crop=load_crops))
            except (KeyError, ValueError, TypeError) as exc:
                raise UserError(f"{path} line {number} is not an appearance record ({exc})") from None
    return out


def write_group_crops(groups: Sequence[UnknownGroup], folder: str | os.PathLike) -> list[Path | None]:
    """Save each group's representative crop as `folder/unknown_NNN.jpg` (None when a group has
    no crop); refuses to overwrite existing files."""
    folder = Path(folder)
    make_private_folder(folder)
    paths: list[Path | None] = []
    for i, group in enumerate(groups, 1):
        crop = group.representative.best_crop
        if crop is None:
            paths.append(None)
            continue
        path = folder / f"unknown_{i:03d}.jpg"
        if path.exists():
            raise UserError(f"{path} already exists: choose an empty --crops folder")
        ok, data = cv2.imencode(".jpg", crop)
        if not ok:
            raise UserError(f"could not encode the crop for {path}")
        try:
            write_private(path, data.tobytes())  # a face: user-only
        except OSError as exc:
            raise classify_os_error(exc, path) from exc
        paths.append(path)
    return paths


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64).reshape(-1)
    return v / max(float(np.linalg.norm(v)), 1e-12)
