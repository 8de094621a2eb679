"""Turned training images (`augment.turn`): pixels, landmarks and boxes turn together, and the
teacher agrees with the boxes and keeps its embedding."""
import cv2
import numpy as np
import pytest

from app.paths import SAMPLE_IMAGE
from engines.faces import box_iou
from engines.train.augment import AugmentSettings, Sample, augment, turn
from engines.train.face_crops import CropSettings, FaceCropDataset
from tests.engines.train.test_face_crops import _tiny_anchors
from tests.engines.train.test_train import FACE_BOX, FACE_LMK, _label

DOT_COLOURS = np.array([[255, 0, 0], [0, 255, 0], [0, 0, 255], [255, 255, 0], [0, 255, 255]], np.uint8)


def _dotted_sample(w=300, h=200):
    """A grey image with a 5x5 dot of its own colour centred on each landmark."""
    image = np.full((h, w, 3), 90, np.uint8)
    lmk = np.array([[[100.5, 80.5], [160.5, 70.5], [130.5, 110.5], [110.5, 140.5], [155.5, 135.5]]], np.float32)
    for (x, y), colour in zip(lmk[0], DOT_COLOURS):
        image[int(y) - 2 : int(y) + 3, int(x) - 2 : int(x) + 3] = colour
    box = np.array([[85.0, 50.0, 175.0, 160.0]], np.float32)
    return Sample(image, box, lmk, np.ones((1, 128), np.float32), np.ones(1, bool), np.zeros(1, bool))


def _eye_angle(landmarks):
    """Angle of the line from the left eye to the right eye (as seen), degrees, y down."""
    d = landmarks[1] - landmarks[0]
    return np.degrees(np.arctan2(d[1], d[0]))


@pytest.mark.parametrize("degrees", [-35.0, -10.0, 7.5, 30.0, 90.0])
def test_landmarks_land_on_the_turned_pixels_they_marked(degrees):
    s = _dotted_sample()
    t = turn(s, degrees, np.array([0, 0, 0], np.uint8))
    for (x, y), colour in zip(t.landmarks[0], DOT_COLOURS):
        pixel = t.image[int(np.floor(y)), int(np.floor(x))]
        assert np.abs(pixel.astype(int) - colour).max() <= 2, (degrees, pixel, colour)


def test_positive_angles_turn_counter_clockwise_as_seen_and_turning_back_restores_the_points():
    s = _dotted_sample()
    t = turn(s, 20.0, np.zeros(3, np.uint8))
    # the right eye (as seen) rises relative to the left one: the eye line tilts up by 20 degrees
    assert _eye_angle(t.landmarks[0]) == pytest.approx(_eye_angle(s.landmarks[0]) - 20.0, abs=1e-3)
    back = turn(t, -20.0, np.zeros(3, np.uint8))
    # the image grew twice; points come back shifted by the two margins only
    shift = (np.array(back.image.shape[1::-1]) - s.image.shape[1::-1]) / 2
    assert np.allclose(back.landmarks - shift, s.landmarks, atol=1e-3)
    # box centres come back too (sizes do not: each turn bounds an ellipse, see the next tests)
    centres = lambda b: (b[:, :2] + b[:, 2:]) / 2  # noqa: E731
    assert np.allclose(centres(back.boxes) - shift, centres(s.boxes), atol=1e-3)


def test_the_image_grows_to_hold_every_corner_and_the_new_corners_take_the_fill_colour():
    s = _dotted_sample(300, 200)
    t = turn(s, 30.0, np.array([7, 8, 9], np.uint8))
    c, si = np.cos(np.radians(30)), np.sin(np.radians(30))
    assert t.image.shape[:2] == (int(np.ceil(300 * si + 200 * c)), int(np.ceil(300 * c + 200 * si)))
    assert (t.image[0, 0] == [7, 8, 9]).all() and (t.image[-1, -1] == [7, 8, 9]).all()
    # all of the grey photo is still there: its area is kept to within the resampled rim
    grey = np.all(np.abs(t.image.astype(int) - 90) <= 1, axis=2).sum()
    assert grey == pytest.approx(300 * 200 - 5 * 25, rel=0.02)
    assert np.array_equal(turn(s, 0.0, np.zeros(3, np.uint8)).image, s.image)


def test_boxes_follow_the_face_centre_and_bound_its_turned_inscribed_ellipse():
    s = _dotted_sample()
    w, h = 90.0, 110.0
    for degrees in (0.0, 25.0, -25.0, 90.0):
        t = turn(s, degrees, np.zeros(3, np.uint8))
        a = np.radians(degrees)
        centre = (t.boxes[0, :2] + t.boxes[0, 2:]) / 2
        # the box centre is where the turned centre pixel went: same place relative to the landmarks
        rot = np.array([[np.cos(a), np.sin(a)], [-np.sin(a), np.cos(a)]])
        expected_offset = rot @ ((s.boxes[0, :2] + s.boxes[0, 2:]) / 2 - s.landmarks[0, 2])
        assert np.allclose(centre - t.landmarks[0, 2], expected_offset, atol=1e-3)
        size = t.boxes[0, 2:] - t.boxes[0, :2]
        expected = [np.hypot(w * np.cos(a), h * np.sin(a)), np.hypot(w * np.sin(a), h * np.cos(a))]
        assert np.allclose(size, expected, atol=1e-3), (degrees, size, expected)
    assert np.allclose(t.boxes[0, 2:] - t.boxes[0, :2], [h, w], atol=1e-3)  # 90 degrees: sides swap
    assert np.array_equal(t.embeddings, s.embeddings) and t.mimic.all() and not t.ignore.any()


def test_augment_turns_the_share_of_images_asked_within_the_angle_asked():
    image = cv2.imread(str(SAMPLE_IMAGE))
    base = Sample(image, FACE_BOX, FACE_LMK, np.zeros((1, 128), np.float32), np.ones(1, bool), np.zeros(1, bool))
    upright = _eye_angle(FACE_LMK[0])
    for turn_p, low, high in ((0.0, 0.0, 0.0), (1.0, 2.0, 25.0)):
        settings = AugmentSettings(canvas=(320, 320), mosaic_p=0, flip_p=0, zoom_range=(0.8, 1.0),
                                   turn_p=turn_p, turn_degrees=25.0)
        tilts = []
        for seed in range(40):
            s = augment([base], np.random.default_rng(seed), settings)
            if len(s.landmarks) and s.mimic[0]:
                tilts.append(abs(_eye_angle(s.landmarks[0]) - upright))
        tilts = np.array(tilts)
        assert len(tilts) >= 20
        assert tilts.max() <= high + 1e-3
        if turn_p:  # drawn uniformly in +-25: most turns are well away from upright
            assert np.median(tilts) > 6 and (tilts > low).mean() > 0.8
        else:
            assert tilts.max() < 1e-3


def test_turned_face_crops_keep_the_face_centred_and_its_teacher_target():
    labels = [_label(0)]
    settings = CropSettings(canvas=128, context=(2.0, 2.0), shift=0.0, flip_p=0.0, turn_p=1.0, turn_degrees=30.0)
    dataset = FaceCropDataset(labels, np.array([[0, 0]]), _tiny_anchors(128), settings)
    upright = _eye_angle(FACE_LMK[0])
    tilts = []
    for index in range(12):
        dataset.epoch = index
        item = dataset[0]
        assert len(item.mimic_boxes) == 1
        assert np.array_equal(item.mimic_targets[0], labels[0].embeddings[0])
        centre = (item.mimic_boxes[0, :2] + item.mimic_boxes[0, 2:]) / 2
        assert np.allclose(centre, 64, atol=1.0)
        tilts.append(_eye_angle(item.mimic_landmarks[0]) - upright)
    assert np.abs(tilts).max() <= 30 + 1e-3 and np.abs(tilts).max() > 10


@pytest.mark.parametrize("degrees", [-30.0, 20.0])
def test_the_teacher_boxes_a_turned_face_as_turn_moves_its_box_and_keeps_its_embedding(mtcnn_dlib, degrees):
    image = cv2.imread(str(SAMPLE_IMAGE))
    found = mtcnn_dlib.infer([image])[0]
    s = Sample(image, found.boxes[:1], found.landmarks[:1], found.embeddings[:1], np.ones(1, bool), np.zeros(1, bool))
    t = turn(s, degrees, np.zeros(3, np.uint8))
    again = mtcnn_dlib.infer([t.image])[0]
    iou = box_iou(t.boxes, again.boxes)[0]
    j = int(np.argmax(iou))
    size = np.sqrt(np.prod(t.boxes[0, 2:] - t.boxes[0, :2]))
    assert iou[j] > 0.8
    assert np.abs(again.landmarks[j] - t.landmarks[0]).max() < 0.06 * size
    # raw dlib descriptors of one face: the turned face is the same person to the teacher
    assert float(again.embeddings[j] @ s.embeddings[0]) > 0.97
