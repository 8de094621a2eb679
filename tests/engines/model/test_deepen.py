"""Deepening a trained network (identity-initialised residual blocks in landmark attention)
keeps what it computes, and the new blocks learn from the first step."""
import dataclasses

import pytest
import torch

from engines.model.config import TINY, WIDE_ALIGNED, WIDE_ALIGNED_DEEP
from engines.model.deepen import check_deepenable, deepen_state
from engines.model.network import Uniface
from engines.train.loop import init_state
from tests.engines.model.test_widen import _heads_and_embeddings, _trained_tiny

TINY_DEEP = dataclasses.replace(TINY, name="tiny-deep", branch_residuals=1, embedding_hidden=32)


def _deepened() -> tuple[Uniface, Uniface]:
    shallow = _trained_tiny()
    torch.manual_seed(5)
    deep = Uniface(TINY_DEEP)
    deep.load_state_dict(deepen_state(shallow.state_dict(), deep.state_dict()))
    return shallow, deep


def test_deepened_network_computes_what_the_shallow_one_did():
    shallow, deep = _deepened()
    images = torch.randint(0, 256, (1, 128, 160, 3), dtype=torch.uint8)
    with torch.no_grad():
        (a_heads, a), (b_heads, b) = _heads_and_embeddings(shallow, images), _heads_and_embeddings(deep.eval(), images)
    torch.testing.assert_close(b_heads.logits, a_heads.logits)
    torch.testing.assert_close(b, a)
    with torch.no_grad():  # the whole deployed graph too: the same faces, the same embeddings
        args = (images, torch.tensor([0.0]), torch.tensor([8], dtype=torch.int32))
        for x, y in zip(shallow(*args), deep(*args)):
            torch.testing.assert_close(y, x)


def test_new_blocks_exist_and_learn_from_the_first_step():
    shallow, deep = _deepened()
    new = set(deep.state_dict()) - set(shallow.state_dict())
    assert any(k.startswith("attention.mix.") for k in new)
    assert any(k.startswith("attention.face.stage2.2.") for k in new)
    deep.train()
    _, emb = _heads_and_embeddings(deep, torch.randint(0, 256, (2, 128, 160, 3), dtype=torch.uint8))
    (emb @ torch.randn(128)).sum().backward()
    # the zero-initialised last layers are what gets a gradient first; the rest follows once they move
    assert deep.attention.mix.down.weight.grad.abs().sum() > 0
    assert deep.attention.face.stage1[2].body[1][1].weight.grad.abs().sum() > 0


def test_init_state_deepens_a_shallower_checkpoint(tmp_path):
    shallow = _trained_tiny()
    path = tmp_path / "tiny.pt"
    torch.save({"config": "tiny", "state_dict": shallow.state_dict()}, path)
    deep = Uniface(TINY_DEEP)
    state = init_state(path, TINY_DEEP, deep)
    assert all(torch.equal(state[k], v) for k, v in shallow.state_dict().items())
    assert torch.all(state["attention.mix.down.weight"] == 0)
    deep.load_state_dict(state)


def test_only_added_depth_can_be_deepened_into():
    check_deepenable(WIDE_ALIGNED, WIDE_ALIGNED_DEEP)
    check_deepenable(TINY, TINY_DEEP)
    with pytest.raises(ValueError, match="fewer"):
        check_deepenable(TINY_DEEP, TINY)
    with pytest.raises(ValueError, match="fr_channels"):
        check_deepenable(TINY, dataclasses.replace(TINY_DEEP, fr_channels=16))
    with pytest.raises(ValueError, match="lacks"):
        deepen_state(Uniface(TINY_DEEP).state_dict(), Uniface(TINY).state_dict())


def test_added_blocks_get_their_own_learning_rate_groups():
    from engines.train.loop import parameter_groups

    plain = parameter_groups(Uniface(TINY), 1e-4, residual_lr_scale=10.0)
    assert [g["lr_scale"] for g in plain] == [1.0, 1.0]  # nothing added: the layout of every earlier run
    deep = Uniface(TINY_DEEP)
    groups = parameter_groups(deep, 1e-4, residual_lr_scale=10.0)
    assert [g["lr_scale"] for g in groups] == [1.0, 1.0, 10.0, 10.0]
    assert [g["weight_decay"] for g in groups] == [1e-4, 0.0, 1e-4, 0.0]
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in deep.parameters())  # each parameter exactly once
    scaled = {id(p) for g in groups[2:] for p in g["params"]}
    assert id(deep.attention.mix.down.weight) in scaled and id(deep.attention.face.stage1[2].body[1][1].weight) in scaled
    assert id(deep.attention.project.weight) not in scaled and id(deep.attention.face.stage1[0][1][0].weight) not in scaled
