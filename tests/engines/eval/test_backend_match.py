"""Comparing two runs of the network (a GPU run against the CPU's): matches, deviations, verdict."""
import numpy as np
import pytest

from engines.eval.backend_match import FP16_TOLERANCE, FP32_TOLERANCE, MatchTolerance, compare_runs, tolerance_for
from engines.faces import Faces


def _faces(boxes, scores, emb_angles=None):
    boxes = np.asarray(boxes, np.float32).reshape(-1, 4)
    n = len(boxes)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2
    landmarks = np.repeat(centres[:, None, :], 5, axis=1) + np.arange(5, dtype=np.float32)[None, :, None]
    angles = np.zeros(n) if emb_angles is None else np.asarray(emb_angles, float)
    emb = np.zeros((n, 128), np.float32)
    emb[:, 0], emb[:, 1] = np.cos(angles), np.sin(angles)
    return Faces(boxes=boxes, scores=scores, landmarks=landmarks, embeddings=emb)


TOL = MatchTolerance(iou=0.9, score=0.02, landmark_px=2.0, cosine=0.99, margin=0.05)


def test_identical_runs_match_exactly():
    ref = [_faces([[10, 10, 60, 70], [100, 20, 150, 80]], [0.99, 0.9]), _faces([], [])]
    r = compare_runs(ref, ref, threshold=0.75, tolerance=TOL)
    assert r.ok and r.matched == 2 and r.frames == 2 and r.missing == r.extra == 0
    assert r.min_iou == pytest.approx(1.0) and r.max_score_diff == 0 and r.max_landmark_px == 0
    assert r.min_cosine == pytest.approx(1.0)
    assert r.as_dict()["ok"] is True


def test_deviations_past_the_tolerance_are_each_named():
    ref = [_faces([[10, 10, 60, 70], [100, 20, 150, 80]], [0.99, 0.9])]
    run = [_faces([[14, 10, 64, 70], [100, 20, 150, 80]], [0.99, 0.86], emb_angles=[0.0, 0.3])]
    r = compare_runs(ref, run, threshold=0.75, tolerance=TOL)
    assert not r.ok and r.matched == 2
    text = " | ".join(r.problems)
    assert "IoU 0.852 < 0.9" in text and "a landmark moved 4.00 px" in text  # the first face moved 4 px
    assert "score differs by 0.0400" in text and "embedding cosine 0.9553" in text  # the second
    assert r.min_iou == pytest.approx(0.8519, abs=1e-3) and r.min_cosine == pytest.approx(np.cos(0.3), abs=1e-5)


def test_faces_in_one_run_only_fail_unless_they_score_near_the_threshold():
    ref = [_faces([[10, 10, 60, 70], [200, 20, 240, 70]], [0.99, 0.78])]
    run = [_faces([[10, 10, 60, 70], [300, 30, 340, 80]], [0.99, 0.95])]
    r = compare_runs(ref, run, threshold=0.75, tolerance=TOL)
    assert r.matched == 1 and r.borderline_unmatched == 1  # 0.78 is within 0.05 of 0.75: allowed
    assert r.missing == 0 and r.extra == 1 and not r.ok
    assert r.problems == ["frame 0: extra face at [300, 30, 340, 80] (score 0.950)"]
    with pytest.raises(ValueError, match="1 frames against 2 reference frames"):
        compare_runs(ref * 2, run, threshold=0.75, tolerance=TOL)


def test_each_precision_has_its_stated_tolerance():
    assert tolerance_for("fp16") is FP16_TOLERANCE and tolerance_for("fp32") is FP32_TOLERANCE
    assert FP16_TOLERANCE.cosine <= FP32_TOLERANCE.cosine and FP16_TOLERANCE.score >= FP32_TOLERANCE.score
