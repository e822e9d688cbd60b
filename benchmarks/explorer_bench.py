"""How fast does the in-browser convolution explorer update? Headless Chromium.

The explorer (``explorer.md``, ``_static/explorer/explorer.js``) recomputes and redraws
the feature map whenever the reader changes the image, the kernel or a setting. This
script opens the built page (``make book`` first) in headless Chromium, loads a random
512×512 image and a random 5×5 kernel into it, and times ``update()``: the
cross-correlation, painting the feature map and its colour bar, the size formula and
the window table of the selected pixel. It reports the median and the slowest of
``--repeats`` updates after a warm-up, for stride 1, zero padding 2 and dilation 1, and
with a Sobel preset (which adds the gradient magnitude, two more convolutions).

    python benchmarks/explorer_bench.py          # or: make bench

Target: under 100 ms per update on the 2-core reference machine. Chromium is found as
in the browser tests (``COURSE_CHROMIUM``, Debian's ``chromium``, …).
"""

from __future__ import annotations

import argparse
import functools
import http.server
import statistics
import sys
import threading
from pathlib import Path

# The browser helpers of the tests (tests/browser_site.py) and the repository paths
# they use (scripts/course_env.py); a benchmark is a script, not part of a package.
sys.path[:0] = [str(Path(__file__).resolve().parent.parent / folder)
                for folder in ("scripts", "tests")]

from browser_site import SITE, _QuietHandler, find_chromium  # noqa: E402

SIDE, KERNEL = 512, 5
TIMING_JS = """([side, kernelSize, repeats, preset]) => {
    const explorer = window.courseExplorer.explorers[0];
    let seed = 1;
    const random = () => {
        seed = (seed * 16807) % 2147483647;
        return seed / 2147483647;
    };
    const image = Array.from({length: side}, () => Array.from({length: side}, random));
    const kernel = Array.from(
        {length: kernelSize},
        () => Array.from({length: kernelSize}, () => random() - 0.5));
    explorer.loadArray(image);
    explorer.setKernel(kernel);
    explorer.state.padding = 2;
    if (preset) {
        explorer.state.preset = preset;
        explorer.applyPreset();
    }
    for (let i = 0; i < 3; i++) explorer.update();  // warm-up (JIT)
    const times = [];
    for (let i = 0; i < repeats; i++) times.push(explorer.update());
    return times;
}"""


def measure(repeats: int = 15) -> dict[str, list[float]]:
    """Update times in milliseconds: {"random 5×5 kernel": [...], "Sobel x": [...]}."""
    from playwright.sync_api import sync_playwright

    if not (SITE / "explorer.html").exists():
        raise SystemExit("build the website first: make book")
    chromium = find_chromium()
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    results = {}
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=chromium, headless=True)
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.goto(f"http://127.0.0.1:{server.server_address[1]}/explorer.html")
            page.wait_for_function("() => window.courseExplorer.explorers.length === 1")
            for label, preset in (("random 5×5 kernel", None),
                                  ("Sobel x (5×5)", "sobel_x")):
                results[label] = page.evaluate(TIMING_JS,
                                               [SIDE, KERNEL, repeats, preset])
            browser.close()
    finally:
        server.shutdown()
        server.server_close()
    return results


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=15)
    args = parser.parse_args(argv)
    print(f"explorer update, {SIDE}×{SIDE} image, {KERNEL}×{KERNEL} kernel, padding 2, "
          f"headless Chromium ({args.repeats} updates after a warm-up)")
    for label, times in measure(args.repeats).items():
        print(f"  {label:20} median {statistics.median(times):6.1f} ms, "
              f"slowest {max(times):6.1f} ms")


if __name__ == "__main__":
    main()
