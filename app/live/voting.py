"""One name per track, from the frames' gallery decisions: named as soon as the evidence is
there, doubted at the first frame that disagrees, dropped when frames keep disagreeing.

- Unnamed track: a frame that names someone with confidence (similarity past the threshold
  by a margin the caller judges) names the track at once; a frame that merely passes the
  threshold names it when `agree` of the last `agree_window` usable frames say the same name.
- Named track: a usable frame that names nobody but is still close to the name (the caller's
  `supports`: similarity above its hold level, under the threshold) makes the name doubtful
  (drawn differently, the name kept); a frame that names someone else, or is far from the
  name, disagrees: doubtful too, and `drop_after` disagreeing frames in a row drop the name
  (to the other person if the same frames already name him by the rule above, else to
  unknown). An agreeing frame clears the doubt.
- Frames of very low quality (weight below `min_quality`: tiny, blurred, turned away) are
  recorded for the whole-track verdict but neither name nor doubt anyone.
"""
from __future__ import annotations

import math
from collections import deque
from dataclasses import dataclass

UNKNOWN = None


@dataclass(slots=True)
class VoteConfig:
    """How much agreement names a track and how much disagreement drops its name."""

    agree: int = 2  # frames naming the same person ...
    agree_window: int = 3  # ... among this many recent usable frames name the track
    drop_after: int = 2  # consecutive disagreeing usable frames drop the name
    min_quality: float = 0.05  # frames below this quality weight do not vote
    unknown_weight: float = 0.6  # what an "unknown" frame weighs in the whole-track verdict

    def __post_init__(self) -> None:
        if self.agree < 1 or self.agree_window < self.agree or self.drop_after < 1:
            raise ValueError("need 1 <= agree <= agree_window and drop_after >= 1")
        if not 0 <= self.min_quality < 1:
            raise ValueError("min_quality must be in [0, 1)")


@dataclass(slots=True)
class _Observation:
    name: str | None
    similarity: float


class IdentityVote:
    """The vote of one track. Feed it with `add`; read `name`, `doubtful` and `similarity`."""

    def __init__(self, config: VoteConfig | None = None):
        self.config = config or VoteConfig()
        self._recent: deque[_Observation] = deque(maxlen=max(self.config.agree_window, self.config.drop_after))
        self._name: str | None = UNKNOWN
        self._doubtful = False
        self._disagreements = 0
        self._lifetime: dict[str | None, float] = {}
        self._best_similarity: dict[str | None, float] = {}

    @property
    def name(self) -> str | None:
        """The name shown now (None = unknown)."""
        return self._name

    @property
    def doubtful(self) -> bool:
        """The track is named but its latest usable frame disagreed."""
        return self._doubtful

    @property
    def similarity(self) -> float:
        """Mean similarity of the recent frames that named the shown name (NaN when none)."""
        sims = [o.similarity for o in self._recent if o.name == self._name and math.isfinite(o.similarity)]
        return sum(sims) / len(sims) if sims else float("nan")

    def add(self, name: str | None, similarity: float, quality: float = 1.0, confident: bool = False,
            supports: bool = False) -> str | None:
        """Record one frame's gallery decision (name or None), its similarity, the face's
        quality weight, whether the decision is confident (past the threshold by the
        caller's margin) and whether a frame that names nobody still supports the shown name
        (close to it, under the threshold); returns the name to show."""
        cfg = self.config
        sim = float(similarity) if similarity is not None else float("nan")
        evidence = cfg.unknown_weight if name is None or not math.isfinite(sim) else max(sim, 0.0)
        self._lifetime[name] = self._lifetime.get(name, 0.0) + max(0.0, float(quality)) * evidence
        if name is not None and math.isfinite(sim):
            self._best_similarity[name] = max(self._best_similarity.get(name, -1.0), sim)
        if quality < cfg.min_quality:
            return self._name
        self._recent.append(_Observation(name, sim))
        if self._name is not None and name == self._name:
            self._doubtful, self._disagreements = False, 0
        elif self._name is not None and name is None and supports:
            self._doubtful = True
        elif self._name is not None:
            self._disagreements += 1
            self._doubtful = True
            if self._disagreements >= cfg.drop_after:
                self._name, self._doubtful, self._disagreements = UNKNOWN, False, 0
                if name is not None and (confident or self._agreed(name)):
                    self._name = name
        elif name is not None and (confident or self._agreed(name)):
            self._name = name
        return self._name

    def _agreed(self, name: str) -> bool:
        window = list(self._recent)[-self.config.agree_window:]
        return sum(o.name == name for o in window) >= self.config.agree

    def overall(self) -> tuple[str | None, float | None]:
        """The name with the most weight over the whole track, and its best similarity
        (None for unknown): what the track's appearance is recorded as."""
        if not self._lifetime:
            return None, None
        name = max(self._lifetime, key=lambda k: self._lifetime[k])
        return name, (self._best_similarity.get(name) if name is not None else None)
