"""utils.viz: the course's colour-scale rule, figure style, titles and input checks."""

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pytest  # noqa: E402
import torch  # noqa: E402
from hypothesis import given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402
from matplotlib.figure import Figure  # noqa: E402

from utils import kernels, viz  # noqa: E402


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def images_of(fig):
    return [im for ax in fig.axes if ax.get_label() != "<colorbar>" for im in ax.get_images()]


def colour_bars(fig):
    return [ax for ax in fig.axes if ax.get_label() == "<colorbar>"]


def test_kernels_of_similar_size_share_one_symmetric_diverging_scale():
    bank = torch.stack([kernels.sobel_x(), 0.5 * kernels.laplacian(8)])  # max 2 and 4
    fig = viz.show_kernels(bank, titles=["sobel x", "laplacian"], title="Two kernels")
    assert isinstance(fig, Figure)
    assert fig._suptitle.get_text() == "Two kernels"
    panels = images_of(fig)
    assert len(panels) == 2
    for im in panels:
        assert im.get_clim() == (-4.0, 4.0)
        assert im.get_cmap().name == viz.DIVERGING
    bars = colour_bars(fig)
    assert len(bars) == 1  # the figure says the scale is shared
    assert "one scale for all panels" in bars[0].get_ylabel()
    assert [ax.get_title() for ax in fig.axes[:2]] == ["sobel x", "laplacian"]


def test_kernels_of_different_size_get_a_stated_scale_and_bar_each():
    # The reference-bank case: laplacian8's ±8 would wash out a 0.11 box kernel.
    bank = torch.stack([kernels.laplacian(8), kernels.box(3), kernels.sobel_x()])
    fig = viz.show_kernels(bank, titles=["lap8", "box", "sobel"])
    limits = [im.get_clim()[1] for im in images_of(fig)]
    assert limits == pytest.approx([8.0, 1 / 9, 2.0])
    for im in images_of(fig):
        assert im.get_clim()[0] == -im.get_clim()[1]  # centred on 0
    assert len(colour_bars(fig)) == 3
    titles = [ax.get_title() for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert titles == ["lap8\n±8", "box\n±0.11", "sobel\n±2"]


def test_shared_scale_on_request_even_when_magnitudes_differ():
    bank = torch.stack([kernels.laplacian(8), kernels.box(3)])
    fig = viz.show_kernels(bank, scale="shared")
    assert {im.get_clim() for im in images_of(fig)} == {(-8.0, 8.0)}
    assert len(colour_bars(fig)) == 1


def test_feature_maps_sequential_when_positive_diverging_when_signed():
    maps = torch.arange(2 * 3 * 4 * 4, dtype=torch.float32).view(1, 6, 4, 4) + 1
    fig = viz.show_feature_maps(maps, ncols=4, title="maps", scale="shared")
    panels = images_of(fig)
    assert len(panels) == 6
    assert panels[0].get_clim() == (1.0, 96.0)
    assert panels[0].get_cmap().name == viz.SEQUENTIAL
    signed = viz.show_feature_maps(maps - 50, scale="shared")  # signed found from data
    assert images_of(signed)[0].get_clim() == (-49.0, 49.0)
    assert images_of(signed)[0].get_cmap().name == viz.DIVERGING


def test_auto_rule_threshold_is_the_stated_ratio():
    low = np.array([[0.0, -1.0]])
    just_shared = [low, low * viz.AUTO_SHARED_RATIO]
    assert all(s.shared for s in viz.colour_scales(just_shared))
    too_different = [low, low * viz.AUTO_SHARED_RATIO * 1.01]
    assert not any(s.shared for s in viz.colour_scales(too_different))
    # the digit example of chapter 2: a channel 4× weaker than the others
    maps = [np.array([[-4.0, 4.0]]), np.array([[0.0, 1.0]])]
    scales = viz.colour_scales(maps)
    assert [s.vmax for s in scales] == [4.0, 1.0] and all(s.signed for s in scales)
    assert [s.label for s in scales] == ["±4", "±1"]
    assert viz.colour_scales([np.array([[0.5, 3.1]])], scale="panel")[0].label == "0.5–3.1"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(1e-3, 1e3), min_size=1, max_size=6),
       st.sampled_from(["auto", "panel", "shared"]))
def test_signed_scales_are_centred_and_contain_every_value(magnitudes, scale):
    rng = np.random.default_rng(len(magnitudes))
    panels = [m * rng.uniform(-1, 1, (3, 4)) for m in magnitudes]
    panels[0][0, 0] = -magnitudes[0]  # at least one negative value: signed
    for panel, colour in zip(panels, viz.colour_scales(panels, scale=scale), strict=True):
        assert colour.signed and colour.vmin == -colour.vmax
        assert colour.vmin <= panel.min() and panel.max() <= colour.vmax
        norm = colour.norm
        assert norm(0.0) == pytest.approx(0.5)  # white is zero
    shared = {s.vmax for s in viz.colour_scales(panels, scale="shared")}
    assert len(shared) == 1


def test_fixed_limits_and_their_checks():
    panels = [np.array([[-1.0, 2.0]])]
    scales = viz.colour_scales(panels, vmin=-3, vmax=3)
    assert (scales[0].vmin, scales[0].vmax, scales[0].shared) == (-3, 3, True)
    with pytest.raises(ValueError, match="centred on 0"):
        viz.colour_scales(panels, vmin=-1, vmax=3)
    with pytest.raises(ValueError, match="both vmin and vmax"):
        viz.colour_scales(panels, vmin=-1)
    with pytest.raises(ValueError, match="scale='shared'"):
        viz.colour_scales(panels, vmin=-3, vmax=3, scale="panel")
    with pytest.raises(ValueError, match="signed=False"):
        viz.show_feature_maps(torch.from_numpy(panels[0])[None], signed=False)
    grey = viz.colour_scales(panels, signed=False)[0]  # a picture's undershoot: grey
    assert (grey.vmin, grey.vmax, grey.signed) == (-1.0, 2.0, False)
    with pytest.raises(ValueError, match="scale must be one of"):
        viz.colour_scales(panels, scale="each")


def test_signed_maps_keep_their_colour_bar():
    with pytest.raises(ValueError, match="colour bar"):
        viz.show_feature_maps(torch.randn(2, 4, 4), colorbar=False)
    fig = viz.show_feature_maps(torch.rand(2, 4, 4), colorbar=False)  # ≥ 0: allowed
    assert colour_bars(fig) == []


def test_old_image_grid_spelling_still_works():
    fig = viz.image_grid([np.full((3, 3), 0.5), -np.ones((3, 3))], cmap="RdBu_r",
                         symmetric=True, colorbar=True, colorbar_label="weight")
    assert {im.get_clim() for im in images_of(fig)} == {(-1.0, 1.0)}
    assert colour_bars(fig)[0].get_ylabel() == "weight (one scale for all panels)"


def test_grids_are_never_wider_than_the_page():
    fig = viz.show_feature_maps(torch.rand(16, 8, 8) + torch.arange(16.0)[:, None, None],
                                ncols=16, panel_size=2.0)
    assert fig.get_figwidth() <= viz.MAX_FIGURE_WIDTH + 1e-9


def test_strongest_channels_follows_its_rule():
    maps = torch.zeros(1, 5, 4, 4)
    maps[0, 3] = -5.0  # strongest by |mean| although negative
    maps[0, 1] = 2.0
    maps[0, 4, 0, 0] = 8.0  # mean |a| 0.5, but the largest spread
    assert viz.strongest_channels(maps, 2) == [3, 1]
    assert viz.strongest_channels(maps, 1, by="std") == [4]
    assert viz.strongest_channels(np.zeros((3, 2, 2)), 3) == [0, 1, 2]  # ties: index
    with pytest.raises(ValueError, match="at most the 5 channels"):
        viz.strongest_channels(maps, 6)
    with pytest.raises(ValueError, match="by must be"):
        viz.strongest_channels(maps, 2, by="max")
    with pytest.raises(ValueError, match=r"\(C, H, W\)"):
        viz.strongest_channels(torch.zeros(4, 4), 1)


def test_rgb_kernels_and_images():
    fig = viz.show_rgb_kernels(torch.randn(4, 3, 3, 3), ncols=2)
    assert len(images_of(fig)) == 4
    rgb = viz.show_images(torch.rand(2, 3, 8, 8), titles=["a", "b"])
    assert images_of(rgb)[0].get_array().shape == (8, 8, 3)
    grey = viz.show_images([np.zeros((4, 4)), np.ones((4, 4))])
    assert {im.get_clim() for im in images_of(grey)} == {(0.0, 1.0)}  # one grey scale


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
    (lambda: viz.to_numpy_image(np.full((2, 2), np.nan)), ValueError, "NaN"),
    (lambda: viz.show_feature_maps(torch.zeros(2, 3, 3), panel_size=0), ValueError,
     "panel_size"),
])
def test_bad_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_show_attributions_scales_each_method_by_the_rule():
    images = torch.rand(2, 3, 8, 8)
    maps = {"signed": torch.randn(2, 8, 8), "positive": torch.rand(2, 8, 8) + 0.5}
    fig = viz.show_attributions(images, maps, row_titles=["a", "b"], title="t",
                                scale="shared")
    image_axes = [ax for ax in fig.axes if ax.get_label() != "<colorbar>"]
    assert len(image_axes) == 2 * 3
    assert len(colour_bars(fig)) == 2  # one colour bar per method
    signed = image_axes[1].images[0]  # drawn alone, no overlay by default
    assert signed.get_clim()[0] == -signed.get_clim()[1]  # symmetric scale
    assert signed.get_cmap().name == viz.DIVERGING
    assert image_axes[2].images[0].get_cmap().name == viz.SEQUENTIAL
    # magnitudes 10× apart: each map gets its own stated scale and colour bar
    uneven = {"signed": torch.stack([torch.full((8, 8), -1.0), torch.full((8, 8), 10.0)])}
    fig = viz.show_attributions(images, uneven)
    assert len(colour_bars(fig)) == 2
    assert [ax.get_title() for ax in fig.axes if ax.get_label() != "<colorbar>"][1] \
        == "signed\n±1"
    overlaid = viz.show_attributions(images, maps, overlay=True, scale="shared")
    assert len(overlaid.axes[1].images) == 2
    with pytest.raises(ValueError, match="shape"):
        viz.show_attributions(images, {"bad": torch.rand(2, 4, 4)})
    with pytest.raises(ValueError, match="row titles"):
        viz.show_attributions(images, maps, row_titles=["only one"])
    with pytest.raises(ValueError, match="alpha"):
        viz.show_attributions(images, maps, alpha=2.0)


def test_course_style_sets_the_settings_outside_ipython():
    with matplotlib.rc_context():
        viz.use_course_style()
        assert matplotlib.rcParams["figure.dpi"] == viz.FIGURE_DPI
        assert matplotlib.rcParams["savefig.dpi"] == 2 * viz.FIGURE_DPI


def test_notebook_kernels_get_retina_figures_at_their_logical_size(monkeypatch):
    """In a real kernel, importing utils makes PNGs with twice the pixels of their
    logical width/height (which JupyterLab, Colab and MyST-NB display)."""
    import base64
    import io

    import nbformat
    from course_env import REPO_ROOT, apply_notebook_env
    from nbclient import NotebookClient
    from PIL import Image

    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_code_cell("import utils.kernels"),
                nbformat.v4.new_code_cell(
                    "import matplotlib.pyplot as plt\n"
                    "fig, ax = plt.subplots(figsize=(4, 2))\nax.plot([0, 1]);")]
    for name, value in apply_notebook_env({}).items():
        monkeypatch.setenv(name, value)  # the kernel inherits the notebook environment
    NotebookClient(nb, timeout=120, kernel_name="python3", resources={
        "metadata": {"path": str(REPO_ROOT)}}).execute()
    output = nb.cells[1].outputs[-1]
    width = output.metadata["image/png"]["width"]
    height = output.metadata["image/png"]["height"]
    picture = Image.open(io.BytesIO(base64.b64decode(output.data["image/png"])))
    assert picture.size[0] in (2 * width, 2 * width + 1)
    assert picture.size[1] in (2 * height, 2 * height + 1)
    assert 300 < width <= 400  # 4 inches at 100 dpi, less the tight bounding box
