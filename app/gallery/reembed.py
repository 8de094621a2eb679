"""Re-embedding: when the engine's model changes, every gallery sample gets an embedding from the
new model, made from its stored crop (the face found again there, where it was)."""
from __future__ import annotations

import logging
from typing import Callable

import numpy as np

from app.gallery.database import DamagedSample, ModelMismatch

log = logging.getLogger("app.gallery.store")

REEMBED_MIN_IOU = 0.3  # the face found in a stored crop must overlap the stored face box


def reembed_missing(gallery, engine, batch_size: int = 8, progress: Callable[[int, int], None] | None = None) -> int:
    """Give every sample an embedding from `engine`'s model, re-detecting the face in its
    stored crop; returns how many were re-embedded. Raises `ModelMismatch` naming the
    samples that cannot be re-embedded (no crop, or no face found in it); the others
    are stored anyway. `progress(done, total)` is called after each batch."""
    model_id = engine.info.model_id
    missing = gallery.missing_embeddings(model_id)
    if not missing:
        return 0
    log.info("re-embedding %d gallery samples for model %s", len(missing), model_id)
    failed: list[tuple[int, str, str]] = []
    done = 0
    for start in range(0, len(missing), batch_size):
        chunk = missing[start:start + batch_size]
        crops = []
        for sample_id, name in chunk:
            try:
                crop = gallery.sample_crop(sample_id)
            except DamagedSample:
                failed.append((sample_id, name, "its stored crop is damaged"))
                continue
            if crop is None:
                failed.append((sample_id, name, "no stored crop"))
            else:
                crops.append((sample_id, name, crop))
        if crops:
            results = engine.infer([c.image for _, _, c in crops])
            vectors = {}
            for (sample_id, name, crop), faces in zip(crops, results):
                vec = face_in_crop(faces, crop.box)
                if vec is None:
                    failed.append((sample_id, name, "no face found in the stored crop"))
                else:
                    vectors[sample_id] = vec
            if vectors:
                gallery.set_embeddings(model_id, vectors)
                done += len(vectors)
        if progress is not None:
            progress(min(start + batch_size, len(missing)), len(missing))
    if failed:
        listed = ", ".join(f"sample {sid} of {name!r} ({why})" for sid, name, why in failed[:5])
        more = f" and {len(failed) - 5} more" if len(failed) > 5 else ""
        raise ModelMismatch(
            f"cannot re-embed {len(failed)} gallery samples for model {model_id}: {listed}{more}; "
            "remove them with `main.py gallery remove-sample ID` and enrol those people again"
        )
    return done


def face_in_crop(faces, box: np.ndarray) -> np.ndarray | None:
    """The embedding of the face that overlaps the stored face box best (IoU >= 0.3)."""
    if faces is None or len(faces) == 0 or faces.embeddings is None:
        return None
    b = np.asarray(box, np.float32)
    x1 = np.maximum(faces.boxes[:, 0], b[0])
    y1 = np.maximum(faces.boxes[:, 1], b[1])
    x2 = np.minimum(faces.boxes[:, 2], b[2])
    y2 = np.minimum(faces.boxes[:, 3], b[3])
    inter = np.clip(x2 - x1, 0, None) * np.clip(y2 - y1, 0, None)
    union = faces.widths * faces.heights + (b[2] - b[0]) * (b[3] - b[1]) - inter
    iou = inter / np.maximum(union, 1e-6)
    i = int(np.argmax(iou))
    return faces.embeddings[i] if iou[i] >= REEMBED_MIN_IOU else None
