"""Teacher agreement on video (`eval agreement`): the per-frame arithmetic, and the command on
the sample clip with the shipped model and the real MTCNN teacher."""
import json

import numpy as np
import pytest

from engines.eval.agreement import AgreementResult, FrameAgreement, agreement_at, frame_agreement
from engines.faces import Faces
from tests.engines.eval.test_eval import _run_cli


def _faces(boxes, scores):
    boxes = np.array(boxes, np.float32).reshape(-1, 4)
    return Faces(boxes=boxes, scores=np.array(scores, np.float32), landmarks=np.zeros((len(boxes), 5, 2), np.float32))


def test_boxes_over_no_teacher_box_are_unconfirmed_and_large_ones_are_counted_apart():
    teacher = _faces([[100, 100, 160, 170], [400, 50, 430, 85], [600, 300, 640, 350]], [0.99, 0.95, 0.6])
    engine = _faces([
        [102, 98, 158, 172],  # the first teacher face
        [600, 305, 638, 352],  # an unsure teacher face: still confirmed
        [200, 200, 240, 240],  # nothing there, small
        [250, 300, 400, 460],  # nothing there, 150 px: large in a 720-line frame (>= 144)
        [0, 0, 100, 100],  # nothing there, 100 px: not large
    ], [0.99] * 5)
    got = frame_agreement(engine, teacher, frame_height=720)
    assert got == FrameAgreement(boxes=5, unconfirmed=3, unconfirmed_large=1, teacher_faces=2, found=1)
    # the same boxes in a 480-line frame: 100 px is large too (>= 96)
    assert frame_agreement(engine, teacher, frame_height=480).unconfirmed_large == 2


def test_empty_frames_and_totals():
    none = _faces([], [])
    teacher = _faces([[10, 10, 50, 60]], [0.97])
    assert frame_agreement(none, teacher, 480) == FrameAgreement(0, 0, 0, 1, 0)
    alone = _faces([[0, 0, 200, 200]], [0.95])
    assert frame_agreement(alone, none, 480) == FrameAgreement(1, 1, 1, 0, 0)
    total = AgreementResult()
    total.add(0, frame_agreement(none, teacher, 480))
    total.add(5, frame_agreement(alone, none, 480))
    assert (total.frames, total.boxes, total.unconfirmed_large, total.large_frames) == (2, 1, 1, [5])
    assert total.per_100_frames(total.unconfirmed) == 50.0 and total.found_share == 0.0


def test_counts_at_several_thresholds_keep_only_the_boxes_scoring_over_each():
    teacher = _faces([[100, 100, 160, 170]], [0.99])
    engine = _faces([[102, 98, 158, 172], [300, 200, 400, 300], [0, 0, 30, 30]], [0.95, 0.7, 0.55])
    low, mid, high, at_score = agreement_at(engine, teacher, 480, [0.5, 0.6, 0.9, 0.95])
    assert low == FrameAgreement(3, 2, 1, 1, 1) and mid == FrameAgreement(2, 1, 1, 1, 1)
    assert high == FrameAgreement(1, 0, 0, 1, 1)
    assert at_score == FrameAgreement(0, 0, 0, 1, 0)  # strictly over, as the graph keeps them


def test_eval_agreement_on_the_sample_clip(capsys):
    pytest.importorskip("onnxruntime")
    from engines.errors import EngineUnavailable
    from engines.teachers.mtcnn import MTCNN

    try:
        MTCNN()
    except EngineUnavailable as exc:
        pytest.skip(str(exc))
    code, out, err = _run_cli(capsys, "eval", "agreement", "--every", "50", "--backend", "onnxruntime",
                              "--teacher", "mtcnn", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["frames"] == 6 and r["every"] == 50  # frames 0, 50, ..., 250 of 275
    assert all(i % 50 == 0 for i in r["large_frames"])
    assert 0 <= r["unconfirmed_large"] <= r["unconfirmed"] <= r["boxes"]
    # the shipped model finds most of the teacher's sure faces on the singer and the audience
    assert r["teacher_faces"] >= 6 and r["found_share"] >= 0.6
    assert r["unconfirmed_per_100_frames"] == pytest.approx(100 * r["unconfirmed"] / 6, abs=1e-3)
    own = r["model_min_score"]
    assert r["min_score"] == own and 0 < own < 1 and "curve" not in r  # the model's own threshold

    code, out, err = _run_cli(capsys, "eval", "agreement", "--every", "50", "--backend", "onnxruntime",
                              "--teacher", "mtcnn", "--min-score", f"{own},0.5", "--json")
    assert code == 0, err
    curve = json.loads(out)
    strict, loose = curve["curve"]
    assert {k: strict[k] for k in r if k in strict} == {k: r[k] for k in strict}  # same frames, same boxes
    assert loose["min_score"] == 0.5 and loose["boxes"] >= strict["boxes"] and loose["found"] >= strict["found"]


def test_eval_agreement_bad_input_is_one_clear_line(capsys, tmp_path):
    code, _, err = _run_cli(capsys, "eval", "agreement", "--video", str(tmp_path / "missing.mp4"))
    assert code != 0 and "not found" in err and "Traceback" not in err
    code, _, err = _run_cli(capsys, "eval", "agreement", "--every", "0")
    assert code != 0 and "--every" in err
    with pytest.raises(SystemExit) as stop:  # argparse: usage and one line
        _run_cli(capsys, "eval", "agreement", "--min-score", "0.5,1.2")
    assert stop.value.code == 2 and "detection scores in [0, 1)" in capsys.readouterr().err
    for engine in ("cascade", "mtcnn-dlib"):
        code, _, err = _run_cli(capsys, "eval", "agreement", "--engine", engine)
        assert code != 0 and "teacher" in err


def test_eval_agreement_with_the_yunet_teacher(capsys):
    """The default teacher is the cascade's YuNet: the shipped model's boxes are checked against it."""
    pytest.importorskip("onnxruntime")
    from engines.errors import EngineUnavailable
    from engines.teachers.yunet import YuNetDetector

    try:
        YuNetDetector()
    except EngineUnavailable as exc:
        pytest.skip(str(exc))
    code, out, err = _run_cli(capsys, "eval", "agreement", "--every", "50", "--backend", "onnxruntime", "--json")
    assert code == 0, err
    r = json.loads(out)
    assert r["teacher"] == "yunet" and r["frames"] == 6
    assert r["teacher_faces"] >= 5 and 0.5 <= r["found_share"] <= 1.0
    assert 0 <= r["unconfirmed"] <= r["boxes"]
