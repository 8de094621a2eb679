"""A deterministic fake engine for gallery, enrolment and recognition tests: "faces" are
coloured rectangles, one colour per person, so who is who is known exactly."""
from __future__ import annotations

import cv2
import numpy as np

from app.gallery.face_crop import storage_crop
from app.gallery.store import NewSample
from engines.engine import EngineInfo, FaceEngine
from engines.faces import Faces


class ColourFaceEngine(FaceEngine):
    """Finds bright rectangles on a dark background ("faces" drawn by `draw_face`); the
    embedding is a fixed random projection, chosen by `version`, of the rectangle's colour,
    so one colour = one person and a new version = an incompatible embedding space."""

    def __init__(self, version: int = 1, engine: str = "fake"):
        self.version = version
        self.calls = 0
        self.info = EngineInfo(engine=engine, backend="numpy", device="cpu", model_id=f"fake-colour-v{version}")
        self._projection = np.random.default_rng(1000 + version).normal(size=(128, 3))

    def embed_colour(self, bgr) -> np.ndarray:
        f = np.asarray(bgr, np.float64) / 255.0 - 0.6
        e = self._projection @ f
        return (e / np.linalg.norm(e)).astype(np.float32)

    def infer(self, images, score_threshold=None, max_faces=None):
        self.calls += 1
        out = []
        for image in images:
            mask = (image.max(axis=2) > 80).astype(np.uint8)
            n, _, stats, _ = cv2.connectedComponentsWithStats(mask, connectivity=4)
            boxes, lms, embs = [], [], []
            for x, y, w, h, area in stats[1:]:
                if area < 100:
                    continue
                x1, y1, x2, y2 = float(x), float(y), float(x + w), float(y + h)
                boxes.append([x1, y1, x2, y2])
                lms.append(_landmarks_for([x1, y1, x2, y2]))
                patch = image[int(y + 0.85 * h):int(y + 0.95 * h), int(x + 0.1 * w):int(x + 0.9 * w)]
                embs.append(self.embed_colour(patch.reshape(-1, 3).mean(axis=0)))
            order = np.argsort([-(b[2] - b[0]) * (b[3] - b[1]) for b in boxes]) if boxes else []
            if max_faces is not None:
                order = order[:max_faces]
            if len(order) == 0:
                out.append(Faces.empty())
                continue
            out.append(Faces(boxes=np.array(boxes)[order], scores=np.full(len(order), 0.99),
                             landmarks=np.array(lms)[order], embeddings=np.array(embs)[order]))
        return out


def _landmarks_for(box):
    x1, y1, x2, y2 = box
    w, h = x2 - x1, y2 - y1
    rel = [(0.3, 0.38), (0.7, 0.38), (0.5, 0.55), (0.35, 0.75), (0.65, 0.75)]
    return [[x1 + fx * w, y1 + fy * h] for fx, fy in rel]


def draw_face(image: np.ndarray, box, colour) -> None:
    """Draw a synthetic face: a coloured rectangle with dark eyes, nose and mouth (for sharpness)."""
    x1, y1, x2, y2 = (int(v) for v in box)
    cv2.rectangle(image, (x1, y1), (x2 - 1, y2 - 1), tuple(int(c) for c in colour), -1)
    s = max(2, (x2 - x1) // 12)
    for fx, fy in [(0.3, 0.38), (0.7, 0.38), (0.5, 0.55), (0.5, 0.72)]:
        cx, cy = int(x1 + fx * (x2 - x1)), int(y1 + fy * (y2 - y1))
        cv2.rectangle(image, (cx - s, cy - s // 2), (cx + s, cy + s // 2), (20, 20, 20), -1)


COLOURS = {"alice": (250, 110, 110), "bob": (110, 250, 110), "carol": (110, 110, 250), "dave": (240, 240, 120)}


def face_sample(engine: ColourFaceEngine, colour, size: int = 100, source: str = "") -> NewSample:
    """A sample as enrolment makes it: image -> engine -> storage crop + embedding."""
    image = np.full((320, 320, 3), 30, np.uint8)
    draw_face(image, (110, 100, 110 + size, 100 + size), colour)
    faces = engine.infer([image])[0]
    assert len(faces) == 1
    crop = storage_crop(image, faces.boxes[0], faces.landmarks[0])
    return NewSample(embedding=faces.embeddings[0], crop=crop, quality=0.9, source=source)
