"""Four implementations of a 2-D convolution, each with the values of ``F.conv2d``.

Naive loops over output positions (``chapters/01_convolution_operation.ipynb``), and in
``chapters/04_fast_convolution.ipynb``: im2col + one matrix multiply, Winograd
F(2×2, 3×3), and FFT by the convolution theorem. Like ``F.conv2d``, every convolution
here is a cross-correlation (the kernel is not flipped); ``conv2d_winograd`` and, for
small images, ``conv2d_im2col`` return their result in channels-last memory format
(same values, call ``.contiguous()`` for NCHW storage). Sizes and costs are in
``utils.arithmetic``, Conv-BN fusion in ``utils.fusion``. ``tests/test_conv.py`` checks
each function against PyTorch and SciPy; ``benchmarks/conv_bench.py`` times them.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor

from . import validate

__all__ = [
    "im2col", "conv2d_naive", "conv2d_im2col", "conv2d_winograd", "winograd_tile",
    "conv2d_fft", "WINOGRAD_G", "WINOGRAD_BT", "WINOGRAD_AT",
]

IntPair = int | tuple[int, int]
Padding = int | tuple[int, int] | str

# Winograd F(2×2, 3×3) transforms (Lavin & Gray 2016) for cross-correlation:
# Y = Aᵀ [(G g Gᵀ) ⊙ (Bᵀ d B)] A for a 4×4 input tile d and a 3×3 kernel g.
WINOGRAD_G = torch.tensor(
    [[1.0, 0.0, 0.0], [0.5, 0.5, 0.5], [0.5, -0.5, 0.5], [0.0, 0.0, 1.0]])
WINOGRAD_BT = torch.tensor(
    [[1.0, 0.0, -1.0, 0.0], [0.0, 1.0, 1.0, 0.0], [0.0, -1.0, 1.0, 0.0],
     [0.0, 1.0, 0.0, -1.0]])
WINOGRAD_AT = torch.tensor([[1.0, 1.0, 1.0, 0.0], [0.0, 1.0, -1.0, -1.0]])

# Largest block of im2col columns built at once, in elements (2 MiB of float32):
# small enough to stay in cache and to be reused block after block.
_COLUMN_BLOCK = 1 << 19
# The same for the transformed tiles of conv2d_winograd (4 MiB of float32).
_WINOGRAD_BLOCK = 1 << 20
# Below this many output pixels per image, a matrix product per image is too small
# to run fast, so conv2d_im2col makes one product over all pixels of the batch.
_SMALL_IMAGE = 1024


# ----------------------------------------------------------------------- geometry


class _Geometry(NamedTuple):
    """Checked arguments of a convolution; ``pads`` is (top, bottom, left, right)."""

    stride: tuple[int, int]
    dilation: tuple[int, int]
    pads: tuple[int, int, int, int]
    groups: int
    out_h: int
    out_w: int


def _padding(padding: Padding, kernel: tuple[int, int], stride: tuple[int, int],
             dilation: tuple[int, int]) -> tuple[int, int, int, int]:
    """Turn ``padding`` (int, pair, 'valid' or 'same') into (top, bottom, left, right).

    'same' follows F.conv2d: total padding d(k-1) per axis, the odd extra pixel at the
    bottom/right, and only with stride 1.
    """
    if isinstance(padding, str):
        if padding == "valid":
            return (0, 0, 0, 0)
        if padding != "same":
            raise ValueError(
                f"padding must be an int, a pair, 'valid' or 'same', got {padding!r}")
        if stride != (1, 1):
            raise ValueError(f"padding='same' needs stride 1, got stride={stride}")
        total_h, total_w = dilation[0] * (kernel[0] - 1), dilation[1] * (kernel[1] - 1)
        return (total_h // 2, total_h - total_h // 2, total_w // 2,
                total_w - total_w // 2)
    pad_h, pad_w = validate.integer_pair(padding, "padding", 0)
    return (pad_h, pad_h, pad_w, pad_w)


def _window_geometry(x: Tensor, kernel: tuple[int, int], stride: IntPair,
                     padding: Padding, dilation: IntPair, groups: int) -> _Geometry:
    """Check stride, padding and dilation and compute the output size of a window."""
    stride = validate.integer_pair(stride, "stride", 1)
    dilation = validate.integer_pair(dilation, "dilation", 1)
    pads = _padding(padding, kernel, stride, dilation)
    height, width = x.shape[2], x.shape[3]
    validate.window_fits(height, kernel[0], pads[0] + pads[1], dilation[0], "height")
    validate.window_fits(width, kernel[1], pads[2] + pads[3], dilation[1], "width")
    validate.allocation((*x.shape[:2], height + pads[0] + pads[1],
                         width + pads[2] + pads[3]), x.dtype, "the zero-padded input")
    out_h = (height + pads[0] + pads[1] - dilation[0] * (kernel[0] - 1) - 1)
    out_w = (width + pads[2] + pads[3] - dilation[1] * (kernel[1] - 1) - 1)
    return _Geometry(stride, dilation, pads, groups, out_h // stride[0] + 1,
                     out_w // stride[1] + 1)


def _conv_geometry(input: Tensor, weight: Tensor, bias: Tensor | None,
                   stride: IntPair, padding: Padding, dilation: IntPair,
                   groups: int) -> _Geometry:
    """Validate the arguments of a convolution the way F.conv2d sees them."""
    validate.tensor(input, "input", "NCHW")
    validate.tensor(weight, "weight", ("C_out", "C_in/groups", "kH", "kW"))
    if weight.dtype != input.dtype:
        raise ValueError(
            f"weight dtype {weight.dtype} must match input dtype {input.dtype}")
    groups = validate.integer(groups, "groups", 1)
    channels, out_channels = input.shape[1], weight.shape[0]
    if channels % groups or out_channels % groups:
        raise ValueError(
            f"groups={groups} must divide the input channels ({channels}) and the "
            f"output channels ({out_channels})")
    if weight.shape[1] * groups != channels:
        raise ValueError(
            f"channel mismatch: input has C={channels} channels but weight expects "
            f"C_in = weight.shape[1] × groups = {weight.shape[1]} × {groups} = "
            f"{weight.shape[1] * groups}")
    if bias is not None:
        if not isinstance(bias, Tensor):
            raise TypeError(f"bias must be a torch.Tensor or None, got "
                            f"{type(bias).__name__}")
        if tuple(bias.shape) != (out_channels,):
            raise ValueError(f"bias must have shape ({out_channels},) (one value per "
                             f"output channel), got {tuple(bias.shape)}")
    kernel = (weight.shape[2], weight.shape[3])
    geometry = _window_geometry(input, kernel, stride, padding, dilation, groups)
    validate.allocation((input.shape[0], out_channels, geometry.out_h, geometry.out_w),
                        input.dtype, "the output")
    return geometry


def _pad(x: Tensor, pads: tuple[int, int, int, int]) -> Tensor:
    """Zero-pad (top, bottom, left, right), as F.pad but writing each value once:
    only the border is zeroed, and the image is copied into the middle."""
    top, bottom, left, right = pads
    if not any(pads):
        return x
    batch, channels, height, width = x.shape
    padded = x.new_empty(batch, channels, top + height + bottom, left + width + right)
    padded[:, :, :top] = 0
    padded[:, :, top + height:] = 0
    middle = padded[:, :, top:top + height]
    middle[..., :left] = 0
    middle[..., left + width:] = 0
    middle[..., left:left + width] = x
    return padded


def _require_unit_geometry(geometry: _Geometry, name: str) -> None:
    """Raise ValueError unless stride, dilation and groups are all 1 (for the
    algorithms that only implement a plain, stride-1 convolution)."""
    if geometry.stride != (1, 1) or geometry.dilation != (1, 1) or geometry.groups != 1:
        raise ValueError(
            f"{name} needs stride 1, dilation 1 and groups 1, got stride="
            f"{geometry.stride}, dilation={geometry.dilation}, "
            f"groups={geometry.groups}")


def _add_bias(out: Tensor, bias: Tensor | None) -> Tensor:
    if bias is not None:
        out += bias.view(1, -1, 1, 1)
    return out


# ------------------------------------------------------------------------ im2col


def _patches(padded: Tensor, kernel: tuple[int, int], geometry: _Geometry) -> Tensor:
    """Strided view (N, C, kH, kW, H_out, W_out) of all windows of a padded input.

    Element [n, c, i, j, y, x] is padded[n, c, y·s_h + i·d_h, x·s_w + j·d_w]; no data
    is copied.
    """
    n_stride, c_stride, h_stride, w_stride = padded.stride()
    (s_h, s_w), (d_h, d_w) = geometry.stride, geometry.dilation
    return padded.as_strided(
        (padded.shape[0], padded.shape[1], kernel[0], kernel[1], geometry.out_h,
         geometry.out_w),
        (n_stride, c_stride, h_stride * d_h, w_stride * d_w, h_stride * s_h,
         w_stride * s_w),
        padded.storage_offset())


def im2col(x: Tensor, kernel_size: IntPair, stride: IntPair = 1, padding: IntPair = 0,
           dilation: IntPair = 1) -> Tensor:
    """Unfold every kernel-sized window of ``x`` into a column: shape (N, C·kH·kW, L).

    Column ``l`` (output position y·W_out + x) holds the window
    x[n, c, y·s + i·d, x·s + j·d] (after zero padding) with rows ordered (c, i, j), so
    a convolution becomes one matrix product W.view(C_out, C·kH·kW) @ columns. Same
    result as ``F.unfold``, built here from a strided view and one copy; L = H_out·W_out
    from ``output_size``. Explained in ``chapters/04_fast_convolution.ipynb``.
    """
    validate.tensor(x, "input", "NCHW")
    kernel = validate.integer_pair(kernel_size, "kernel_size", 1)
    geometry = _window_geometry(x, kernel, stride, padding, dilation, 1)
    validate.allocation((x.shape[0], x.shape[1] * kernel[0] * kernel[1],
                         geometry.out_h * geometry.out_w), x.dtype, "the im2col columns")
    columns = _patches(_pad(x, geometry.pads), kernel, geometry)
    return columns.reshape(x.shape[0], -1, geometry.out_h * geometry.out_w)


# ------------------------------------------------------------------- convolutions


def conv2d_naive(input: Tensor, weight: Tensor, bias: Tensor | None = None,
                 stride: IntPair = 1, padding: Padding = 0, dilation: IntPair = 1,
                 groups: int = 1) -> Tensor:
    """Convolution with explicit loops over output positions (clear and slow).

    out[n, o, y, x] = b[o] + Σ_{c,i,j} w[o, c, i, j] · in[n, g·C_g + c, y·s + i·d,
    x·s + j·d] (zero padded), where g is the group of output channel o and
    C_g = C/groups: at each position the window under the kernel is multiplied
    element-wise with every filter and summed (a dot product, one per batch image and
    output channel). Same signature and result as ``F.conv2d``. Explained in
    ``chapters/01_convolution_operation.ipynb``.
    """
    geometry = _conv_geometry(input, weight, bias, stride, padding, dilation, groups)
    padded = _pad(input, geometry.pads)
    batch, out_channels = input.shape[0], weight.shape[0]
    k_h, k_w = weight.shape[2], weight.shape[3]
    (s_h, s_w), (d_h, d_w) = geometry.stride, geometry.dilation
    filters = weight.reshape(groups, out_channels // groups, -1, k_h, k_w)
    out = input.new_empty(batch, out_channels, geometry.out_h, geometry.out_w)
    for y in range(geometry.out_h):
        for x in range(geometry.out_w):
            top, left = y * s_h, x * s_w
            window = padded[:, :, top:top + d_h * (k_h - 1) + 1:d_h,
                            left:left + d_w * (k_w - 1) + 1:d_w]
            window = window.reshape(batch, groups, -1, k_h, k_w)
            dots = torch.einsum("ngcij,gocij->ngo", window, filters)
            out[:, :, y, x] = dots.reshape(batch, out_channels)
    return _add_bias(out, bias)


def _blocks(windows: Tensor, out: Tensor, row_dim: int, row_size: int,
            out_row_dim: int, out_row_len: int,
            budget: int) -> list[tuple[Tensor, Tensor]]:
    """Split windows and output alike into blocks of about ``budget`` values.

    ``windows`` is a strided view with batch first and output rows on ``row_dim``;
    ``row_size`` is the number of work-space values per output row. Blocks are whole
    images when one fits (split evenly, batch dimension kept), otherwise row ranges
    of one image (batch dimension dropped); ``out`` is split the same way (its rows
    on ``out_row_dim``, ``out_row_len`` entries each). Returns (windows block, output
    block) pairs.
    """
    batch, rows = windows.shape[0], windows.shape[row_dim]
    images = min(batch, budget // (rows * row_size))
    if images >= 1:
        images = -(-batch // -(-batch // images))
        return list(zip(windows.split(images), out.split(images), strict=True))
    block_rows = max(1, budget // row_size)
    block_rows = -(-rows // -(-rows // block_rows))
    return [pair for n in range(batch) for pair in zip(
        windows[n].split(block_rows, row_dim - 1),
        out[n].split(block_rows * out_row_len, out_row_dim - 1), strict=True)]


def _needs_grad(*tensors: Tensor | None) -> bool:
    """Whether autograd must follow an operation on these tensors."""
    return torch.is_grad_enabled() and any(
        t is not None and t.requires_grad for t in tensors)


def _im2col_matmul_autograd(input: Tensor, weight: Tensor,
                            geometry: _Geometry) -> Tensor:
    """The same product in one piece and without reused buffers, which autograd can
    differentiate (the block-wise paths write into buffers with ``out=``)."""
    patches = _patches(_pad(input, geometry.pads), weight.shape[2:], geometry)
    batch, groups, out_channels = input.shape[0], geometry.groups, weight.shape[0]
    shape = (batch, out_channels, geometry.out_h, geometry.out_w)
    columns = patches.reshape(batch, groups, -1, geometry.out_h * geometry.out_w)
    filters = weight.reshape(groups, out_channels // groups, -1)
    return torch.matmul(filters, columns).view(shape)


def _head(buffer: Tensor, shape: torch.Size) -> Tensor:
    """The first values of a contiguous ``buffer``, viewed as ``shape``."""
    return buffer.view(-1)[:math.prod(shape)].view(shape)


def _im2col_matmul_nchw(input: Tensor, weight: Tensor, geometry: _Geometry) -> Tensor:
    """W (groups, C_out/g, K) @ columns (N, groups, K, L): lands in NCHW directly."""
    patches = _patches(_pad(input, geometry.pads), weight.shape[2:], geometry)
    batch, channels, groups = input.shape[0], input.shape[1], geometry.groups
    out_channels, out_h, out_w = weight.shape[0], geometry.out_h, geometry.out_w
    per_group = channels // groups * weight.shape[2] * weight.shape[3]
    filters = weight.reshape(groups, out_channels // groups, per_group)
    out = input.new_empty(batch, out_channels, out_h * out_w)
    blocks = _blocks(patches, out, 4, groups * per_group * out_w, 2, out_w,
                     _COLUMN_BLOCK)
    # Rows of one image per block and one group: a plain (C_out × K) @ (K × L) product.
    plain = groups == 1 and blocks[0][1].dim() == 2
    matrix = filters[0] if plain else filters

    def as_operand(columns: Tensor) -> Tensor:
        if plain:
            return columns.view(per_group, -1)
        return columns.view(-1, groups, per_group, columns.shape[-2] * out_w)

    buffer = input.new_empty(blocks[0][0].shape)
    full_operand = as_operand(buffer)
    for windows, target in blocks:
        columns, operand = buffer, full_operand
        if windows.shape != buffer.shape:             # a smaller last block
            columns = _head(buffer, windows.shape)
            operand = as_operand(columns)
        columns.copy_(windows)
        if plain:
            torch.mm(matrix, operand, out=target)
        else:
            torch.matmul(matrix, operand, out=target.view(
                len(operand), groups, -1, target.shape[-1]))
    return out.view(batch, out_channels, out_h, out_w)


def _im2col_matmul_nhwc(input: Tensor, weight: Tensor, geometry: _Geometry) -> Tensor:
    """Columns (N·L, kH·kW·C) from a channels-last copy @ W (kH·kW·C, C_out)."""
    top, bottom, left, right = geometry.pads
    padded = F.pad(input.permute(0, 2, 3, 1), (0, 0, left, right, top, bottom))
    n_stride, h_stride, w_stride, c_stride = padded.stride()
    (s_h, s_w), (d_h, d_w) = geometry.stride, geometry.dilation
    batch, channels = input.shape[0], input.shape[1]
    out_channels, k_h, k_w = weight.shape[0], weight.shape[2], weight.shape[3]
    out_h, out_w = geometry.out_h, geometry.out_w
    rows = padded.as_strided(
        (batch, out_h, out_w, k_h, k_w, channels),
        (n_stride, h_stride * s_h, w_stride * s_w, h_stride * d_h, w_stride * d_w,
         c_stride), padded.storage_offset())
    per_pixel = k_h * k_w * channels
    filters = weight.permute(2, 3, 1, 0).reshape(per_pixel, out_channels)
    out = input.new_empty(batch, out_h, out_w, out_channels)
    blocks = _blocks(rows, out, 1, out_w * per_pixel, 1, 1, _COLUMN_BLOCK)
    buffer = input.new_empty(blocks[0][0].shape)
    full_operand = buffer.view(-1, per_pixel)
    for windows, target in blocks:
        columns, operand = buffer, full_operand
        if windows.shape != buffer.shape:             # a smaller last block
            columns = _head(buffer, windows.shape)
            operand = columns.view(-1, per_pixel)
        columns.copy_(windows)
        torch.mm(operand, filters, out=target.view(-1, out_channels))
    return out.permute(0, 3, 1, 2)


def conv2d_im2col(input: Tensor, weight: Tensor, bias: Tensor | None = None,
                  stride: IntPair = 1, padding: Padding = 0, dilation: IntPair = 1,
                  groups: int = 1) -> Tensor:
    """Convolution as im2col + one matrix multiply: out = W.view(C_out, K) @ columns.

    With K = (C/groups)·kH·kW, the columns of ``im2col`` turn the convolution into a
    product (C_out × K) @ (K × H_out·W_out) per image and group, which a BLAS library
    runs near the machine's peak; the output of the product is already NCHW. The
    columns are built in cache-sized blocks (whole images, or rows of one large image)
    in one reused buffer. Small images (fewer than 1024 output pixels, groups = 1)
    give products too small to be fast, so there the columns are transposed, one row
    of kH·kW·C values per output pixel of the whole batch taken from a channels-last
    copy of the input, and the result (N·H_out·W_out × C_out) is returned as a
    channels-last view. When gradients are needed the columns are built in one piece
    so that autograd can follow. Same signature and values as ``F.conv2d``.
    Explained in ``chapters/04_fast_convolution.ipynb``.
    """
    geometry = _conv_geometry(input, weight, bias, stride, padding, dilation, groups)
    if _needs_grad(input, weight):
        out = _im2col_matmul_autograd(input, weight, geometry)
    elif groups == 1 and geometry.out_h * geometry.out_w < _SMALL_IMAGE:
        out = _im2col_matmul_nhwc(input, weight, geometry)
    else:
        out = _im2col_matmul_nchw(input, weight, geometry)
    return _add_bias(out, bias)


# ------------------------------------------------------------------------ Winograd


def winograd_tile(d: Tensor, g: Tensor) -> Tensor:
    """One 2×2 output tile of Winograd F(2×2, 3×3): Y = Aᵀ[(G g Gᵀ) ⊙ (Bᵀ d B)]A.

    ``d`` is a 4×4 input tile and ``g`` a 3×3 kernel; the result equals the 2×2
    cross-correlation of ``d`` with ``g`` but needs only the 16 element-wise products
    of the ⊙ instead of 2·2·3·3 = 36: the transforms with Bᵀ and Aᵀ are additions and
    subtractions, and G g Gᵀ is computed once per kernel (Lavin & Gray 2016).
    Explained in ``chapters/04_fast_convolution.ipynb``.
    """
    validate.tensor(d, "d", "HW")
    validate.tensor(g, "g", "HW")
    if tuple(d.shape) != (4, 4) or tuple(g.shape) != (3, 3):
        raise ValueError(f"winograd_tile needs a 4×4 tile d and a 3×3 kernel g, got "
                         f"d {tuple(d.shape)} and g {tuple(g.shape)}")
    g_matrix, bt, at = (m.to(dtype=d.dtype, device=d.device)
                        for m in (WINOGRAD_G, WINOGRAD_BT, WINOGRAD_AT))
    kernel_transformed = g_matrix @ g.to(d.dtype) @ g_matrix.T
    tile_transformed = bt @ d @ bt.T
    return at @ (kernel_transformed * tile_transformed) @ at.T


def _winograd_autograd(tiles: Tensor, kernels: Tensor, bt: Tensor,
                       at: Tensor) -> Tensor:
    """The steps of ``_WinogradWork.run`` on all tiles at once and without reused
    buffers, which autograd can differentiate; returns (N, T, 2, S, 2, C_out)."""
    images, _, _, rows, cols, channels = tiles.shape
    d = tiles.permute(1, 2, 0, 3, 4, 5).reshape(16, -1)
    v = (torch.kron(bt, bt) @ d).view(16, -1, channels)
    y = torch.kron(at, at) @ (v @ kernels).view(16, -1)
    return y.view(2, 2, images, rows, cols, -1).permute(2, 3, 0, 4, 1, 5)


class _WinogradWork:
    """Work space of ``conv2d_winograd``: the transform matrices, U = G g Gᵀ as
    (16, C, C_out) and buffers for d, V, M and Y that every block reuses."""

    def __init__(self, kernels: Tensor, bt: Tensor, at: Tensor, tiles: int) -> None:
        channels, out_channels = kernels.shape[1], kernels.shape[2]
        self.kernels = kernels
        self.bt_kron, self.at_kron = torch.kron(bt, bt), torch.kron(at, at)
        self.buffers = tuple(kernels.new_empty(size * tiles) for size in (
            16 * channels, 16 * channels, 16 * out_channels, 4 * out_channels))
        self.views: dict[torch.Size, tuple[Tensor, ...]] = {}

    def _views(self, shape: torch.Size) -> tuple[Tensor, ...]:
        """Views of the buffers for a block of tiles of ``shape`` (N, 4, 4, T, S, C)."""
        if shape not in self.views:
            images, _, _, rows, cols, channels = shape
            count, out_channels = images * rows * cols, self.kernels.shape[2]
            d, v, m, y = (buffer[:size] for buffer, size in zip(self.buffers, (
                16 * count * channels, 16 * count * channels,
                16 * count * out_channels, 4 * count * out_channels), strict=True))
            self.views[shape] = (
                d.view(4, 4, images, rows, cols, channels), d.view(16, -1),
                v.view(16, -1), v.view(16, count, channels),
                m.view(16, count, out_channels), m.view(16, -1), y.view(4, -1),
                y.view(2, 2, images, rows, cols, out_channels).permute(
                    2, 3, 0, 4, 1, 5))
        return self.views[shape]

    def run(self, tiles: Tensor, out: Tensor) -> None:
        """Winograd on a block of channels-last tiles (N, 4, 4, T, S, C) into
        ``out`` (N, T, 2, S, 2, C_out), a view of the output."""
        d, d_matrix, v_matrix, v, m, m_matrix, y_matrix, y_blocks = self._views(
            tiles.shape)
        # V = Bᵀ d B of all tiles in one product, as vec(Bᵀ d B) = (Bᵀ ⊗ Bᵀ) vec(d).
        d.copy_(tiles.permute(1, 2, 0, 3, 4, 5))
        torch.mm(self.bt_kron, d_matrix, out=v_matrix)
        # The 16 matrix products M[a, b] = V[a, b] @ U[a, b], summing over channels.
        torch.matmul(v, self.kernels, out=m)
        # Y = Aᵀ M A of all tiles, vec(Y) = (Aᵀ ⊗ Aᵀ) vec(M), into the 2×2 blocks.
        torch.mm(self.at_kron, m_matrix, out=y_matrix)
        out.copy_(y_blocks)


def conv2d_winograd(x: Tensor, weight: Tensor, bias: Tensor | None = None,
                    padding: Padding = 0, *, stride: IntPair = 1,
                    dilation: IntPair = 1, groups: int = 1) -> Tensor:
    """3×3, stride-1 convolution by Winograd F(2×2, 3×3) over whole images.

    The padded image is cut into overlapping 4×4 tiles d at stride 2 (padded to an
    even number of tiles and cropped back); every tile and kernel pair gives a 2×2
    output block Aᵀ[U ⊙ V]A with U = G g Gᵀ and V = Bᵀ d B. Summed over input
    channels, the 16 products U ⊙ V become 16 matrix products (tiles × C_in) @
    (C_in × C_out): 16 multiplies per 2×2 outputs instead of 36 (2.25× fewer). The
    transforms of all tiles are matrix products too, with Bᵀ ⊗ Bᵀ and Aᵀ ⊗ Aᵀ, on a
    channels-last copy of the input; the result is returned as a channels-last view
    with the values of ``F.conv2d(x, weight, bias, padding=padding)`` (and
    gradients, when autograd asks for them). Stride, dilation and groups other than 1
    raise ValueError. Explained in ``chapters/04_fast_convolution.ipynb``.
    """
    geometry = _conv_geometry(x, weight, bias, stride, padding, dilation, groups)
    if tuple(weight.shape[2:]) != (3, 3):
        raise ValueError(f"conv2d_winograd implements F(2×2, 3×3) and needs a 3×3 "
                         f"kernel, got {weight.shape[2]}×{weight.shape[3]}")
    _require_unit_geometry(geometry, "conv2d_winograd")
    batch, channels = x.shape[0], x.shape[1]
    out_channels, out_h, out_w = weight.shape[0], geometry.out_h, geometry.out_w
    tiles_h, tiles_w = -(-out_h // 2), -(-out_w // 2)
    top, bottom, left, right = geometry.pads
    padded = F.pad(x.permute(0, 2, 3, 1), (0, 0, left, right + 2 * tiles_w - out_w,
                                           top, bottom + 2 * tiles_h - out_h))
    n_stride, h_stride, w_stride, c_stride = padded.stride()
    tiles = padded.as_strided(
        (batch, 4, 4, tiles_h, tiles_w, channels),
        (n_stride, h_stride, w_stride, 2 * h_stride, 2 * w_stride, c_stride),
        padded.storage_offset())
    g_matrix, bt, at = (m.to(dtype=x.dtype, device=x.device)
                        for m in (WINOGRAD_G, WINOGRAD_BT, WINOGRAD_AT))
    kernels = torch.einsum("ai,ocij,bj->abco", g_matrix, weight, g_matrix)
    kernels = kernels.reshape(16, channels, out_channels)
    if _needs_grad(x, weight):
        out = _winograd_autograd(tiles, kernels, bt, at)
    else:
        out = x.new_empty(batch, tiles_h, 2, tiles_w, 2, out_channels)
        blocks = _blocks(tiles, out, 3, 16 * max(channels, out_channels) * tiles_w,
                         1, 1, _WINOGRAD_BLOCK)
        work = _WinogradWork(kernels, bt, at, blocks[0][0].numel() // (16 * channels))
        for block_tiles, block_out in blocks:
            if block_tiles.dim() == 5:                  # rows of one image
                block_tiles, block_out = block_tiles[None], block_out[None]
            work.run(block_tiles, block_out)
    out = out.reshape(batch, 2 * tiles_h, 2 * tiles_w, out_channels)
    if (2 * tiles_h, 2 * tiles_w) != (out_h, out_w):
        out = out[:, :out_h, :out_w].contiguous()
    return _add_bias(out.permute(0, 3, 1, 2), bias)


# ---------------------------------------------------------------------------- FFT


def conv2d_fft(input: Tensor, weight: Tensor, bias: Tensor | None = None,
               padding: Padding = 0, *, stride: IntPair = 1, dilation: IntPair = 1,
               groups: int = 1) -> Tensor:
    """Stride-1 convolution by the convolution theorem: a product of spectra.

    The zero-padded input x (H_p × W_p) and the kernel w (kH × kW) are zero-padded
    again to the FFT size L_h × L_w = (H_p + kH − 1) × (W_p + kW − 1), the length of
    their whole linear correlation, so the circular correlation the FFT computes does
    not wrap around. Then out[n, o] = b[o] + irfft2(Σ_c rfft2(x[n, c]) ·
    conj(rfft2(w[o, c]))), cropped to its first H_out × W_out values: the conjugate
    spectrum turns the theorem's convolution into the cross-correlation of
    ``F.conv2d``, and the sum over input channels is taken in the frequency domain.
    That is C_in + C_out image-sized transforms, C_in·C_out for the kernels and
    C_in·C_out complex products per frequency, whatever the kernel size, so it beats
    the direct k²-proportional cost only for large kernels. Half-precision tensors are
    transformed in float32. Values (and gradients) of ``F.conv2d(input, weight, bias,
    padding=padding)``; stride, dilation or groups other than 1 raise ValueError.
    Explained in ``chapters/04_fast_convolution.ipynb``.
    """
    geometry = _conv_geometry(input, weight, bias, stride, padding, dilation, groups)
    _require_unit_geometry(geometry, "conv2d_fft")
    padded = _pad(input, geometry.pads)
    fft_size = (padded.shape[2] + weight.shape[2] - 1,
                padded.shape[3] + weight.shape[3] - 1)
    dtype = torch.promote_types(input.dtype, torch.float32)
    validate.allocation((*input.shape[:2], fft_size[0], fft_size[1] // 2 + 1),
                        torch.complex128 if dtype == torch.float64 else torch.complex64,
                        "the input spectra")
    input_spectra = torch.fft.rfft2(padded.to(dtype), s=fft_size)
    kernel_spectra = torch.fft.rfft2(weight.to(dtype), s=fft_size).conj()
    out_spectra = torch.einsum("ncyx,ocyx->noyx", input_spectra, kernel_spectra)
    out = torch.fft.irfft2(out_spectra, s=fft_size)
    out = out[..., :geometry.out_h, :geometry.out_w].to(input.dtype).contiguous()
    return _add_bias(out, bias)
