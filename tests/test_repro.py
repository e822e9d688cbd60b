"""utils.repro: seeding makes random draws and training steps repeatable; the portable
CPU mode makes float32 training bit-identical across processors."""

import os
import platform
import subprocess
import sys

import numpy as np
import pytest
import torch
from course_env import REPO_ROOT

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


# ------------------------------------------------------------------ portable CPU mode
# A short float32 training of TinyCNN in a fresh interpreter; prints the SHA-256 of the
# final weights. Inputs and initial weights are drawn with NumPy, so only the training
# arithmetic can depend on the CPU.
SHORT_TRAINING = """
import sys
import numpy as np
import torch
import torch.nn.functional as F
from utils import models, repro
repro.seed_everything(0, threads=2, portable=sys.argv[1] == "portable")
rng = np.random.default_rng(0)
images = torch.from_numpy(rng.standard_normal((256, 1, 28, 28), dtype=np.float32))
labels = torch.from_numpy(rng.integers(0, 10, 256))
net = models.TinyCNN()
with torch.no_grad():
    for p in net.parameters():
        p.copy_(torch.from_numpy(rng.uniform(-0.2, 0.2, p.shape).astype(np.float32)))
optimizer = torch.optim.Adam(net.parameters(), lr=0.01)
for step in range(30):
    batch = slice(64 * (step % 4), 64 * (step % 4 + 1))
    loss = F.cross_entropy(net(images[batch]), labels[batch])
    optimizer.zero_grad()
    loss.backward()
    optimizer.step()
print(repro.portable_cpu_active(), repro.state_digest(net.state_dict()))
"""
# Two simulated processors: this machine as it is, and one limited to SSE4 (PyTorch's
# non-vectorised kernels, MKL's SSE4.2 code, oneDNN's SSE4.1 code). They differ on any
# x86 machine with AVX2 or AVX-512.
CPU_SWITCHES = ("ATEN_CPU_CAPABILITY", "MKL_CBWR", "MKL_ENABLE_INSTRUCTIONS",
                "ONEDNN_MAX_CPU_ISA")
SIMULATED_CPUS = {
    "native": {},
    "sse4": {"ATEN_CPU_CAPABILITY": "default", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2",
             "ONEDNN_MAX_CPU_ISA": "SSE41"},
}


def run_short_training(cpu: str, mode: str) -> tuple[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in CPU_SWITCHES}
    env.update(SIMULATED_CPUS[cpu])
    env["PYTHONPATH"] = str(REPO_ROOT)
    result = subprocess.run([sys.executable, "-c", SHORT_TRAINING, mode], env=env,
                            capture_output=True, text=True, timeout=300, check=True)
    active, digest = result.stdout.split()
    return active, digest


@pytest.mark.skipif(platform.machine() not in ("x86_64", "AMD64"),
                    reason="the simulated processors are x86 instruction sets")
def test_portable_mode_gives_the_same_weights_on_two_simulated_cpus():
    native = {cpu: run_short_training(cpu, "native") for cpu in SIMULATED_CPUS}
    portable = {cpu: run_short_training(cpu, "portable") for cpu in SIMULATED_CPUS}
    # Without the mode the two processors train different networks (so the test can
    # fail); with it, the same network, bit for bit.
    assert native["native"][1] != native["sse4"][1]
    assert portable["native"] == portable["sse4"] == ("True", portable["native"][1])
    assert native["native"][0] == "False"


def test_portable_mode_refuses_to_start_too_late():
    code = ("import torch\nfrom utils import repro\n"
            "torch.randn(64, 64) @ torch.randn(64, 64)\n"
            "repro.seed_everything(0, portable=True)\n")
    env = {k: v for k, v in os.environ.items() if k not in CPU_SWITCHES}
    env["PYTHONPATH"] = str(REPO_ROOT)
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode != 0
    assert "RuntimeError: the portable CPU mode must be switched on before the first " \
           "tensor operation" in result.stderr
    assert "Restart the kernel" in result.stderr


def test_portable_requested_reads_the_environment(monkeypatch):
    for value, expected in (("1", True), ("0", False), ("", False), (" 1 ", True)):
        monkeypatch.setenv(repro.PORTABLE_ENV, value)
        assert repro.portable_requested() is expected
    monkeypatch.delenv(repro.PORTABLE_ENV)
    assert repro.portable_requested() is False


def test_portable_must_be_a_bool():
    with pytest.raises(TypeError, match="portable must be a bool"):
        repro.seed_everything(0, portable="yes")
