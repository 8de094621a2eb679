"""Widening a trained network keeps what it computes and leaves the new channels trainable."""
import dataclasses

import pytest
import torch

from engines.model.config import PROD, TINY, WIDE, WIDE_TD, WIDER, StageSpec
from engines.model.network import Uniface
from engines.model.widen import check_widenable, widen_state
from engines.train.loop import init_state

TINY_WIDE = dataclasses.replace(  # every width that may grow does: stem, stages, top-down, F_r, branches
    TINY, name="tiny-wide", stem_channels=12, stages=tuple(StageSpec(s.channels + 4, s.blocks) for s in TINY.stages),
    td_channels=24, fr_channels=16, face_branch=(32, 128), landmark_branch=(24, 32))
BOXES = torch.tensor([[30.0, 20.0, 90.0, 100.0], [100.0, 40.0, 150.0, 110.0]])
LANDMARKS = torch.tensor([[[45, 50], [75, 50], [60, 65], [48, 82], [72, 82]],
                          [[112, 65], [138, 65], [125, 78], [114, 95], [136, 95]]], dtype=torch.float32)


def _trained_tiny() -> Uniface:
    torch.manual_seed(3)
    model = Uniface(TINY)
    with torch.no_grad():  # non-trivial batch-norm statistics, as a trained model has
        for m in model.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.2, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.uniform_(-0.1, 0.1)
    return model.eval()


def _heads_and_embeddings(model: Uniface, images: torch.Tensor):
    out = model.forward_heads(model.normalise(images))
    emb = model.embed(out.fr, BOXES, LANDMARKS, torch.tensor([0, 0]))
    return out, emb


def test_widened_network_computes_what_the_narrow_one_did():
    narrow = _trained_tiny()
    torch.manual_seed(4)
    wide = Uniface(TINY_WIDE)
    wide.load_state_dict(widen_state(narrow.state_dict(), wide.state_dict()))
    wide.eval()
    images = torch.randint(0, 256, (1, 128, 160, 3), dtype=torch.uint8)
    with torch.no_grad():
        a, emb_a = _heads_and_embeddings(narrow, images)
        b, emb_b = _heads_and_embeddings(wide, images)
    assert b.fr.shape[1] == 16 and a.fr.shape[1] == 8
    torch.testing.assert_close(b.fr[:, :8], a.fr)  # old F_r channels unchanged
    assert b.fr[:, 8:].abs().sum() > 0  # new channels carry something
    torch.testing.assert_close(b.logits, a.logits)
    torch.testing.assert_close(b.landmark_deltas, a.landmark_deltas)
    torch.testing.assert_close(emb_b, emb_a, atol=1e-5, rtol=1e-5)


def test_the_zeroed_weights_get_gradients_so_new_channels_can_be_learnt():
    narrow = _trained_tiny()
    wide = Uniface(TINY_WIDE)
    wide.load_state_dict(widen_state(narrow.state_dict(), wide.state_dict()))
    pointwise = wide.attention.face.stage1[0][1][0].weight  # (c1, fr, 1, 1) of the face branch
    assert torch.all(pointwise[: TINY.face_branch[0], TINY.fr_channels:] == 0)
    _, emb = _heads_and_embeddings(wide.train(), torch.randint(0, 256, (2, 128, 160, 3), dtype=torch.uint8))
    (emb @ torch.randn(128)).sum().backward()
    assert pointwise.grad[: TINY.face_branch[0], TINY.fr_channels:].abs().sum() > 0


def test_init_state_widens_a_narrower_checkpoint_and_keeps_a_matching_one(tmp_path):
    narrow = _trained_tiny()
    path = tmp_path / "narrow.pt"
    torch.save({"config": "tiny", "state_dict": narrow.state_dict()}, path)
    same = init_state(path, TINY, Uniface(TINY))
    assert all(torch.equal(same[k], v) for k, v in narrow.state_dict().items())
    wide = Uniface(TINY_WIDE)
    state = init_state(path, TINY_WIDE, wide)
    assert state["topdown.out.1.0.weight"].shape[0] == 16
    wide.load_state_dict(state)  # shapes fit


def test_init_state_starts_finer_rois_from_a_coarser_checkpoint_as_it_is(tmp_path):
    narrow = _trained_tiny()
    path = tmp_path / "tiny.pt"
    torch.save({"config": "tiny", "state_dict": narrow.state_dict()}, path)
    fine_cfg = dataclasses.replace(TINY, name="tiny-roi16", face_roi=16, landmark_roi=16, branch_pool=2)
    fine = Uniface(fine_cfg)
    state = init_state(path, fine_cfg, fine)
    assert all(torch.equal(state[k], v) for k, v in narrow.state_dict().items())
    fine.load_state_dict(state)
    fine.eval()
    images = torch.randint(0, 256, (1, 128, 160, 3), dtype=torch.uint8)
    with torch.no_grad():
        (a_heads, a), (b_heads, b) = _heads_and_embeddings(narrow, images), _heads_and_embeddings(fine, images)
    torch.testing.assert_close(b_heads.fr, a_heads.fr)  # only the sampling of the regions differs
    assert torch.allclose(b.norm(dim=1), torch.ones(2)) and not torch.allclose(a, b)


def test_only_wider_layers_can_be_widened_into():
    check_widenable(PROD, WIDE)
    check_widenable(WIDE, WIDER)
    check_widenable(WIDE, WIDE_TD)
    with pytest.raises(ValueError, match="narrower"):
        check_widenable(WIDE, PROD)
    with pytest.raises(ValueError, match="narrower"):
        check_widenable(WIDER, WIDE)
    with pytest.raises(ValueError, match="face_roi"):
        check_widenable(TINY, dataclasses.replace(TINY_WIDE, face_roi=16, face_branch=(32, 32)))
    with pytest.raises(ValueError, match="structure"):
        widen_state(Uniface(TINY).state_dict(), Uniface(PROD).state_dict())
