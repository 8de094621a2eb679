"""A run's resumable state in a file small enough to commit, so a run survives a fresh machine.

A session's machine is kept for the next session only while it is not left unused for long: on
2026-12-07 the long run's `runs/student_mnv2face` (step ~14,000 of 30,000, three sessions of
this CPU) was gone with the machine it was on. Git is the only store a later session is sure to
get, so `train --carried FILE` writes this file beside every `last.pt` and starts from it when
it holds a later step than `last.pt` (or `last.pt` is missing).

What it keeps of `last.pt`, and at what precision:
- the trained weights and the weight average in float16: rounding moves a weight by < 5e-4 of
  itself, well under one Adam step at the run's learning rates;
- AdamW's second moments in bfloat16 (float16 would flush their 1e-10-sized entries to zero);
- not the first moments: with beta1 = 0.9 they are rebuilt within ~10 steps, and a resumed run
  starts them at zero, as AdamW starts any parameter (its bias correction counts from the saved
  step, so those first steps are smaller, never larger);
- the step, best score, random state, teacher mean, settings and the small training-only heads.
For the long run's network (2.1M parameters) that is ~13 MB, a third of `last.pt`.
"""
from __future__ import annotations

import os
from pathlib import Path

import torch

CARRIED_FORMAT = "unisight-carried-v1"
_WEIGHT_KEYS = ("state_dict", "train_state_dict", "hint_regressor")


def _cast(state: dict, dtype: torch.dtype) -> dict:
    return {k: v.to(dtype) if torch.is_tensor(v) and v.is_floating_point() else v for k, v in state.items()}


def compact(checkpoint: dict) -> dict:
    """The carried form of a resumable checkpoint (a `last.pt` payload)."""
    if "optimizer" not in checkpoint:
        raise ValueError("not a resumable checkpoint (no optimiser state): carry a run's last.pt")
    out = {k: v for k, v in checkpoint.items() if k not in (*_WEIGHT_KEYS, "optimizer", "identity_head")}
    for key in _WEIGHT_KEYS:
        if key in checkpoint:
            out[key] = _cast(checkpoint[key], torch.float16)
    if "identity_head" in checkpoint:
        out["identity_head"] = checkpoint["identity_head"].to(torch.float16)
    optimizer = checkpoint["optimizer"]
    out["optimizer"] = {
        "param_groups": optimizer["param_groups"],
        "state": {index: {"step": s["step"], "exp_avg_sq": s["exp_avg_sq"].to(torch.bfloat16)}
                  for index, s in optimizer["state"].items()},
    }
    out["format"] = CARRIED_FORMAT
    return out


def expand(carried: dict) -> dict:
    """A resumable checkpoint from its carried form: float32 again, first moments at zero."""
    if carried.get("format") != CARRIED_FORMAT:
        raise ValueError(f"not a carried run state (format {carried.get('format')!r}, expected {CARRIED_FORMAT!r})")
    out = {k: v for k, v in carried.items() if k not in (*_WEIGHT_KEYS, "optimizer", "identity_head", "format")}
    for key in _WEIGHT_KEYS:
        if key in carried:
            out[key] = _cast(carried[key], torch.float32)
    if "identity_head" in carried:
        out["identity_head"] = carried["identity_head"].to(torch.float32)
    state = {}
    for index, s in carried["optimizer"]["state"].items():
        second = s["exp_avg_sq"].to(torch.float32)
        state[index] = {"step": s["step"], "exp_avg": torch.zeros_like(second), "exp_avg_sq": second}
    out["optimizer"] = {"param_groups": carried["optimizer"]["param_groups"], "state": state}
    return out


def write_carried(checkpoint: dict, path: Path) -> None:
    """Write the carried form of `checkpoint` to `path` atomically (a stop never leaves half a file)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.save(compact(checkpoint), tmp)
    os.replace(tmp, path)


def read_carried(path: Path) -> dict:
    """The resumable checkpoint a carried file holds (see `expand`)."""
    return expand(torch.load(path, map_location="cpu", weights_only=False))

