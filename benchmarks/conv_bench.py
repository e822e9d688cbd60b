"""Time the course's convolutions against ``F.conv2d`` and the machine's matmul rate.

Run ``python benchmarks/conv_bench.py`` (or ``make bench``). Shapes:

- (a) one 224×224 image, 64 → 64 channels, 3×3, padding 1 (an early VGG layer);
- (b) a batch of 128 small 14×14 maps, 16 → 32 channels, 3×3, padding 1;
- (c) a small input, 1×8×32×32 → 16 channels, for the naive loops only;
- (d) a large 25×25 kernel, 1×8×128×128 → 8 channels, padding 12, where FFT
  convolution can win.

FFT convolution is timed on (b) and (d), not on (a): there its 64×64 kernel spectra
alone, each as large as the padded image, would take 859 MB.

Each implementation is warmed up, then all are timed in interleaved rounds with
``time.perf_counter`` and the best call is kept: other processes on a shared machine
only ever make a call slower, so the minimum is the most repeatable estimate and the
ratio to ``F.conv2d`` (timed in the same rounds) is fair. On a machine whose load
changes during the run, ``median_times`` (the median over rounds of each round's best
call) is steadier still; chapter 4 uses it. GFLOP/s counts 2 FLOPs per
multiply-accumulate of the direct convolution for every implementation, so Winograd,
which does fewer multiplies, can exceed the matmul rate. Targets: im2col at most
1.5× and Winograd at most 3× the time of ``F.conv2d``. ``run_benchmarks`` returns
the rows as dicts, for a notebook (chapter 4) to plot.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from utils.arithmetic import conv_macs, output_size
from utils.conv import conv2d_fft, conv2d_im2col, conv2d_naive, conv2d_winograd

SHAPES = {
    "a": {"input": (1, 64, 224, 224), "weight": (64, 64, 3, 3), "padding": 1,
          "implementations": ("F.conv2d", "conv2d_im2col", "conv2d_winograd")},
    "b": {"input": (128, 16, 14, 14), "weight": (32, 16, 3, 3), "padding": 1,
          "implementations": ("F.conv2d", "conv2d_im2col", "conv2d_winograd",
                              "conv2d_fft")},
    "c": {"input": (1, 8, 32, 32), "weight": (16, 8, 3, 3), "padding": 1,
          "implementations": ("F.conv2d", "conv2d_naive")},
    "d": {"input": (1, 8, 128, 128), "weight": (8, 8, 25, 25), "padding": 12,
          "implementations": ("F.conv2d", "conv2d_fft")},
}
TARGETS = {"conv2d_im2col": 1.5, "conv2d_winograd": 3.0}
IMPLEMENTATIONS: dict[str, Callable[..., torch.Tensor]] = {
    "F.conv2d": F.conv2d,
    "conv2d_naive": conv2d_naive,
    "conv2d_im2col": conv2d_im2col,
    "conv2d_winograd": conv2d_winograd,
    "conv2d_fft": conv2d_fft,
}


def best_times(functions: dict[str, Callable[[], object]], rounds: int,
               calls: int) -> dict[str, float]:
    """Best seconds per call of each function, timed in interleaved rounds.

    After two warm-up calls, every round calls each function ``calls`` times; the
    fastest single call over all rounds is returned. Each function gets the same
    number of samples, so a fast one is not favoured by having more chances.
    """
    for function in functions.values():
        function()
        function()
    best = dict.fromkeys(functions, float("inf"))
    for _ in range(rounds):
        for name, function in functions.items():
            for _ in range(calls):
                start = time.perf_counter()
                function()
                best[name] = min(best[name], time.perf_counter() - start)
    return best


def median_times(functions: dict[str, Callable[[], object]], rounds: int,
                 calls: int) -> dict[str, float]:
    """Median over rounds of each function's best call in that round (seconds).

    Same warm-up and interleaving as ``best_times``; each round keeps the fastest of
    its ``calls`` calls of every function, and the median of those ``rounds`` values
    is returned. A burst of load from other programs then moves a ratio of two
    functions timed in the same rounds much less than a single minimum can.
    """
    for function in functions.values():
        function()
        function()
    per_round: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(rounds):
        for name, function in functions.items():
            best = float("inf")
            for _ in range(calls):
                start = time.perf_counter()
                function()
                best = min(best, time.perf_counter() - start)
            per_round[name].append(best)
    return {name: statistics.median(values) for name, values in per_round.items()}


def matmul_gflops(size: int = 2048, rounds: int = 5) -> float:
    """The machine's float32 matrix-multiply rate in GFLOP/s (2·n³ FLOPs per call)."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    seconds = best_times({"mm": lambda: torch.mm(a, b)}, rounds, 3)["mm"]
    return 2 * size**3 / seconds / 1e9


def _shape_label(key: str) -> str:
    spec = SHAPES[key]
    return (f"({key}) {'×'.join(map(str, spec['input']))} * "
            f"{'×'.join(map(str, spec['weight']))}, p={spec['padding']}")


def run_benchmarks(threads: int = 2, rounds: int = 15, calls: int = 3,
                   shapes: tuple[str, ...] = tuple(SHAPES),
                   seed: int = 0, median: bool = False) -> list[dict]:
    """Time every implementation on every shape; one dict per (shape, implementation).

    Keys: shape, implementation, ms, gflops, ratio (to F.conv2d on the same shape),
    target (the allowed ratio or None), met (bool or None), max_abs_error (against
    F.conv2d), threads and matmul_gflops (the machine's rate, for a roofline). The
    times are each implementation's best call (``best_times``), or with
    ``median=True`` the median over rounds of each round's best (``median_times``).
    The thread count is restored afterwards.
    """
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        return _run(threads, rounds, calls, shapes, seed, median)
    finally:
        torch.set_num_threads(previous_threads)


def _run(threads: int, rounds: int, calls_per_round: int, shapes: tuple[str, ...],
         seed: int, median: bool) -> list[dict]:
    generator = torch.Generator().manual_seed(seed)
    peak = matmul_gflops()
    cases = {}
    for key in shapes:
        spec = SHAPES[key]
        x = torch.randn(spec["input"], generator=generator)
        w = torch.randn(spec["weight"], generator=generator)
        calls = {name: (lambda f=IMPLEMENTATIONS[name], x=x, w=w, p=spec["padding"]:
                        f(x, w, padding=p))
                 for name in spec["implementations"]}
        cases[key] = (x, w, calls)
    for _, _, calls in cases.values():      # warm every path before timing any
        for call in calls.values():
            call()
    results = []
    for key, (x, w, calls) in cases.items():
        spec = SHAPES[key]
        reference = F.conv2d(x, w, padding=spec["padding"])
        out_h = output_size(x.shape[2], w.shape[2], padding=spec["padding"])
        out_w = output_size(x.shape[3], w.shape[3], padding=spec["padding"])
        macs = x.shape[0] * conv_macs(w.shape[1], w.shape[0], w.shape[2], out_h, out_w)
        timer = median_times if median else best_times
        times = timer(calls, rounds if key != "c" else 2, calls_per_round)
        for name, seconds in times.items():
            target = TARGETS.get(name) if key in ("a", "b") else None
            ratio = seconds / times["F.conv2d"]
            error = (calls[name]() - reference).abs().max().item()
            results.append({
                "shape": _shape_label(key), "implementation": name,
                "ms": seconds * 1e3, "gflops": 2 * macs / seconds / 1e9,
                "ratio": ratio, "target": target,
                "met": None if target is None else ratio <= target,
                "max_abs_error": error, "threads": threads, "matmul_gflops": peak,
            })
    return results


def format_table(results: list[dict], targets: bool = True) -> str:
    """The results as a fixed-width text table; ``targets=False`` leaves out the
    column that says whether each target was met."""
    lines = [f"threads: {results[0]['threads']}, float32 matmul 2048×2048: "
             f"{results[0]['matmul_gflops']:.1f} GFLOP/s",
             f"{'shape':40s} {'implementation':16s} {'time (ms)':>10s} "
             f"{'GFLOP/s':>8s} {'% peak':>6s} {'ratio':>7s}  "
             + (f"{'target':14s} " if targets else "") + f"{'max |err|':>9s}"]
    previous = None
    for row in results:
        shape = row["shape"] if row["shape"] != previous else ""
        previous = row["shape"]
        target = ("" if row["target"] is None else
                  f"≤{row['target']}× {'met' if row['met'] else 'MISSED'}")
        peak = 100 * row["gflops"] / row["matmul_gflops"]
        lines.append(f"{shape:40s} {row['implementation']:16s} {row['ms']:10.3f} "
                     f"{row['gflops']:8.1f} {peak:6.0f} {row['ratio']:7.2f}  "
                     + (f"{target:14s} " if targets else "")
                     + f"{row['max_abs_error']:9.1e}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2,
                        help="torch.set_num_threads (default 2, the reference CPU)")
    parser.add_argument("--rounds", type=int, default=15,
                        help="interleaved timing rounds (default 15)")
    parser.add_argument("--calls", type=int, default=3,
                        help="calls of each implementation per round (default 3)")
    parser.add_argument("--shapes", default="".join(SHAPES),
                        help=f"which shapes to run, e.g. 'ab' (default "
                             f"'{''.join(SHAPES)}')")
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--check", action="store_true",
                        help="exit with status 1 when a target is missed")
    args = parser.parse_args(argv)
    if min(args.threads, args.rounds, args.calls) < 1 or not set(args.shapes) <= set(
            SHAPES):
        parser.error(f"--threads, --rounds and --calls must be positive, --shapes "
                     f"letters from '{''.join(SHAPES)}'")
    results = run_benchmarks(args.threads, args.rounds, args.calls,
                             shapes=tuple(args.shapes))
    print(format_table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n",
                             encoding="utf-8")
    missed = [row for row in results if row["met"] is False]
    return 1 if args.check and missed else 0


if __name__ == "__main__":
    sys.exit(main())
