"""What a training run has cost so far, carried in its checkpoints for the model card.

The model card states a run's schedule in presentations and CPU/GPU hours. The training log
(`train.jsonl`) lives in the run folder, which a fresh machine does not have, so the run's
checkpoints (and with them the committed carried state, `carried_state`) hold the running totals.
A run resumed from a checkpoint without them (older runs) counts from that step: `since_step`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class ComputeLedger:
    """Running totals of a training run from `since_step` on."""

    since_step: int = 0  # the step the counting began at (0: the run's whole history)
    canvases: int = 0  # full-image canvases trained on (the detection stream)
    views: int = 0  # stored face views trained on (the recognition stream)
    seconds: dict[str, float] = field(default_factory=dict)  # wall seconds in the training loop, by device kind

    @classmethod
    def from_checkpoint(cls, checkpoint: dict | None) -> "ComputeLedger":
        """The ledger a checkpoint carries; a fresh one counting from its step if it has none
        (from step 0 without a checkpoint)."""
        checkpoint = checkpoint or {}
        saved = checkpoint.get("ledger")
        if saved is None:
            return cls(since_step=checkpoint.get("step", 0))
        return cls(saved["since_step"], saved["canvases"], saved["views"], dict(saved["seconds"]))

    def add(self, device: str, seconds: float, canvases: int, views: int) -> None:
        """Count a stretch of training on `device` (its kind: "cpu", "cuda", ...)."""
        self.seconds[device] = self.seconds.get(device, 0.0) + seconds
        self.canvases += canvases
        self.views += views

    def as_dict(self) -> dict:
        """Plain types, for a checkpoint."""
        return asdict(self)

    def summary(self) -> str:
        """One line for the log: hours by device and presentations since `since_step`."""
        hours = ", ".join(f"{kind} {s / 3600:.2f} h" for kind, s in sorted(self.seconds.items())) or "0 h"
        return (f"{hours}, {self.canvases:,} canvases + {self.views:,} views"
                f"{f' since step {self.since_step:,}' if self.since_step else ''}")
