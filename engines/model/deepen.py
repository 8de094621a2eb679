"""Function-preserving deepening: start a configuration with extra, identity-initialised blocks
(`UnifaceConfig.branch_residuals`, `embedding_hidden`) from the weights of one without them.

The extra blocks are residuals whose last layer starts at zero (`engines.model.layers`), so
the deeper network with the shallower one's weights computes exactly what that one did, and
training goes on from its accuracy. Only the new blocks' parameters are new; every other
tensor keeps its name and shape.
"""
from __future__ import annotations

import dataclasses

import torch

from engines.model.config import UnifaceConfig

DEPTH_FIELDS = ("branch_residuals", "embedding_hidden")  # fields that may grow


def check_deepenable(shallow: UnifaceConfig, deep: UnifaceConfig) -> None:
    """Raise ValueError unless `deep` differs from `shallow` only by added residual depth."""
    for f in dataclasses.fields(UnifaceConfig):
        if f.name in DEPTH_FIELDS or f.name in ("name", "extra"):
            continue
        if getattr(shallow, f.name) != getattr(deep, f.name):
            raise ValueError(f"cannot deepen {shallow.name!r} into {deep.name!r}: {f.name} differs")
    if deep.branch_residuals < shallow.branch_residuals:
        raise ValueError(f"cannot deepen {shallow.name!r} into {deep.name!r}: fewer branch residual blocks")
    if shallow.embedding_hidden and deep.embedding_hidden != shallow.embedding_hidden:
        raise ValueError(f"cannot deepen {shallow.name!r} into {deep.name!r}: its embedding MLP differs")


def deepen_state(shallow_state: dict[str, torch.Tensor], deep_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict for the deep network: the shallow weights under their own names, the deep
    network's own (identity) initialisation for every tensor the shallow one lacks."""
    missing = sorted(shallow_state.keys() - deep_state.keys())
    if missing:
        raise ValueError(f"the deeper network lacks tensors of the shallower one (e.g. {missing[:3]})")
    out = {}
    for name, tensor in deep_state.items():
        if name not in shallow_state:
            out[name] = tensor.clone()
            continue
        if shallow_state[name].shape != tensor.shape:
            raise ValueError(f"{name}: shape {tuple(shallow_state[name].shape)} where {tuple(tensor.shape)} is needed")
        out[name] = shallow_state[name].clone()
    return out
