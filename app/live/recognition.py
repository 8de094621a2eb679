"""The `Recognizer`: per frame, track the faces, match them against the gallery, vote a name
per track; per track, an `Appearance` (who, when, best crop) for the event log.

Several sources may feed one Recognizer: each `frame.source_id` has its own tracker and
shot-change detector; track ids are unique across all of them. A shot change ends every
track of its source, so no id and no name crosses a cut.
"""
from __future__ import annotations

import base64
import itertools
import logging
import threading
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path

import cv2
import numpy as np

from app.gallery.face_crop import storage_crop
from app.gallery.store import Gallery, Matches
from app.gallery.quality import assess
from app.gallery.recognition_defaults import default_threshold
from app.live.shot_change import ShotChangeConfig, ShotChangeDetector
from app.gallery.recognition_defaults import chance_for_model
from app.live.tracking import Track, Tracker, TrackerConfig, gate_for_threshold
from app.types import Frame
from app.live.voting import IdentityVote, VoteConfig
from engines.faces import EMBEDDING_DIM, Faces

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Appearance:
    """One person's continuous presence in one source (one confirmed track)."""

    track_id: int
    name: str | None  # the track's verdict (None = unknown)
    best_similarity: float | None  # best similarity to `name` over the track (None if unknown)
    first_time: float  # seconds: media time, or capture time for live sources
    last_time: float
    first_frame: int
    last_frame: int
    source_id: str
    best_crop: np.ndarray | None  # BGR storage crop (app.gallery.face_crop) of the best-quality frame
    quality: float = 0.0  # quality weight of that frame
    observations: int = 0  # frames the face was detected in
    embedding: np.ndarray | None = None  # (128,) quality-weighted mean, unit length
    ongoing: bool = False  # the track is still live
    model_id: str | None = None  # the model that made `embedding` (never compare across models)

    def to_record(self, crop: str | None = None) -> dict:
        """The event-log JSON line for this appearance; `crop` is the path where the caller saved
        `best_crop` (relative to the events file's folder), if it did."""
        return {
            "type": "appearance",
            "source_id": self.source_id,
            "track_id": self.track_id,
            "name": self.name,
            "similarity": None if self.best_similarity is None else round(float(self.best_similarity), 4),
            "first_time": round(self.first_time, 3),
            "last_time": round(self.last_time, 3),
            "first_frame": self.first_frame,
            "last_frame": self.last_frame,
            "observations": self.observations,
            "quality": round(self.quality, 3),
            "embedding": encode_embedding(self.embedding),
            "crop": crop,
            "ongoing": self.ongoing,
            "model_id": self.model_id,
        }

    @classmethod
    def from_record(cls, record: dict, base_dir: Path | None = None, load_crop: bool = True) -> "Appearance":
        """Inverse of `to_record`; the crop is read from `base_dir / record["crop"]` when present."""
        crop = None
        if load_crop and record.get("crop"):
            path = Path(record["crop"])
            if not path.is_absolute() and base_dir is not None:
                path = base_dir / path
            crop = cv2.imread(str(path), cv2.IMREAD_COLOR)
        sim = record.get("similarity")
        return cls(
            track_id=int(record["track_id"]),
            name=record.get("name"),
            best_similarity=None if sim is None else float(sim),
            first_time=float(record["first_time"]),
            last_time=float(record["last_time"]),
            first_frame=int(record["first_frame"]),
            last_frame=int(record["last_frame"]),
            source_id=str(record.get("source_id", "0")),
            best_crop=crop,
            quality=float(record.get("quality") or 0.0),
            observations=int(record.get("observations") or 0),
            embedding=decode_embedding(record.get("embedding")),
            ongoing=bool(record.get("ongoing", False)),
            model_id=record.get("model_id"),
        )


def encode_embedding(embedding: np.ndarray | None) -> str | None:
    """A 128-D embedding as base64 of little-endian float32 (684 characters)."""
    if embedding is None:
        return None
    return base64.b64encode(np.asarray(embedding, "<f4").reshape(EMBEDDING_DIM).tobytes()).decode("ascii")


def decode_embedding(text: str | list | None) -> np.ndarray | None:
    """Inverse of `encode_embedding`; also accepts a plain list of 128 numbers."""
    if text is None:
        return None
    if isinstance(text, list):
        vec = np.asarray(text, np.float32)
    else:
        vec = np.frombuffer(base64.b64decode(text), "<f4").astype(np.float32)
    if vec.shape != (EMBEDDING_DIM,):
        raise ValueError(f"an embedding must have {EMBEDDING_DIM} values, got {vec.shape}")
    return vec


@dataclass(slots=True)
class _TrackState:
    """What the Recognizer accumulates for one track."""

    vote: IdentityVote
    first_time: float
    first_frame: int
    last_time: float = 0.0
    last_frame: int = 0
    observations: int = 0
    best_quality: float = -1.0
    best_crop: np.ndarray | None = None
    embedding_sum: np.ndarray | None = None

    def appearance(self, track: Track, source_id: str, ongoing: bool, model_id: str | None) -> Appearance:
        name, sim = self.vote.overall()
        emb = None
        if self.embedding_sum is not None:
            norm = float(np.linalg.norm(self.embedding_sum))
            emb = (self.embedding_sum / norm).astype(np.float32) if norm > 0 else None
        return Appearance(
            track_id=track.id, name=name, best_similarity=sim, first_time=self.first_time, last_time=self.last_time,
            first_frame=self.first_frame, last_frame=self.last_frame, source_id=source_id, best_crop=self.best_crop,
            quality=max(0.0, self.best_quality), observations=self.observations, embedding=emb, ongoing=ongoing,
            model_id=model_id if emb is not None else None,
        )


@dataclass(slots=True)
class _Source:
    source_id: str
    tracker: Tracker
    shots: ShotChangeDetector
    states: dict[int, _TrackState] = field(default_factory=dict)  # by Track.key
    tracks: dict[int, Track] = field(default_factory=dict)


class Recognizer:
    """Names the faces of every frame it is given; thread-safe.

    gallery: where names come from (None: track only, everyone unknown).
    threshold / margin: gallery decision values (default: the engine's calibrated threshold,
    else the gallery's own). engine or model_id: which model made the embeddings; the gallery
    must hold embeddings from it (else `ModelMismatch` here, at construction).
    confident: a frame whose similarity passes the threshold by this share of the way to 1
    names its track at once (0.25: 0.665 for the single-shot engine's 0.553, 0.9475 for the
    cascade's 0.93); weaker matches need the vote's agreement.
    shot_change: the cut detector's settings (None: its defaults).
    """

    def __init__(
        self,
        gallery: Gallery | None,
        threshold: float | None = None,
        *,
        engine=None,
        model_id: str | None = None,
        margin: float | None = None,
        tracker: TrackerConfig | None = None,
        voting: VoteConfig | None = None,
        keep_finished: int = 10_000,
        confident: float = 0.25,
        shot_change: ShotChangeConfig | None = None,
    ):
        self.gallery = gallery
        self.model_id = model_id or (engine.info.model_id if engine is not None else None)
        if threshold is None:
            threshold = default_threshold(engine.info.engine) if engine is not None else (
                gallery.threshold if gallery is not None else None)
        self.threshold = threshold
        self.margin = margin
        self._tuned_tracker = tracker is None
        self.tracker_config = tracker or TrackerConfig()
        self._tune_tracker()
        self.vote_config = voting or VoteConfig()
        self.confident = float(confident)
        self.shot_change_config = shot_change or ShotChangeConfig()
        self._ids = itertools.count(1)
        self._sources: dict[str, _Source] = {}
        self._finished: deque[Appearance] = deque(maxlen=keep_finished)
        self._lock = threading.RLock()
        self._warned_missing: frozenset[int] = frozenset()
        if gallery is not None:
            if self.model_id is None:
                models = list(gallery.model_ids())
                if len(models) > 1:
                    raise ValueError(f"the gallery holds embeddings of {len(models)} models: pass engine= or model_id=")
                self.model_id = models[0] if models else None
            if self.model_id is not None:
                gallery.check_model(self.model_id)

    def _tune_tracker(self) -> None:
        """Tracker gates that follow the recognition threshold (unless a config was given)."""
        if self._tuned_tracker:
            # re-identifying a face that jumped (no overlap) takes the confidence naming takes
            self.tracker_config.reid_similarity = max(0.75, self.threshold or 0.0)
            self.tracker_config.embedding_gate = gate_for_threshold(self.threshold, chance_for_model(self.model_id))

    def is_confident(self, similarity: float) -> bool:
        """A similarity that names a track from one frame: past the threshold by `confident`."""
        threshold = self.threshold if self.threshold is not None else (
            self.gallery.threshold if self.gallery is not None else 1.0)
        return bool(np.isfinite(similarity)) and similarity >= threshold + self.confident * (1.0 - threshold)

    def __call__(self, frame: Frame, faces: Faces) -> Faces:
        """Track and name `faces` found in `frame`; returns a copy with `track_ids` (-1 while a
        track is tentative or for an unsure detection that continues no track), `names`
        (None = unknown), `similarities` (to the shown name; for unknown faces the best
        match's, for detail views only), `extra["doubtful"]` (named, but the latest frame
        disagreed), `extra["agreement"]` (cosine to the track's embedding before this frame,
        NaN for a track's first frame), `extra["sure"]` (score past the tracker's `high_score`)
        and `extra["agreement_min"]` set."""
        now = frame_time(frame)
        n = len(faces)
        matches = self._match(faces)
        with self._lock:
            source = self._sources.get(frame.source_id)
            if source is None:
                source = self._sources[frame.source_id] = _Source(
                    frame.source_id, Tracker(self.tracker_config, ids=self._ids),
                    ShotChangeDetector(self.shot_change_config))
            if source.shots.update(frame.image):
                for track in source.tracker.close_all():
                    self._end(source, track)
            tracks = source.tracker.update(faces.boxes, faces.embeddings, frame.index, faces.scores)
            track_ids = np.full(n, -1, np.int64)
            names: list[str | None] = [None] * n
            sims = np.full(n, np.nan, np.float32)
            weights = np.zeros(n, np.float32)
            doubtful = np.zeros(n, bool)
            agreement = np.full(n, np.nan, np.float32)
            for i, track in enumerate(tracks):
                quality = assess(frame.image, faces.boxes[i], faces.landmarks[i], float(faces.scores[i]))
                weights[i] = w = quality.weight
                if track is None:  # an unsure detection that continued no track
                    if matches is not None:
                        sims[i] = float(matches.similarities[i])
                    continue
                state = source.states.get(track.key)
                if state is None:
                    state = source.states[track.key] = _TrackState(IdentityVote(self.vote_config), now, frame.index)
                    source.tracks[track.key] = track
                frame_name = matches.names[i] if matches is not None else None
                frame_sim = float(matches.similarities[i]) if matches is not None else float("nan")
                held = state.vote.name
                supports = (held is not None and matches is not None
                            and matches.similarity_to(i, held) >= self.tracker_config.embedding_gate)
                shown = state.vote.add(frame_name, frame_sim, w, self.is_confident(frame_sim) and frame_name is not None,
                                       supports)
                doubtful[i] = state.vote.doubtful
                agreement[i] = track.agreement if track.last_frame == frame.index else np.nan
                state.last_time, state.last_frame = now, frame.index
                state.observations += 1
                if w > state.best_quality:
                    state.best_quality = w
                    state.best_crop = storage_crop(frame.image, faces.boxes[i], faces.landmarks[i]).image
                if faces.embeddings is not None:
                    e = faces.embeddings[i].astype(np.float64) * w
                    state.embedding_sum = e if state.embedding_sum is None else state.embedding_sum + e
                track_ids[i] = track.id
                names[i] = shown
                if matches is not None:
                    sims[i] = matches.similarity_to(i, shown) if shown is not None else frame_sim
            for track in source.tracker.pop_removed():
                self._end(source, track)
        out = replace(faces, track_ids=track_ids, names=names, similarities=sims, extra=dict(faces.extra))
        out.extra["quality"] = weights
        out.extra["doubtful"] = doubtful
        # enrolment takes crops only where the face is surely a face and surely the track's person
        out.extra["agreement"] = agreement
        out.extra["sure"] = np.asarray(faces.scores) >= self.tracker_config.high_score
        out.extra["agreement_min"] = self.agreement_min()
        return out

    def agreement_min(self) -> float:
        """The cosine a face must have to its track's embedding to count as the same person
        for enrolment: the recognition threshold (the gate is looser: it only keeps people apart)."""
        threshold = self.threshold if self.threshold is not None else (
            self.gallery.threshold if self.gallery is not None else self.tracker_config.embedding_gate)
        return float(threshold)

    def events(self) -> list[Appearance]:
        """Finished appearances (oldest first) followed by the ongoing ones (`ongoing=True`)."""
        with self._lock:
            out = list(self._finished)
            for source in self._sources.values():
                for key, state in source.states.items():
                    track = source.tracks[key]
                    if track.confirmed:
                        out.append(state.appearance(track, source.source_id, ongoing=True, model_id=self.model_id))
            return out

    def pop_finished(self) -> list[Appearance]:
        """Finished appearances since the last call, removed from memory (for writing logs)."""
        with self._lock:
            out = list(self._finished)
            self._finished.clear()
            return out

    def revote(self) -> None:
        """Forget every live track's name vote, so the next frame's gallery decision shows at
        once: after the threshold or the gallery changed (an enrolment, a rename). Tracks,
        their crops and embeddings stay."""
        with self._lock:
            self._tune_tracker()
            for source in self._sources.values():
                for state in source.states.values():
                    state.vote = IdentityVote(self.vote_config)

    def finish(self) -> None:
        """End every live track (end of a file, source closed): they become finished appearances."""
        with self._lock:
            for source in self._sources.values():
                for track in source.tracker.close_all():
                    self._end(source, track)
            self._sources.clear()

    def _end(self, source: _Source, track: Track) -> None:
        state = source.states.pop(track.key, None)
        source.tracks.pop(track.key, None)
        if state is not None and track.confirmed:
            self._finished.append(state.appearance(track, source.source_id, ongoing=False,
                                                  model_id=self.model_id))

    def _match(self, faces: Faces) -> Matches | None:
        if self.gallery is None or faces.embeddings is None:
            return None
        if self.model_id is None:  # an empty gallery and no engine given: adopt the first model enrolled
            models = list(self.gallery.model_ids())
            if len(models) != 1:
                return None
            self.model_id = models[0]
        matches = self.gallery.match(faces.embeddings, self.model_id, threshold=self.threshold, margin=self.margin,
                                     allow_missing=True)
        missing = self.gallery.matcher(self.model_id).missing
        if missing:
            ids = frozenset(sid for sid, _ in missing)
            if ids != self._warned_missing:  # say it once per change, never skip silently
                self._warned_missing = ids
                log.warning("%d gallery samples (%s) have no embedding from model %s and are not matched: "
                            "reopen the gallery with this engine to re-embed them", len(missing),
                            ", ".join(sorted({n for _, n in missing})[:5]), self.model_id)
        return matches


def frame_time(frame: Frame) -> float:
    """The time an event is stamped with: media time when the source has one, else capture time."""
    return frame.media_time if frame.media_time is not None else frame.capture_time

