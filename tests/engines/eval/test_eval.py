"""LFW 10-fold verification and WIDER FACE AP: the protocol arithmetic, then the commands."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest

from engines.eval.lfw import (PerturbedReader, best_threshold, jitter_sides, limit_pairs, read_pairs, reframe_image,
                              ten_fold, tilt_sign, turn_image)
from engines.eval.widerface import (
    GroundTruth,
    average_precision,
    load_ground_truth,
    overlaps,
    read_sizes,
    voc_ap,
)
from tests.support.paths import REPO, SHARED_DATA

DATA = SHARED_DATA
ASTRONAUT = REPO / "docs" / "samples" / "astronaut.jpg"


def _needs(path: Path) -> Path:
    if not path.exists():
        pytest.skip(f"{path} is not present")
    return path


def _needs_cascade():
    """Skip unless the YuNet + SFace files are installed."""
    from engines.errors import EngineUnavailable
    from engines.teachers.locate import SFACE_FILE, YUNET_FILE, opencv_zoo_model

    try:
        opencv_zoo_model(YUNET_FILE), opencv_zoo_model(SFACE_FILE)
    except EngineUnavailable as exc:
        pytest.skip(str(exc))


def _needs_mtcnn_dlib():
    pytest.importorskip("torch")
    pytest.importorskip("dlib")
    from engines.errors import EngineUnavailable
    from engines.teachers.locate import dlib_weights, mtcnn_weights

    try:
        mtcnn_weights(), dlib_weights()
    except EngineUnavailable as exc:
        pytest.skip(str(exc))


def _run_cli(capsys, *argv: str) -> tuple[int, str, str]:
    from main import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# ---------------------------------------------------------------------------- LFW arithmetic


def test_best_threshold_is_exact_on_a_known_split():
    sims = np.array([0.9, 0.8, 0.55, 0.6, 0.3, 0.1])
    same = np.array([True, True, True, False, False, False])
    t, acc = best_threshold(sims, same)
    # 5/6 is the best possible (0.55 vs 0.6 cannot both be right); the first best cut is 0.45..0.55
    assert acc == pytest.approx(5 / 6)
    assert 0.3 < t < 0.55
    t2, acc2 = best_threshold(np.array([0.9, 0.8, 0.2, 0.1]), np.array([True, True, False, False]))
    assert acc2 == 1.0 and t2 == pytest.approx(0.5)


def test_missing_faces_are_always_predicted_different():
    sims = np.array([0.9, -np.inf, 0.2, -np.inf])
    same = np.array([True, True, False, False])
    t, acc = best_threshold(sims, same)
    assert acc == pytest.approx(3 / 4)  # the matched pair without a face is lost whatever t is


def test_ten_fold_picks_thresholds_on_the_other_folds():
    rng = np.random.default_rng(0)
    folds = np.repeat(np.arange(10), 20)
    same = np.tile([True] * 10 + [False] * 10, 10)
    sims = np.where(same, rng.uniform(0.6, 1.0, 200), rng.uniform(-0.2, 0.4, 200))
    accs, thresholds = ten_fold(sims, same, folds)
    assert accs == [1.0] * 10
    assert all(0.4 <= t <= 0.6 for t in thresholds)
    # one fold whose pairs are swapped scores 0 there, and only there
    flipped = same.copy()
    flipped[folds == 3] = ~flipped[folds == 3]
    accs, _ = ten_fold(sims, flipped, folds)
    assert accs[3] == 0.0 and np.mean(accs) < 1.0


def test_read_pairs_and_limit(tmp_path):
    lines = ["2\t2"]
    for fold in range(2):
        lines += [f"P{fold}\t1\t2", f"Q{fold}\t1\t3", f"P{fold}\t1\tQ{fold}\t2", f"R{fold}\t4\tS{fold}\t12"]
    (tmp_path / "pairs.txt").write_text("\n".join(lines) + "\n")
    pairs = read_pairs(tmp_path / "pairs.txt")
    assert len(pairs) == 8
    assert pairs[0].a == "P0/P0_0001.jpg" and pairs[0].b == "P0/P0_0002.jpg" and pairs[0].same
    assert pairs[3].b == "S0/S0_0012.jpg" and not pairs[3].same and pairs[3].fold == 0
    assert pairs[4].fold == 1
    short = limit_pairs(pairs, 2)
    assert [(p.fold, p.same) for p in short] == [(0, True), (0, False), (1, True), (1, False)]
    (tmp_path / "pairs.txt").write_text("2\t2\nP\t1\t2\n")
    with pytest.raises(ValueError, match="expected 8 pairs"):
        read_pairs(tmp_path / "pairs.txt")


# ---------------------------------------------------------------------------- WIDER FACE arithmetic


def _gt(boxes_xyxy, counted) -> GroundTruth:
    b = np.asarray(boxes_xyxy, np.float64)
    xywh = np.column_stack([b[:, :2], b[:, 2:] - b[:, :2]])
    keep = np.asarray(counted, np.int64)
    return GroundTruth("0--Test", "img", xywh, {"easy": keep, "medium": keep, "hard": keep})


def _pred(boxes_xyxy, scores) -> np.ndarray:
    b = np.asarray(boxes_xyxy, np.float64).reshape(-1, 4)
    return np.column_stack([b[:, :2], b[:, 2:] - b[:, :2], scores])


FACES = [[10, 10, 50, 60], [100, 10, 140, 60], [200, 10, 240, 60], [300, 10, 340, 60]]


def test_overlaps_use_the_inclusive_pixel_convention():
    a = np.array([[0, 0, 9, 9]], float)
    b = np.array([[0, 0, 9, 9], [5, 0, 14, 9], [20, 20, 30, 30]], float)
    np.testing.assert_allclose(overlaps(a, b)[0], [1.0, 50 / 150, 0.0])


def test_ap_perfect_detections_is_one():
    aps = average_precision([_pred(FACES, [0.9, 0.8, 0.7, 0.6])], [_gt(FACES, [0, 1, 2, 3])])
    assert aps == {"easy": 1.0, "medium": 1.0, "hard": 1.0}


def test_ap_half_missed_is_one_half():
    aps = average_precision([_pred(FACES[:2], [0.9, 0.8])], [_gt(FACES, [0, 1, 2, 3])])
    assert aps["easy"] == pytest.approx(0.5)


def test_ap_with_a_false_positive_between_hits():
    # normalised scores 1.0 (hit), 0.5 (miss), 0.0 (hit) over 2 faces:
    # recall 0.5 at precision 1, then recall 1 at precision 2/3 -> AP = 0.5 + 0.5 * 2/3
    pred = _pred([FACES[0], [400, 400, 440, 450], FACES[1]], [1.0, 0.5, 0.0])
    aps = average_precision([pred], [_gt(FACES[:2], [0, 1])])
    assert aps["easy"] == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_ap_ignores_detections_of_faces_outside_the_setting():
    gt = _gt(FACES[:2], [1])  # face 0 does not count (e.g. too small for "easy")
    pred = _pred([FACES[0], FACES[1]], [1.0, 0.0])
    assert average_precision([pred], [gt])["easy"] == pytest.approx(1.0)
    # counted as a false positive it would have been 0.5
    assert voc_ap(np.array([0.0, 1.0]), np.array([0.0, 0.5])) == pytest.approx(0.5)


def test_ap_duplicate_detection_is_a_false_positive():
    pred = _pred([FACES[0], FACES[0], FACES[1]], [1.0, 0.5, 0.0])
    aps = average_precision([pred], [_gt(FACES[:2], [0, 1])])
    assert aps["easy"] == pytest.approx(0.5 + 0.5 * 2 / 3)


def test_recall_by_size_counts_found_faces_per_size_bin():
    from engines.eval.widerface import recall_by_size

    faces = [[10, 10, 18, 17], [100, 10, 140, 60], [200, 10, 240, 60], [300, 10, 400, 130]]  # 8, 50, 50, 120 px
    gt = _gt(faces, [0, 1, 2, 3])
    pred = _pred([faces[0], faces[1], faces[2], [500, 500, 540, 550]], [0.9, 0.8, 0.3, 0.99])
    bins = {b.label: (b.recalled, b.faces) for b in recall_by_size([pred], [gt], min_score=0.5)}
    assert bins["0-10 px"] == (1, 1) and bins["32-64 px"] == (1, 2)  # the 0.3 detection is below the score
    assert bins["64-128 px"] == (0, 1) and bins["10-16 px"] == (0, 0)  # a false positive recalls nothing
    assert sum(f for _, f in bins.values()) == 4
    only_two = _gt(faces, [1, 3])  # faces outside the setting are not counted
    assert sum(b.faces for b in recall_by_size([pred], [only_two], 0.5)) == 2
    assert sum(b.recalled for b in recall_by_size([pred[:0]], [gt], 0.5)) == 0  # no detection at all


def test_read_sizes(tmp_path):
    (tmp_path / "sizes.txt").write_text("# name w h\na.jpg 1024 768\nb,1024,1366\n")
    assert read_sizes(tmp_path / "sizes.txt") == {"a": (1024, 768), "b": (1024, 1366)}
    (tmp_path / "bad.txt").write_text("a 1024\n")
    with pytest.raises(ValueError, match="NAME WIDTH HEIGHT"):
        read_sizes(tmp_path / "bad.txt")


def test_sample_ground_truth_parses():
    gts = load_ground_truth(_needs(DATA / "widerface-sample" / "wider_face_val.mat"))
    assert len(gts) == 3226  # the whole val set
    first = gts[0]
    assert first.event == "0--Parade" and first.name == "0_Parade_marchingband_1_465"
    assert first.boxes.shape[1] == 4
    for g in gts[:200]:
        assert set(g.keep["easy"]) <= set(g.keep["medium"]) <= set(g.keep["hard"])
        assert np.all(g.keep["hard"] < len(g.boxes))


# ---------------------------------------------------------------------------- the commands


def _tiny_lfw(tmp_path: Path) -> Path:
    """An LFW folder whose 10 folds reuse two real matched and two mismatched pairs (6 images)."""
    src = _needs(DATA / "lfw" / "images")
    people = ["Akhmed_Zakayev", "Amber_Tamblyn", "Abel_Pacheco", "Aaron_Sorkin"]
    (tmp_path / "images").mkdir()
    for person in people:
        _needs(src / person)
        (tmp_path / "images" / person).symlink_to(src / person)
    fold = ["Akhmed_Zakayev\t1\t3", "Amber_Tamblyn\t1\t2",
            "Abel_Pacheco\t1\tAkhmed_Zakayev\t1", "Aaron_Sorkin\t1\tAmber_Tamblyn\t2"]
    (tmp_path / "pairs.txt").write_text("10\t2\n" + "\n".join(fold * 10) + "\n")
    return tmp_path


def test_eval_lfw_limit_json_and_cache(capsys, tmp_path):
    _needs_cascade()
    lfw = _tiny_lfw(tmp_path)
    argv = ["eval", "lfw", "--data", str(lfw), "--engine", "cascade", "--limit", "4", "--workers", "1",
            "--json", "--quiet"]
    code, out, err = _run_cli(capsys, *argv)
    assert code == 0, err
    res = json.loads(out)
    for key in ("accuracy", "std", "threshold", "no_face", "pairs", "images", "engine", "backend", "model_id",
                "threshold_far_1pct", "tar_at_far_1pct", "threshold_far_0.1pct", "tar_at_far_0.1pct"):
        assert key in res
    assert res["pairs"] == 40 and res["images"] == 6 and res["no_face"] == 0
    assert res["engine"] == "cascade" and res["backend"] == "opencv+onnxruntime"
    assert res["accuracy"] == 1.0 and res["std"] == 0.0  # the teachers tell these four pairs apart
    assert res["tar_at_far_1pct"] == 1.0 and res["threshold_far_1pct"] < 1.0
    assert 0.1 < res["threshold"] < 0.9
    assert res["seconds"] > 0 and Path(res["cache"]).is_file()
    # the second run reads every embedding from the cache and gives the same figures
    code, out, _ = _run_cli(capsys, *argv)
    again = json.loads(out)
    assert again["seconds"] == 0 and again["accuracy"] == res["accuracy"] and again["threshold"] == res["threshold"]
    # the human-readable report states how missing faces are counted
    code, out, _ = _run_cli(capsys, *argv[:-2], "--quiet")
    assert "accuracy  100.00% ± 0.00" in out and "count as 'different'" in out


def test_turned_images_keep_their_centre_and_each_file_one_direction(tmp_path):
    image = np.zeros((101, 101, 3), np.uint8)
    image[50, 80] = 255  # right of the centre
    up = turn_image(image, 90)  # counter-clockwise: the dot goes above the centre
    y, x = np.unravel_index(np.argmax(up[..., 0]), up.shape[:2])
    assert (abs(int(y) - 20), abs(int(x) - 50)) <= (1, 1) and up.shape == image.shape
    names = [f"Someone_{i:04d}.jpg" for i in range(1, 41)]
    signs = [tilt_sign(f"/anywhere/{n}") for n in names]
    assert set(signs) == {-1, 1} and signs == [tilt_sign(f"/elsewhere/{n}") for n in names]
    # names that differ only in their numbers, as in most LFW pairs, still split about evenly
    opposite = np.mean([a != b for a, b in zip(signs, signs[1:])])
    assert 0.35 < opposite < 0.65, opposite
    path = tmp_path / names[0]
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 256, (60, 80, 3), dtype=np.uint8))
    photo = cv2.imread(str(path))
    assert np.array_equal(PerturbedReader()(str(path)), photo)
    assert np.array_equal(PerturbedReader(20)(str(path)), turn_image(photo, 20 * signs[0]))
    assert PerturbedReader(20)(str(tmp_path / "missing.jpg")) is None


def test_reframed_images_are_cropped_or_padded_per_side_and_each_file_keeps_its_frame(tmp_path):
    image = np.arange(6 * 8, dtype=np.uint8).reshape(6, 8, 1).repeat(3, axis=2)  # every pixel its own value
    # left padded 2, top cropped 1, right cropped 3, bottom padded 4
    framed = reframe_image(image, (2, -1, -3, 4))
    assert framed.shape == (6 - 1 + 4, 2 + 8 - 3, 3)
    assert np.array_equal(framed[0:5, 2:7], image[1:6, 0:5])  # the kept part, in place
    assert not framed[:, :2].any() and not framed[5:].any()  # the padding is black
    # cropping more than the image keeps one pixel rather than failing
    assert reframe_image(image, (-10, -10, -10, -10)).shape[:2] == (1, 1)
    assert np.array_equal(reframe_image(image, (0, 0, 0, 0)), image)
    # each side draws its own amount in [-60, 60], from the file name alone
    names = [f"Someone_{i:04d}.jpg" for i in range(1, 201)]
    sides = np.array([jitter_sides(f"/anywhere/{n}", 60) for n in names])
    assert sides.min() >= -60 and sides.max() <= 60 and sides.min() < -50 and sides.max() > 50
    assert np.array_equal(sides, [jitter_sides(f"/elsewhere/{n}", 60) for n in names])
    assert abs(np.corrcoef(sides.T)[np.triu_indices(4, 1)]).max() < 0.25  # the four sides independent
    assert abs(sides.mean()) < 6  # as many crops as pads
    path = tmp_path / names[0]
    cv2.imwrite(str(path), np.random.default_rng(0).integers(0, 256, (250, 250, 3), dtype=np.uint8))
    photo = cv2.imread(str(path))
    assert np.array_equal(PerturbedReader(jitter=60)(str(path)), reframe_image(photo, tuple(sides[0])))
    # a tilt comes first, then the frame
    both = PerturbedReader(20, 60)(str(path))
    assert np.array_equal(both, reframe_image(turn_image(photo, 20 * tilt_sign(str(path))), tuple(sides[0])))


def _tiny_lfw_command(tmp_path, monkeypatch) -> list[str]:
    """`eval lfw --json` of the shipped model on the tiny LFW, its embedding cache under tmp_path."""
    monkeypatch.setenv("UNISIGHT_CACHE", str(tmp_path / "cache"))
    lfw = _tiny_lfw(tmp_path)
    return ["eval", "lfw", "--data", str(lfw), "--limit", "2", "--workers", "1", "--json", "--quiet"]


def _lfw_json(capsys, base: list[str], *extra: str) -> dict:
    """The JSON of a successful run of `base` with `extra` options."""
    code, out, err = _run_cli(capsys, *base, *extra)
    assert code == 0, err
    return json.loads(out)


def _plain_and_perturbed(capsys, tmp_path, monkeypatch, option: str, value: str, bad: str) -> tuple[dict, dict]:
    """`eval lfw --json` on the tiny LFW as it is and with `option value`: both are reported, over the
    same images, each in its own embedding cache; `option bad` is refused in one line."""
    base = _tiny_lfw_command(tmp_path, monkeypatch)
    plain = _lfw_json(capsys, base)
    perturbed = _lfw_json(capsys, base, option, value)
    key = option.lstrip("-")
    assert plain[key] == 0 and perturbed[key] == float(value) and perturbed["images"] == plain["images"] > 0
    assert perturbed["cache"] != plain["cache"] and f"{key}{value}" in perturbed["cache"]
    code, _, err = _run_cli(capsys, *base, option, bad)
    assert code == 2 and option in err
    return plain, perturbed


def test_eval_lfw_tilt_keeps_its_own_cache_and_is_reported(capsys, tmp_path, monkeypatch):
    upright, tilted = _plain_and_perturbed(capsys, tmp_path, monkeypatch, "--tilt", "25", bad="200")
    # the turned photos were embedded anew: same names, other embeddings
    with np.load(upright["cache"]) as a, np.load(tilted["cache"]) as b:
        assert a["names"].tolist() == b["names"].tolist() and a["found"].all() and b["found"].all()
        cosines = np.sum(a["embeddings"] * b["embeddings"], axis=1)
        assert np.all(cosines < 0.999) and np.all(cosines > 0.0)


def test_eval_lfw_jitter_keeps_its_own_cache_and_is_reported(capsys, tmp_path, monkeypatch):
    framed, jittered = _plain_and_perturbed(capsys, tmp_path, monkeypatch, "--jitter", "60", bad="-5")
    with np.load(framed["cache"]) as a, np.load(jittered["cache"]) as b:
        assert a["names"].tolist() == b["names"].tolist()
        found = a["found"] & b["found"]
        assert found.any()  # the reframed photos were embedded anew: other embeddings
        assert np.all(np.sum(a["embeddings"][found] * b["embeddings"][found], axis=1) < 0.999)


def test_eval_lfw_min_score_decides_which_faces_count_and_keeps_its_own_cache(capsys, tmp_path, monkeypatch):
    """--min-score overrides the model's detection threshold: a score no face reaches loses every
    image (all pairs then count as 'different'), in a cache of its own."""
    base = _tiny_lfw_command(tmp_path, monkeypatch)
    own = _lfw_json(capsys, base)
    strict = _lfw_json(capsys, base, "--min-score", "0.999999")
    assert own["no_face"] == 0 and strict["no_face"] == strict["images"] == own["images"]
    assert strict["no_face_pairs"] == strict["pairs"] and strict["accuracy"] == 0.5
    assert strict["min_score"] == 0.999999 and own["min_score"] < 0.999999
    assert strict["cache"] != own["cache"] and "score0.999999" in strict["cache"]
    code, _, err = _run_cli(capsys, *base, "--min-score", "1.5")
    assert code == 2 and "--min-score" in err


def test_eval_lfw_bad_data_is_a_user_error(capsys, tmp_path):
    code, _, err = _run_cli(capsys, "eval", "lfw", "--data", str(tmp_path), "--engine", "cascade")
    assert code == 2 and "pairs.txt" in err and len(err.strip().splitlines()) == 1


def test_eval_widerface_on_sample_images(capsys):
    _needs_mtcnn_dlib()
    sample = _needs(DATA / "widerface-sample")
    code, out, err = _run_cli(capsys, "eval", "widerface", "--images", str(sample), "--engine", "mtcnn-dlib",
                              "--limit", "3", "--workers", "1", "--json", "--quiet")
    assert code == 0, err
    res = json.loads(out)
    assert res["images"] == 3
    for s in ("easy", "medium", "hard"):
        assert 0.0 <= res[s] <= 1.0
    assert res["resized_images"] == 0  # the sample is at original resolution (since 2026-12-06)


def test_eval_widerface_cascade_reaches_its_published_level(capsys):
    """YuNet on the whole shared sample: the figures the README quotes (0.83 / 0.81 / 0.76)."""
    _needs_cascade()
    sample = _needs(DATA / "widerface-sample")
    code, out, err = _run_cli(capsys, "eval", "widerface", "--images", str(sample), "--engine", "cascade",
                              "--json", "--quiet")
    assert code == 0, err
    res = json.loads(out)
    assert res["images"] == 50 and res["resized_images"] == 0
    assert res["easy"] >= 0.82 and res["medium"] >= 0.78 and res["hard"] >= 0.70, res
    by_size = {b["size"]: b for b in res["recall_by_size"]["bins"]}
    assert sum(b["faces"] for b in by_size.values()) == res["faces"]["hard"]
    assert by_size["64-128 px"]["recalled"] >= 0.8 * by_size["64-128 px"]["faces"]  # YuNet finds mid-size faces


def _write_wider_gt(folder: Path, event: str, names: list[str], boxes: list[np.ndarray]) -> Path:
    """A minimal wider_face_val.mat + wider_{easy,medium,hard}_val.mat, as MATLAB cell arrays."""
    from scipy.io import savemat

    def cell(items):
        arr = np.empty((len(items), 1), dtype=object)
        for i, item in enumerate(items):
            arr[i, 0] = item
        return arr

    event_list = cell([np.array([event])])
    file_list = cell([cell([np.array([n]) for n in names])])
    bbx = cell([cell([b.astype(np.float64) for b in boxes])])
    savemat(folder / "wider_face_val.mat", {"event_list": event_list, "file_list": file_list, "face_bbx_list": bbx})
    for setting in ("easy", "medium", "hard"):
        keep = cell([cell([np.arange(1, len(b) + 1, dtype=np.float64).reshape(-1, 1) for b in boxes])])
        savemat(folder / f"wider_{setting}_val.mat",
                {"event_list": event_list, "file_list": file_list, "face_bbx_list": bbx, "gt_list": keep})
    return folder / "wider_face_val.mat"


def test_eval_widerface_maps_resized_copies_back_with_sizes(capsys, tmp_path):
    """A hand-boxed face in an event folder; a half-size copy only scores with --sizes."""
    _needs_cascade()
    image = cv2.imread(str(ASTRONAUT))
    face_xywh = np.array([[178.0, 58.0, 90.0, 116.0]])  # Eileen Collins' face in the 512 px sample
    gt = _write_wider_gt(tmp_path, "0--Test", ["0_Test_astronaut_1"], [face_xywh])
    (tmp_path / "full" / "0--Test").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "full" / "0--Test" / "0_Test_astronaut_1.jpg"), image)
    (tmp_path / "half").mkdir()
    cv2.imwrite(str(tmp_path / "half" / "0_Test_astronaut_1.jpg"), cv2.resize(image, (256, 256)))
    (tmp_path / "sizes.txt").write_text("0_Test_astronaut_1 512 512\n")
    common = ["--gt", str(gt), "--engine", "cascade", "--workers", "1", "--json", "--quiet"]

    def run(*extra):
        code, out, err = _run_cli(capsys, "eval", "widerface", *extra, *common)
        assert code == 0, err
        return json.loads(out)

    full = run("--images", str(tmp_path / "full"))
    assert full["easy"] == pytest.approx(1.0) and full["resized_images"] == 0
    half = run("--images", str(tmp_path / "half"))
    assert half["easy"] < 0.5 and half["resized_images"] == 1
    mapped = run("--images", str(tmp_path / "half"), "--sizes", str(tmp_path / "sizes.txt"))
    assert mapped["easy"] == pytest.approx(1.0) and mapped["rescaled_images"] == 1


def test_operating_point_at_one_percent_false_accepts():
    from engines.eval.lfw import operating_point

    diff = np.linspace(0.0, 0.99, 100)  # 100 different-people pairs
    same_sims = np.array([0.95, 0.985, 0.995, -np.inf])  # the last: no face found
    sims = np.concatenate([diff, same_sims])
    same = np.concatenate([np.zeros(100, bool), np.ones(4, bool)])
    t, tar = operating_point(sims, same, far=0.01)
    assert t == pytest.approx(0.98)  # only 0.99 (1 of 100) lies above it
    assert np.mean(diff > t) <= 0.01 and tar == pytest.approx(2 / 4)
    t0, tar0 = operating_point(sims, same, far=0.0)
    assert t0 == pytest.approx(0.99) and tar0 == pytest.approx(1 / 4)
