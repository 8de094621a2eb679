"""Annotators: colours by category, labels, landmarks, stats panel, copy semantics, speed."""
import time

import numpy as np

from app.render import (
    DEFAULT_PALETTE,
    DOUBTFUL,
    KNOWN,
    LOW_QUALITY,
    UNKNOWN,
    BoxAnnotator,
    LabelAnnotator,
    LandmarkAnnotator,
    StatsAnnotator,
    annotate,
    ascii_text,
)
from engines.faces import Faces
from tests.support.fakes import FakeEngine


def _faces(names=None, scores=(0.9, 0.9, 0.3), sims=None, tracks=None):
    boxes = np.array([[20, 40, 80, 110], [120, 40, 180, 110], [220, 40, 280, 110]], np.float32)
    lms = boxes[:, None, :2] + np.array([[18, 25], [42, 25], [30, 40], [20, 55], [40, 55]], np.float32)
    return Faces(boxes=boxes, scores=np.array(scores, np.float32), landmarks=lms, names=names,
                 similarities=None if sims is None else np.array(sims, np.float32),
                 track_ids=None if tracks is None else np.array(tracks))


def test_categories_known_unknown_low_quality():
    faces = _faces(names=["alice", None, None])
    assert DEFAULT_PALETTE.categories(faces) == [KNOWN, UNKNOWN, LOW_QUALITY]
    tiny = Faces(boxes=[[0, 0, 10, 10]], scores=[0.99], landmarks=np.zeros((1, 5, 2)))
    assert DEFAULT_PALETTE.categories(tiny) == [LOW_QUALITY]  # 10 px: too small to name
    named_low = _faces(names=["a", "b", "c"])
    assert DEFAULT_PALETTE.categories(named_low) == [KNOWN] * 3  # a name wins


def test_boxes_are_drawn_in_their_category_colour():
    image = np.zeros((160, 320, 3), np.uint8)
    BoxAnnotator(thickness=2).annotate(image, _faces(names=["alice", None, None]))
    p = DEFAULT_PALETTE
    assert tuple(image[75, 20]) == p.known  # left edge of box 0, mid-height
    assert tuple(image[75, 120]) == p.unknown
    assert tuple(image[75, 220]) == p.low_quality
    assert image[75, 50].sum() == 0  # inside: untouched


def test_landmarks_are_dots_at_the_points():
    image = np.zeros((160, 320, 3), np.uint8)
    LandmarkAnnotator(radius=2).annotate(image, _faces())
    assert tuple(image[40 + 40, 20 + 30]) == LandmarkAnnotator.COLORS[2]  # nose of face 0
    assert tuple(image[65, 38]) == LandmarkAnnotator.COLORS[0]  # left eye of face 0
    assert image[100, 300].sum() == 0


def test_label_text_and_placement():
    faces = _faces(names=["José", None, None], sims=[0.874, np.nan, 0.2], tracks=[7, 8, -1])
    ann = LabelAnnotator()
    assert ann.text(faces, 0) == "Jose 0.87 #7"
    assert ann.text(faces, 1) == "unknown #8"
    assert ann.text(faces, 2) == "low quality"  # no similarity on a face that is not named
    strangers = _faces(names=[None, None, None], sims=[0.91, 0.91, 0.91], tracks=[1, 2, 3])
    assert ann.text(strangers, 0) == "unknown #1"  # "unknown 0.91" would read as a confident match
    doubt = _faces(names=["Ann", "Ann", None], sims=[0.9, 0.5, 0.5], tracks=[1, 2, 3])
    doubt.extra["doubtful"] = np.array([False, True, False])
    assert DEFAULT_PALETTE.categories(doubt)[:2] == [KNOWN, DOUBTFUL]
    assert [ann.text(doubt, i) for i in range(2)] == ["Ann 0.90 #1", "Ann? #2"]
    drawn = ann.annotate(np.zeros((160, 320, 3), np.uint8), doubt)
    assert (drawn[20:38, 122:160] == DEFAULT_PALETTE.doubtful).all(axis=2).mean() > 0.4  # amber tag
    image = np.zeros((160, 320, 3), np.uint8)
    ann.annotate(image, faces)
    tag = image[20:38, 22:60]  # above box 0 (y1 = 40): filled with the known colour plus text
    assert (tag == DEFAULT_PALETTE.known).all(axis=2).mean() > 0.4
    top = _faces(names=[None, None, None])
    top.boxes[:, 1] = 0  # no room above: the tag goes under the box (y2 = 110)
    image2 = np.zeros((160, 320, 3), np.uint8)
    ann.annotate(image2, top)
    assert (image2[112:128, 122:160] == DEFAULT_PALETTE.unknown).all(axis=2).mean() > 0.4
    assert not (image2[:100] == DEFAULT_PALETTE.unknown).all(axis=2).any()


def test_stats_panel_darkens_the_corner_and_writes_text():
    image = np.full((120, 320, 3), 200, np.uint8)
    StatsAnnotator(alpha=0.5).annotate(image, ["inference 25.0 fps", "latency 40 ms"])
    corner = image[2:6, 2:6]
    assert (corner == 100).all()  # 200 * (1 - 0.5)
    assert (image[:40, :160] == 255).any()  # white text
    assert (image[100:, 200:] == 200).all()  # rest untouched


def test_annotate_copies_unless_told_not_to():
    image = np.zeros((160, 320, 3), np.uint8)
    out = annotate(image, _faces(names=["a", None, None]), stats_lines=["x"])
    assert out is not image and image.sum() == 0 and out.sum() > 0
    same = annotate(image, _faces(), copy=False)
    assert same is image and image.sum() > 0
    assert annotate(image, Faces.empty(), copy=True).shape == image.shape


def test_ascii_text():
    assert ascii_text("Zoë Saldaña") == "Zoe Saldana"
    assert ascii_text("王") == "?"


def test_annotating_five_faces_at_640x480_is_cheap():
    image = np.random.default_rng(0).integers(0, 255, (480, 640, 3), np.uint8)
    faces = FakeEngine.faces_for(640, 480, 5)
    faces = faces.with_identities(["alice", None, "bob", None, "carol"], np.array([0.9, 0.3, 0.8, 0.1, 0.85]))
    faces.track_ids = np.arange(5)
    lines = ["capture 30.0 fps | inference 29.8 fps | output 29.8 fps", "latency p50 41 ms | dropped 0"]
    annotate(image, faces, stats_lines=lines)  # warm up
    n = 200
    t0 = time.perf_counter()
    for _ in range(n):
        annotate(image, faces, stats_lines=lines)
    ms = (time.perf_counter() - t0) / n * 1000
    print(f"annotate 5 faces + stats at 640x480 (with copy): {ms:.2f} ms/frame")
    assert ms < 10  # 30 fps leaves 33 ms per frame for everything
