"""utils.repro: seeding makes random draws and training steps repeatable."""

import numpy as np
import pytest
import torch

from utils import repro
from utils.models import TinyCNN


def draws():
    return torch.rand(3).tolist(), np.random.rand(2).tolist()


def test_seed_everything_repeats_random_draws():
    repro.seed_everything(123)
    first = draws()
    repro.seed_everything(123)
    assert draws() == first
    repro.seed_everything(124)
    assert draws() != first


def test_seed_everything_makes_initialisation_and_a_step_repeatable():
    def one_step():
        repro.seed_everything(0)
        net = TinyCNN()
        opt = torch.optim.Adam(net.parameters(), lr=1e-3)
        x, y = torch.randn(8, 1, 28, 28), torch.randint(0, 10, (8,))
        torch.nn.functional.cross_entropy(net(x), y).backward()
        opt.step()
        return net.conv1.weight.detach().clone()

    assert torch.equal(one_step(), one_step())


def test_threads_and_generator(monkeypatch):
    before = torch.get_num_threads()
    try:
        generator = repro.seed_everything(5, threads=1)
        assert torch.get_num_threads() == 1
        assert torch.equal(torch.rand(2, generator=generator),
                           torch.rand(2, generator=torch.Generator().manual_seed(5)))
        monkeypatch.setenv(repro.THREADS_ENV, "2")
        repro.seed_everything(0)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("seed, threads, error", [
    (1.5, None, TypeError), (-1, None, ValueError), (0, 0, ValueError),
])
def test_bad_arguments(seed, threads, error):
    with pytest.raises(error):
        repro.seed_everything(seed, threads=threads)


def test_get_device():
    assert repro.get_device(prefer_gpu=False).type == "cpu"
    expected = "cuda" if torch.cuda.is_available() else "cpu"
    assert repro.get_device().type == expected
