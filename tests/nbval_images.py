"""pytest plugin: nbval compares pictures and animations too, with a stated tolerance.

nbval (0.11) executes every notebook and compares each cell's text outputs with the
committed ones, but skips ``image/png`` and ``image/jpeg``. This plugin gives every
notebook cell item a ``compare_outputs`` that, after nbval's own text comparison,

* decodes every committed and every new picture (``image/png``, ``image/jpeg``) and
  compares them with ``matplotlib.testing.compare.calculate_rms`` (root-mean-square
  difference of the pixel values, 0–255 scale, as matplotlib's own image tests do):
  a different number of pictures, a different size or an RMS difference above the
  tolerance fails the cell, naming the notebook, the cell, the picture and the RMS;
  the committed, new and difference images are written to ``test-artifacts/nbval-images``
  (or ``$COURSE_IMAGE_ARTIFACTS``);
* handles animations exported as HTML (``Animation.to_jshtml`` or
  ``utils.interactive.animation_html``, in ``text/html`` outputs): their random element
  ids are sanitised and their embedded frames taken out before nbval compares the HTML
  text, then the frame count must match and every frame is compared like a picture.

Cells tagged ``nbval-ignore-output`` (timing cells) are not compared at all, neither
text nor pictures (nbval never calls ``compare_outputs`` for them).

Tolerance: ``nbval_image_tolerance`` in ``[tool.pytest.ini_options]`` (default
``DEFAULT_TOLERANCE``), ``--nbval-image-tolerance`` on the command line, or, for one
cell, the cell metadata ``{"nbval": {"image_tolerance": 3.0}}``.

Loaded by the root ``conftest.py`` (``pytest_plugins``); a pytest run outside the
repository loads it with ``-p nbval_images`` and ``tests/`` on ``PYTHONPATH``.
"""

from __future__ import annotations

import base64
import binascii
import io
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest

DEFAULT_TOLERANCE = 1.0  # RMS of pixel values 0-255: float noise stays far below
IMAGE_MIMES = ("image/png", "image/jpeg")
# Where the committed, new and difference pictures of a failed comparison are written
# (git-ignored); COURSE_IMAGE_ARTIFACTS overrides it.
ARTIFACTS_DIR = Path(os.environ.get(
    "COURSE_IMAGE_ARTIFACTS",
    Path(__file__).resolve().parent.parent / "test-artifacts" / "nbval-images"))

# An animation exported by matplotlib's HTMLWriter (to_jshtml, animation_html).
_ANIMATION_ID = re.compile(r'id="_anim_img([A-Za-z0-9_]+)"')
_ANIMATION_FRAME = re.compile(
    r'frames\[(\d+)\] = "data:image/([a-z+]+);base64,([^"]*)"')
_ID_PREFIXES = r"_anim_img|_anim_slider|_anim_loop_select|_anim_radio\d_|anim"
_FRAME_ARRAY = re.compile(r"new Array\(\d+\)")
_ANIMATION_FRAME_LINE = re.compile(
    r'[ \t]*frames\[\d+\] = "data:image/[a-z+]+;base64,[^"]*"[ \t]*\n?')


@dataclass
class Animation:
    """The frames of one HTML animation, and its HTML with ids and frames taken out."""

    html: str
    frames: list[tuple[str, bytes]] = field(default_factory=list)  # (format, bytes)


def parse_animation(html: str) -> Animation | None:
    """Split a matplotlib HTML animation into comparable HTML text and frames.

    Returns ``None`` when ``html`` is not such an animation. The element id (a random
    uuid hex string in ``to_jshtml``, a hash in ``animation_html``) becomes ``ID``, and
    the embedded frames and their count are taken out (they are compared apart, with a
    clearer message), so the remaining text (player, interval, mode) can be compared
    exactly.
    """
    match = _ANIMATION_ID.search(html)
    if match is None or "frames[0]" not in html:
        return None
    frames = []
    for _number, fmt, data in _ANIMATION_FRAME.findall(html):
        payload = data.replace("\\\n", "").replace("\\n", "").replace("\n", "")
        try:
            frames.append((fmt, base64.b64decode(payload)))
        except binascii.Error:
            frames.append((fmt, b""))
    text = re.sub(rf"({_ID_PREFIXES}){re.escape(match.group(1))}", r"\1ID", html)
    text = _ANIMATION_FRAME_LINE.sub("", text)
    text = _FRAME_ARRAY.sub("new Array(FRAMES)", text)  # the count is checked apart
    return Animation(text, frames)


def decode_image(data: bytes | str) -> np.ndarray:
    """Decode a PNG/JPEG (bytes, or base64 text as stored in notebooks) into an int16
    array: RGB when the picture is opaque, RGBA otherwise (as matplotlib's tests do)."""
    from PIL import Image

    if isinstance(data, str):
        data = base64.b64decode(data)
    image = Image.open(io.BytesIO(data))
    image.load()
    if image.mode != "RGB":
        image = image.convert("RGBA")
        if image.getextrema()[3][0] == 255:
            image = image.convert("RGB")
    return np.asarray(image).astype(np.int16)


def image_difference(expected: bytes | str, actual: bytes | str) -> tuple[str, float]:
    """Compare two encoded pictures: ``("size", 0.0)`` when their sizes differ, else
    ``("rms", value)`` with matplotlib's RMS difference (pixel values 0-255)."""
    from matplotlib.testing.compare import calculate_rms

    expected_image, actual_image = decode_image(expected), decode_image(actual)
    if expected_image.shape[:2] != actual_image.shape[:2]:
        return "size", 0.0
    if expected_image.shape != actual_image.shape:  # RGB vs RGBA: compare as RGBA
        expected_image, actual_image = (_rgba(expected_image), _rgba(actual_image))
    return "rms", float(calculate_rms(expected_image, actual_image))


def _rgba(image: np.ndarray) -> np.ndarray:
    if image.shape[2] == 4:
        return image
    alpha = np.full(image.shape[:2] + (1,), 255, dtype=image.dtype)
    return np.concatenate([image, alpha], axis=2)


def _size(data: bytes | str) -> str:
    image = decode_image(data)
    return f"{image.shape[1]}×{image.shape[0]} px"


def _as_bytes(data: bytes | str) -> bytes:
    return base64.b64decode(data) if isinstance(data, str) else data


def _pictures(outputs) -> list[tuple[str, bytes | str]]:
    """Every picture of a cell's outputs, in order, as (mime type, data)."""
    found = []
    for output in outputs:
        for mime in IMAGE_MIMES:
            data = output.get("data", {}).get(mime)
            if data is not None:
                found.append((mime, data))
    return found


def split_animations(outputs) -> tuple[list, list[Animation]]:
    """Copies of ``outputs`` whose animation HTML is replaced by its comparable text,
    and the animations found (in order)."""
    import nbformat

    animations, result = [], []
    for output in outputs:
        html = output.get("data", {}).get("text/html") if hasattr(output, "get") else None
        if isinstance(html, list):
            html = "".join(html)
        animation = parse_animation(html) if isinstance(html, str) else None
        if animation is not None:
            output = nbformat.from_dict(dict(output))
            output["data"] = dict(output["data"])
            output["data"]["text/html"] = animation.html
            animations.append(animation)
        result.append(output)
    return result, animations


class CellImageComparison:
    """Compares the pictures and animation frames of one notebook cell."""

    def __init__(self, where: str, tolerance: float, artifacts: Path | None = None):
        self.where = where
        self.tolerance = tolerance
        self.artifacts = artifacts
        self.problems: list[str] = []

    def pictures(self, reference, test) -> None:
        expected, actual = _pictures(reference), _pictures(test)
        if len(expected) != len(actual):
            self.problems.append(
                f"{self.where}: {len(actual)} picture(s) produced, "
                f"{len(expected)} committed")
            return
        pairs = zip(expected, actual, strict=True)
        for number, ((mime, old), (new_mime, new)) in enumerate(pairs, 1):
            label = f"picture {number} of {len(expected)} ({mime})"
            if mime != new_mime:
                self.problems.append(f"{self.where}: {label} is now {new_mime}")
                continue
            self._compare(label, f"picture{number}", old, new)

    def animations(self, reference: list[Animation], test: list[Animation]) -> None:
        if len(reference) != len(test):
            self.problems.append(
                f"{self.where}: {len(test)} HTML animation(s) produced, "
                f"{len(reference)} committed")
            return
        for number, (old, new) in enumerate(zip(reference, test, strict=True), 1):
            label = f"HTML animation {number}"
            if len(old.frames) != len(new.frames):
                self.problems.append(
                    f"{self.where}: {label} has {len(new.frames)} frames, "
                    f"{len(old.frames)} committed")
                continue
            for index, ((_, old_frame), (_, new_frame)) in enumerate(
                    zip(old.frames, new.frames, strict=True)):
                self._compare(f"{label}, frame {index}",
                              f"animation{number}-frame{index}", old_frame, new_frame)

    def _compare(self, label: str, stem: str, old, new) -> None:
        try:
            kind, rms = image_difference(old, new)
        except Exception as error:  # undecodable data is a failure, not a crash
            self.problems.append(f"{self.where}: {label} cannot be decoded ({error})")
            return
        if kind == "size":
            saved = self._save(stem, old, new, diff=False)
            self.problems.append(
                f"{self.where}: {label} changed size: {_size(new)}, "
                f"{_size(old)} committed{saved}")
        elif rms > self.tolerance:
            saved = self._save(stem, old, new, diff=True)
            self.problems.append(
                f"{self.where}: {label} differs from the committed picture: "
                f"RMS difference {rms:.3f} > tolerance {self.tolerance} "
                f"(pixel values 0-255){saved}")

    def _save(self, stem: str, old, new, diff: bool) -> str:
        if self.artifacts is None:
            return ""
        try:
            from matplotlib.testing.compare import save_diff_image

            self.artifacts.mkdir(parents=True, exist_ok=True)
            name = re.sub(r"[^A-Za-z0-9_.-]+", "_", self.where) + "-" + stem
            expected = self.artifacts / f"{name}-expected.png"
            actual = self.artifacts / f"{name}-actual.png"
            expected.write_bytes(_as_bytes(old))
            actual.write_bytes(_as_bytes(new))
            if diff:
                save_diff_image(str(expected), str(actual),
                                str(self.artifacts / f"{name}-failed-diff.png"))
            return f"; see {self.artifacts / name}-*.png"
        except Exception:  # the failure message matters more than the files
            return ""


def _cell_tolerance(cell, default: float) -> float:
    value = cell.get("metadata", {}).get("nbval", {}).get("image_tolerance", default)
    return float(value)


def _make_cell_class(base):
    class ImageCheckingCell(base):
        """nbval's cell item, comparing pictures and animations too."""

        def compare_outputs(self, test, ref, skip_compare=None):
            test, test_animations = split_animations(test)
            ref, ref_animations = split_animations(ref)
            if not super().compare_outputs(test, ref, skip_compare):
                return False
            config = self.config
            default = config.getoption("nbval_image_tolerance", None)
            if default is None:
                default = float(config.getini("nbval_image_tolerance"))
            where = f"{self.parent.fspath.relto(config.rootdir) or self.parent.fspath}"
            comparison = CellImageComparison(
                f"{where}::Cell {self.cell_num}",
                _cell_tolerance(self.cell, default), ARTIFACTS_DIR)
            comparison.pictures(ref, test)
            comparison.animations(ref_animations, test_animations)
            if comparison.problems:
                self.comparison_traceback = [
                    self.colors.FAIL + problem + self.colors.ENDC
                    for problem in comparison.problems]
                return False
            return True

    ImageCheckingCell.__name__ = ImageCheckingCell.__qualname__ = "ImageCheckingCell"
    return ImageCheckingCell


_CELL_CLASSES: dict[type, type] = {}


def pytest_addoption(parser):
    parser.addini("nbval_image_tolerance",
                  "largest RMS difference (pixel values 0-255) between a committed and "
                  "a re-computed notebook picture", default=str(DEFAULT_TOLERANCE))
    group = parser.getgroup("nbval")
    group.addoption("--nbval-image-tolerance", type=float, default=None,
                    help="override nbval_image_tolerance (RMS, pixel values 0-255)")


def _execute_like_jupyter(kernel_class) -> None:
    """Make nbval execute cells with ``store_history=True``, as Jupyter does.

    nbval 0.11 sends ``store_history=False``; IPython then cannot see the cell in its
    history and ignores a trailing ``;``, so ``ax.set_title("x");`` would print a repr
    under nbval that Jupyter (and the committed outputs) suppress.
    """
    if getattr(kernel_class.execute_cell_input, "_stores_history", False):
        return

    def execute_cell_input(self, cell_input, allow_stdin=None):
        return self.kc.execute(cell_input, store_history=True, allow_stdin=allow_stdin,
                               stop_on_error=False)

    execute_cell_input._stores_history = True
    kernel_class.execute_cell_input = execute_cell_input


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config):
    if config.getoption("nbval", False) or config.getoption("nbval_lax", False):
        from course_env import apply_notebook_env
        from nbval.kernel import RunningKernel

        apply_notebook_env(testing=True)
        _execute_like_jupyter(RunningKernel)


def pytest_itemcollected(item):
    """Give every nbval cell item the picture-comparing ``compare_outputs``."""
    try:
        from nbval.plugin import IPyNbCell
    except ImportError:  # nbval not installed: nothing to extend
        return
    if isinstance(item, IPyNbCell) and not hasattr(type(item), "_compares_images"):
        base = type(item)
        if base not in _CELL_CLASSES:
            _CELL_CLASSES[base] = _make_cell_class(base)
            _CELL_CLASSES[base]._compares_images = True
        item.__class__ = _CELL_CLASSES[base]
