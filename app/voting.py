"""One name per track, decided by a weighted vote over its recent observations.

Each observation votes for the name the gallery gave that frame (or for "unknown") with
weight = face quality x similarity (unknown votes count `unknown_weight` instead of a
similarity). The shown name changes only when another name out-votes it by `switch_ratio`
with at least `min_switch_observations` votes in the window, so names do not flicker and a
single bad frame renames nobody.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

UNKNOWN = None


@dataclass(slots=True)
class VoteConfig:
    """How the vote weighs and how sticky the current name is."""

    window: int = 30  # observations in the sliding window
    switch_ratio: float = 1.25  # a challenger needs this x the current name's score
    min_switch_observations: int = 3  # ... and at least this many votes in the window
    unknown_weight: float = 0.6  # what an "unknown" frame weighs in place of a similarity

    def __post_init__(self) -> None:
        if self.window < 1 or self.min_switch_observations < 1:
            raise ValueError("window and min_switch_observations must be >= 1")
        if self.switch_ratio < 1:
            raise ValueError("switch_ratio must be >= 1")


@dataclass(slots=True)
class _Observation:
    name: str | None
    similarity: float
    weight: float


class IdentityVote:
    """The vote of one track. Feed it with `add`; read `name` and `similarity`."""

    def __init__(self, config: VoteConfig | None = None):
        self.config = config or VoteConfig()
        self._window: deque[_Observation] = deque(maxlen=self.config.window)
        self._name: str | None = UNKNOWN
        self._started = False
        self._lifetime: dict[str | None, float] = {}
        self._best_similarity: dict[str | None, float] = {}

    @property
    def name(self) -> str | None:
        """The name shown now (None = unknown)."""
        return self._name

    @property
    def similarity(self) -> float:
        """Mean similarity of the window's votes for the shown name (NaN when there are none)."""
        sims = [o.similarity for o in self._window if o.name == self._name and math.isfinite(o.similarity)]
        return sum(sims) / len(sims) if sims else float("nan")

    def add(self, name: str | None, similarity: float, quality: float = 1.0) -> str | None:
        """Record one frame's gallery decision (name or None) with its similarity and the
        face's quality weight; returns the name to show."""
        cfg = self.config
        sim = float(similarity) if similarity is not None else float("nan")
        evidence = cfg.unknown_weight if name is None or not math.isfinite(sim) else max(sim, 0.0)
        weight = max(0.0, float(quality)) * evidence
        self._window.append(_Observation(name, sim, weight))
        self._lifetime[name] = self._lifetime.get(name, 0.0) + weight
        if name is not None and math.isfinite(sim):
            self._best_similarity[name] = max(self._best_similarity.get(name, -1.0), sim)
        if not self._started:
            self._started = True
            self._name = name
            return self._name
        scores: dict[str | None, float] = {}
        counts: dict[str | None, int] = {}
        for o in self._window:
            scores[o.name] = scores.get(o.name, 0.0) + o.weight
            counts[o.name] = counts.get(o.name, 0) + 1
        leader = max(scores, key=lambda k: scores[k])
        if (
            leader != self._name
            and counts[leader] >= cfg.min_switch_observations
            and scores[leader] >= cfg.switch_ratio * scores.get(self._name, 0.0)
            and scores[leader] > 0
        ):
            self._name = leader
        return self._name

    def overall(self) -> tuple[str | None, float | None]:
        """The name with the most weight over the whole track, and its best similarity
        (None for unknown): what the track's appearance is recorded as."""
        if not self._lifetime:
            return None, None
        name = max(self._lifetime, key=lambda k: self._lifetime[k])
        return name, (self._best_similarity.get(name) if name is not None else None)
