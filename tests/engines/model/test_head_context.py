"""Top-down context for the finest detection heads (`UnifaceConfig.head_context`): added to a trained
network it starts at zero, then learns; it needs the shared top-down pathway."""
import dataclasses

import pytest
import torch

from engines.model.config import MNV2_S8_MNV2FACE_PX_D8, MNV2_S8_MNV2FACE_PX_D8_CTX, TINY, TINY_CTX
from tests.support.carried import carried_pair


def _carried(shallow_cfg, ctx_cfg):
    return carried_pair(shallow_cfg, ctx_cfg, "head_context.")


@pytest.mark.parametrize("shallow_cfg, ctx_cfg", [(TINY, TINY_CTX), (MNV2_S8_MNV2FACE_PX_D8, MNV2_S8_MNV2FACE_PX_D8_CTX)],
                         ids=["tiny", "d8"])
def test_added_context_starts_at_zero_and_then_learns(shallow_cfg, ctx_cfg):
    base, ctx = _carried(shallow_cfg, ctx_cfg)
    assert len(ctx.head_context) == ctx_cfg.head_context
    x = base.normalise(torch.randint(0, 256, (2, 128, 160, 3), dtype=torch.uint8))
    with torch.no_grad():
        a, b = base.forward_heads(x), ctx.forward_heads(x)
    assert torch.equal(a.logits, b.logits) and torch.equal(a.box_deltas, b.box_deltas) and torch.equal(a.fr, b.fr)

    base.train(), ctx.train()  # both update their batch-norm statistics alike
    base.forward_heads(x)
    opt = torch.optim.SGD(ctx.head_context.parameters(), lr=0.1)
    heads = ctx.forward_heads(x)
    heads.logits[..., 1].mean().backward()
    gamma = ctx.head_context[0][1].weight
    assert gamma.grad is not None and gamma.grad.abs().sum() > 0
    opt.step()
    base.eval(), ctx.eval()
    with torch.no_grad():
        a, after = base.forward_heads(x), ctx.forward_heads(x)
    # the heads now read the context; F_r never does
    assert not torch.allclose(after.logits, a.logits)
    assert torch.equal(after.fr, a.fr)


def test_context_reaches_only_its_levels():
    """With context on the stride-8 level alone, the coarser heads' outputs stay as they were."""
    base, ctx = _carried(TINY, dataclasses.replace(TINY_CTX, name="x", head_context=1))
    with torch.no_grad():
        ctx.head_context[0][1].weight.fill_(1.0)
    x = base.normalise(torch.randint(0, 256, (1, 128, 160, 3), dtype=torch.uint8))
    with torch.no_grad():
        a, b = base.forward_heads(x), ctx.forward_heads(x)
    fine = (128 // 8) * (160 // 8) * TINY.anchors_per_cell[0]
    assert not torch.allclose(a.logits[:, :fine], b.logits[:, :fine])
    assert torch.equal(a.logits[:, fine:], b.logits[:, fine:])


@pytest.mark.parametrize("change", [dict(fusion=False, fr_stride=16), dict(shared_backbone=False), dict(head_context=5)],
                         ids=["no-fusion", "own-backbone", "too-many-levels"])
def test_context_needs_the_shared_top_down_pathway(change):
    with pytest.raises(ValueError, match="head context"):
        dataclasses.replace(TINY_CTX, name="x", **change)
