"""Face pixels (`UnifaceConfig.face_pixels`): the MobileNetV2 face branch also sees the aligned chip's
pixels, cut from the network's input with the frame it samples F_r with, through ImageNet's blocks 0-3."""
from __future__ import annotations

import dataclasses

import cv2
import numpy as np
import pytest
import torch

from engines.model.config import MNV2_S8_MNV2FACE, TINY_DEEP, TINY_MNV2FACE, TINY_MNV2FACE_PX, get_config
from engines.model.network import Uniface
from engines.teachers.sface import align_chip
from tests.support.paths import REPO

ASTRONAUT = REPO / "docs" / "samples" / "astronaut.jpg"
# her 5 landmarks (eyes, nose, mouth corners) in the 512 px photo, upright but not level
LANDMARKS = np.array([[[194.0, 203.0], [255.0, 198.0], [224.0, 235.0], [201.0, 266.0], [250.0, 262.0]]], np.float32)
BOX = torch.tensor([[160.0, 150.0, 290.0, 300.0]])


def _chips_seen_by_the_branch(model: Uniface, image: np.ndarray) -> torch.Tensor:
    """The chips the face branch's pixel blocks take when the network embeds the astronaut."""
    seen = []
    hook = model.attention.face.pixel_blocks.register_forward_pre_hook(lambda _, args: seen.append(args[0]))
    x = model.normalise(torch.from_numpy(image[None]))
    with torch.no_grad():
        heads = model.forward_heads(x)
        model.embed(heads.fr, BOX, torch.from_numpy(LANDMARKS), torch.zeros(1, dtype=torch.long), pixels=heads.pixels)
    hook.remove()
    return seen[0]


def test_the_branch_sees_the_chip_the_teacher_sees():
    """The pixels are SFace's own 112 px chip of the face (cv2.warpAffine on its landmarks), within
    the rounding of OpenCV's fixed-point bilinear sampling (the similarity fitted as SFace fits it,
    landmarks onto the template, and cut as cv2.warpAffine cuts: pixel index coordinates)."""
    image = cv2.imread(str(ASTRONAUT))
    model = Uniface(TINY_MNV2FACE_PX).eval()
    chips = _chips_seen_by_the_branch(model, image)
    assert chips.shape == (1, 3, 112, 112)
    bgr = chips[0].permute(1, 2, 0).numpy() / (1 / 128.0) + 127.5  # undo the network's normalisation
    teacher = align_chip(image, LANDMARKS[0])[:, :, ::-1].astype(np.float32)  # RGB -> BGR
    difference = np.abs(bgr - teacher)
    assert difference.mean() < 0.5 and difference.max() < 3.0, (difference.mean(), difference.max())
    # a chip one face-width off is another picture: the comparison can fail
    shifted = align_chip(image, LANDMARKS[0] + [60, 0])[:, :, ::-1].astype(np.float32)
    assert np.abs(bgr - shifted).mean() > 10


def test_the_embedding_follows_the_pixels_and_needs_them():
    """The face branch's recognition map follows the chip's pixels, its projection of F_r does not;
    the embedding changes with the pixels; a face-pixel network refuses to embed without them."""
    torch.manual_seed(0)
    model = Uniface(TINY_MNV2FACE_PX).eval()
    # random MobileNetV2 blocks shrink what they pass on (~1/70 of the projection's size here):
    # a quiet F_r gives both halves of the branch's input a say
    fr = 0.01 * torch.randn(1, TINY_MNV2FACE_PX.fr_channels, 64, 64)
    lmk, index = torch.from_numpy(LANDMARKS) / 2, torch.zeros(1, dtype=torch.long)
    pixels = torch.randn(1, 3, 256, 256)
    with torch.no_grad():
        a, maps_a = model.embed(fr, BOX / 2, lmk, index, with_map=True, pixels=pixels)
        b, maps_b = model.embed(fr, BOX / 2, lmk, index, with_map=True, pixels=pixels.flip(3))  # same F_r
        again = model.embed(fr, BOX / 2, lmk, index, pixels=pixels)
    assert torch.equal(maps_a.input, maps_b.input)  # F_r's projection: the input hint's student
    change = (maps_a.output - maps_b.output).abs().mean() / maps_a.output.abs().mean()
    assert change > 0.1, change
    assert torch.equal(a, again) and not torch.equal(a, b)
    with pytest.raises(ValueError, match="input pixels too"):
        model.embed(fr, BOX / 2, lmk, index)
    with pytest.raises(ValueError, match="pixel blocks"):
        model.attention.face(torch.randn(1, TINY_MNV2FACE_PX.fr_channels, 28, 28))
    # without face pixels the branch has no pixel blocks and ignores pixels it is given
    plain = Uniface(TINY_MNV2FACE).eval()
    with torch.no_grad():
        assert torch.equal(plain.embed(fr, BOX / 2, lmk, index, pixels=pixels), plain.embed(fr, BOX / 2, lmk, index))
    assert plain.attention.face.pixel_blocks is None


def test_face_pixels_is_the_main_run_but_for_its_one_change_and_needs_the_mobilenet_branch():
    px = get_config("mnv2_s8_mnv2face_px")
    differ = {f.name for f in dataclasses.fields(px) if getattr(px, f.name) != getattr(MNV2_S8_MNV2FACE, f.name)}
    assert differ == {"name", "face_pixels"}
    with pytest.raises(ValueError, match="face pixels need"):
        dataclasses.replace(TINY_DEEP, face_pixels=True)
    with pytest.raises(ValueError, match="face pixels need"):
        dataclasses.replace(TINY_MNV2FACE, face_pixels=True, face_template=None)


def test_landmarks_on_one_point_give_a_finite_embedding():
    """Five landmarks on one point have no similarity to invert (the teacher's chip frame): the
    face gets a zero frame and a finite embedding, not NaN that a gallery would store."""
    model = Uniface(TINY_MNV2FACE_PX).eval()
    image = cv2.imread(str(ASTRONAUT))
    with torch.no_grad():
        heads = model.forward_heads(model.normalise(torch.from_numpy(image[None])))
        emb = model.embed(heads.fr, BOX, torch.full((1, 5, 2), 220.0), torch.zeros(1, dtype=torch.long),
                          pixels=heads.pixels)
    assert torch.all(torch.isfinite(emb)) and abs(float(emb.norm()) - 1.0) < 1e-4
