"""The identity loss: CelebA identities as classes, carried with their faces through augmentation,
a CosFace head kept out of the network, and its place in training."""
import hashlib
import json
import shutil

import numpy as np
import pytest
import torch

from app.paths import SAMPLE_IMAGE
from engines.model.config import TINY
from engines.model.network import Uniface
from engines.train.augment import AugmentSettings, Sample, clip_to_canvas, flip
from engines.train.dataset import FaceDataset, centred_teacher, collate, is_validation
from engines.train.face_crops import CropSettings, FaceCropDataset, mimic_faces, repeat_identified
from engines.train.identities import IdentityTable, class_centres, identity_table, read_identities
from engines.train.labelling import ImageLabels
from engines.train.losses import identity_loss
from tests.app.test_cli import cli
from tests.engines.train.test_train import FACE_BOX, FACE_LMK, _label

SECOND_BOX = np.array([[330.0, 300.0, 420.0, 415.0]], np.float32)  # a second (made-up) face, far from the first
SECOND_LMK = FACE_LMK + np.array([160.0, 250.0], np.float32)


def _unit(rng, n=1):
    e = rng.normal(size=(n, 128)).astype(np.float32)
    return e / np.linalg.norm(e, axis=1, keepdims=True)


def _celeba(name, faces=1, scores=None, set_name="celeba-wild", seed=0):
    boxes = np.concatenate([FACE_BOX, SECOND_BOX][:faces])
    return ImageLabels(path=f"/data/celeba/{name}", set_name=set_name, width=512, height=512, boxes=boxes,
                       landmarks=np.concatenate([FACE_LMK, SECOND_LMK][:faces]),
                       scores=np.full(faces, 0.99, np.float32) if scores is None else np.asarray(scores, np.float32),
                       embeddings=_unit(np.random.default_rng(seed), faces))


def _names(validation: bool, count: int) -> list[str]:
    """CelebA-style file names on the training (or validation) side of the split."""
    out = [f"{i:06d}.jpg" for i in range(1, 2000) if is_validation(f"{i:06d}.jpg") == validation]
    return out[:count]


# ---------------------------------------------------------------------------- the table


def test_table_gives_dense_classes_to_single_face_training_images_of_the_celeba_sets():
    n = _names(False, 8)
    val = _names(True, 1)[0]
    ids = {n[0]: "7", n[1]: "3", n[2]: "7", n[3]: "9", n[4]: "3", n[5]: "5", n[6]: "5", val: "7"}
    labels = [
        _celeba(n[0]), _celeba(n[1]), _celeba(n[2], set_name="celeba_aligned"),
        _celeba(n[3], faces=2),  # two eligible faces: whose identity is it? none
        _celeba(n[4], set_name="utkface"),  # not a CelebA set: its name means nothing there
        _celeba(n[5], faces=2, scores=[0.99, 0.5]),  # one eligible face, the other unsure and no larger
        _celeba(n[6], faces=2, scores=[0.5, 0.99]),  # the eligible face beside a larger unsure one
        _celeba(val),  # validation: never feeds the head
        _celeba(n[7]),  # not in the identities file
    ]
    labels[6].boxes[0] = [150, 30, 280, 190]  # the unsure face is the larger
    table = identity_table(labels, ids)
    assert table.classes == 3 and table.names == ["7", "3", "5"]
    assert table.image_class.tolist() == [0, 1, 0, -1, -1, 2, -1, -1, -1]
    assert table.image_face.tolist() == [0, 0, 0, -1, -1, 0, -1, -1, -1]
    assert table.faces == 4 and table.single_classes == 2
    assert table.face_classes(5, 2).tolist() == [2, -1] and table.face_classes(3, 2).tolist() == [-1, -1]
    # people seen once can be left out; the classes stay dense
    two = identity_table(labels, ids, min_images=2)
    assert two.classes == 1 and two.image_class.tolist() == [0, -1, 0, -1, -1, -1, -1, -1, -1]
    assert two.image_face.tolist() == [0, -1, 0, -1, -1, -1, -1, -1, -1]


def test_repeat_lists_each_identified_face_that_many_times_and_no_other():
    n = _names(False, 4)
    labels = [_celeba(n[0]), _celeba(n[1], faces=2, scores=[0.99, 0.5]), _celeba(n[2], faces=2), _celeba(n[3])]
    table = identity_table(labels, {n[0]: "1", n[1]: "2", n[2]: "3"})  # n[2]: two eligible faces, no class
    faces = mimic_faces(labels)
    assert faces.tolist() == [[0, 0], [1, 0], [2, 0], [2, 1], [3, 0]]
    assert repeat_identified(faces, table, 1) is faces and repeat_identified(faces, None, 3) is faces
    tripled = repeat_identified(faces, table, 3)
    counts = {tuple(f): c for f, c in zip(*np.unique(tripled, axis=0, return_counts=True))}
    assert counts == {(0, 0): 3, (1, 0): 3, (2, 0): 1, (2, 1): 1, (3, 0): 1}
    assert tripled[:len(faces)].tolist() == faces.tolist()  # the stream's first pass is unchanged
    with pytest.raises(ValueError, match="at least 1"):
        repeat_identified(faces, table, 0)


def test_class_weights_start_at_the_mean_of_their_centred_teacher_embeddings():
    n = _names(False, 3)
    labels = [_celeba(n[0], seed=1), _celeba(n[1], seed=2), _celeba(n[2], seed=3)]
    table = identity_table(labels, {n[0]: "1", n[1]: "1", n[2]: "2"})
    centre = np.full(128, 0.02, np.float32)
    w = class_centres(table, labels, centre)
    t = centred_teacher(np.concatenate([l.embeddings for l in labels]), centre)
    mean = t[0] + t[1]
    np.testing.assert_allclose(w[0], mean / np.linalg.norm(mean), atol=1e-6)
    np.testing.assert_allclose(w[1], t[2], atol=1e-6)


def test_the_shared_celeba_identity_file_is_read_whole(shared_data):
    path = shared_data / "celeba-wild" / "identity_all.txt"
    if not path.is_file():
        pytest.skip(f"{path} is not present")
    ids = read_identities(path)
    assert len(ids) == 202599 and "image" not in ids  # the header line is no file
    assert ids["000001.jpg"] == "2880" and ids["000002.jpg"] == "2937"


# ---------------------------------------------------------------------------- faces keep their identity


def test_flip_and_clipping_keep_identities_with_their_faces():
    img = np.zeros((512, 512, 3), np.uint8)
    s = Sample(img, np.concatenate([FACE_BOX, SECOND_BOX]), np.concatenate([FACE_LMK, SECOND_LMK]),
               _unit(np.random.default_rng(0), 2), np.ones(2, bool), np.zeros(2, bool), np.array([-1, 4]))
    f = flip(s)
    assert f.identities.tolist() == [-1, 4] and np.array_equal(f.embeddings, s.embeddings)
    # on a 300x300 canvas the second face has left: it goes, and its identity with it
    c = clip_to_canvas(Sample(np.zeros((300, 300, 3), np.uint8), s.boxes, s.landmarks, s.embeddings, s.mimic,
                              s.ignore, s.identities), 6.0, 28.0)
    assert len(c.boxes) == 1 and c.identities.tolist() == [-1]
    # a Sample made without identities has none
    assert Sample(img, FACE_BOX, FACE_LMK, s.embeddings[:1], np.ones(1, bool), np.zeros(1, bool)).identities.tolist() == [-1]


def _two_face_labels():
    """Six astronaut photos, each with the real face and a made-up second one, all with their own
    teacher embedding; the table names one face per photo (alternately the first and the second),
    photo 5 has no identity."""
    labels = []
    for i in range(6):
        l = _label(i)
        labels.append(ImageLabels(path=l.path, set_name="test", width=512, height=512,
                                  boxes=np.concatenate([FACE_BOX, SECOND_BOX]),
                                  landmarks=np.concatenate([FACE_LMK, SECOND_LMK]),
                                  scores=np.full(2, 0.99, np.float32), embeddings=_unit(np.random.default_rng(i), 2)))
    table = IdentityTable(classes=5, image_class=np.array([0, 1, 2, 3, 4, -1]),
                          image_face=np.array([0, 1, 0, 1, 0, -1]), names=list("abcde"))
    return labels, table


def _expected_class(labels, table):
    """Teacher embedding (as bytes) -> the class its face must carry."""
    out = {}
    for i, l in enumerate(labels):
        for j, e in enumerate(l.embeddings):
            out[e.astype(np.float32).tobytes()] = int(table.face_classes(i, len(l.boxes))[j])
    return out


def _tiny_anchors(w, h):
    model = Uniface(TINY).eval()
    with torch.no_grad():
        return model.forward_heads(torch.zeros(1, 3, h, w)).anchors.numpy()


def test_identities_stay_with_their_faces_through_mosaics_flips_turns_crops_and_borders():
    labels, table = _two_face_labels()
    expected = _expected_class(labels, table)
    aug = AugmentSettings(canvas=(256, 256), zoom_range=(1.0, 2.5), mosaic_p=0.5, flip_p=0.5, letterbox_p=0.3,
                          turn_p=0.5, backdrop_p=0.3, dark_p=0.2)
    canvases = FaceDataset(labels, _tiny_anchors(256, 256), aug, seed=2, identities=table)
    crops = FaceCropDataset(labels, mimic_faces(labels), _tiny_anchors(128, 128),
                            CropSettings(context=(1.3, 3.5), turn_p=0.5, backdrop_p=0.3), seed=2, identities=table)
    seen = {"canvas": set(), "crop": set()}
    for name, ds in (("canvas", canvases), ("crop", crops)):
        for epoch in range(4):
            ds.epoch = epoch
            batch = collate([ds[i] for i in range(len(ds))])
            assert len(batch["mimic_identities"]) == len(batch["mimic_targets"]) == len(batch["mimic_boxes"])
            for target, cls in zip(batch["mimic_targets"].numpy(), batch["mimic_identities"].tolist()):
                assert expected[target.tobytes()] == cls  # the face's own identity, never a neighbour's
                seen[name].add(cls)
    # both kinds of face were seen: with a class, and without (the other face, photo 5)
    assert -1 in seen["canvas"] and len(seen["canvas"]) >= 4 and -1 in seen["crop"] and len(seen["crop"]) >= 5


def _digest(items) -> str:
    """What an item teaches, rounded so that last-bit differences between machines do not count."""
    h = hashlib.sha256()
    for it in items:
        h.update(it.labels.astype(np.int64).tobytes())
        for a in (it.box_t, it.lmk_t, it.mimic_boxes, it.mimic_landmarks, it.mimic_targets):
            h.update(np.round(np.asarray(a, np.float64), 2).tobytes())
    return h.hexdigest()[:16]


def test_the_random_streams_are_what_they_were_before_identities_with_or_without_them():
    labels = [_label(i) for i in range(3)]
    aug = AugmentSettings(canvas=(256, 256), zoom_range=(1.0, 2.5), mosaic_p=0.5, flip_p=0.5, letterbox_p=0.3,
                          turn_p=0.5, backdrop_p=0.3, dark_p=0.3)
    crop = CropSettings(turn_p=0.5, backdrop_p=0.3, dark_p=0.3)
    table = IdentityTable(classes=2, image_class=np.array([0, -1, 1]), image_face=np.array([0, -1, 0]), names=["a", "b"])
    streams = {}
    for ids in (None, table):
        ds = FaceDataset(labels, _tiny_anchors(256, 256), aug, seed=1, identities=ids)
        cs = FaceCropDataset(labels, mimic_faces(labels), _tiny_anchors(128, 128), crop, seed=1, identities=ids)
        for name, d in (("canvas", ds), ("crop", cs)):
            items = []
            for e in range(6):
                d.epoch = e
                items += [d[i] for i in range(len(d))]
            streams[name, ids is None] = items
    # digests of the same items made by the code before identities were added
    assert _digest(streams["canvas", True]) == "784ea53475d0caf4"
    assert _digest(streams["crop", True]) == "fa2962f1f40d66d2"
    for name in ("canvas", "crop"):
        for off, on in zip(streams[name, True], streams[name, False]):
            assert np.array_equal(off.image, on.image) and np.array_equal(off.mimic_targets, on.mimic_targets)
            assert np.array_equal(off.labels, on.labels) and np.array_equal(off.mimic_boxes, on.mimic_boxes)
            assert (off.mimic_identities == -1).all()
    assert any((it.mimic_identities >= 0).any() for it in streams["crop", False])


# ---------------------------------------------------------------------------- the loss


def test_the_loss_is_lower_for_an_embedding_aligned_with_its_own_class():
    weight = torch.from_numpy(_unit(np.random.default_rng(0), 4))
    classes = torch.tensor([2])
    own = identity_loss(weight[2:3], classes, weight, 30.0, 0.2)
    other = identity_loss(weight[1:2], classes, weight, 30.0, 0.2)
    assert float(own) < 0.05 < 5 < float(other)
    # the margin makes the same embedding cost more
    between = weight[2:3] + 0.7 * weight[1:2]
    assert 0.01 < float(identity_loss(between, classes, weight, 30.0, 0.2)) \
        < float(identity_loss(between, classes, weight, 30.0, 0.35))
    # faces without a class do not count
    both = identity_loss(torch.cat([weight[1:2], between]), torch.tensor([-1, 2]), weight, 30.0, 0.2)
    assert float(both) == pytest.approx(float(identity_loss(between, classes, weight, 30.0, 0.2)))


def test_the_loss_is_an_exact_zero_with_a_gradient_path_when_no_face_has_a_class():
    weight = torch.nn.Parameter(torch.from_numpy(_unit(np.random.default_rng(0), 4)))
    student = torch.randn(3, 128, requires_grad=True)
    loss = identity_loss(student, torch.tensor([-1, -1, -1]), weight, 30.0, 0.2)
    assert float(loss.detach()) == 0.0 and loss.requires_grad
    loss.backward()
    assert torch.equal(student.grad, torch.zeros_like(student)) and torch.equal(weight.grad, torch.zeros_like(weight))
    empty = identity_loss(torch.zeros(0, 128, requires_grad=True), torch.zeros(0, dtype=torch.long), weight, 30.0, 0.2)
    assert float(empty.detach()) == 0.0 and empty.requires_grad


def test_training_steps_reduce_the_identity_loss():
    torch.manual_seed(0)
    labels, table = _two_face_labels()
    model = Uniface(TINY)
    ds = FaceDataset(labels, _tiny_anchors(256, 256), AugmentSettings(canvas=(256, 256), mosaic_p=0, flip_p=0,
                                                                      zoom_range=(1.0, 1.0)), seed=0, identities=table)
    batch = collate([ds[i] for i in range(len(ds))])
    assert (batch["mimic_identities"] >= 0).sum() >= 4
    head = torch.nn.Parameter(torch.from_numpy(_unit(np.random.default_rng(9), table.classes)))
    opt = torch.optim.Adam([*model.parameters(), head], lr=3e-3)
    history = []
    for _ in range(8):
        heads = model.forward_heads(model.normalise(batch["images"]))
        student = model.embed(heads.fr, batch["mimic_boxes"], batch["mimic_landmarks"], batch["mimic_index"])
        loss = identity_loss(student, batch["mimic_identities"], head, 30.0, 0.2)
        opt.zero_grad()
        loss.backward()
        opt.step()
        history.append(float(loss.detach()))
    assert history[-1] < 0.5 * history[0], history


# ---------------------------------------------------------------------------- in the training loop


def _celeba_cache(folder, people=4, photos=3):
    """A `celeba-wild` label cache of the astronaut image under CelebA-style names (training side
    of the split), `photos` per person, each person's teacher embeddings close together; and its
    identities file."""
    from engines.faces import Faces
    from engines.train.labelling import ImageSet, _write_shard

    images = folder / "images"
    images.mkdir()
    names = _names(False, people * photos)
    rng = np.random.default_rng(0)
    bases = _unit(rng, people)
    records, lines = [], ["image identity"]
    for k, name in enumerate(names):
        shutil.copy(SAMPLE_IMAGE, images / name)
        emb = bases[k % people] + 0.3 * _unit(rng)[0]
        faces = Faces(boxes=FACE_BOX, scores=np.array([0.99], np.float32), landmarks=FACE_LMK,
                      embeddings=(emb / np.linalg.norm(emb))[None])
        records.append({"rel": name, "width": 512, "height": 512, "faces": faces})
        lines.append(f"{name} {100 + k % people}")
    labels = folder / "labels"
    (labels / "celeba-wild").mkdir(parents=True)
    _write_shard(labels / "celeba-wild" / "part-00000.npz", records, ImageSet("celeba-wild", images, names, None))
    (folder / "identity_all.txt").write_text("\n".join(lines) + "\n")
    return labels, folder / "identity_all.txt"


def test_the_head_is_checkpointed_resumed_and_kept_out_of_the_published_weights(tmp_path):
    from engines.model.weights import publish_weights
    from engines.train.loop import TrainSettings, teacher_centre, train
    from engines.train.labelling import load_labels

    labels, ids = _celeba_cache(tmp_path)
    out = tmp_path / "run"
    settings = TrainSettings(labels_dir=str(labels), out_dir=str(out), config="tiny", steps=2, batch=2,
                             canvas=(160, 128), workers=0, eval_every=2, log_every=1, warmup=1, val_images=2,
                             crop_batch=4, crop_canvas=128, lr=3e-3, identities=str(ids), weights={"identity": 1.0})
    assert train(settings)["step"] == 2
    log = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    steps = [r for r in log if "total" in r]
    assert all(np.isfinite(r["identity"]) and r["identity"] >= 0 for r in steps)
    assert all(r["identity_faces"] >= 4 and 0 < r["identity_share"] <= 1 for r in steps)  # every crop has one
    r = steps[-1]
    assert r["total"] == pytest.approx(r["cls"] + 2 * r["box"] + r["landmarks"] + 4 * r["mimic"] + r["identity"], abs=2e-3)

    ckpt = torch.load(out / "last.pt", weights_only=False)
    head = ckpt["identity_head"]
    assert head.shape == (4, 128) and ckpt["identity_names"] == ["100", "101", "102", "103"]
    assert len(ckpt["optimizer"]["param_groups"]) == 3
    assert torch.equal(torch.load(out / "best.pt", weights_only=False)["identity_head"], head)
    train_labels = load_labels(labels)
    start = class_centres(identity_table(train_labels, read_identities(ids)), train_labels, teacher_centre(train_labels))
    assert not torch.allclose(head, torch.from_numpy(start))  # it learnt

    # resumed: the head carries on from the checkpoint (at lr 0 it stays exactly there), not from its start
    settings.steps, settings.lr = 3, 0.0
    assert train(settings)["step"] == 3
    assert torch.equal(torch.load(out / "last.pt", weights_only=False)["identity_head"], head)
    settings.steps, settings.weights = 4, {"identity": 0.0}
    with pytest.raises(ValueError, match="identity loss on"):
        train(settings)

    shipped = tmp_path / "uniface_tiny.pt"
    publish_weights(out / "best.pt", shipped)
    payload = torch.load(shipped, weights_only=True)
    assert not any(k.startswith("identity") for k in payload) and "optimizer" not in payload
    network = Uniface(TINY).state_dict()
    assert {k: v.shape for k, v in payload["state_dict"].items()} == {k: v.shape for k, v in network.items()}


def test_train_with_the_identity_loss_names_a_cache_without_identities(tmp_path):
    from engines.train.loop import TrainSettings, train
    from tests.engines.train.test_train import _write_cache

    labels = _write_cache(tmp_path, [f"img{i:02d}.jpg" for i in range(4)])  # set "test": no CelebA names
    ids = tmp_path / "identity_all.txt"
    ids.write_text("000001.jpg 1\n")
    settings = TrainSettings(labels_dir=str(labels), out_dir=str(tmp_path / "run"), config="tiny", steps=1, batch=2,
                             canvas=(160, 128), workers=0, val_images=1, identities=str(ids), weights={"identity": 1.0})
    with pytest.raises(ValueError, match="no training image"):
        train(settings)
    settings.identities = str(tmp_path / "gone.txt")
    with pytest.raises(ValueError, match="not found"):
        train(settings)


def test_train_rejects_bad_identity_loss_settings_in_one_line(tmp_path):
    labels = tmp_path / "labels"
    labels.mkdir()
    for args, flag in ((("--identity-weight", "-1"), "--identity-weight"),
                       (("--identity-weight", "1", "--identity-margin", "1"), "--identity-margin"),
                       (("--identity-weight", "1", "--identities", str(tmp_path / "gone.txt")), "--identities"),
                       (("--identity-weight", "1", "--crop-batch", "4", "--identity-repeat", "0"), "--identity-repeat"),
                       (("--crop-batch", "4", "--identity-repeat", "3"), "--identity-repeat"),
                       (("--identity-weight", "1", "--identity-repeat", "3"), "--identity-repeat")):
        r = cli("train", "--labels", str(labels), "--out", str(tmp_path / "run"), *args)
        assert r.returncode == 2 and flag in r.stderr and "Traceback" not in r.stderr, r.stderr
