"""Finding or making the ONNX file for a configuration and its weights."""
from __future__ import annotations

import logging
from pathlib import Path

from engines.model.weights import default_weights

log = logging.getLogger(__name__)


def shipped_onnx(config_name: str) -> Path:
    """The ONNX exported from the shipped weights, committed beside them."""
    return default_weights(config_name).with_suffix(".onnx")


def resolve_onnx(config_name: str, weights: Path | None, cache_dir: Path | None) -> tuple[Path, dict]:
    """Path of an ONNX graph for these weights and its metadata (model id, random or not,
    detection threshold), as strings.

    The shipped graph is used as is; other weights (or none: random) are exported once
    into `cache_dir/onnx/` under their model id and the exporter's version, and their metadata
    is read from the weights themselves: the model id names the parameters only, so a cached
    export may carry an older detection threshold of the same parameters.
    """
    if weights is None and shipped_onnx(config_name).exists() and default_weights(config_name).exists():
        path = shipped_onnx(config_name)
    else:
        from engines.model.export import EXPORT_VERSION, export_onnx
        from engines.model.weights import load_model

        _, meta = load_model(config_name, weights)
        if cache_dir is None:
            raise ValueError("a cache folder is needed to export these weights to ONNX")
        path = Path(cache_dir) / "onnx" / f"{meta.model_id}.export{EXPORT_VERSION}.onnx"
        if not path.exists():
            log.info("exporting %s to %s (once)", meta.model_id, path)
            export_onnx(config_name, weights, path)
        return path, {key: str(value) for key, value in meta.as_dict().items()}
    return path, onnx_metadata(path)


def onnx_metadata(path: Path) -> dict[str, str]:
    """An ONNX file's `unisight.*` metadata (model id, random weights, detection threshold, ...),
    prefix dropped, as `export_onnx` wrote it."""
    import onnx

    props = onnx.load(str(path), load_external_data=False).metadata_props
    return {p.key.removeprefix("unisight."): p.value for p in props if p.key.startswith("unisight.")}
