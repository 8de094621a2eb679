"""An exponential moving average of a network's weights: what a run validates, keeps and ships.

The long run's single checkpoints swing from one evaluation to the next at batch 4: WIDER AP at
1024x768 (50 sample images) was 0.658 / 0.396 / 0.107 at step 10,000 and 0.594 / 0.346 / 0.109
at 10,500, and the plain mean of those two checkpoints' weights 0.639 / 0.385 / 0.113; the mean of
three runs that left step 10,000 together 0.651 / 0.396 / 0.124. An average of the weights along
the run (Polyak averaging, as YOLO's and timm's ModelEMA keep one) smooths that swing at the cost
of a copy of the network. Batch-norm statistics are averaged with the weights; integer buffers
are copied.
"""
from __future__ import annotations

import copy

import torch


class WeightAverage:
    """An averaged copy of `model` (`module`, in eval mode). Each `update` moves it towards the
    model by 1 - d, d = min(decay, (1 + n) / (10 + n)) after n updates: a fresh average follows
    the model closely at first, then averages over about 1 / (1 - decay) steps."""

    def __init__(self, model: torch.nn.Module, decay: float, updates: int = 0):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"the weight average's decay must be between 0 and 1 (exclusive), got {decay}")
        self.module = copy.deepcopy(model).eval().requires_grad_(False)
        self.decay = decay
        self.updates = updates

    def rate(self) -> float:
        """The share of the average kept at the next update."""
        return min(self.decay, (1 + self.updates) / (10 + self.updates))

    @torch.no_grad()
    def update(self, model: torch.nn.Module) -> None:
        d = self.rate()
        source = model.state_dict()
        for name, mean in self.module.state_dict().items():
            value = source[name].detach()
            if mean.is_floating_point():
                mean.mul_(d).add_(value.to(mean.dtype), alpha=1.0 - d)
            else:
                mean.copy_(value)
        self.updates += 1

    def state_dict(self) -> dict[str, torch.Tensor]:
        return self.module.state_dict()

    def load(self, state: dict[str, torch.Tensor], updates: int) -> None:
        """Take up an average saved at `updates` updates (a resumed run)."""
        self.module.load_state_dict(state)
        self.updates = updates
