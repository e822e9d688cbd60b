"""Classic hand-made kernels, as float32 ``torch`` tensors of shape (k, k).

Derived and applied in ``chapters/02_classic_kernels.ipynb``. Every kernel here is
checked in ``tests/test_kernels.py`` against OpenCV or SciPy.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from . import validate

__all__ = [
    "sobel_x", "sobel_y", "prewitt_x", "prewitt_y", "box", "sharpen", "laplacian",
    "gaussian", "gaussian_1d", "gabor", "gabor_bank", "reference_bank",
    "kernel_correlation", "best_matches", "gaussian_blur",
]


def _tensor(rows: list[list[float]]) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float32)


def sobel_x() -> torch.Tensor:
    """Sobel kernel for the horizontal derivative d/dx: [[-1,0,1],[-2,0,2],[-1,0,1]].

    It is a smoothing [1,2,1] column times a central difference [-1,0,1] row, so it
    responds to vertical edges. Explained in ``chapters/02_classic_kernels.ipynb``.
    """
    return _tensor([[-1, 0, 1], [-2, 0, 2], [-1, 0, 1]])


def sobel_y() -> torch.Tensor:
    """Sobel kernel for the vertical derivative d/dy, the transpose of ``sobel_x``.

    Rows grow downwards (image convention), so it responds to horizontal edges that
    get brighter towards the bottom. Explained in ``chapters/02_classic_kernels.ipynb``.
    """
    return sobel_x().T.contiguous()


def prewitt_x() -> torch.Tensor:
    """Prewitt kernel d/dx: [[-1,0,1]] repeated on three rows (no centre weighting).

    Often mislabelled "Sobel"; Sobel weights the centre row by 2. Explained in
    ``chapters/02_classic_kernels.ipynb``.
    """
    return _tensor([[-1, 0, 1], [-1, 0, 1], [-1, 0, 1]])


def prewitt_y() -> torch.Tensor:
    """Prewitt kernel d/dy, the transpose of ``prewitt_x``."""
    return prewitt_x().T.contiguous()


def box(size: int = 3) -> torch.Tensor:
    """Box (mean) blur: a size×size kernel of ones divided by size², summing to 1.

    ``size`` must be odd and positive so the kernel has a centre. Explained in
    ``chapters/02_classic_kernels.ipynb``.
    """
    validate.odd_size(size)
    validate.allocation((size, size), torch.float32, f"a {size}×{size} box kernel")
    return torch.full((size, size), 1.0 / size**2, dtype=torch.float32)


def laplacian(neighbours: int = 4) -> torch.Tensor:
    """Discrete Laplacian d²/dx² + d²/dy² with 4 or 8 neighbours.

    4: [[0,1,0],[1,-4,1],[0,1,0]] (what ``cv2.Laplacian(img, ddepth, ksize=1)`` uses);
    8: [[1,1,1],[1,-8,1],[1,1,1]] (diagonals included). Both sum to 0, so flat areas
    and linear ramps give 0. Explained in ``chapters/02_classic_kernels.ipynb``.
    """
    if neighbours == 4:
        return _tensor([[0, 1, 0], [1, -4, 1], [0, 1, 0]])
    if neighbours == 8:
        return _tensor([[1, 1, 1], [1, -8, 1], [1, 1, 1]])
    raise ValueError(f"neighbours must be 4 or 8, got {neighbours!r}")


def sharpen() -> torch.Tensor:
    """Sharpen kernel [[0,-1,0],[-1,5,-1],[0,-1,0]] = identity − ``laplacian(4)``.

    Adding the negative Laplacian to the image boosts its edges. Explained in
    ``chapters/02_classic_kernels.ipynb``.
    """
    identity = torch.zeros(3, 3)
    identity[1, 1] = 1.0
    return identity - laplacian(4)


def gaussian_1d(size: int, sigma: float) -> torch.Tensor:
    """1-D Gaussian g[i] ∝ exp(−(i − (size−1)/2)² / (2σ²)), normalised to sum 1.

    Equals ``cv2.getGaussianKernel(size, sigma)`` for sigma > 0. Explained in
    ``chapters/02_classic_kernels.ipynb``.
    """
    validate.odd_size(size)
    sigma = validate.real(sigma, "sigma", positive=True)
    x = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(x**2) / (2 * sigma**2))
    return (g / g.sum()).float()


def gaussian(size: int, sigma: float) -> torch.Tensor:
    """2-D Gaussian blur kernel: the outer product of two ``gaussian_1d`` (sums to 1).

    Separable by construction: filtering with it equals a horizontal then a vertical
    1-D pass. Rule of thumb for the size: 2·ceil(3σ)+1. Equals the outer product of
    ``cv2.getGaussianKernel(size, sigma)``. Explained in
    ``chapters/02_classic_kernels.ipynb``.
    """
    validate.odd_size(size)
    validate.allocation((size, size), torch.float64, f"a {size}×{size} Gaussian kernel")
    g = gaussian_1d(size, sigma).double()
    return torch.outer(g, g).float()


def gabor(
    ksize: int,
    sigma: float,
    theta: float,
    lambd: float,
    gamma: float = 0.5,
    psi: float = 0.0,
) -> torch.Tensor:
    """Gabor kernel: a Gaussian envelope times a cosine wave, as OpenCV defines it.

    With x' = x cosθ + y sinθ and y' = −x sinθ + y cosθ,
    g(x, y) = exp(−(x'² + γ²y'²) / (2σ²)) · cos(2πx'/λ + ψ).
    OpenCV stores g(x, y) at row ymax − y and column xmax − x (the kernel is flipped),
    which is reproduced here so the result equals ``cv2.getGaborKernel((ksize, ksize),
    sigma, theta, lambd, gamma, psi, ktype=cv2.CV_64F)``. Not normalised. Explained in
    ``chapters/02_classic_kernels.ipynb``.
    """
    validate.odd_size(ksize, "ksize")
    validate.allocation((4, ksize, ksize), torch.float64, f"a {ksize}×{ksize} Gabor kernel")
    sigma = validate.real(sigma, "sigma", positive=True)
    lambd = validate.real(lambd, "lambd", positive=True)
    gamma = validate.real(gamma, "gamma", positive=True)
    for name, value in (("theta", theta), ("psi", psi)):
        validate.real(value, name)
    half = ksize // 2
    coords = torch.arange(half, -half - 1, -1, dtype=torch.float64)
    y, x = torch.meshgrid(coords, coords, indexing="ij")
    c, s = math.cos(theta), math.sin(theta)
    x_rot = x * c + y * s
    y_rot = -x * s + y * c
    envelope = torch.exp(-0.5 * (x_rot**2 / sigma**2 + y_rot**2 * gamma**2 / sigma**2))
    return (envelope * torch.cos(2 * math.pi * x_rot / lambd + psi)).float()


def gabor_bank(
    ksize: int, sigma: float, lambd: float, n_orientations: int = 8, **kwargs: float
) -> torch.Tensor:
    """A bank of Gabor kernels at ``n_orientations`` angles θ = iπ/n, shape (n, k, k).

    Extra keyword arguments (``gamma``, ``psi``) go to ``gabor``. Explained in
    ``chapters/02_classic_kernels.ipynb``.
    """
    n_orientations = validate.integer(n_orientations, "n_orientations", 1)
    thetas = [i * math.pi / n_orientations for i in range(n_orientations)]
    return torch.stack([gabor(ksize, sigma, t, lambd, **kwargs) for t in thetas])


def reference_bank(size: int = 3) -> dict[str, torch.Tensor]:
    """Named hand-made kernels of one size, to compare learned filters with.

    Sobel x/y, Prewitt x/y, Laplacian 4/8, box, and Gabor kernels at 8 orientations in
    both phases (cosine ψ=0 and sine ψ=π/2). For ``size`` other than 3 the derivative
    kernels are left out and only the Gabor, Gaussian-derived and box kernels remain.
    Used in chapters 5 and 6 to show, with numbers, what learned kernels resemble.
    """
    validate.odd_size(size)
    bank: dict[str, torch.Tensor] = {}
    if size == 3:
        bank.update(
            sobel_x=sobel_x(), sobel_y=sobel_y(), prewitt_x=prewitt_x(),
            prewitt_y=prewitt_y(), laplacian4=laplacian(4), laplacian8=laplacian(8),
        )
    bank["box"] = box(size)
    sigma, lambd = max(size / 3.0, 0.8), max(size, 3) * 1.0
    for i in range(8):
        theta = i * math.pi / 8
        degrees = round(math.degrees(theta), 1)
        bank[f"gabor_cos_{degrees:g}"] = gabor(size, sigma, theta, lambd, 1.0, 0.0)
        bank[f"gabor_sin_{degrees:g}"] = gabor(size, sigma, theta, lambd, 1.0, math.pi / 2)
    return bank


def kernel_correlation(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Pearson correlation between kernels, after removing each kernel's mean.

    ``a`` has shape (N, k, k) or (k, k), ``b`` shape (M, k, k) or (k, k); returns an
    (N, M) tensor in [−1, 1]. A constant kernel (zero variance) correlates 0 with
    everything. Used in chapters 5 and 6.
    """
    for name, t in (("a", a), ("b", b)):
        if not isinstance(t, torch.Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if t.dim() not in (2, 3):
            raise ValueError(f"{name} must have shape (k, k) or (N, k, k), got {tuple(t.shape)}")
    a3 = (a if a.dim() == 3 else a[None]).double().flatten(1)
    b3 = (b if b.dim() == 3 else b[None]).double().flatten(1)
    if a3.shape[1] != b3.shape[1]:
        raise ValueError(
            f"kernel sizes differ: a has {tuple(a.shape[-2:])}, b has {tuple(b.shape[-2:])}"
        )
    a3 = a3 - a3.mean(1, keepdim=True)
    b3 = b3 - b3.mean(1, keepdim=True)
    a3 = a3 / a3.norm(dim=1, keepdim=True).clamp_min(1e-12)
    b3 = b3 / b3.norm(dim=1, keepdim=True).clamp_min(1e-12)
    return (a3 @ b3.T).float()


def best_matches(
    kernels: torch.Tensor, bank: dict[str, torch.Tensor]
) -> list[tuple[str, float]]:
    """For each kernel, the bank entry with the largest absolute correlation.

    Returns ``(name, signed correlation)`` per kernel; a sign of −1 means the same
    pattern with inverted polarity (an edge of the opposite contrast), which is as
    useful to a network as +1. Used in chapters 5 and 6.
    """
    if not isinstance(bank, dict) or not bank:
        raise ValueError("bank must be a non-empty dict of name -> (k, k) kernel")
    names = list(bank)
    corr = kernel_correlation(kernels, torch.stack([bank[n] for n in names]))
    best = corr.abs().argmax(dim=1)
    return [(names[j], float(corr[i, j])) for i, j in enumerate(best.tolist())]


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Blur each channel of (N, C, H, W) ``x`` with a Gaussian of standard deviation
    ``sigma`` pixels: two 1-D passes with ``gaussian_1d`` of size
    2·ceil(3σ)+1, reflect padding so the output has the input's size."""
    validate.tensor(x, "x", "NCHW")
    sigma = validate.real(sigma, "sigma", positive=True)
    size = 2 * math.ceil(3 * sigma) + 1
    half = size // 2
    if half >= min(x.shape[-2:]):
        raise ValueError(f"sigma={sigma} needs a kernel of {size} px, too large for an "
                         f"image of {tuple(x.shape[-2:])}")
    channels = x.shape[1]
    g = gaussian_1d(size, float(sigma)).to(dtype=x.dtype, device=x.device)
    padded = F.pad(x, (half, half, half, half), mode="reflect")
    rows = F.conv2d(padded, g.view(1, 1, 1, size).repeat(channels, 1, 1, 1),
                    groups=channels)
    return F.conv2d(rows, g.view(1, 1, size, 1).repeat(channels, 1, 1, 1),
                    groups=channels)
