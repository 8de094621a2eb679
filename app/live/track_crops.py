"""The best face crops of each live track, kept for enrolment from the live feed.

The Recognizer keeps one best crop per track; an operator enrolling someone wants a few,
from different moments, with a mark saying which ones pass the enrolment checks. A
`TrackCrops` collector runs in the inference thread after recognition and keeps, per
track, the `per_track` best-quality crops, one per stretch of `min_gap` frames.

Only frames where the face is surely a face and surely the track's person are kept: the
detection score at least `min_score` (0.95: the single-shot model scores real faces 0.97-1.00
and boxed a face-free picture at up to 0.92 in tests/test_ui_enrol_drift.py; the tracker's
own `high_score`, the Recognizer's `extra["sure"]`, is lower) and the face's embedding as
close to its track's anchor (its first sure frames) as the recognition threshold
(`extra["agreement"]`, `extra["agreement_min"]`). A track that drifted onto a dark audience or
a curtain (a box the tracker let continue by overlap) offers nothing from those frames.
"""
from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass

import numpy as np

from app.gallery.face_crop import storage_crop
from app.gallery.quality import FaceQuality, QualityThresholds, assess, enrolment_problems
from app.live.recognition import frame_time
from app.types import Frame
from engines.faces import Faces


@dataclass(slots=True)
class TrackCrop:
    """One face of a track, cut out for enrolment, with its quality verdict."""

    image: np.ndarray  # BGR storage crop (app.gallery.face_crop.storage_crop): the face with context
    quality: FaceQuality
    problems: list[str]  # why it would be refused (empty: it passes the enrolment checks)
    source_id: str
    track_id: int
    frame_index: int
    time: float  # media time (or capture time for live sources)
    name: str | None = None  # what the track was called in that frame
    weight: float = 0.0  # the vote weight of this observation (quality.weight as the recognizer saw it)
    agreement: float = float("nan")  # cosine of the face to its track's embedding (NaN: not measured)

    @property
    def reason(self) -> str:
        """Why it passes, or why it would be refused, in one line."""
        if self.problems:
            return "; ".join(self.problems)
        why = f"passes: detection score {self.quality.score:.2f}"
        if self.agreement == self.agreement:
            why += f", same person as the track (similarity {self.agreement:.2f})"
        return why + f", quality {self.weight:.2f}"

    @property
    def usable(self) -> bool:
        return not self.problems

    @property
    def label(self) -> str:
        """Where it came from, as stored with an enrolled sample."""
        return f"{self.source_id} track {self.track_id} frame {self.frame_index}"


class TrackCrops:
    """Per (source, track): up to `per_track` crops, best quality first; thread-safe.

    min_gap: at most one crop per stretch of this many frames (near-identical neighbours
    teach the gallery nothing); max_tracks: the oldest tracks are forgotten beyond this.
    """

    def __init__(self, per_track: int = 6, min_gap: int = 5, max_tracks: int = 256,
                 limits: QualityThresholds | None = None, min_score: float = 0.95):
        self.per_track, self.min_gap, self.max_tracks = per_track, min_gap, max_tracks
        self.min_score = min_score
        self.limits = limits or QualityThresholds()
        self._tracks: OrderedDict[tuple[str, int], list[TrackCrop]] = OrderedDict()
        self._lock = threading.Lock()

    def observe(self, frame: Frame, faces: Faces) -> None:
        """Consider every tracked face of `frame` (faces as the Recognizer returned them)."""
        if faces.track_ids is None or len(faces) == 0:
            return
        weights = faces.extra.get("quality")
        sure, agreement = faces.extra.get("sure"), faces.extra.get("agreement")
        agreement_min = float(faces.extra.get("agreement_min", 0.0))
        for i, tid in enumerate(faces.track_ids):
            if tid < 0:
                continue
            if (sure is not None and not bool(sure[i])) or float(faces.scores[i]) < self.min_score:
                continue  # not surely a face
            if agreement is not None and not float(agreement[i]) >= agreement_min:
                continue  # not surely the track's person (NaN: a track's first frame, unchecked)
            key = (frame.source_id, int(tid))
            weight = float(weights[i]) if weights is not None else 1.0
            if not self._wanted(key, weight, frame.index):
                continue
            quality = assess(frame.image, faces.boxes[i], faces.landmarks[i], float(faces.scores[i]))
            crop = storage_crop(frame.image, faces.boxes[i], faces.landmarks[i]).image
            name = faces.names[i] if faces.names is not None else None
            self._keep(TrackCrop(crop, quality, enrolment_problems(quality, self.limits), frame.source_id, int(tid),
                                 frame.index, frame_time(frame), name,
                                 weight if weights is not None else quality.weight,
                                 float(agreement[i]) if agreement is not None else float("nan")))

    def _wanted(self, key: tuple[str, int], weight: float, index: int) -> bool:
        with self._lock:
            kept = self._tracks.get(key)
            if not kept:
                return True
            same = [c for c in kept if c.frame_index // self.min_gap == index // self.min_gap]
            if same:  # one crop per stretch of `min_gap` frames: the best of it
                return weight > same[0].weight
            return len(kept) < self.per_track or weight > min(c.weight for c in kept)

    def _keep(self, crop: TrackCrop) -> None:
        key = (crop.source_id, crop.track_id)
        bucket = crop.frame_index // self.min_gap
        with self._lock:
            kept = [c for c in self._tracks.pop(key, []) if c.frame_index // self.min_gap != bucket]
            kept.append(crop)
            kept.sort(key=lambda c: (not c.usable, -c.weight))
            self._tracks[key] = kept[: self.per_track]
            while len(self._tracks) > self.max_tracks:
                self._tracks.popitem(last=False)

    def crops(self, source_id: str, track_id: int) -> list[TrackCrop]:
        """The kept crops of one track, usable ones first, best quality first."""
        with self._lock:
            return list(self._tracks.get((source_id, int(track_id)), []))

    def tracks(self) -> list[tuple[str, int]]:
        """(source id, track id) of every track with crops, oldest first."""
        with self._lock:
            return list(self._tracks)

    def clear(self) -> None:
        with self._lock:
            self._tracks.clear()
