"""utils.viz: figures, shared symmetric colour scales, titles, and input checks."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from utils import kernels, viz  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def images_of(fig):
    return [im for ax in fig.axes for im in ax.get_images()]


def test_show_kernels_uses_one_symmetric_diverging_scale():
    bank = torch.stack([kernels.sobel_x(), 0.5 * kernels.laplacian(8)])
    fig = viz.show_kernels(bank, titles=["sobel x", "laplacian"], title="Two kernels")
    assert isinstance(fig, Figure)
    assert fig._suptitle.get_text() == "Two kernels"
    panels = images_of(fig)
    assert len(panels) == 2
    for im in panels:
        assert im.get_clim() == (-4.0, 4.0)
        assert im.get_cmap().name == viz.DIVERGING
    assert len(fig.axes) == 3  # two panels and a colour bar


def test_feature_maps_grid_layout_and_scale():
    maps = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(1, 6, 4, 4)
    fig = viz.show_feature_maps(maps, ncols=4, title="maps")
    panels = images_of(fig)
    assert len(panels) == 6
    assert panels[0].get_clim() == (0.0, 95.0)
    signed = viz.show_feature_maps(maps - 50, signed=True)
    assert images_of(signed)[0].get_clim() == (-50.0, 50.0)


def test_rgb_kernels_and_images():
    fig = viz.show_rgb_kernels(torch.randn(4, 3, 3, 3), ncols=2)
    assert len(images_of(fig)) == 4
    rgb = viz.show_images(torch.rand(2, 3, 8, 8), titles=["a", "b"])
    assert images_of(rgb)[0].get_array().shape == (8, 8, 3)


def test_to_numpy_image_layouts():
    assert viz.to_numpy_image(torch.zeros(3, 5, 7)).shape == (5, 7, 3)
    assert viz.to_numpy_image(torch.zeros(1, 5, 7)).shape == (5, 7)
    assert viz.to_numpy_image(np.zeros((5, 7))).shape == (5, 7)


@pytest.mark.parametrize("call, error, message", [
    (lambda: viz.show_kernels(torch.zeros(2, 2, 3, 3, 3)), ValueError, "must have shape"),
    (lambda: viz.show_kernels("sobel"), TypeError, "must be a tensor"),
    (lambda: viz.show_images([]), ValueError, "nothing to show"),
    (lambda: viz.show_kernels(torch.zeros(2, 3, 3), titles=["a"]), ValueError, "titles"),
    (lambda: viz.show_kernels(torch.zeros(2, 3, 3), ncols=0), ValueError, "ncols"),
    (lambda: viz.show_rgb_kernels(torch.zeros(2, 1, 3, 3)), ValueError, r"\(N, 3, k, k\)"),
    (lambda: viz.to_numpy_image(torch.zeros(4, 5, 5)), ValueError, "expected"),
])
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_show_attributions_draws_one_row_per_image_and_a_scale_per_method():
    images = torch.rand(2, 3, 8, 8)
    maps = {"signed": torch.randn(2, 8, 8), "positive": torch.rand(2, 8, 8)}
    fig = viz.show_attributions(images, maps, row_titles=["a", "b"], title="t")
    image_axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(image_axes) == 2 * 3
    assert len(fig.axes) - len(image_axes) == 2  # one colour bar per method
    signed = fig.axes[1].images[1]
    assert signed.get_clim()[0] == -signed.get_clim()[1]  # symmetric scale
    assert fig.axes[2].images[1].get_clim()[0] == 0.0
    with pytest.raises(ValueError, match="shape"):
        viz.show_attributions(images, {"bad": torch.rand(2, 4, 4)})
    with pytest.raises(ValueError, match="row titles"):
        viz.show_attributions(images, maps, row_titles=["only one"])
    plt.close(fig)
