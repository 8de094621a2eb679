"""Naming faces in a single image from the gallery (identify; video uses `app.live.recognition`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from app.paths import default_gallery_dir
from engines.faces import Faces


def name_faces(faces: Faces, engine, gallery_dir: Path | None, threshold: float | None) -> tuple[Faces, str]:
    """Faces with names and similarities, and a one-line note on the gallery used.

    With no gallery folder (none given and the default absent), or random weights, every
    name is null: nothing pretends to recognise.
    """
    unnamed = faces.with_identities([None] * len(faces), np.full(len(faces), np.nan, np.float32))
    folder = gallery_dir if gallery_dir is not None else default_gallery_dir()
    if engine.info.random_weights:
        return unnamed, "not used (random weights)"
    if gallery_dir is None and not (folder / "gallery.db").exists():
        return unnamed, f"none ({folder} does not exist)"
    if faces.embeddings is None or len(faces) == 0:
        return unnamed, str(folder)
    from app.gallery.store import open_gallery

    with open_gallery(folder, engine, threshold=threshold) as gallery:
        matches = gallery.match(faces.embeddings, engine.info.model_id)
        count = len(gallery.names())
    return faces.with_identities(matches.names, matches.similarities), f"{folder} ({count} identities)"
