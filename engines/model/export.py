"""Export the whole Uniface graph (decoding, NMS and ROI pooling included) to one ONNX file."""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import torch

from engines.model.weights import load_model

log = logging.getLogger(__name__)

INPUT_NAMES = ["images", "score_threshold", "max_faces"]
OUTPUT_NAMES = ["boxes", "scores", "landmarks", "embeddings", "count"]
OPSET = 17
# Bumped whenever the exported graph changes for the same weights: cached exports are keyed by it.
EXPORT_VERSION = 7


def export_onnx(config_name: str, weights: Path | None, out: Path, batch: int = 2) -> Path:
    """Write the graph for `config_name` with `weights` (None = seeded random) to `out`.

    Batch, height and width stay dynamic; the file is written to a temporary name and
    renamed, so a crash never leaves a half-written model behind.
    """
    import onnx

    model, meta = load_model(config_name, weights)
    w, h = model.cfg.input_size
    # Traced with every face slot valid (threshold -1) and two images: a trace where some size
    # happens to be 1 (a trained model finds no face in a blank image: one throwaway ROI) lets
    # the exporter bake that size into Reshape nodes, and the graph then fails on real frames.
    example = (
        torch.zeros(batch, h, w, 3, dtype=torch.uint8),
        torch.tensor([-1.0], dtype=torch.float32),
        torch.tensor([model.cfg.max_faces], dtype=torch.int32),
    )
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
        warnings.simplefilter("ignore")  # tracer chatter about shape-dependent Python values
        torch.onnx.export(
            model,
            example,
            str(tmp),
            dynamo=False,
            opset_version=OPSET,
            input_names=INPUT_NAMES,
            output_names=OUTPUT_NAMES,
            dynamic_axes={
                "images": {0: "batch", 1: "height", 2: "width"},
                **{name: {0: "batch"} for name in OUTPUT_NAMES},
            },
        )
    proto = onnx.load(str(tmp))
    onnx.checker.check_model(proto)
    for key, value in meta.as_dict().items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = f"unisight.{key}", str(value)
    onnx.save(proto, str(tmp))
    tmp.replace(out)
    log.info("exported %s (%s) to %s", config_name, meta.model_id, out)
    return out
