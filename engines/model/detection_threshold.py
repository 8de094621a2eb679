"""The default detection score threshold of a model's weights, and reading one back.

No torch here: the ONNX Runtime and TensorRT backends read it from ONNX metadata.
"""
from __future__ import annotations

# A detection score threshold belongs to the weights that make the scores: where a model's real
# faces and its false positives separate depends on how it was trained (a model taught to reject
# backgrounds scores dim faces lower too). Weights may carry their own (`publish_weights`); those
# that do not use this. An earlier shipped model scored real faces ~1.0 and its false positives
# (clothing, hands, background) mostly 0.5-0.9: on 400 held-out training images, 0.9 instead of
# 0.5 removes 43% of detections the teacher does not confirm and costs 3% of the ones it does.
DEFAULT_DETECTION_THRESHOLD = 0.9


def checked_detection_threshold(value, source: str) -> float:
    """`value` as a detection threshold, which must be a number strictly between 0 and 1."""
    try:
        threshold = float(value)
    except (TypeError, ValueError):
        threshold = float("nan")
    if not 0.0 < threshold < 1.0:
        raise ValueError(f"{source}: detection threshold must be between 0 and 1 (exclusive), got {value!r}")
    return threshold


def threshold_from_metadata(meta: dict[str, str], source: str) -> float:
    """The detection threshold an ONNX file's `unisight.*` metadata carries (exports made
    before weights carried one: the default)."""
    value = meta.get("detection_threshold")
    return DEFAULT_DETECTION_THRESHOLD if value is None else checked_detection_threshold(value, source)
