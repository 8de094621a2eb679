"""engines.faces: the box arithmetic every module shares."""
import numpy as np

from engines.faces import box_iou, box_sides


def test_box_iou_values():
    a = np.array([[0, 0, 10, 10]])
    b = np.array([[0, 0, 10, 10], [5, 0, 15, 10], [20, 20, 30, 30]])
    np.testing.assert_allclose(box_iou(a, b), [[1.0, 50 / 150, 0.0]])


def test_box_iou_is_symmetric_and_shaped_m_by_n():
    rng = np.random.default_rng(0)
    xy = rng.uniform(0, 100, (7, 2))
    a = np.concatenate([xy, xy + rng.uniform(1, 50, (7, 2))], axis=1)
    b = a[:4] + 3.0
    iou = box_iou(a, b)
    assert iou.shape == (7, 4)
    np.testing.assert_allclose(iou, box_iou(b, a).T)
    assert np.all((iou >= 0) & (iou <= 1))


def test_box_iou_keeps_float32_and_takes_one_box_or_none():
    a = np.array([[0, 0, 10, 10]], np.float32)
    assert box_iou(a, a).dtype == np.float32  # training matches anchors in float32
    assert box_iou(a, a.astype(np.float64)).dtype == np.float64
    assert box_iou([0, 0, 10, 10], a).shape == (1, 1)  # a single box as a flat list
    assert box_iou(np.zeros((0, 4)), a).shape == (0, 1)


def test_box_iou_of_empty_boxes_is_zero_not_nan():
    point = np.array([[5, 5, 5, 5]], np.float32)
    assert box_iou(point, point)[0, 0] == 0.0


def test_box_sides():
    np.testing.assert_allclose(box_sides(np.array([[0, 0, 4, 9], [3, 3, 1, 1]], np.float32)), [6.0, 0.0])
