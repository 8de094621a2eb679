"""Where Unisight's code and caches are, for every layer: the repository and the per-user cache
(exported ONNX, TensorRT engines, label caches). `app.paths` adds the user's data and samples."""
from __future__ import annotations

import os
from pathlib import Path

APP_NAME = "unisight"
REPO_ROOT = Path(__file__).resolve().parent.parent


def user_cache_dir() -> Path:
    """Per-user cache folder (exported ONNX, TensorRT engines); UNISIGHT_CACHE overrides it."""
    if os.environ.get("UNISIGHT_CACHE"):
        return Path(os.environ["UNISIGHT_CACHE"])
    import platformdirs  # only when no override is set: headless runs (the GPU check) may lack it

    return Path(platformdirs.user_cache_dir(APP_NAME))
