"""Follow faces from frame to frame: boxes matched by IoU (with a constant-velocity guess),
gated and helped by embedding similarity, solved as an assignment problem (Hungarian).

Association is ByteTrack's two stages: sure detections (score >= `high_score`) are matched
to every track first; the unsure ones left (a face half in shadow, blurred by motion) may only
continue a confirmed track that found nothing in stage 1, by overlap, and never start a
track, so a doubtful box in a dark audience does not become a person. A detection whose
embedding disagrees with a track (cosine below `embedding_gate`) never joins it: it starts
a new track instead of inheriting another person's id (and name).

One `Tracker` per video source. A new track is tentative (id -1) until it has been seen
`min_hits` times, so a one-frame false detection never gets an id; a track survives
`max_age` frames without a detection (brief occlusions, missed detections). Shot changes
are not the tracker's business: the caller ends every track at a cut (`close_all`).
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Iterator

import numpy as np
from scipy.optimize import linear_sum_assignment

from engines.faces import box_iou

_INFEASIBLE = 1e6


@dataclass(slots=True)
class TrackerConfig:
    """How strict the tracker is; frames are counted in tracker updates (or frame indices)."""

    max_age: int = 15  # frames a track survives unseen
    min_hits: int = 3  # detections before a track is confirmed and gets an id
    iou_gate: float = 0.1  # below this overlap a pair matches only by re-identification
    embedding_gate: float = 0.3  # below this cosine a pair never matches (other person); the
    # Recognizer sets it from the engine's recognition threshold (`gate_for_threshold`)
    embedding_weight: float = 0.5  # cost = (1 - w)(1 - IoU) + w (1 - cos) when both have embeddings
    reid_similarity: float = 0.75  # cosine that lets a pair match without overlap (fast motion);
    # set it to the recognition threshold: embeddings such as dlib's give different people ~0.85
    reid_max_jump: float = 2.0  # ... if its centre moved at most this many box sizes
    reid_max_scale: float = 2.0  # ... and its size changed by at most this factor (not a scene cut)
    embedding_momentum: float = 0.8  # track embedding = m * old + (1 - m) * new
    high_score: float = 0.85  # detections at least this sure are matched first and may start tracks
    low_iou_gate: float = 0.3  # an unsure detection continues a track only with this much overlap
    anchor_frames: int = 5  # a track's anchor (who it is) is its first this many sure embeddings;
    # unlike the running embedding it cannot drift with the track onto a background

    def __post_init__(self) -> None:
        if self.max_age < 0 or self.min_hits < 1:
            raise ValueError("max_age must be >= 0 and min_hits >= 1")
        if not 0 <= self.embedding_weight <= 1 or not 0 <= self.embedding_momentum < 1:
            raise ValueError("embedding_weight must be in [0, 1] and embedding_momentum in [0, 1)")


@dataclass(slots=True, eq=False)
class Track:
    """One face followed over time. `id` is -1 until confirmed; `key` is unique from creation."""

    key: int
    box: np.ndarray  # (4,) last observed box
    last_frame: int
    id: int = -1
    velocity: np.ndarray = field(default_factory=lambda: np.zeros(4, np.float64))
    embedding: np.ndarray | None = None  # running mean, unit length
    hits: int = 1
    anchor: np.ndarray | None = None  # sum of the first `anchor_frames` sure embeddings: who the track is
    anchor_count: int = 0
    agreement: float = float("nan")  # cosine of the latest detection to the anchor (NaN: none yet)
    misses: int = 0  # consecutive frames unseen

    @property
    def confirmed(self) -> bool:
        return self.id >= 0

    def predicted_box(self, frame: int) -> np.ndarray:
        """Where the box should be at `frame`, moving at its recent velocity."""
        return self.box + self.velocity * max(0, frame - self.last_frame)


class Tracker:
    """Assigns a stable track to every detection of one source, frame after frame."""

    def __init__(self, config: TrackerConfig | None = None, ids: Iterator[int] | None = None):
        self.config = config or TrackerConfig()
        self._ids = ids if ids is not None else itertools.count(1)
        self._keys = itertools.count(1)
        self._tracks: list[Track] = []
        self._removed: list[Track] = []
        self._frame = -1
        self._updates = 0  # frames seen

    @property
    def tracks(self) -> list[Track]:
        """Live tracks, tentative ones included."""
        return list(self._tracks)

    def update(self, boxes: np.ndarray, embeddings: np.ndarray | None = None, frame: int | None = None,
               scores: np.ndarray | None = None) -> list[Track | None]:
        """Match this frame's detections to tracks; returns, per detection in order, its `Track`,
        or None for an unsure detection that continued no track (it gets no track at all).

        boxes: (n, 4) x1 y1 x2 y2; embeddings: (n, 128) unit vectors or None;
        frame: the frame index (gaps from dropped frames scale the motion guess);
        scores: (n,) detection scores (None: every detection is sure)."""
        cfg = self.config
        frame = self._frame + 1 if frame is None else int(frame)
        self._frame = frame
        self._updates += 1
        boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
        n = len(boxes)
        if embeddings is not None:
            embeddings = np.asarray(embeddings, np.float64)
            embeddings = embeddings.reshape(n, embeddings.shape[-1] if embeddings.ndim > 1 else -1)
        sure = np.ones(n, bool) if scores is None else np.asarray(scores, np.float64).reshape(n) >= cfg.high_score
        assigned: list[Track | None] = [None] * n
        matched_tracks: set[int] = set()
        if self._tracks and n:
            cost = self._cost(boxes, embeddings, frame)
            # stage 1: sure detections against every track
            stage1 = np.where(cost < _INFEASIBLE, cost, _INFEASIBLE)
            stage1[:, ~sure] = _INFEASIBLE
            self._assign(stage1, assigned, matched_tracks)
            # stage 2: unsure detections continue confirmed tracks left over, by overlap only
            if (~sure).any():
                predicted = np.stack([t.predicted_box(frame) for t in self._tracks])
                iou = box_iou(predicted, boxes)
                stage2 = np.where((cost < _INFEASIBLE) & (iou >= cfg.low_iou_gate), 1.0 - iou, _INFEASIBLE)
                stage2[:, sure] = _INFEASIBLE
                for r, track in enumerate(self._tracks):
                    if r in matched_tracks or not track.confirmed:
                        stage2[r] = _INFEASIBLE
                self._assign(stage2, assigned, matched_tracks)
        survivors = []
        for r, track in enumerate(self._tracks):
            if r in matched_tracks:
                continue
            track.misses += 1
            # a tentative track must be seen in consecutive frames; a confirmed one may wait
            if not track.confirmed or track.misses > cfg.max_age:
                self._removed.append(track)
            else:
                survivors.append(track)
        keep = {id(t) for t in survivors} | {id(self._tracks[r]) for r in matched_tracks}
        self._tracks = [t for t in self._tracks if id(t) in keep]
        for i in range(n):
            emb = None if embeddings is None else embeddings[i]
            track = assigned[i]
            if track is None:
                if not sure[i]:
                    continue
                track = Track(key=next(self._keys), box=boxes[i].copy(), last_frame=frame,
                              embedding=None if emb is None else _unit(emb),
                              anchor=None if emb is None else _unit(emb), anchor_count=0 if emb is None else 1)
                self._tracks.append(track)
                assigned[i] = track
            else:  # an unsure detection moves the box but does not teach the track its look
                self._observe(track, boxes[i], emb if sure[i] else None, frame, emb)
            if not track.confirmed and track.hits >= cfg.min_hits:
                track.id = next(self._ids)
        return assigned

    def _assign(self, cost: np.ndarray, assigned: list[Track | None], matched_tracks: set[int]) -> None:
        """Hungarian assignment of `cost` (tracks x detections); infeasible pairs stay apart."""
        if not (cost < _INFEASIBLE).any():
            return
        rows, cols = linear_sum_assignment(cost)
        for r, c in zip(rows, cols):
            if cost[r, c] < _INFEASIBLE and r not in matched_tracks and assigned[c] is None:
                assigned[c] = self._tracks[r]
                matched_tracks.add(r)

    def pop_removed(self) -> list[Track]:
        """Tracks dropped since the last call (confirmed ones are finished appearances)."""
        removed, self._removed = self._removed, []
        return removed

    def close_all(self) -> list[Track]:
        """End every live track; returns them (and any not yet popped removals). When the
        source ended before any track could reach `min_hits` (a clip of one or two frames),
        the faces seen in every one of its frames are confirmed: they are all there is."""
        if self._updates < self.config.min_hits:
            for track in self._tracks:
                if not track.confirmed and track.hits == self._updates:
                    track.id = next(self._ids)
        removed = self.pop_removed() + self._tracks
        self._tracks = []
        return removed

    def _observe(self, track: Track, box: np.ndarray, emb: np.ndarray | None, frame: int,
                 seen: np.ndarray | None = None) -> None:
        dt = max(1, frame - track.last_frame)
        step = (box - track.box) / dt
        track.velocity = step if track.hits == 1 else 0.5 * track.velocity + 0.5 * step
        track.box = box.copy()
        track.last_frame = frame
        track.hits += 1
        track.misses = 0
        track.agreement = float("nan")
        seen = emb if seen is None else seen
        if seen is not None and track.anchor is not None:
            track.agreement = float(_unit(track.anchor) @ _unit(seen))
        if emb is not None and track.anchor_count < self.config.anchor_frames:
            track.anchor = _unit(emb) if track.anchor is None else track.anchor + _unit(emb)
            track.anchor_count += 1
        if emb is not None:
            m = self.config.embedding_momentum
            track.embedding = _unit(emb) if track.embedding is None else _unit(m * track.embedding + (1 - m) * _unit(emb))

    def _cost(self, boxes: np.ndarray, embeddings: np.ndarray | None, frame: int) -> np.ndarray:
        cfg = self.config
        predicted = np.stack([t.predicted_box(frame) for t in self._tracks])
        iou = box_iou(predicted, boxes)
        cost = 1.0 - iou
        feasible = iou >= cfg.iou_gate
        if embeddings is not None:
            track_embs = np.stack([t.embedding if t.embedding is not None else np.zeros(embeddings.shape[1])
                                   for t in self._tracks])
            has = np.array([t.embedding is not None for t in self._tracks])
            cos = track_embs @ (embeddings / np.maximum(np.linalg.norm(embeddings, axis=1, keepdims=True), 1e-12)).T
            w = cfg.embedding_weight
            mixed = (1 - w) * (1 - iou) + w * (1 - cos)
            cost = np.where(has[:, None], mixed, cost)
            size = np.maximum(predicted[:, 2:] - predicted[:, :2], 1.0).max(axis=1)
            det_size = np.maximum(boxes[:, 2:] - boxes[:, :2], 1.0).max(axis=1)
            jump = np.linalg.norm(_centres(predicted)[:, None] - _centres(boxes)[None], axis=2) / size[:, None]
            scale = np.maximum(det_size[None] / size[:, None], size[:, None] / det_size[None])
            reid = (has[:, None] & (cos >= cfg.reid_similarity) & (jump <= cfg.reid_max_jump)
                    & (scale <= cfg.reid_max_scale))
            feasible = (feasible | reid) & ~(has[:, None] & (cos < cfg.embedding_gate))
        return np.where(feasible, cost, _INFEASIBLE)


def gate_for_threshold(threshold: float | None, chance: float | None = None) -> float:
    """The embedding gate that goes with a recognition threshold (cosine): half way from the
    threshold towards chance, the mean cosine of two different people (`chance`; when unknown,
    2 threshold - 1, so the gate is threshold - 0.5 (1 - threshold)). The single-shot model
    (0.553) gets 0.33: 99% of its same-track frame pairs on the sample clip are above 0.45, the
    two people a cut joined there were 0.29 apart. mtcnn-dlib (0.93) gets 0.895: dlib scores
    different people ~0.85, its same-track pairs are above 0.90 in 99% of frames. The cascade
    (SFace, 0.34; different LFW people 0.082 on average) gets 0.21."""
    if threshold is None:
        return TrackerConfig().embedding_gate
    threshold = float(threshold)
    chance = 2 * threshold - 1 if chance is None else float(chance)
    return max(0.0, threshold - 0.5 * (threshold - chance))


def _centres(boxes: np.ndarray) -> np.ndarray:
    return (boxes[:, :2] + boxes[:, 2:]) / 2


def _unit(v: np.ndarray) -> np.ndarray:
    v = np.asarray(v, np.float64)
    return v / max(float(np.linalg.norm(v)), 1e-12)
