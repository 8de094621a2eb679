"""Loading the network with its weights, and naming the weights (the model id)."""
from __future__ import annotations

import hashlib
import logging
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from engines.model.config import get_config
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
        )
    elif weights is not None:
        raise FileNotFoundError(f"weights file not found: {path}")
    else:
        torch.manual_seed(RANDOM_SEED)
        model = Uniface(cfg)
        log.warning(RANDOM_WEIGHTS_WARNING.format(config=config_name, path=path))
        meta = ModelMeta(config_name, f"uniface-{config_name}-random", True, None)
    return model.eval(), meta


def publish_weights(checkpoint: Path, out: Path | None = None) -> ModelMeta:
    """Write a training checkpoint as shippable weights: config, state dict and a summary of
    how it was trained; no optimizer state. Written to a temporary file, then renamed.
    out: None means the shipped path of the checkpoint's own configuration."""
    ckpt = torch.load(checkpoint, map_location="cpu", weights_only=False)
    if "state_dict" not in ckpt or "config" not in ckpt:
        raise ValueError(f"{checkpoint} is not a training checkpoint (no state_dict/config)")
    settings = ckpt.get("settings", {})
    trained = "; ".join(
        part for part in (
            f"step {ckpt.get('step')}" if "step" in ckpt else "",
            f"validation {ckpt['val']}" if "val" in ckpt else "",
            f"canvas {settings.get('canvas')}, batch {settings.get('batch')}, lr {settings.get('lr')}, "
            f"sets {settings.get('sets') or 'all'}" if settings else "",
        ) if part
    )
    state = {k: v.detach().cpu().float() if v.is_floating_point() else v.detach().cpu()
             for k, v in ckpt["state_dict"].items()}
    payload = {"config": ckpt["config"], "state_dict": state, "trained": trained}
    if "teacher_mean" in ckpt:
        payload["teacher_mean"] = [float(v) for v in ckpt["teacher_mean"]]
    out = Path(out) if out is not None else default_weights(ckpt["config"])
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    torch.save(payload, tmp)
    tmp.replace(out)
    _, meta = load_model(ckpt["config"], out)
    return meta
