"""Training pieces: augmentation keeps labels consistent, matching, losses fall on a tiny config."""
import numpy as np
import pytest
import torch

from app.paths import SAMPLE_IMAGE
from engines.model.config import TINY
from engines.model.network import Uniface
from engines.train.augment import AugmentSettings, Sample, augment, flip
from engines.train.dataset import FaceDataset, collate
from engines.train.labelling import ImageLabels
from engines.train.losses import detection_losses, mimic_loss
from engines.train.targets import match_anchors
from engines.train.validate import average_precision

# the astronaut's face in docs/samples/astronaut.jpg (512 x 512), as MTCNN finds it
FACE_BOX = np.array([[170.0, 50.0, 260.0, 165.0]], np.float32)
FACE_LMK = np.array([[[195, 100], [235, 98], [218, 120], [200, 140], [233, 139]]], np.float32)


def _label(embedding_seed=0):
    emb = np.random.default_rng(embedding_seed).normal(size=(1, 128)).astype(np.float32)
    return ImageLabels(path=str(SAMPLE_IMAGE), set_name="test", width=512, height=512, boxes=FACE_BOX,
                       landmarks=FACE_LMK, scores=np.array([0.99], np.float32),
                       embeddings=emb / np.linalg.norm(emb))


def test_flip_swaps_landmarks_and_mirrors_boxes():
    img = np.zeros((512, 512, 3), np.uint8)
    s = Sample(img, FACE_BOX.copy(), FACE_LMK.copy(), np.zeros((1, 128), np.float32), np.ones(1, bool), np.zeros(1, bool))
    f = flip(s)
    assert np.allclose(f.boxes, [[512 - 260, 50, 512 - 170, 165]])
    # the left eye of the mirror image is the mirrored right eye
    assert np.allclose(f.landmarks[0, 0], [512 - 235, 98]) and f.landmarks[0, 0, 0] < f.landmarks[0, 1, 0]
    assert f.mimic.all() and np.array_equal(f.embeddings, s.embeddings)  # same person, same target


def test_augment_keeps_faces_on_canvas():
    import cv2

    img = cv2.imread(str(SAMPLE_IMAGE))
    base = Sample(img, FACE_BOX, FACE_LMK, np.zeros((1, 128), np.float32), np.ones(1, bool), np.zeros(1, bool))
    settings = AugmentSettings(canvas=(160, 128))
    for seed in range(30):
        s = augment([base] * 4, np.random.default_rng(seed), settings)
        assert s.image.shape == (128, 160, 3) and s.image.dtype == np.uint8
        assert len(s.boxes) == len(s.landmarks) == len(s.mimic) == len(s.ignore)
        if len(s.boxes):
            assert (s.boxes[:, 0] >= 0).all() and (s.boxes[:, 2] <= 160).all() and (s.boxes[:, 3] <= 128).all()
            assert (s.boxes[:, 2] > s.boxes[:, 0]).all()


def _big_astronaut() -> Sample:
    """The astronaut enlarged 3x: a 1536 px photo, as a crowd photo is large."""
    import cv2

    big = cv2.resize(cv2.imread(str(SAMPLE_IMAGE)), (1536, 1536))
    return Sample(big, FACE_BOX * 3, FACE_LMK * 3, np.zeros((1, 128), np.float32), np.ones(1, bool), np.zeros(1, bool))


def _face_scales(settings: AugmentSettings, base: Sample, seeds: range) -> list[float]:
    """How much the face of a single-photo canvas was scaled, per seed (faces cut off skipped)."""
    scales = []
    for seed in seeds:
        s = augment([base], np.random.default_rng(seed), settings, mosaic=False)
        if len(s.boxes) and not s.ignore[0]:
            # the eyes' distance: a box may be cut by the canvas border
            eyes = np.linalg.norm(s.landmarks[0, 1] - s.landmarks[0, 0])
            scales.append(float(eyes / np.linalg.norm(FACE_LMK[0, 1] - FACE_LMK[0, 0]) / 3))
    return scales


def test_native_canvases_cut_the_photo_at_about_its_own_scale():
    """--native-p: a large photo reaches the canvas at 0.4-1.4 of its size, where zooming the whole
    photo to a 320 px canvas shrinks it to 0.07-0.33; at native_p 0 the canvases are as before."""
    base = _big_astronaut()
    zoomed = _face_scales(AugmentSettings(canvas=(320, 320), turn_p=0.0), base, range(40))
    native = _face_scales(AugmentSettings(canvas=(320, 320), native_p=1.0), base, range(300))  # a crop: often faceless
    assert zoomed and max(zoomed) < 0.35
    assert len(native) >= 10 and min(native) >= 0.39 and max(native) <= 1.41 and max(native) > 0.9
    plain = AugmentSettings(canvas=(160, 128))
    unused_range = AugmentSettings(canvas=(160, 128), native_p=0.0, native_range=(5.0, 6.0))
    for seed in range(5):  # no draw is spent at native_p 0: the same canvas as before the option
        a = augment([base], np.random.default_rng(seed), plain, mosaic=False)
        b = augment([base], np.random.default_rng(seed), unused_range, mosaic=False)
        assert np.array_equal(a.image, b.image) and np.array_equal(a.boxes, b.boxes)


def test_small_face_grids_shrink_a_face_of_each_photo_into_its_window():
    """--small-p: each window shows its photo with the drawn face 8-64 px (by the eyes, as a box
    may be cut by the window); the smallest anchors get positives."""
    from engines.train.augment import small_face_grid

    base = _big_astronaut()
    settings = AugmentSettings(canvas=(320, 320), turn_p=0.0, flip_p=0.0)
    eyes_per_side = np.linalg.norm(FACE_LMK[0, 1] - FACE_LMK[0, 0]) / float(np.sqrt(90 * 115))
    sides = []
    for seed in range(12):
        n = (2, 3, 4)[seed % 3]
        s = small_face_grid([base] * (n * n), np.random.default_rng(seed), settings)
        assert s.image.shape == (320, 320, 3) and len(s.boxes) <= n * n
        assert len(s.boxes) == len(s.landmarks) == len(s.mimic) == len(s.ignore) == len(s.identities)
        sides += [float(np.linalg.norm(lmk[1] - lmk[0]) / eyes_per_side) for lmk in s.landmarks]
    assert len(sides) >= 40 and min(sides) > 7.5 and max(sides) < 65
    assert np.mean(np.array(sides) < 24) > 0.3  # log-uniform over 8-64: about half below 23 px
    model = Uniface(TINY)
    anchors = model.forward_heads(torch.zeros(1, 3, 320, 320)).anchors.numpy()
    grid = small_face_grid([base] * 16, np.random.default_rng(0), settings)
    labels = match_anchors(anchors, grid.boxes, grid.landmarks, grid.ignore).labels
    assert (labels[anchors[:, 2] <= 16] == 1).sum() >= 4  # TINY's smallest anchors are 16 px


def test_place_window_pastes_only_into_its_window_with_the_labels_on_the_pixels():
    """A white face box on a black photo, scaled and cut by a window: the box lands on white pixels,
    nothing is painted outside the window, and a face cut to a sliver is dropped."""
    from engines.train.augment import place_window

    photo = np.zeros((600, 800, 3), np.uint8)
    boxes = np.array([[100, 100, 200, 220], [700, 500, 790, 590]], np.float32)
    for x1, y1, x2, y2 in boxes.astype(int):
        photo[y1:y2, x1:x2] = 255
    lmk = np.repeat(((boxes[:, :2] + boxes[:, 2:]) / 2)[:, None], 5, 1)
    s = Sample(photo, boxes, lmk, np.zeros((2, 128), np.float32), np.ones(2, bool), np.zeros(2, bool))
    canvas = np.full((200, 300, 3), 77, np.uint8)
    window = (100, 50, 200, 150)
    out = place_window(s, canvas, 0.2, 100 - 150 * 0.2 + 50, 50 - 160 * 0.2 + 50, window)  # face 1 centred
    assert len(out.boxes) == 1  # the second face falls outside the window
    x1, y1, x2, y2 = out.boxes[0]
    assert abs((x2 - x1) - 20) < 1 and abs((y2 - y1) - 24) < 1 and abs((x1 + x2) / 2 - 150) < 1
    inner = canvas[int(y1) + 2 : int(y2) - 2, int(x1) + 2 : int(x2) - 2]
    assert inner.min() == 255
    assert canvas[int(y1) - 3, int(x1) + 5].max() == 0  # the photo's black just above the face
    outside = np.ones(canvas.shape[:2], bool)
    outside[50:150, 100:200] = False
    assert (canvas[outside] == 77).all()


def test_small_face_grids_draw_photos_with_surroundings_and_cost_nothing_when_off():
    from dataclasses import replace

    from engines.train.dataset import with_surroundings

    crop = replace(_label(), width=100, height=120, boxes=np.array([[0, 0, 95, 118]], np.float32))
    labels = [_label(0), crop, replace(_label(), boxes=np.zeros((0, 4), np.float32))]
    assert with_surroundings(labels).tolist() == [True, False, False]
    model = Uniface(TINY)
    anchors = model.forward_heads(torch.zeros(1, 3, 128, 160)).anchors.numpy()
    plain = FaceDataset([_label(0), _label(1)], anchors, AugmentSettings(canvas=(160, 128)), seed=3)
    off = FaceDataset([_label(0), _label(1)], anchors, AugmentSettings(canvas=(160, 128), small_p=0.0,
                                                                      small_range=(30.0, 31.0)), seed=3)
    for i in range(2):  # no draw is spent at small_p 0: the same canvases as before the option
        assert np.array_equal(plain[i].image, off[i].image) and np.array_equal(plain[i].labels, off[i].labels)
    grids = FaceDataset([_label(0), _label(1)], anchors, AugmentSettings(canvas=(160, 128), small_p=1.0), seed=3)
    assert len(grids.grid_order) == 2
    item = grids[0]
    assert item.image.shape == (128, 160, 3) and (item.labels == 1).sum() >= 1


def test_set_repeats_make_a_small_set_a_larger_share_of_the_canvases():
    from dataclasses import replace

    from engines.train.dataset import repeated_order

    labels = [replace(_label(), set_name="portraits") for _ in range(6)] + [replace(_label(), set_name="crowds")] * 2
    order = repeated_order(labels, {"crowds": 5})
    assert len(order) == 6 + 2 * 5
    assert sorted(np.bincount(order, minlength=8).tolist()) == [1] * 6 + [5, 5]
    assert np.array_equal(repeated_order(labels, None), np.arange(8))
    with pytest.raises(ValueError, match="no such set"):
        repeated_order(labels, {"crowd": 5})
    with pytest.raises(ValueError, match="at least 1"):
        repeated_order(labels, {"crowds": 0})
    data = FaceDataset(labels, np.zeros((1, 4), np.float32) + [32, 32, 16, 16], AugmentSettings(canvas=(64, 64)),
                       repeats={"crowds": 5})
    assert len(data) == 16


def test_letterbox_borders_are_exact_black_and_faces_behind_them_are_cut():
    from engines.train.augment import letterbox_border

    rng = np.random.default_rng(0)
    image = np.full((512, 512, 3), 77, np.uint8)
    s = Sample(image, FACE_BOX.copy(), FACE_LMK.copy(), np.zeros((1, 128), np.float32), np.ones(1, bool),
               np.zeros(1, bool))
    borders, kept, cut = set(), 0, 0
    for _ in range(40):
        c = letterbox_border(Sample(image.copy(), s.boxes, s.landmarks, s.embeddings, s.mimic, s.ignore), rng)
        rows = np.flatnonzero(c.image.any(axis=(1, 2)))
        cols = np.flatnonzero(c.image.any(axis=(0, 2)))
        ch, cw = rows[-1] + 1, cols[-1] + 1
        assert np.all(c.image[:ch, :cw] == 77) and not c.image[ch:].any() and not c.image[:, cw:].any()
        borders.add((cw < 512, ch < 512))
        x1, y1, x2, y2 = FACE_BOX[0]
        visible = (min(x2, cw) - x1) * (min(y2, ch) - y1) / ((x2 - x1) * (y2 - y1))
        if len(c.boxes):  # a face kept is clipped to the content, and mimicked only if (almost) whole
            assert c.boxes[0, 2] <= cw and c.boxes[0, 3] <= ch
            assert c.mimic[0] == (visible > 0.95)
            kept += 1
        else:
            cut += 1
    assert borders == {(True, False), (False, True), (True, True)} and kept and cut


def test_matching_marks_the_face_anchor_positive():
    model = Uniface(TINY)
    anchors = model.forward_heads(torch.zeros(1, 3, 512, 512)).anchors.numpy()
    t = match_anchors(anchors, FACE_BOX, FACE_LMK, np.zeros(1, bool))
    assert (t.labels == 1).sum() >= 1 and (t.labels == 0).sum() > 0.9 * len(anchors)
    t_ignored = match_anchors(anchors, FACE_BOX, FACE_LMK, np.ones(1, bool))
    assert (t_ignored.labels == 1).sum() == 0 and (t_ignored.labels == -1).sum() >= 1


def test_training_steps_reduce_the_loss():
    torch.manual_seed(0)
    model = Uniface(TINY)
    anchors = model.forward_heads(torch.zeros(1, 3, 128, 160)).anchors.numpy()
    ds = FaceDataset([_label(0), _label(1)], anchors, AugmentSettings(canvas=(160, 128), mosaic_p=0, flip_p=0,
                                                                     zoom_range=(0.9, 1.0)), seed=0)
    batch = collate([ds[0], ds[1]])
    assert batch["mimic_boxes"].shape[0] >= 1
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    history = []
    for _ in range(8):
        heads = model.forward_heads(model.normalise(batch["images"]))
        l = detection_losses(heads.logits, heads.box_deltas, heads.landmark_deltas, batch["labels"],
                             batch["box_t"], batch["lmk_t"])
        student = model.embed(heads.fr, batch["mimic_boxes"], batch["mimic_landmarks"], batch["mimic_index"])
        total = l["cls"] + 2 * l["box"] + l["landmarks"] + 4 * mimic_loss(student, batch["mimic_targets"])
        opt.zero_grad()
        total.backward()
        opt.step()
        history.append(float(total.detach()))
    assert history[-1] < 0.8 * history[0], history
    assert sum(b < a for a, b in zip(history, history[1:])) >= 6, history


def test_average_precision_known_values():
    assert average_precision(np.array([0.9, 0.8]), np.array([True, True]), 2) == 1.0
    assert abs(average_precision(np.array([0.9]), np.array([True]), 2) - 0.5) < 1e-9
    # a false positive ranked first halves the precision of the only hit
    assert abs(average_precision(np.array([0.9, 0.8]), np.array([False, True]), 1) - 0.5) < 1e-9


def _write_cache(folder, names):
    """A one-set label cache: the astronaut image under several names, one teacher face each."""
    import shutil

    from engines.faces import Faces
    from engines.train.labelling import ImageSet, _write_shard

    images = folder / "images"
    images.mkdir()
    records = []
    for i, name in enumerate(names):
        shutil.copy(SAMPLE_IMAGE, images / name)
        emb = np.random.default_rng(i).normal(size=(1, 128)).astype(np.float32)
        faces = Faces(boxes=FACE_BOX, scores=np.array([0.99], np.float32), landmarks=FACE_LMK,
                      embeddings=emb / np.linalg.norm(emb))
        records.append({"rel": name, "width": 512, "height": 512, "faces": faces})
    labels = folder / "labels"
    (labels / "test").mkdir(parents=True)
    _write_shard(labels / "test" / "part-00000.npz", records, ImageSet("test", images, names, None))
    return labels


def test_train_resumes_from_its_checkpoint_and_publishes_loadable_weights(tmp_path):
    import json

    from engines.model.weights import load_model, publish_weights
    from engines.train.loop import TrainSettings, train

    labels = _write_cache(tmp_path, [f"img{i:02d}.jpg" for i in range(12)])
    out = tmp_path / "run"
    settings = TrainSettings(labels_dir=str(labels), out_dir=str(out), config="tiny", steps=2, batch=2,
                             canvas=(160, 128), workers=0, eval_every=2, log_every=1, warmup=1, val_images=4)
    assert train(settings)["step"] == 2
    first = torch.load(out / "last.pt", weights_only=False)
    settings.steps = 4
    settings.init = str(tmp_path / "gone.pt")  # --init only seeds a new run; a resumed one needs none
    assert train(settings)["step"] == 4  # resumed: two more steps, not four
    log = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log if "total" in r] == [1, 2, 3, 4]
    resumed = torch.load(out / "last.pt", weights_only=False)
    assert resumed["step"] == 4 and "optimizer" in resumed and len(resumed["teacher_mean"]) == 128
    assert any(not torch.equal(first["state_dict"][k], resumed["state_dict"][k]) for k in first["state_dict"])

    shipped = tmp_path / "uniface_tiny.pt"
    meta = publish_weights(out / "best.pt", shipped)
    assert not meta.random_weights and meta.model_id.startswith("uniface-tiny-") and "step" in meta.trained
    payload = torch.load(shipped, weights_only=True)  # no optimizer, nothing that needs pickle
    assert set(payload) == {"config", "state_dict", "trained", "teacher_mean"}
    model, meta2 = load_model("tiny", shipped)
    assert meta2.model_id == meta.model_id
    with pytest.raises(ValueError, match="not a training checkpoint"):
        publish_weights(_not_a_checkpoint(tmp_path), tmp_path / "y.pt")


def test_published_weights_go_to_the_shipped_path_of_their_own_configuration(tmp_path, monkeypatch):
    import engines.model.weights as weights

    monkeypatch.setattr(weights, "WEIGHTS_DIR", tmp_path / "weights")  # not the repository's folder
    ckpt = tmp_path / "best.pt"
    torch.save({"config": "tiny", "state_dict": Uniface(TINY).state_dict(), "step": 1}, ckpt)
    meta = weights.publish_weights(ckpt)
    assert meta.weights_path == str(tmp_path / "weights" / "uniface_tiny.pt") and not meta.random_weights


def _two_tiny_checkpoints(tmp_path):
    """run1.pt and run2.pt: differently seeded tiny networks, teacher means all 1s and all 2s."""
    states = []
    for seed in (1, 2):
        torch.manual_seed(seed)
        states.append(Uniface(TINY).state_dict())
        torch.save({"config": "tiny", "state_dict": states[-1], "step": seed, "teacher_mean": [float(seed)] * 128},
                   tmp_path / f"run{seed}.pt")
    return states


def test_several_checkpoints_publish_as_their_element_wise_mean(tmp_path):
    from engines.model.config import PROD
    from engines.model.weights import load_model, publish_weights

    states = _two_tiny_checkpoints(tmp_path)
    meta = publish_weights([tmp_path / "run1.pt", tmp_path / "run2.pt"], tmp_path / "soup.pt")
    model, _ = load_model("tiny", tmp_path / "soup.pt")
    soup = model.state_dict()
    name = next(k for k, v in soup.items() if v.is_floating_point() and v.ndim == 4)
    assert not torch.equal(states[0][name], states[1][name])
    assert torch.allclose(soup[name], (states[0][name] + states[1][name]) / 2)
    payload = torch.load(tmp_path / "soup.pt", weights_only=True)
    assert payload["teacher_mean"] == [1.5] * 128 and payload["trained"].startswith("mean of 2 checkpoints")
    assert meta.model_id != publish_weights(tmp_path / "run1.pt", tmp_path / "one.pt").model_id

    torch.save({"config": "prod", "state_dict": Uniface(PROD).state_dict()}, tmp_path / "prod.pt")
    with pytest.raises(ValueError, match="different configurations"):
        publish_weights([tmp_path / "run1.pt", tmp_path / "prod.pt"], tmp_path / "bad.pt")
    assert not (tmp_path / "bad.pt").exists()


def test_export_weights_cli_averages_repeated_weights_and_names_a_missing_one(tmp_path, capsys):
    import json

    from main import main

    _two_tiny_checkpoints(tmp_path)
    out = tmp_path / "soup.pt"
    assert main(["export", "weights", "--weights", str(tmp_path / "run1.pt"), "--weights",
                 str(tmp_path / "run2.pt"), "--out", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["output"] == str(out) and summary["trained"].startswith("mean of 2")
    assert main(["export", "weights", "--weights", str(tmp_path / "run1.pt"), "--weights",
                 str(tmp_path / "gone.pt"), "--out", str(out)]) != 0
    assert "gone.pt" in capsys.readouterr().err


def _not_a_checkpoint(tmp_path):
    path = tmp_path / "plain.pt"
    torch.save({"weights": torch.zeros(1)}, path)
    return path


def _unit(rows, seed):
    x = torch.from_numpy(np.random.default_rng(seed).normal(size=(rows, 16)).astype(np.float32))
    return torch.nn.functional.normalize(x, dim=1)


def test_relation_loss_is_zero_for_the_teacher_itself_and_grows_as_the_student_strays():
    from engines.train.losses import relation_loss

    bank, target = _unit(50, 1), _unit(6, 2)
    assert float(relation_loss(target, target, bank, 0.1)) == pytest.approx(0.0, abs=1e-6)
    losses = []
    for noise in (0.1, 0.5, 2.0):
        student = torch.nn.functional.normalize(target + noise * _unit(6, 3), dim=1)
        losses.append(float(relation_loss(student, target, bank, 0.1)))
    assert 0 < losses[0] < losses[1] < losses[2], losses
    # the loss sees only similarities: rotating student, target and bank together changes nothing
    q, _ = torch.linalg.qr(torch.from_numpy(np.random.default_rng(4).normal(size=(16, 16)).astype(np.float32)))
    student = torch.nn.functional.normalize(target + 0.5 * _unit(6, 3), dim=1)
    assert float(relation_loss(student @ q, target @ q, bank @ q, 0.1)) == pytest.approx(losses[1], rel=1e-4)
    assert float(relation_loss(student[:0], target[:0], bank, 0.1)) == 0.0


def test_relation_loss_gradient_moves_a_student_towards_the_teachers_neighbourhood():
    from engines.train.losses import relation_loss

    bank, target = _unit(40, 5), _unit(4, 6)
    student = _unit(4, 7).requires_grad_(True)
    before = float((torch.nn.functional.normalize(student.detach(), dim=1) * target).sum(1).mean())
    opt = torch.optim.SGD([student], lr=0.05)
    for _ in range(200):
        opt.zero_grad()
        relation_loss(torch.nn.functional.normalize(student, dim=1), target, bank, 0.1).backward()
        opt.step()
    after = float((torch.nn.functional.normalize(student.detach(), dim=1) * target).sum(1).mean())
    assert after > before + 0.3, (before, after)


def test_teacher_bank_holds_centred_unit_embeddings_of_mimic_eligible_faces_only():
    from engines.train.loop import teacher_bank

    emb = np.random.default_rng(0).normal(size=(3, 128)).astype(np.float32)
    boxes = np.array([[0, 0, 100, 100], [0, 0, 10, 10], [200, 200, 300, 300]], np.float32)
    label = ImageLabels(path="x.jpg", set_name="test", width=400, height=400, boxes=boxes, scores=np.array([0.99, 0.99, 0.3], np.float32),
                        landmarks=np.zeros((3, 5, 2), np.float32), embeddings=emb)
    centre = np.full(128, 0.01, np.float32)
    bank = teacher_bank([label], centre)
    assert bank.shape == (1, 128)  # the 10 px face and the unsure face are left out
    expected = emb[0] / np.linalg.norm(emb[0]) - centre
    np.testing.assert_allclose(bank[0], expected / np.linalg.norm(expected), atol=1e-6)


def test_teacher_retrieval_counts_faces_nearer_their_own_teacher_than_the_bank():
    from engines.train.validate import teacher_retrieval

    bank, teacher = _unit(200, 8).numpy(), _unit(5, 9).numpy()
    assert teacher_retrieval(teacher, teacher, bank, 1) == 1.0  # the teacher itself: always first
    # a student that copies bank rows finds those rows, not its teacher (unless by chance it is nearest)
    copies = bank[:5]
    assert teacher_retrieval(copies, teacher, bank, 1) == 0.0
    rng = np.random.default_rng(10)
    noisy = teacher + 0.4 * rng.normal(size=teacher.shape).astype(np.float32)
    noisy /= np.linalg.norm(noisy, axis=1, keepdims=True)
    r1, r10 = teacher_retrieval(noisy, teacher, bank, 1), teacher_retrieval(noisy, teacher, bank, 10)
    assert 0.0 <= r1 <= r10 <= 1.0
    assert np.isnan(teacher_retrieval(teacher[:0], teacher[:0], bank, 1))


def test_split_leaves_images_the_teacher_found_no_face_in_out_of_training_only():
    from engines.train.dataset import is_validation, split_labels

    def label(name, faces, width=512):
        return ImageLabels(path=f"/data/{name}", set_name="test", width=width, height=512,
                           boxes=np.tile(FACE_BOX, (faces, 1)), landmarks=np.tile(FACE_LMK, (faces, 1, 1)),
                           scores=np.full(faces, 0.99, np.float32), embeddings=np.zeros((faces, 128), np.float32))

    names = [f"img{i}.jpg" for i in range(400)]
    val_names = [n for n in names if is_validation(n)]
    train_names = [n for n in names if not is_validation(n)]
    assert len(val_names) >= 4 and len(train_names) >= 4
    # every fourth image has no teacher face, one more is unreadable (width 0)
    labels = [label(n, 0 if i % 4 == 0 else 1) for i, n in enumerate(names)] + [label("broken.jpg", 1, width=0)]
    split = split_labels(labels, val_images=3)
    expected_train = [n for i, n in enumerate(names) if not is_validation(n) and i % 4]
    assert [l.path.rsplit("/", 1)[1] for l in split.train] == expected_train
    assert split.teacher_missed == len(train_names) - len(expected_train) > 0
    assert [l.path.rsplit("/", 1)[1] for l in split.validation] == val_names[:3]  # the first N, in order
    # validation keeps its faceless images, so its figures stay comparable
    everything = split_labels(labels, val_images=len(names))
    assert [l.path.rsplit("/", 1)[1] for l in everything.validation] == val_names
    assert any(len(l.boxes) == 0 for l in everything.validation)
    assert "broken.jpg" not in {l.path.rsplit("/", 1)[1] for l in split.train + split.validation}


def test_a_frozen_detector_keeps_every_detection_tensor_and_trains_the_embeddings(tmp_path):
    import json

    from engines.model.config import TINY
    from engines.model.network import Uniface
    from engines.model.weights import publish_weights
    from engines.train.loop import TrainSettings, detector_modules, train

    labels = _write_cache(tmp_path, [f"img{i:02d}.jpg" for i in range(8)])
    torch.manual_seed(0)
    start = tmp_path / "start.pt"
    torch.save({"config": "tiny", "state_dict": Uniface(TINY).state_dict()}, start)
    settings = TrainSettings(labels_dir=str(labels), out_dir=str(tmp_path / "run"), config="tiny", steps=3, batch=2,
                             canvas=(160, 128), workers=0, eval_every=3, log_every=1, warmup=1, val_images=2,
                             lr=1e-2, init=str(start), freeze_detector=True, crop_batch=2, crop_canvas=96)
    train(settings)
    log = [json.loads(line) for line in (tmp_path / "run" / "train.jsonl").read_text().splitlines()]
    assert all(r["mimic_faces"] > 0 for r in log if "total" in r)  # the crops carry faces to embed
    before = torch.load(start, weights_only=True)["state_dict"]
    after = torch.load(tmp_path / "run" / "last.pt", weights_only=False)["state_dict"]
    model = Uniface(TINY)
    detector = {f"{prefix}.{name}" for prefix, module in (("backbone", model.backbone), ("heads", model.heads))
                for name in module.state_dict()}
    assert len(detector_modules(model)) == 2 and detector
    # weights and batch-norm statistics alike: detection is what it was
    assert all(torch.equal(before[k], after[k]) for k in detector)
    moved = [k for k in after if k not in detector and after[k].is_floating_point() and not torch.equal(before[k], after[k])]
    assert any(k.startswith("topdown.") for k in moved) and any(k.startswith("attention.") for k in moved)
    assert publish_weights(tmp_path / "run" / "last.pt", tmp_path / "out.pt").model_id.startswith("uniface-tiny-")


def test_a_wide_stream_trains_canvases_at_the_deployed_size_beside_the_batch(tmp_path, caplog):
    """--wide-batch adds canvases of another size to every step (their own anchors), and the
    ledger counts them with the batch's."""
    import logging

    from engines.train.loop import TrainSettings, train

    labels = _write_cache(tmp_path, [f"img{i:02d}.jpg" for i in range(8)])
    out = tmp_path / "run"
    settings = TrainSettings(labels_dir=str(labels), out_dir=str(out), config="tiny", steps=2, batch=2,
                             canvas=(160, 128), wide_batch=1, wide_canvas=(320, 256), workers=0, eval_every=2,
                             log_every=1, warmup=1, val_images=2)
    with caplog.at_level(logging.INFO, logger="engines.train.loop"):
        assert train(settings)["step"] == 2
    assert "wide stream: 1 canvases of 320x256 per step" in caplog.text
    ledger = torch.load(out / "last.pt", weights_only=False)["ledger"]
    assert ledger["canvases"] == 2 * (2 + 1)
