"""Reproducibility: seeds, deterministic algorithms, a fixed thread count, the device,
and a portable CPU mode in which float32 training gives the same bits on every
Intel x86 CPU (AMD Zen processors: one other set of bits, see ``mkl_zen_path``).

``state_digest`` tells whether two sets of weights are bit-identical.

Every notebook starts with ``seed_everything(0)`` so that re-running it prints the same
numbers; the notebooks that train start with ``seed_everything(0,
portable=portable_requested())`` (both explained on the
reference page ``checking.md``).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import random

import numpy as np
import torch

from . import validate

__all__ = [
    "seed_everything", "get_device", "use_portable_cpu", "portable_requested",
    "portable_cpu_active", "mkl_zen_path", "state_digest", "PORTABLE_ENV", "PORTABLE_SETTINGS",
    "THREADS_ENV",
]

THREADS_ENV = "COURSE_NUM_THREADS"
# `make execute` and the test run set COURSE_PORTABLE_CPU=1; readers' runs stay native.
PORTABLE_ENV = "COURSE_PORTABLE_CPU"
# What the portable mode sets: MKL's conditional numerical reproducibility branch that
# is meant to give the same results on Intel and non-Intel processors (it does on Intel
# ones; AMD Zen still runs MKL's own Zen code, see mkl_zen_path), and PyTorch's
# non-vectorised ATen kernels. oneDNN and NNPACK are switched off in torch.backends.
PORTABLE_SETTINGS = {"MKL_CBWR": "COMPATIBLE", "ATEN_CPU_CAPABILITY": "default"}
_MKL_CBWR_BRANCH, _MKL_CBWR_COMPATIBLE = 1, 3  # constants of MKL's mkl_cbwr.h


def portable_requested() -> bool:
    """True when the environment variable ``COURSE_PORTABLE_CPU`` is ``1``.

    ``make execute`` and ``make test`` set it, so the book's training notebooks run in
    the portable CPU mode there; a reader's own run stays native unless they set it.
    """
    return os.environ.get(PORTABLE_ENV, "").strip() == "1"


def _mkl_function(name: str):
    """MKL's service function ``name`` (returning a C int) from PyTorch's own copy of
    MKL, or ``None`` where there is none.

    PyTorch links MKL statically on x86-64 Linux and exports its service functions;
    elsewhere (macOS, ARM, builds without MKL) there is no MKL to ask.
    """
    try:
        library = ctypes.CDLL(os.path.join(os.path.dirname(torch.__file__), "lib",
                                           "libtorch_cpu.so"))
        function = getattr(library, name)
    except (OSError, AttributeError):
        return None
    function.restype = ctypes.c_int
    return function


def mkl_zen_path() -> bool | None:
    """Whether MKL runs its code for AMD Zen processors (``None``: no MKL here).

    MKL_CBWR=COMPATIBLE does not switch that code off: made to believe it runs on a
    Zen processor (``mkl_serv_cpuiszen`` returning 1), MKL on an Intel Xeon trains
    TinyCNN to other weights in the portable mode. So the portable mode gives one set
    of bits on Intel processors and another on AMD Zen processors (see ``checking.md``).
    """
    query = _mkl_function("mkl_serv_cpuiszen")
    return None if query is None else bool(query())


def _mkl_cbwr_branch() -> int | None:
    """MKL's current reproducibility branch, or ``None`` where it cannot be asked.

    Asking initialises MKL from ``MKL_CBWR`` if nothing has yet.
    """
    query = _mkl_function("mkl_serv_cbwr_get")
    if query is None:
        return None
    query.argtypes = [ctypes.c_int]
    return int(query(_MKL_CBWR_BRANCH))


def use_portable_cpu() -> None:
    """Make float32 CPU results bit-identical across Intel x86 processors (portable mode).

    Four libraries choose their code by the processor, and each needs its switch:

    * MKL (matrix products) follows ``MKL_CBWR=COMPATIBLE``;
    * PyTorch's own ATen kernels follow ``ATEN_CPU_CAPABILITY=default`` (no AVX2 or
      AVX-512 code);
    * oneDNN (fast convolutions and pooling) is switched off with
      ``torch.backends.mkldnn.enabled = False``;
    * NNPACK, which then runs the convolutions' forward pass, reads the processor's
      features itself (no environment variable moves it) and is switched off with
      ``torch.backends.nnpack.set_flags(False)``; the convolutions then fall back to
      ATen's own im2col and matrix product, i.e. to the two libraries above.

    MKL and ATen read their variable once, at the first tensor operation that needs
    them, so this must run right after ``import torch``, before any computation. It
    checks that all four took effect and raises ``RuntimeError`` otherwise. The price
    is speed: training runs slower than with the native kernels.
    Explained on the reference page ``checking.md``.
    """
    os.environ.update(PORTABLE_SETTINGS)
    torch.backends.mkldnn.enabled = False
    torch.backends.nnpack.set_flags(False)
    capability = torch.backends.cpu.get_cpu_capability()
    mkl_branch = _mkl_cbwr_branch()
    late = []
    if capability != "DEFAULT":
        late.append(f"PyTorch already uses its {capability} kernels")
    if mkl_branch is not None and mkl_branch != _MKL_CBWR_COMPATIBLE:
        late.append(f"MKL already runs in branch {mkl_branch}, not COMPATIBLE "
                    f"({_MKL_CBWR_COMPATIBLE})")
    if late:
        raise RuntimeError(
            "the portable CPU mode must be switched on before the first tensor "
            "operation, but " + " and ".join(late) + ". Restart the kernel and call "
            "seed_everything(..., portable=True) right after the imports, or set "
            "MKL_CBWR=COMPATIBLE and ATEN_CPU_CAPABILITY=default before starting "
            "Python.")


def _nnpack_enabled() -> bool:
    """Whether PyTorch would run NNPACK's convolutions (built with it and switched on)."""
    return torch.backends.nnpack.is_available() and torch._C._get_nnpack_enabled()


def portable_cpu_active() -> bool:
    """Whether all four settings of ``use_portable_cpu`` are in effect."""
    mkl_branch = _mkl_cbwr_branch()
    return (torch.backends.cpu.get_cpu_capability() == "DEFAULT"
            and not torch.backends.mkldnn.enabled
            and not _nnpack_enabled()
            and mkl_branch in (None, _MKL_CBWR_COMPATIBLE))


def seed_everything(seed: int = 0, threads: int | None = None,
                    portable: bool = False) -> torch.Generator:
    """Seed Python, NumPy and PyTorch and switch on deterministic algorithms.

    ``threads`` fixes PyTorch's intra-op thread count; when it is ``None`` the
    environment variable ``COURSE_NUM_THREADS`` is used if set (the test suite sets it
    to 2, the reference machine's core count), otherwise PyTorch's default is kept.
    ``portable=True`` first switches on the portable CPU mode (``use_portable_cpu``:
    bit-identical float32 results on every Intel x86 CPU, slower), which only
    works before the first tensor operation. Returns a ``torch.Generator`` seeded with
    ``seed`` for code that wants its own stream of random numbers.
    """
    seed = validate.integer(seed, "seed", 0, 2**32 - 1)
    validate.boolean(portable, "portable")
    if portable:
        use_portable_cpu()
    if threads is None and os.environ.get(THREADS_ENV):
        threads = int(os.environ[THREADS_ENV])
    if threads is not None:
        torch.set_num_threads(validate.integer(threads, "threads", 1))
    os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    torch.use_deterministic_algorithms(True)
    torch.backends.cudnn.benchmark = False
    torch.backends.cudnn.deterministic = True
    return torch.Generator().manual_seed(seed)


def get_device(prefer_gpu: bool = True) -> torch.device:
    """Return ``cuda`` when a GPU is present (and wanted), else ``cpu``.

    The course runs on a CPU; a GPU only makes training and activation maximisation
    faster.
    """
    if prefer_gpu and torch.cuda.is_available():
        return torch.device("cuda")
    return torch.device("cpu")


def state_digest(state: dict[str, torch.Tensor]) -> str:
    """SHA-256 over a state dict's keys, shapes and float32 bytes, in sorted key order.

    Two state dicts with the same digest hold bit-identical tensors.
    """
    h = hashlib.sha256()
    for key in sorted(state):
        tensor = state[key].detach().to("cpu", torch.float32).contiguous()
        h.update(key.encode())
        h.update(str(tuple(tensor.shape)).encode())
        h.update(tensor.numpy().tobytes())
    return h.hexdigest()
