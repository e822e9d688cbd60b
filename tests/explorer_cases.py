"""The cases on which ``tests/test_explorer.py`` compares the in-browser explorer with
``F.conv2d``: random images and kernels of odd and even sizes, strides 1-3, paddings
0-2 and dilations 1-2 (zero padding), and a few with reflect padding.

    python tests/explorer_cases.py   # rewrite tests/data/explorer_cases.json

The file is committed; a test checks that it is exactly what ``make_cases`` returns.
"""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import numpy as np

CASES_FILE = Path(__file__).resolve().parent / "data" / "explorer_cases.json"


def out_size(n: int, k: int, s: int, p: int, d: int) -> int:
    return (n + 2 * p - d * (k - 1) - 1) // s + 1


def make_cases(seed: int = 0) -> list[dict]:
    """One case per (stride, padding, dilation) for zero padding, each with random
    image and kernel sizes that give at least one output pixel, plus reflect cases."""
    rng = np.random.default_rng(seed)
    cases = []
    for stride, padding, dilation, mode in itertools.chain(
            itertools.product((1, 2, 3), (0, 1, 2), (1, 2), ("zeros",)),
            [(1, 1, 1, "reflect"), (2, 2, 1, "reflect"), (1, 2, 2, "reflect"),
             (3, 1, 2, "reflect")]):
        for _ in range(3):
            while True:
                height, width = (int(v) for v in rng.integers(1, 13, size=2))
                k_h, k_w = (int(v) for v in rng.integers(1, 6, size=2))
                if mode == "reflect" and padding >= min(height, width):
                    continue
                if min(out_size(height, k_h, stride, padding, dilation),
                       out_size(width, k_w, stride, padding, dilation)) >= 1:
                    break
            image = np.round(rng.uniform(-2, 2, size=(height, width)), 4)
            kernel = np.round(rng.uniform(-2, 2, size=(k_h, k_w)), 4)
            cases.append({"image": image.tolist(), "kernel": kernel.tolist(),
                          "stride": stride, "padding": padding, "dilation": dilation,
                          "paddingMode": mode})
    return cases


if __name__ == "__main__":
    CASES_FILE.parent.mkdir(parents=True, exist_ok=True)
    CASES_FILE.write_text(json.dumps(make_cases(), indent=None) + "\n")
    print(f"wrote {len(make_cases())} cases to {CASES_FILE}")
