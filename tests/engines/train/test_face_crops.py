"""The mimic stream of face-centred crops: geometry, targets, and its use in training."""
import json

import numpy as np
import pytest
import torch

from engines.model.config import TINY
from engines.model.network import Uniface
from engines.train.augment import Sample
from engines.train.face_crops import CropSettings, FaceCropDataset, crop_to_canvas, mimic_faces
from engines.train.labelling import ImageLabels
from tests.engines.train.test_train import FACE_BOX, FACE_LMK, _label, _write_cache


def _sample(image_size=512):
    """The astronaut's face labels on a smooth gradient: blue channel ~ x, green ~ y."""
    ramp = np.linspace(0, 255, image_size)
    img = np.zeros((image_size, image_size, 3), np.uint8)
    img[..., 0] = ramp[None, :]
    img[..., 1] = ramp[:, None]
    return Sample(img, FACE_BOX.copy(), FACE_LMK.copy(), np.ones((1, 128), np.float32), np.ones(1, bool),
                  np.zeros(1, bool))


def _tiny_anchors(side):
    model = Uniface(TINY).eval()
    with torch.no_grad():
        return model.forward_heads(torch.zeros(1, 3, side, side)).anchors.numpy()


def test_a_centred_crop_puts_the_face_in_the_middle_at_the_expected_scale():
    s = _sample()
    (x1, y1, x2, y2), side = FACE_BOX[0], 180.0
    cx, cy = (x1 + x2) / 2, (y1 + y2) / 2
    canvas = np.zeros((160, 160, 3), np.uint8)
    out = crop_to_canvas(s, cx - side / 2, cy - side / 2, side, canvas)
    box = out.boxes[0]
    assert np.allclose([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], 80, atol=1.5)
    assert np.allclose(box[2:] - box[:2], (FACE_BOX[0, 2:] - FACE_BOX[0, :2]) * 160 / side, atol=1.5)
    # the pixels moved with the labels: the crop's centre pixel is the image's pixel at the face centre
    assert np.abs(out.image[80, 80, :2].astype(int) - s.image[int(cy), int(cx), :2].astype(int)).max() <= 2
    assert np.allclose(out.landmarks[0] - box[:2], (FACE_LMK[0] - FACE_BOX[0, :2]) * 160 / side, atol=1.5)


def test_a_crop_past_the_image_border_keeps_the_fill_colour_there():
    s = _sample()
    canvas = np.full((128, 128, 3), 7, np.uint8)
    # the square starts 100 px left of and above the image: its top-left quarter is outside
    out = crop_to_canvas(s, -100.0, -100.0, 400.0, canvas)
    assert (out.image[:30, :30] == 7).all()
    assert not (out.image[64:, 64:] == 7).all()
    assert np.allclose(out.boxes[0], (FACE_BOX[0] + 100) * 128 / 400, atol=1.0)


def test_mimic_faces_lists_only_faces_with_a_usable_teacher_embedding():
    two = ImageLabels(path="x.jpg", set_name="t", width=512, height=512,
                      boxes=np.array([[0, 0, 100, 100], [200, 200, 300, 300]], np.float32),
                      landmarks=np.zeros((2, 5, 2), np.float32), scores=np.array([0.99, 0.5], np.float32),
                      embeddings=np.ones((2, 128), np.float32))
    small = ImageLabels(path="y.jpg", set_name="t", width=512, height=512,
                        boxes=np.array([[0, 0, 20, 20]], np.float32), landmarks=np.zeros((1, 5, 2), np.float32),
                        scores=np.array([0.99], np.float32), embeddings=np.ones((1, 128), np.float32))
    # a sure, large face the teacher gave no embedding (view labels store zeros then)
    unembedded = ImageLabels(path="z.jpg", set_name="t", width=512, height=512,
                             boxes=np.array([[0, 0, 100, 100]], np.float32), landmarks=np.zeros((1, 5, 2), np.float32),
                             scores=np.array([0.99], np.float32), embeddings=np.zeros((1, 128), np.float32))
    assert mimic_faces([two, small, _label(), unembedded]).tolist() == [[0, 0], [2, 0]]


def test_crop_items_carry_the_face_its_teacher_target_and_positive_anchors():
    label = _label(embedding_seed=3)
    ds = FaceCropDataset([label], mimic_faces([label]), _tiny_anchors(128),
                         CropSettings(canvas=128, flip_p=0.0))
    item = ds[0]
    assert item.image.shape == (128, 128, 3)
    assert len(item.mimic_boxes) == 1
    np.testing.assert_allclose(item.mimic_targets[0], label.embeddings[0], atol=1e-3)
    size = np.sqrt(np.prod(item.mimic_boxes[0, 2:] - item.mimic_boxes[0, :2]))
    assert 128 / 2.3 < size < 128 / 1.2  # the crop's context range
    assert (item.labels == 1).sum() > 0
    again = ds[0]
    assert np.array_equal(item.image, again.image)  # seeded per (epoch, index)
    ds.epoch = 1
    assert not np.array_equal(item.image, ds[0].image)


def test_training_with_the_crop_stream_mimics_more_faces_per_step(tmp_path):
    from engines.train.loop import TrainSettings, train

    labels = _write_cache(tmp_path, [f"img{i:02d}.jpg" for i in range(8)])
    settings = TrainSettings(labels_dir=str(labels), out_dir=str(tmp_path / "run"), config="tiny", steps=2, batch=2,
                             canvas=(160, 128), workers=0, eval_every=2, log_every=1, warmup=1, val_images=2,
                             crop_batch=6, crop_canvas=128)
    assert train(settings)["step"] == 2
    log = [json.loads(line) for line in (tmp_path / "run" / "train.jsonl").read_text().splitlines()]
    steps = [r for r in log if "total" in r]
    assert len(steps) == 2
    assert all(r["mimic_faces"] >= 6 for r in steps)  # every crop carries its face
    assert all(np.isfinite(r["mimic"]) and np.isfinite(r["cls"]) for r in steps)


def test_training_with_the_relation_loss_logs_it_and_stays_finite(tmp_path):
    from engines.train.loop import TrainSettings, train

    labels = _write_cache(tmp_path, [f"img{i:02d}.jpg" for i in range(8)])
    settings = TrainSettings(labels_dir=str(labels), out_dir=str(tmp_path / "run"), config="tiny", steps=2, batch=2,
                             canvas=(160, 128), workers=0, eval_every=2, log_every=1, warmup=1, val_images=2,
                             crop_batch=4, crop_canvas=128, weights={"relation": 1.0}, relation_temp=0.1)
    assert train(settings)["step"] == 2
    log = [json.loads(line) for line in (tmp_path / "run" / "train.jsonl").read_text().splitlines()]
    steps = [r for r in log if "total" in r]
    assert len(steps) == 2 and all(np.isfinite(r["relation"]) and r["relation"] >= 0 for r in steps)
    # the total is the weighted sum, relation included
    r = steps[-1]
    assert r["total"] == pytest.approx(r["cls"] + 2 * r["box"] + r["landmarks"] + 4 * r["mimic"] + r["relation"], abs=2e-3)
    val = [r["val"] for r in log if "val" in r][-1]
    assert set(val) >= {"ap50", "cosine", "retrieval1", "retrieval10"}
