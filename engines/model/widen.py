"""Function-preserving widening: start a wider configuration from a narrower one's weights.

A wider network (more channels in F_r, the top-down pathway or the landmark-attention
branches) initialised this way computes exactly what the narrow one did, so training
continues from the narrow model's accuracy instead of from scratch (Net2Net's idea,
with zero-initialised fan-in instead of copied channels). New channels keep the fresh
network's random initialisation; only the weights that would let them reach an *old*
channel are zeroed, and those receive gradients from the first step, because the new
channels' activations are not zero.
"""
from __future__ import annotations

import dataclasses

import torch

from engines.model.config import UnifaceConfig

# Fields that may grow; everything else must match, because it changes the layout of
# features or outputs. (With the ROI sizes fixed, UnifaceConfig's 512/128-D rule also
# fixes the branches' last widths, whose outputs are flattened.)
WIDTH_FIELDS = ("stem_channels", "stages", "td_channels", "fr_channels", "face_branch", "landmark_branch")


def check_widenable(narrow: UnifaceConfig, wide: UnifaceConfig) -> None:
    """Raise ValueError unless `wide` differs from `narrow` only by wider layers."""
    for f in dataclasses.fields(UnifaceConfig):
        if f.name in WIDTH_FIELDS or f.name in ("name", "extra"):
            continue
        if getattr(narrow, f.name) != getattr(wide, f.name):
            raise ValueError(f"cannot widen {narrow.name!r} into {wide.name!r}: {f.name} differs")
    if [s.blocks for s in narrow.stages] != [s.blocks for s in wide.stages]:
        raise ValueError(f"cannot widen {narrow.name!r} into {wide.name!r}: stage depths differ")
    pairs = [(narrow.stem_channels, wide.stem_channels), (narrow.td_channels, wide.td_channels),
             (narrow.fr_channels, wide.fr_channels), (narrow.face_branch[0], wide.face_branch[0]),
             (narrow.landmark_branch[0], wide.landmark_branch[0])]
    pairs += [(a.channels, b.channels) for a, b in zip(narrow.stages, wide.stages)]
    if any(b < a for a, b in pairs):
        raise ValueError(f"cannot widen {narrow.name!r} into {wide.name!r}: some layer is narrower")


def same_layout(state: dict[str, torch.Tensor], other: dict[str, torch.Tensor]) -> bool:
    """Whether two state dicts have the same tensor names and shapes (one loads into the other)."""
    return state.keys() == other.keys() and all(state[k].shape == other[k].shape for k in state)


def widen_state(narrow_state: dict[str, torch.Tensor], wide_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A state dict for the wide network: the narrow weights in the leading slice of every
    tensor, the wide network's own initialisation elsewhere, and zero for every weight
    from a new input channel to an old output channel (so old outputs are unchanged)."""
    if narrow_state.keys() != wide_state.keys():
        missing = sorted(narrow_state.keys() ^ wide_state.keys())[:3]
        raise ValueError(f"networks differ in structure, not only width (e.g. {missing})")
    out = {}
    for name, wide in wide_state.items():
        narrow = narrow_state[name]
        if narrow.shape == wide.shape:
            out[name] = narrow.clone()
            continue
        if narrow.ndim != wide.ndim or any(n > w for n, w in zip(narrow.shape, wide.shape)):
            raise ValueError(f"{name}: cannot widen {tuple(narrow.shape)} into {tuple(wide.shape)}")
        t = wide.clone()
        t[tuple(slice(0, n) for n in narrow.shape)] = narrow
        # Dense (non-depthwise) convolutions and linear layers mix channels: cut the new
        # inputs off from the old outputs. Depthwise weights are (C, 1, k, k) and never grow in dim 1.
        if t.ndim >= 2 and wide.shape[1] > narrow.shape[1]:
            t[: narrow.shape[0], narrow.shape[1]:] = 0
        out[name] = t
    return out
