"""Stride-8 blocks (`UnifaceConfig.s8_blocks`): added to a trained network they start as the
identity, then learn; only MobileNetV2 networks with our own stride-8 stage take them."""
import dataclasses

import pytest
import torch

from engines.model.config import MNV2_S8_MNV2FACE_PX, MNV2_S8_MNV2FACE_PX_D8
from tests.support.carried import carried_pair


def _pair():
    return carried_pair(MNV2_S8_MNV2FACE_PX, MNV2_S8_MNV2FACE_PX_D8, "backbone.s8_blocks.")


def test_added_blocks_start_as_the_identity_and_then_learn():
    base, deep = _pair()
    x = base.normalise(torch.randint(0, 256, (2, 128, 160, 3), dtype=torch.uint8))
    with torch.no_grad():
        a, b = base.forward_heads(x), deep.forward_heads(x)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.fr, b.fr)

    deep.train()
    opt = torch.optim.SGD(deep.backbone.s8_blocks.parameters(), lr=0.1)
    heads = deep.forward_heads(x)
    (heads.logits[..., 1].mean() + heads.fr.square().mean()).backward()
    gamma = deep.backbone.s8_blocks[0].conv[-1].weight
    assert gamma.grad is not None and gamma.grad.abs().sum() > 0
    opt.step()
    deep.eval()
    with torch.no_grad():
        assert not torch.allclose(deep.forward_heads(x).logits, a.logits)


def test_stride8_blocks_need_our_own_stride8_stage():
    with pytest.raises(ValueError, match="stride-8 blocks"):
        dataclasses.replace(MNV2_S8_MNV2FACE_PX, name="x", mobilenet_first=4, stem_channels=16, s8_blocks=1)
