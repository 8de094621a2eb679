"""Where Unisight keeps its files: bundled samples, the shipped model, user data and caches."""
from __future__ import annotations

import os
from pathlib import Path

import platformdirs

APP_NAME = "unisight"
REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE_IMAGE = REPO_ROOT / "docs" / "samples" / "astronaut.jpg"
SAMPLE_VIDEO = REPO_ROOT / "docs" / "samples" / "hamilton_clip.mp4"
NO_FACE_IMAGE = REPO_ROOT / "docs" / "samples" / "cat_no_face.jpg"


def user_data_dir() -> Path:
    """Per-user data folder (the default gallery lives here); UNISIGHT_DATA overrides it."""
    return Path(os.environ.get("UNISIGHT_DATA") or platformdirs.user_data_dir(APP_NAME))


def user_cache_dir() -> Path:
    """Per-user cache folder (exported ONNX, TensorRT engines); UNISIGHT_CACHE overrides it."""
    return Path(os.environ.get("UNISIGHT_CACHE") or platformdirs.user_cache_dir(APP_NAME))


def default_gallery_dir() -> Path:
    """The gallery used when no --gallery is given."""
    return user_data_dir() / "gallery"
