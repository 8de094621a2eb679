"""Loading the network with its weights, and naming the weights (the model id)."""
from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import torch

from engines.model.config import get_config
from engines.model.detection_threshold import DEFAULT_DETECTION_THRESHOLD, checked_detection_threshold
from engines.model.network import Uniface

log = logging.getLogger(__name__)

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
RANDOM_SEED = 0
RANDOM_WEIGHTS_WARNING = (
    "RANDOM WEIGHTS: no trained model for config {config!r} was found ({path}); "
    "faces and names from this engine are meaningless until a model is trained"
)


@dataclass(frozen=True, slots=True)
class ModelMeta:
    """Which network and weights: the model id tags every gallery embedding."""

    config: str
    model_id: str
    random_weights: bool
    weights_path: str | None
    trained: str = ""  # free text from the training run (data, steps, date)
    detection_threshold: float = DEFAULT_DETECTION_THRESHOLD  # the score a face must beat by default

    def as_dict(self) -> dict:
        return asdict(self)


def default_weights(config_name: str) -> Path:
    """Where the shipped weights of a configuration live (they may not exist yet)."""
    return WEIGHTS_DIR / f"uniface_{config_name}.pt"


def state_dict_digest(state: dict[str, torch.Tensor]) -> str:
    """A short hash of the parameter values, independent of file format and device."""
    h = hashlib.sha256()
    for name in sorted(state):
        h.update(name.encode())
        h.update(state[name].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


def load_model(config_name: str, weights: Path | None = None) -> tuple[Uniface, ModelMeta]:
    """The network in eval mode with its weights, and their metadata.

    weights: a checkpoint path; None means the shipped weights if present, else a
    seeded random initialisation (logged loudly, and flagged in the metadata).
    """
    cfg = get_config(config_name)
    path = Path(weights) if weights is not None else default_weights(config_name)
    model = Uniface(cfg)
    if path.exists():
        ckpt = torch.load(path, map_location="cpu", weights_only=True)
        state = ckpt.get("state_dict", ckpt)
        if ckpt.get("config", config_name) != config_name:
            raise ValueError(f"{path} holds weights for config {ckpt['config']!r}, not {config_name!r}")
        model.load_state_dict(state)
        meta = ModelMeta(
            config=config_name,
            model_id=f"uniface-{config_name}-{state_dict_digest(model.state_dict())}",
            random_weights=False,
            weights_path=str(path),
            trained=str(ckpt.get("trained", "")),
            detection_threshold=checked_detection_threshold(
                ckpt.get("detection_threshold", DEFAULT_DETECTION_THRESHOLD), str(path)),
        )
    elif weights is not None:
        raise FileNotFoundError(f"weights file not found: {path}")
    else:
        torch.manual_seed(RANDOM_SEED)
        model = Uniface(cfg)
        log.warning(RANDOM_WEIGHTS_WARNING.format(config=config_name, path=path))
        meta = ModelMeta(config_name, f"uniface-{config_name}-random", True, None)
    return model.eval(), meta


def publish_weights(checkpoints: Path | Sequence[Path], out: Path | None = None,
                    detection_threshold: float | None = None) -> ModelMeta:
    """Write a training checkpoint as shippable weights: config, state dict and a summary of
    how it was trained; no optimizer state. Written to a temporary file, then renamed.

    Several checkpoints give their element-wise mean (a uniform "model soup", Wortsman et
    al. 2022): runs fine-tuned from the same weights with different settings can average into
    a network better than each, but not always, so evaluate the mean. They must share the
    configuration.
    out: None means the shipped path of the checkpoints' own configuration.
    detection_threshold: the default detection score for these weights, chosen for them (e.g.
    with `main.py eval agreement --min-score ...`); None keeps the one the (first) checkpoint
    carries, if any, else DEFAULT_DETECTION_THRESHOLD applies."""
    paths = [Path(checkpoints)] if isinstance(checkpoints, (str, Path)) else [Path(p) for p in checkpoints]
    if not paths:
        raise ValueError("no checkpoint given")
    ckpts = [torch.load(p, map_location="cpu", weights_only=False) for p in paths]
    for path, ckpt in zip(paths, ckpts):
        if "state_dict" not in ckpt or "config" not in ckpt:
            raise ValueError(f"{path} is not a training checkpoint (no state_dict/config)")
    configs = {c["config"] for c in ckpts}
    if len(configs) > 1:
        raise ValueError(f"cannot average checkpoints of different configurations: {', '.join(sorted(configs))}")
    config = ckpts[0]["config"]
    trained = " | ".join(_training_summary(c) for c in ckpts)
    if len(ckpts) > 1:
        trained = f"mean of {len(ckpts)} checkpoints: {trained}"
    payload = {"config": config, "state_dict": _mean_state([c["state_dict"] for c in ckpts]), "trained": trained}
    if detection_threshold is None:
        detection_threshold = ckpts[0].get("detection_threshold")
    if detection_threshold is not None:
        payload["detection_threshold"] = checked_detection_threshold(detection_threshold, "publish_weights")
    means = [torch.as_tensor(c["teacher_mean"], dtype=torch.float32) for c in ckpts if "teacher_mean" in c]
    if means:
        payload["teacher_mean"] = [float(v) for v in torch.stack(means).mean(0)]
    out = Path(out) if out is not None else default_weights(config)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(out)
    _, meta = load_model(config, out)
    return meta


def _training_summary(ckpt: dict) -> str:
    if "trained" in ckpt and "step" not in ckpt:  # published weights: keep their own summary
        return str(ckpt["trained"])
    settings = ckpt.get("settings", {})
    return "; ".join(
        part for part in (
            f"step {ckpt.get('step')}" if "step" in ckpt else "",
            f"validation {ckpt['val']}" if "val" in ckpt else "",
            f"canvas {settings.get('canvas')}, batch {settings.get('batch')}, lr {settings.get('lr')}, "
            f"sets {settings.get('sets') or 'all'}" if settings else "",
        ) if part
    )


def _mean_state(states: list[dict[str, torch.Tensor]]) -> dict[str, torch.Tensor]:
    """Element-wise mean of float tensors, on the CPU in float32; integer buffers (BatchNorm's
    batch counters) are taken from the first state."""
    names = states[0].keys()
    for state in states[1:]:
        if state.keys() != names or any(state[k].shape != states[0][k].shape for k in names):
            raise ValueError("cannot average checkpoints of differently shaped networks")
    out = {}
    for name, first in states[0].items():
        if first.is_floating_point():
            out[name] = torch.stack([s[name].detach().cpu().float() for s in states]).mean(0)
        else:
            out[name] = first.detach().cpu()
    return out
