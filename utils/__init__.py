"""Shared code of the course *CNN Kernels and Feature Maps*.

Each module holds one kind of thing, and each function's docstring names the chapter
that derives it:

- ``utils.validate``: the argument checks every module uses (ints, pairs, shapes,
  numbers, tensors, window fits, memory), with messages naming argument and range.
- ``utils.arithmetic``: output size, receptive field (formula and gradient
  measurement), parameter and multiply-accumulate counts.
- ``utils.kernels``: classic hand-made kernels (Sobel, Gaussian, Gabor, ...) and a
  separable Gaussian blur.
- ``utils.conv``: naive, im2col, Winograd and FFT convolution.
- ``utils.fusion``: Conv-BN fusion.
- ``utils.layers``: the depthwise separable block, ASPP, and the per-layer cost counter
  (parameters, MACs, FLOPs).
- ``utils.prune``: channel pruning by BatchNorm |γ| (network slimming).
- ``utils.checks``: the labs' autograded checks, with feedback a student can act on.
- ``utils.interactive``: the sliding-window and kernel explorers (static and live).
- ``utils.vis_optim``: ImageNet preprocessing, activation maximisation and the
  Fourier-parameterised feature visualisation.
- ``utils.attribution``: saliency, SmoothGrad, Guided Backpropagation, Grad-CAM and
  Integrated Gradients, and the checks of chapter 7 (deletion, rank correlation,
  cascading randomisation).
- ``utils.antialias``: shift invariance: binomial blurs, BlurPool, VGG16 with
  anti-aliased pooling, circular shifts and agreement measures with bootstrap intervals.
- ``utils.probe``: a linear probe on VGG16's frozen features (the offline classifier
  head), with cached CIFAR-10 features.
- ``utils.hooks``: capturing feature maps with forward hooks.
- ``utils.models``: ``TinyCNN``, VGG16 ``features`` and ``truncate_after``.
- ``utils.weights``: the ImageNet weights of VGG16, fetched, converted and checked.
- ``utils.data``: MNIST, Fashion-MNIST, a CIFAR-10 sample and sample photographs,
  from an offline mirror or the official downloads, checked by checksum.
- ``utils.train``: the training and evaluation loops.
- ``utils.repro``: seeding, deterministic algorithms, thread count, device, portable
  CPU mode, and digests of weights.
- ``utils.viz``: the course's figure style (high-density figures, the colour-scale
  rule) and grids of kernels, feature maps, images and attribution maps.

Imports only go down this list's dependency order (``tests/test_architecture.py``
checks that there is no circle and no private name used across modules).
"""

__version__ = "0.1.0"


def _figure_style_in_notebooks() -> None:
    """Inside a Jupyter kernel, importing anything from ``utils`` (every notebook's
    set-up cell does) applies the course's figure style once: ``viz.use_course_style``
    (high-density figures, the same fonts everywhere)."""
    import sys

    if "IPython" in sys.modules and sys.modules["IPython"].get_ipython() is not None:
        from . import viz

        viz.use_course_style()


_figure_style_in_notebooks()
