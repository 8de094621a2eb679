"""The two layouts of `engines.model.roi` (stacked for training, folded for the deployed graph)
sample the same values: any ROI of any image, borders included, and so the same embeddings."""
from __future__ import annotations

import pytest
import torch

from engines.model.config import TINY_MNV2FACE_PX
from engines.model.network import Uniface
from engines.model.roi import roi_align, sample_frames, stack_feature_maps


def _random_regions(n_images: int, r: int, h: int, w: int, stride: int, seed: int):
    """R turned frames and boxes anywhere on the input, many across its borders."""
    g = torch.Generator().manual_seed(seed)
    size_px = (h * stride, w * stride)
    centre = torch.rand(r, 2, generator=g) * torch.tensor([size_px[1] * 1.3, size_px[0] * 1.3]) - 0.15 * torch.tensor(
        [size_px[1], size_px[0]])
    side = 4 + torch.rand(r, 1, generator=g) * 0.6 * min(size_px)
    angle = (torch.rand(r, generator=g) - 0.5) * 1.5
    axis_u = side * torch.stack([torch.cos(angle), torch.sin(angle)], 1)
    axis_v = side * torch.stack([-torch.sin(angle), torch.cos(angle)], 1)
    origin = centre - (axis_u + axis_v) / 2
    boxes = torch.cat([centre - side / 2, centre + side / 2], 1)
    index = torch.randint(0, n_images, (r,), generator=g)
    return origin, axis_u, axis_v, boxes, index


@pytest.mark.parametrize("n_images", [1, 2, 3])
@pytest.mark.parametrize("sampling", [1, 2])
def test_folded_and_stacked_layouts_sample_the_same_values(n_images, sampling):
    """Regions across every border read zeros outside their own image in both layouts (the stacked
    one read the next image's top rows below its zero row before)."""
    c, h, w, stride = 5, 13, 17, 4
    maps = torch.randn(n_images, c, h, w, generator=torch.Generator().manual_seed(n_images))
    origin, axis_u, axis_v, boxes, index = _random_regions(n_images, 12, h, w, stride, seed=sampling)
    stacked, folded = stack_feature_maps(maps), stack_feature_maps(maps, folded=True)
    assert folded.data.shape == (1, n_images * c, h, w) and stacked.data.shape == (1, c, n_images * (h + 1), w)
    a = sample_frames(stacked, origin, axis_u, axis_v, index, 6, stride, sampling)
    b = sample_frames(folded, origin, axis_u, axis_v, index, 6, stride, sampling)
    assert a.shape == (12, c, 6, 6) and a.abs().sum() > 0
    torch.testing.assert_close(b, a, atol=1e-5, rtol=0)
    torch.testing.assert_close(roi_align(folded, boxes, index, 4, stride, sampling),
                               roi_align(stacked, boxes, index, 4, stride, sampling), atol=1e-5, rtol=0)
    # and each ROI reads its own image: the same region of another image differs
    other = sample_frames(folded, origin, axis_u, axis_v, (index + 1) % n_images, 6, stride, sampling)
    assert n_images == 1 or not torch.allclose(other, b)


def test_the_folded_layout_embeds_as_the_stacked_one():
    """The whole landmark attention (F_r regions and the face pixels' chip) on three images."""
    torch.manual_seed(0)
    model = Uniface(TINY_MNV2FACE_PX).eval()
    w, h = TINY_MNV2FACE_PX.input_size
    images = torch.randint(0, 256, (3, h, w, 3), dtype=torch.uint8)
    boxes = torch.tensor([[10.0, 8.0, 60.0, 70.0], [-5.0, 30.0, 40.0, 90.0], [100.0, 60.0, 158.0, 127.0],
                          [20.0, 20.0, 50.0, 55.0]])
    landmarks = torch.stack([boxes[:, :2] + (boxes[:, 2:] - boxes[:, :2]) * torch.tensor(p)
                             for p in ((0.3, 0.4), (0.7, 0.4), (0.5, 0.6), (0.35, 0.8), (0.65, 0.8))], 1)
    index = torch.tensor([0, 1, 2, 1])
    with torch.no_grad():
        heads = model.forward_heads(model.normalise(images))
        stacked = model.embed(heads.fr, boxes, landmarks, index, pixels=heads.pixels)
        folded = model.embed(heads.fr, boxes, landmarks, index, pixels=heads.pixels, folded=True)
    torch.testing.assert_close(folded, stacked, atol=1e-5, rtol=0)
