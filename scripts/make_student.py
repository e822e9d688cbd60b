"""Generate the student versions of the labs with nbgrader's own ``generate_assignment``.

    python scripts/make_student.py                        # every lab -> student/
    python scripts/make_student.py --output DIR labs/lab01_filters.ipynb
    python scripts/make_student.py --course-dir nbgrader_work  # keep nbgrader's files
    python scripts/make_student.py --points-table         # print the points per lab

The notebooks in ``labs/`` are the single source: solution cells hold the answer
between ``### BEGIN SOLUTION`` and ``### END SOLUTION``, test cells may hold hidden
tests between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS``. Each lab becomes
one nbgrader assignment named after its file (``lab01_filters``) in a course directory
(a temporary one unless ``--course-dir`` is given), laid out as nbgrader expects::

    source/lab01_filters/lab01_filters.ipynb      copied from labs/
    release/lab01_filters/lab01_filters.ipynb     the student version (generated)
    gradebook.db                                  cells, points and checksums

nbgrader replaces every solution region with ``raise NotImplementedError()``, removes
the hidden tests (they stay in the gradebook and come back at ``nbgrader autograde``),
clears all outputs and locks the test cells. The student versions are then copied to
``--output`` (default ``student/``, git-ignored). The configuration lives in
``nbgrader_config`` below, so a ``jupyter`` started in the repository root is not
affected. ``tests/test_labs.py`` runs this script, executes the student versions and
autogrades solutions and blank submissions; ``instructor_guide.md`` explains the rest
of the cycle (release, collect, autograde).
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
from course_env import REPO_ROOT
from traitlets.config import Config

LABS_DIR = REPO_ROOT / "labs"
DEFAULT_OUTPUT = REPO_ROOT / "student"
COURSE_ID = "cnn-kernels-and-feature-maps"
EXECUTE_TIMEOUT_S = 300  # per cell, when nbgrader autograde executes a submission


def all_labs() -> list[Path]:
    """Every lab notebook, in reading order."""
    return sorted(LABS_DIR.glob("*.ipynb"))


def assignment_id(lab: Path) -> str:
    """The nbgrader assignment name of a lab: its file name without ``.ipynb``."""
    return Path(lab).stem


def nbgrader_config(course_dir: Path) -> Config:
    """nbgrader settings for a course directory (no config file is read or written)."""
    course_dir = Path(course_dir).resolve()
    config = Config()
    config.CourseDirectory.root = str(course_dir)
    config.CourseDirectory.course_id = COURSE_ID
    config.CourseDirectory.db_url = f"sqlite:///{course_dir / 'gradebook.db'}"
    config.Execute.timeout = EXECUTE_TIMEOUT_S
    return config


def nbgrader_api(course_dir: Path):
    """An ``NbGraderAPI`` for ``course_dir`` (imported here: nbgrader is slow to load)."""
    from nbgrader.apps import NbGraderAPI

    # nbgrader runs the `alembic` command of its environment to create a gradebook;
    # find it even when the virtual environment is not activated (`make student`).
    bin_dir = str(Path(sys.executable).parent)
    if bin_dir not in os.environ.get("PATH", "").split(os.pathsep):
        os.environ["PATH"] = os.pathsep.join([bin_dir, os.environ.get("PATH", "")])
    api = NbGraderAPI(config=nbgrader_config(course_dir))
    api.log.setLevel(logging.WARNING)
    return api


def _run(step: str, result: dict) -> None:
    if not result.get("success"):
        details = result.get("error") or result.get("log") or "(no log)"
        raise RuntimeError(f"nbgrader {step} failed:\n{details}")


def prepare_course(course_dir: Path, labs: list[Path]):
    """Copy ``labs`` into ``course_dir/source`` and run ``generate_assignment`` on each.

    Returns the ``NbGraderAPI`` of the course directory; its gradebook then knows every
    lab's cells and points, ready for ``autograde``.
    """
    course_dir = Path(course_dir)
    api = nbgrader_api(course_dir)
    for lab in labs:
        lab = Path(lab)
        source = course_dir / "source" / assignment_id(lab)
        if source.exists():
            shutil.rmtree(source)
        source.mkdir(parents=True)
        shutil.copyfile(lab, source / lab.name)
        _run(f"generate_assignment {assignment_id(lab)}",
             api.generate_assignment(assignment_id(lab), force=True, create=True))
    return api


def release_path(course_dir: Path, lab: Path) -> Path:
    """Where ``generate_assignment`` wrote the student version of ``lab``."""
    return Path(course_dir) / "release" / assignment_id(lab) / Path(lab).name


def generate(output: Path = DEFAULT_OUTPUT, labs: list[Path] | None = None,
             course_dir: Path | None = None) -> list[Path]:
    """Write the student version of each lab (default: all) into ``output``.

    ``course_dir`` keeps nbgrader's course directory (source, release, gradebook);
    without it a temporary one is used and removed. Returns the written paths.
    """
    labs = [Path(lab).resolve() for lab in (labs or all_labs())]
    if not labs:
        raise FileNotFoundError(f"no lab notebooks found in {LABS_DIR}")
    output = Path(output)
    output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="nbgrader-course-") as scratch:
        course = Path(course_dir) if course_dir else Path(scratch)
        prepare_course(course, labs)
        written = []
        for lab in labs:
            target = output / lab.name
            shutil.copyfile(release_path(course, lab), target)
            written.append(target)
    return written


def lab_points(lab: Path) -> dict[str, float]:
    """Points of each autograded test cell of a lab, by grade_id, in notebook order."""
    nb = nbformat.read(lab, as_version=4)
    points = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade"):
            points[meta["grade_id"]] = float(meta.get("points", 0))
    return points


def points_table(labs: list[Path] | None = None) -> str:
    """The instructor guide's Markdown table: autograded tasks and points per lab."""
    rows = ["| lab | autograded tasks | points |", "| --- | ---: | ---: |"]
    for lab in labs or all_labs():
        points = lab_points(lab)
        rows.append(f"| `{Path(lab).name}` | {len(points)} | {sum(points.values()):g} |")
    return "\n".join(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("labs", nargs="*", type=Path,
                        help="lab notebooks (default: every labs/*.ipynb)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT,
                        help="folder for the student versions (default: student/)")
    parser.add_argument("--course-dir", type=Path, default=None,
                        help="keep nbgrader's course directory here (default: a "
                             "temporary one)")
    parser.add_argument("--points-table", action="store_true",
                        help="only print the points per lab as a Markdown table")
    args = parser.parse_args(argv)
    if args.points_table:
        print(points_table(args.labs or None))
        return
    for path in generate(args.output, args.labs or None, args.course_dir):
        try:
            shown = path.resolve().relative_to(Path.cwd())
        except ValueError:
            shown = path
        print(f"wrote {shown}")


if __name__ == "__main__":
    sys.exit(main())
