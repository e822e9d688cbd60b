"""Shared code of the course *CNN Kernels and Feature Maps*.

Each module holds one kind of thing, and each function's docstring names the chapter
that derives it:

- ``utils.kernels``: classic hand-made kernels (Sobel, Gaussian, Gabor, ...).
- ``utils.conv``: output-size and receptive-field formulas, naive / im2col / Winograd
  convolution, Conv-BN fusion.
- ``utils.layers``: the depthwise separable block, ASPP, and parameter / MAC / FLOP
  counting.
- ``utils.prune``: channel pruning by BatchNorm |γ| (network slimming).
- ``utils.checks``: the labs' autograded checks, with feedback a student can act on.
- ``utils.interactive``: the sliding-window and kernel explorers (static and live).
- ``utils.vis_optim``: ImageNet preprocessing, activation maximisation and the
  Fourier-parameterised feature visualisation.
- ``utils.attribution``: saliency, SmoothGrad, Guided Backpropagation, Grad-CAM and
  Integrated Gradients, and the checks of chapter 7 (deletion, rank correlation,
  cascading randomisation).
- ``utils.probe``: a linear probe on VGG16's frozen features (the offline classifier
  head), with cached CIFAR-10 features.
- ``utils.hooks``: capturing feature maps with forward hooks.
- ``utils.models``: ``TinyCNN`` and the pretrained VGG16 ``features``.
- ``utils.data``: MNIST, Fashion-MNIST, a CIFAR-10 sample and sample photographs,
  from an offline mirror or the official downloads, checked by checksum.
- ``utils.train``: the training and evaluation loops.
- ``utils.repro``: seeding, deterministic algorithms, thread count, device.
- ``utils.viz``: grids of kernels, feature maps, images and attribution maps.
"""

__version__ = "0.1.0"
