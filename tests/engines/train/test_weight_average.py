"""The moving average of the weights (`engines.train.weight_average`)."""
import pytest
import torch

from engines.train.weight_average import WeightAverage


def _net(seed: int) -> torch.nn.Module:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    net.train()(torch.randn(8, 3))  # running statistics and num_batches_tracked move off their start
    return net


def test_each_update_moves_the_average_by_its_rate_and_copies_integer_buffers():
    model = _net(0)
    start = {k: v.clone() for k, v in model.state_dict().items()}
    average = WeightAverage(model, decay=0.5)
    assert average.rate() == pytest.approx(0.1)  # (1 + 0) / (10 + 0): a fresh average follows closely
    target = _net(1)
    target(torch.randn(8, 3))
    model.load_state_dict(target.state_dict())
    average.update(model)
    average.update(model)
    d0, d1 = 0.1, 2 / 11
    for name, value in average.state_dict().items():
        now = model.state_dict()[name]
        if value.is_floating_point():
            expected = d1 * (d0 * start[name] + (1 - d0) * now) + (1 - d1) * now
            torch.testing.assert_close(value, expected)
        else:
            assert torch.equal(value, now)
    assert average.updates == 2 and not average.module.training
    assert all(not p.requires_grad for p in average.module.parameters())
    for _ in range(200):
        average.update(model)
    assert average.rate() == 0.5  # capped by the decay


def test_the_average_is_a_copy_the_model_does_not_move():
    model = _net(0)
    average = WeightAverage(model, decay=0.9)
    with torch.no_grad():
        model[0].weight.add_(1.0)
    assert not torch.equal(average.module[0].weight, model[0].weight)


@pytest.mark.parametrize("decay", [0.0, 1.0, -0.1, 1.5])
def test_a_decay_outside_zero_one_is_refused(decay):
    with pytest.raises(ValueError, match="decay"):
        WeightAverage(_net(0), decay)
