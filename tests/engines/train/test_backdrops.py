"""Face-free backgrounds (`engines.train.backdrops`), the training items built on them, the dim
light that keeps dark faces faces, and the validation figure that counts invented boxes."""
import cv2
import numpy as np
import pytest

from engines.train.augment import AugmentSettings, Sample, augment, photometric
from engines.train.backdrops import (FACE_MARGIN, MIN_REGION_SIDE, backdrop, backdrop_sources, draw_backdrop,
                                     face_free_region, has_room, maybe_backdrop)
from engines.train.dataset import FaceDataset
from engines.train.face_crops import CropSettings, FaceCropDataset, mimic_faces
from engines.train.labelling import ImageLabels
from tests.engines.train.test_face_crops import _tiny_anchors


def _grown(boxes):
    size = boxes[:, 2:] - boxes[:, :2]
    return np.concatenate([boxes[:, :2] - FACE_MARGIN * size, boxes[:, 2:] + FACE_MARGIN * size], axis=1)


@pytest.mark.parametrize("aspect", [1.0, 4 / 3, 0.75])
def test_regions_keep_clear_of_every_grown_face_and_have_the_shape_asked(aspect):
    rng = np.random.default_rng(0)
    boxes = np.array([[100, 80, 180, 180], [300, 200, 340, 250], [20, 300, 60, 350]], np.float32)
    grown = _grown(boxes)
    found = 0
    for _ in range(300):
        region = face_free_region((480, 400), boxes, aspect, rng)
        if region is None:
            continue
        found += 1
        x1, y1, x2, y2 = region
        assert 0 <= x1 < x2 <= 480 and 0 <= y1 < y2 <= 400
        assert y2 - y1 >= MIN_REGION_SIDE - 1
        assert (x2 - x1) / (y2 - y1) == pytest.approx(aspect, rel=0.1)
        # rounding outwards may touch a grown face by at most a pixel, never enter it
        overlap_w = np.minimum(grown[:, 2], x2) - np.maximum(grown[:, 0], x1)
        overlap_h = np.minimum(grown[:, 3], y2) - np.maximum(grown[:, 1], y1)
        assert not np.any((overlap_w > 1) & (overlap_h > 1))
    assert found > 250  # a photo with room gives a region nearly every time


def test_a_face_filling_crop_or_a_tiny_image_has_no_region_and_no_room():
    rng = np.random.default_rng(1)
    filling = np.array([[20, 20, 180, 190]], np.float32)  # as UTKFace's 200x200 crops
    assert not has_room(200, 200, filling)
    assert all(face_free_region((200, 200), filling, 1.0, rng) is None for _ in range(50))
    assert not has_room(20, 200, np.zeros((0, 4), np.float32))
    assert face_free_region((20, 200), np.zeros((0, 4), np.float32), 1.0, rng) is None
    # a photo with space beside the face has room, and one without faces is all room
    assert has_room(500, 300, np.array([[300, 50, 400, 170]], np.float32))
    assert has_room(64, 64, np.zeros((0, 4), np.float32))


def test_a_backdrop_is_cut_from_the_face_free_part_and_fills_the_size_asked():
    image = np.zeros((300, 400, 3), np.uint8)
    image[:] = (255, 0, 0)  # blue everywhere but the face and its margin
    face = np.array([[260, 100, 340, 200]], np.float32)
    x1, y1, x2, y2 = _grown(face)[0].astype(int)
    image[y1:y2, x1:x2] = (0, 0, 255)
    rng = np.random.default_rng(2)
    for _ in range(40):
        out = backdrop(image, face, (96, 64), rng)
        assert out is not None and out.shape == (64, 96, 3)
        assert out[..., 2].max() == 0 and out[..., 0].min() == 255  # never a face pixel


def test_backdrop_sources_keep_the_photos_with_room_and_draws_come_from_them(tmp_path):
    roomy = tmp_path / "roomy.png"
    cv2.imwrite(str(roomy), np.full((240, 320, 3), 40, np.uint8))
    filling = tmp_path / "filling.png"
    cv2.imwrite(str(filling), np.full((100, 100, 3), 200, np.uint8))
    labels = [_labels(roomy, 320, 240, [[200, 60, 280, 160]]), _labels(filling, 100, 100, [[5, 5, 95, 95]])]
    sources = backdrop_sources(labels)
    assert [l.path for l in sources] == [str(roomy)]
    out = draw_backdrop(sources, (64, 64), np.random.default_rng(0))
    assert out is not None and np.all(out == 40)
    assert draw_backdrop([], (64, 64), np.random.default_rng(0)) is None
    assert draw_backdrop(labels[1:], (64, 64), np.random.default_rng(0)) is None
    # with p = 0 nothing is drawn from the stream; with p = 1 a backdrop always is
    rng = np.random.default_rng(5)
    assert maybe_backdrop(sources, (64, 64), rng, 0.0) is None
    assert rng.random() == np.random.default_rng(5).random()
    assert np.all(maybe_backdrop(sources, (64, 64), np.random.default_rng(0), 1.0) == 40)


def _labels(path, w, h, boxes):
    boxes = np.array(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    cx, cy = (boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2
    lmk = np.stack([np.stack([cx + dx * (boxes[:, 2] - boxes[:, 0]), cy + dy * (boxes[:, 3] - boxes[:, 1])], 1)
                    for dx, dy in ((-0.2, -0.1), (0.2, -0.1), (0, 0.05), (-0.15, 0.2), (0.15, 0.2))], 1)
    emb = np.ones((n, 128), np.float32) / np.sqrt(128)
    return ImageLabels(path=str(path), set_name="test", width=w, height=h, boxes=boxes, landmarks=lmk.astype(np.float32),
                       scores=np.full(n, 0.99, np.float32), embeddings=emb)


def test_photos_placed_on_a_backdrop_show_it_around_them():
    stripes = np.zeros((160, 160, 3), np.uint8)
    stripes[::8] = 255  # horizontal lines every 8 rows
    photo = Sample(np.full((100, 100, 3), 128, np.uint8), np.array([[30, 30, 70, 75]], np.float32),
                   np.full((1, 5, 2), 50, np.float32), np.zeros((1, 128), np.float32), np.ones(1, bool),
                   np.zeros(1, bool))
    cfg = AugmentSettings(canvas=(160, 160), zoom_range=(0.3, 0.31), flip_p=0.0)
    for seed in range(10):
        out = augment([photo], np.random.default_rng(seed), cfg, mosaic=False, backdrop=stripes)
        rows = out.image.astype(float).mean(axis=(1, 2))
        # the photo covers under a third of the canvas side: the rows keep the stripes'
        # period of 8, whatever colour, contrast, blur and noise did to them
        spectrum = np.abs(np.fft.rfft(rows - rows.mean()))
        assert spectrum[len(rows) // 8] > 5 * np.median(spectrum[1:]), seed
        assert len(out.boxes) == 1  # the face is still there


def test_faceless_items_teach_only_background_and_backdrops_keep_the_faces(tmp_path):
    from app.paths import SAMPLE_IMAGE
    from tests.engines.train.test_train import FACE_BOX, FACE_LMK

    roomy = tmp_path / "street.png"
    cv2.imwrite(str(roomy), np.random.default_rng(0).integers(0, 255, (240, 320, 3), dtype=np.uint8))
    emb = np.ones((1, 128), np.float32) / np.sqrt(128)
    face = ImageLabels(path=str(SAMPLE_IMAGE), set_name="test", width=512, height=512, boxes=FACE_BOX,
                       landmarks=FACE_LMK, scores=np.array([0.99], np.float32), embeddings=emb)
    labels = [face, _labels(roomy, 320, 240, [[250, 20, 300, 80]])]
    anchors = _tiny_anchors(128)
    only_background = FaceDataset(labels, anchors, AugmentSettings(canvas=(128, 128), faceless_p=1.0))
    for i in range(4):
        item = only_background[i % 2]
        assert item.image.shape == (128, 128, 3)
        assert not (item.labels == 1).any() and (item.labels == 0).all() and len(item.mimic_boxes) == 0
    laid = FaceDataset(labels[:1] * 2, anchors, AugmentSettings(canvas=(128, 128), backdrop_p=1.0))
    laid.backdrop_sources = labels[1:]
    assert all((laid[i].labels == 1).any() for i in range(2))
    crops = FaceCropDataset(labels, mimic_faces(labels), anchors, CropSettings(canvas=128, faceless_p=1.0))
    item = crops[0]
    assert not (item.labels == 1).any() and len(item.mimic_boxes) == 0
    crops_laid = FaceCropDataset(labels, mimic_faces(labels), anchors, CropSettings(canvas=128, backdrop_p=1.0))
    item = crops_laid[0]
    assert (item.labels == 1).any() and len(item.mimic_boxes) == 1


def test_background_boxes_counts_what_the_deployed_engine_draws_on_the_same_canvases(tmp_path):
    pytest.importorskip("onnxruntime")
    from app.paths import SAMPLE_IMAGE, user_cache_dir
    from engines.backends.registry import create_engine
    from engines.model.config import SHIPPED_CONFIG
    from engines.model.weights import default_weights, load_model
    from engines.train.validate import background_boxes, background_canvas
    from tests.engines.train.test_train import FACE_BOX

    if not default_weights(SHIPPED_CONFIG).exists():
        pytest.skip("no shipped model committed")
    filling = tmp_path / "filling.png"
    cv2.imwrite(str(filling), np.full((100, 100, 3), 200, np.uint8))
    astronaut = _labels(SAMPLE_IMAGE, 512, 512, FACE_BOX)
    labels = [astronaut, _labels(filling, 100, 100, [[5, 5, 95, 95]])] + [astronaut] * 6
    canvases = [background_canvas(i, lab) for i, lab in enumerate(labels)]
    assert canvases[1] is None  # no room beside a face-filling crop
    assert np.array_equal(canvases[0], background_canvas(0, astronaut))  # the same region every time
    assert not np.array_equal(canvases[0], canvases[2])  # another position, another region
    model, _ = load_model(SHIPPED_CONFIG)
    engine = create_engine("uniface", "onnxruntime", cache_dir=user_cache_dir())
    per_canvas, seen = background_boxes(model, labels, batch=3, score=engine.score_threshold)  # the weights' own
    drawn = sum(len(f) for f in engine.infer([c for c in canvases if c is not None]))
    assert seen == 7 and per_canvas == pytest.approx(drawn / 7)
    none_per_canvas, none_seen = background_boxes(model, labels[1:2])
    assert np.isnan(none_per_canvas) and none_seen == 0


def test_dim_light_darkens_only_when_asked_and_leaves_the_stream_alone_when_off():
    image = np.random.default_rng(0).integers(60, 220, (64, 64, 3), dtype=np.uint8)
    for seed in range(20):
        plain = photometric(image, np.random.default_rng(seed))
        assert np.array_equal(plain, photometric(image, np.random.default_rng(seed), 0.0))
        dim = photometric(image, np.random.default_rng(seed), 1.0)
        # the same changes, then at most half the light (plus a little sensor noise)
        assert dim.mean() <= 0.5 * plain.mean() + 3
        assert dim.mean() >= 0.15 * plain.mean() - 3
