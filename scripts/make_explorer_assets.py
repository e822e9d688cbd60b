"""Write the explorer's sample images into ``_static/explorer/``.

    python scripts/make_explorer_assets.py          # rewrite the PNGs
    python scripts/make_explorer_assets.py --check  # exit 1 if they are out of date

The convolution explorer (``explorer.md``) offers the images chapter 2 filters: the
first MNIST test digit (28×28 grey) and ``skimage.data.chelsea()`` cropped and resized
to 128×128 RGB by ``utils.data.sample_image``. The synthetic rectangle is drawn by the
explorer itself. The PNGs are committed, so the website needs no data to build;
``tests/test_explorer_assets.py`` checks that they are exactly what this script writes.
"""

from __future__ import annotations

import argparse
import io
import sys

import numpy as np
from course_env import REPO_ROOT
from PIL import Image

from utils import data

ASSETS = REPO_ROOT / "_static" / "explorer"


def sample_images() -> dict[str, np.ndarray]:
    """The explorer's images as uint8 arrays: (28, 28) grey and (128, 128, 3) RGB."""
    digit = data.load_mnist(train=False).data[0].numpy()
    cat = data.sample_image("chelsea", size=128).permute(1, 2, 0).numpy()
    return {"digit": digit, "cat": np.round(cat * 255).astype(np.uint8)}


def png_bytes(pixels: np.ndarray) -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(pixels).save(buffer, format="PNG", optimize=True)
    return buffer.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare the committed PNGs' pixels, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for name, pixels in sample_images().items():
        path = ASSETS / f"{name}.png"
        if args.check:
            if not path.exists() or not np.array_equal(np.asarray(Image.open(path)),
                                                       pixels):
                stale.append(path.name)
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(png_bytes(pixels))
        print(f"wrote {path.relative_to(REPO_ROOT)} {pixels.shape}")
    if stale:
        print("out of date:", ", ".join(stale), "(run scripts/make_explorer_assets.py)")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
