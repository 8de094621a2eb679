"""Where Unisight keeps its files: bundled samples, the shipped model, user data and caches."""
from __future__ import annotations

import os
from pathlib import Path

from engines.paths import APP_NAME, REPO_ROOT, user_cache_dir  # noqa: F401  (the cache is the engines' too)

SAMPLE_IMAGE = REPO_ROOT / "docs" / "samples" / "astronaut.jpg"
# the astronaut's face in SAMPLE_IMAGE (x1, y1, x2, y2), as YuNet finds it (tested): `bench --faces`
# tiles it into frames holding N faces
SAMPLE_FACE_BOX = (178.0, 62.0, 269.0, 176.0)
SAMPLE_VIDEO = REPO_ROOT / "docs" / "samples" / "hamilton_clip.mp4"
NO_FACE_IMAGE = REPO_ROOT / "docs" / "samples" / "cat_no_face.jpg"


def user_data_dir() -> Path:
    """Per-user data folder (the default gallery lives here); UNISIGHT_DATA overrides it."""
    if os.environ.get("UNISIGHT_DATA"):
        return Path(os.environ["UNISIGHT_DATA"])
    import platformdirs  # only when no override is set: headless runs (the GPU check) may lack it

    return Path(platformdirs.user_data_dir(APP_NAME))


def default_gallery_dir() -> Path:
    """The gallery used when no --gallery is given."""
    return user_data_dir() / "gallery"
