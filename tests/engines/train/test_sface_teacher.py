"""SFace in PyTorch equals SFace in ONNX Runtime; its chips are the cascade's; dense hints teach
the deep face branch; a deep-branch network exports to one ONNX graph that ONNX Runtime runs alike."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch

from engines.model.config import TINY_DEEP, TINY_MNV2FACE
from engines.model.network import Uniface
from tests.support.paths import REPO

ASTRONAUT = REPO / "docs" / "samples" / "astronaut.jpg"


@pytest.fixture(scope="module")
def astronaut_chips(cascade):
    """The astronaut's aligned chip and its mirror image (2, 112, 112, 3) RGB uint8, with landmarks."""
    image = cv2.imread(str(ASTRONAUT))
    both = np.concatenate([image, cv2.flip(image, 1)], axis=1)
    landmarks = cascade.detector.detect(both).landmarks
    chips, ok = cascade.embedder.chips(both, landmarks)
    assert ok.all() and len(chips) == 2
    return both, landmarks, chips


def _small_batch(image: np.ndarray, landmarks) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """The two-face photo shrunk into a 160 x 128 canvas, twice: images (2, 128, 160, 3), each face's
    landmarks (2, 5, 2) and a box around them (2, 4), and the image each face is in."""
    scale = 160 / image.shape[1]
    small = cv2.resize(image, (160, round(image.shape[0] * scale)))
    small = cv2.copyMakeBorder(small, 0, 128 - small.shape[0], 0, 0, cv2.BORDER_CONSTANT)
    lmk = torch.from_numpy(np.asarray(landmarks, np.float32) * scale)
    boxes = torch.cat([lmk.min(1).values - 10, lmk.max(1).values + 10], dim=1)
    return torch.from_numpy(np.stack([small, small])), lmk, boxes, torch.tensor([0, 1])


def test_torch_sface_equals_onnxruntime_and_taps_its_maps(cascade, astronaut_chips):
    from engines.train.sface_teacher import SFaceTeacher

    _, _, chips = astronaut_chips
    teacher = SFaceTeacher(taps=("conv_12", "conv_14"))
    with torch.no_grad():
        emb, taps = teacher(torch.from_numpy(chips).permute(0, 3, 1, 2).float())
    reference = cascade.embedder.embed_chips(chips)
    assert np.allclose((emb.numpy() * reference).sum(1), 1.0, atol=1e-5)
    assert emb.numpy()[0] @ emb.numpy()[1] < 0.99  # two different chips, not one constant output
    for name, shape in (("conv_12", (512, 14, 14)), ("conv_14", (1024, 7, 7))):
        assert taps[name].shape == (2, *shape) and teacher.channels(name) == shape[0]
    teacher.train()
    assert not teacher.training and not any(p.requires_grad for p in teacher.parameters())
    with pytest.raises(ValueError, match="no unit"):
        SFaceTeacher(taps=("conv_99",))


def test_teacher_chips_are_the_cascades_chips(astronaut_chips):
    from engines.train.sface_teacher import teacher_chips

    image, landmarks, chips = astronaut_chips
    images = torch.from_numpy(np.stack([image, image]))
    got = teacher_chips(images, torch.from_numpy(np.asarray(landmarks, np.float32)), torch.tensor([1, 0]))
    np.testing.assert_array_equal(got.permute(0, 2, 3, 1).numpy().astype(np.uint8), chips)
    assert teacher_chips(images, torch.zeros(0, 5, 2), torch.zeros(0, dtype=torch.long)).shape == (0, 3, 112, 112)


def test_the_hint_teaches_the_deep_face_branch(astronaut_chips):
    """A few steps on the hint alone bring the face branch's regressed map towards SFace's, and
    the gradient reaches the branch and F_r's top-down pathway, not only the regressor."""
    from engines.train.hints import HINT_TAP, HintTeacher
    from engines.train.sface_teacher import SFaceTeacher, teacher_chips

    image, landmarks, _ = astronaut_chips
    torch.manual_seed(0)
    model = Uniface(TINY_DEEP).train()
    hints = HintTeacher(SFaceTeacher(taps=(HINT_TAP,)), model.attention.face.map_channels)
    images, lmk, boxes, index = _small_batch(image, landmarks)
    target = hints.targets(teacher_chips(images, lmk, index))
    assert target.shape == (2, 1024, 7, 7)
    opt = torch.optim.Adam([*model.parameters(), *hints.regressor.parameters()], lr=3e-3)

    def loss():
        fr = model.forward_heads(model.normalise(images)).fr
        _, maps = model.embed(fr, boxes, lmk, index, with_map=True)
        assert maps.output.shape == (2, 24, 4, 4)  # resized to the teacher's 7 x 7 grid by the loss
        return hints.loss(maps.output, target)

    before = loss()
    before.backward()
    assert model.attention.face.stage1[0][1][0].weight.grad.abs().sum() > 0
    assert model.topdown.out[1][0].weight.grad.abs().sum() > 0
    for _ in range(15):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert float(loss().detach()) < 0.9 * float(before.detach())


def test_the_imagenet_input_hint_teaches_the_mobilenet_branchs_input(astronaut_chips):
    """The target is ImageNet's stride-4 map of the chip, as MobileNetV2 computes it on ImageNet's
    own normalisation; a few steps on the hint alone bring the branch's projected input towards
    it, the gradient reaching F_r's top-down pathway."""
    from engines.model.mobilenet_v2 import MobileNetV2Features, load_imagenet
    from engines.train.imagenet_hint import ImageNetInputHint
    from engines.train.sface_teacher import teacher_chips

    try:
        hint = ImageNetInputHint(bf16=False)
    except FileNotFoundError as exc:
        pytest.skip(str(exc))
    image, landmarks, chips = astronaut_chips
    target = hint.targets(torch.from_numpy(chips).permute(0, 3, 1, 2).float())
    assert target.shape == (2, 24, 28, 28)
    fast = ImageNetInputHint().targets(torch.from_numpy(chips).permute(0, 3, 1, 2).float())
    assert fast.dtype == torch.float32 and float((fast - target).norm() / target.norm()) < 0.05  # bfloat16
    reference = MobileNetV2Features((4,))
    load_imagenet(reference)
    rgb = (chips / 255.0 - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]
    with torch.no_grad():
        want = reference.eval()(torch.from_numpy(rgb.transpose(0, 3, 1, 2)).float())[0]
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))  # the border differs (padding)
    assert float((target[inner] - want[inner]).abs().max()) < 1e-3 * float(want.abs().max())
    assert float(hint.loss(target, target)) == 0 and float(hint.loss(2 * target, target)) > 0.5
    hint.train()
    assert not hint.training

    torch.manual_seed(0)
    model = Uniface(TINY_MNV2FACE).train()
    images, lmk, boxes, index = _small_batch(image, landmarks)
    target = hint.targets(teacher_chips(images, lmk, index))
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)

    def loss():
        fr = model.forward_heads(model.normalise(images)).fr
        _, maps = model.embed(fr, boxes, lmk, index, with_map=True)
        return hint.loss(maps.input, target)

    before = loss()
    before.backward()
    assert model.topdown.out[1][0].weight.grad.abs().sum() > 0
    for _ in range(15):
        opt.zero_grad()
        loss().backward()
        opt.step()
    assert float(loss().detach()) < 0.9 * float(before.detach())


@pytest.mark.parametrize("cfg", [TINY_DEEP, TINY_MNV2FACE], ids=lambda c: c.name)
def test_a_deep_branch_network_exports_and_runs_alike(cfg, tmp_path):
    import onnxruntime as ort

    from engines.model.export import export_onnx
    from engines.model.weights import load_model

    path = export_onnx(cfg.name, None, tmp_path / "deep.onnx")
    model, _ = load_model(cfg.name, None)  # the seeded random weights the export used
    w, h = cfg.input_size
    images = torch.randint(0, 256, (1, h, w, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(1))
    threshold, limit = torch.tensor([-1.0]), torch.tensor([4], dtype=torch.int32)
    with torch.inference_mode():
        expected = model(images, threshold, limit)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    got = session.run(None, {"images": images.numpy(), "score_threshold": threshold.numpy(),
                             "max_faces": limit.numpy()})
    assert int(got[4][0]) == 4
    np.testing.assert_allclose(got[3][0, :4], expected[3][0, :4].numpy(), atol=1e-4)
    np.testing.assert_allclose(got[0][0, :4], expected[0][0, :4].numpy(), atol=1e-3)


@pytest.mark.parametrize("cfg", [TINY_DEEP, TINY_MNV2FACE], ids=lambda c: c.name)
def test_the_deep_face_branch_trains_on_a_single_face(cfg):
    """A training step can bring one face: its global-depthwise batch norm then uses its running
    statistics (one value per channel has no batch statistics) and still passes gradients."""
    branch = Uniface(cfg).attention.face.train()
    one = torch.randn(1, cfg.fr_channels, cfg.face_roi, cfg.face_roi, requires_grad=True)
    feature, maps = branch(one)
    assert feature.shape == (1, 512) and maps.output.shape[0] == 1
    feature.sum().backward()
    assert one.grad.abs().sum() > 0
    bn = branch.gdc[1]
    before = bn.running_mean.clone()
    branch(torch.randn(3, cfg.fr_channels, cfg.face_roi, cfg.face_roi))
    assert not torch.equal(before, bn.running_mean)  # several faces: batch statistics, as usual
