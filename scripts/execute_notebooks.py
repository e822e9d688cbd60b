"""Re-execute notebooks in place, in the same environment the tests use.

    python scripts/execute_notebooks.py                 # every chapter and lab
    python scripts/execute_notebooks.py chapters/01_*.ipynb

Each notebook runs top to bottom in a fresh kernel with its own folder as working
directory; its run time on this machine is recorded in ``execution_times.json``.
Run ``make execute`` after changing a notebook or ``utils``, and commit the result.
"""

from __future__ import annotations

import argparse
import fcntl
import json
import platform
import sys
import time
from pathlib import Path

import nbformat
from nbclient import NotebookClient

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))

from notebook_env import apply_notebook_env  # noqa: E402

TIMES_FILE = REPO_ROOT / "execution_times.json"


def all_notebooks() -> list[Path]:
    return sorted(REPO_ROOT.glob("chapters/*.ipynb")) + sorted(REPO_ROOT.glob("labs/*.ipynb"))


def execute(path: Path, timeout: int = 600) -> float:
    """Execute one notebook in place and return its wall time in seconds."""
    nb = nbformat.read(path, as_version=4)
    client = NotebookClient(
        nb, timeout=timeout, kernel_name="python3", record_timing=False,
        resources={"metadata": {"path": str(path.parent)}},
    )
    start = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - start
    nb.metadata.pop("widgets", None)
    nbformat.write(nb, path)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("notebooks", nargs="*", type=Path)
    args = parser.parse_args()
    apply_notebook_env()
    notebooks = [p.resolve() for p in args.notebooks] or all_notebooks()
    for path in notebooks:
        seconds = execute(path)
        key = path.relative_to(REPO_ROOT).as_posix()
        record_time(key, seconds)
        print(f"{seconds:7.1f} s  {key}", flush=True)


def record_time(key: str, seconds: float) -> None:
    """Store one notebook's run time in ``execution_times.json`` (file-locked)."""
    with open(TIMES_FILE.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        times = json.loads(TIMES_FILE.read_text()) if TIMES_FILE.exists() else {}
        records = times.setdefault("notebooks", {})
        records[key] = round(seconds, 1)
        times["machine"] = f"{platform.machine()}, 2 threads (COURSE_NUM_THREADS=2)"
        times["notebooks"] = dict(sorted(records.items()))
        TIMES_FILE.write_text(json.dumps(times, indent=2) + "\n")


if __name__ == "__main__":
    main()
