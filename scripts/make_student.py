"""Generate the student versions of the labs with nbgrader's own ``generate_assignment``.

    python scripts/make_student.py                        # every lab -> student/
    python scripts/make_student.py --output DIR labs/lab01_filters.ipynb
    python scripts/make_student.py --course-dir ~/cnn-course-2027  # a course for the term
    python scripts/make_student.py --points-table         # print the points per lab

The notebooks in ``labs/`` are the single source: solution cells hold the answer
between ``### BEGIN SOLUTION`` and ``### END SOLUTION`` (reflection prompts hold a
model answer the same way, in a 0-point manually graded Markdown cell), test cells may
hold hidden tests between ``### BEGIN HIDDEN TESTS`` and ``### END HIDDEN TESTS``. Each
lab becomes one nbgrader assignment named after its file (``lab01_filters``) in a
course directory (a temporary one unless ``--course-dir`` is given), laid out as
nbgrader expects::

    nbgrader_config.py                            the course's settings (written here)
    source/lab01_filters/lab01_filters.ipynb      copied from labs/
    release/lab01_filters/lab01_filters.ipynb     the student version (generated)
    gradebook.db                                  cells, points and checksums

nbgrader replaces every solution region with ``raise NotImplementedError()`` (or
``YOUR ANSWER HERE`` in Markdown), removes the hidden tests (they stay in the gradebook
and come back at ``nbgrader autograde``), clears all outputs and locks the test cells.
The student versions are then copied to ``--output`` (default ``student/``, committed:
the website and its launch buttons show them). ``nbgrader_config.py`` holds every
setting the instructor guide relies on, so nbgrader's command line and the formgrader
work in the course directory without flags; ``nbgrader_api`` reads the same file.
``tests/test_labs.py`` runs this script, checks that the committed student versions are
what it generates, and grades solution, blank, partial, cheating, warning and
delegating submissions; ``instructor_guide.md`` explains the term's cycle.
"""

from __future__ import annotations

import argparse
import copy
import csv
import logging
import os
import shutil
import sys
import tempfile
from pathlib import Path

import nbformat
from course_env import REPO_ROOT
from traitlets.config import Config
from traitlets.config.loader import PyFileConfigLoader

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


DEFAULT_EXCHANGE = "/srv/nbgrader/exchange"  # nbgrader's default; JupyterHub: see guide
CONFIG_NAME = "nbgrader_config.py"
CONFIG_TEMPLATE = '''\
# nbgrader settings of this course, written by scripts/make_student.py --course-dir.
# nbgrader reads this file when it runs in this folder (command line, formgrader).
# Edit it freely; make_student.py rewrites it only when it is missing or with --exchange.
import sys

sys.path.insert(0, {scripts!r})  # the plugins below live in scripts/make_student.py

c = get_config()  # noqa: F821 (defined by nbgrader when it reads this file)

c.CourseDirectory.root = {root!r}
c.CourseDirectory.course_id = {course_id!r}
c.CourseDirectory.db_url = {db_url!r}

# Where release_assignment puts the student versions and submit/collect meet
# (JupyterHub: a folder every user can read, see the instructor guide).
c.Exchange.root = {exchange!r}

# Each cell of a submission may run this many seconds before it counts as failed.
c.Execute.timeout = {timeout}

# A submitted folder whose name is not in the gradebook is an error (a typo would
# otherwise create a new student); import students first: nbgrader db student import.
c.Autograde.create_student = False

# Late submissions: "none" records the lateness only, "zero" gives 0 points after the
# due date (set per lab with nbgrader db assignment add LAB --duedate=...).
c.LateSubmissionPlugin.penalty_method = "none"

# Hidden tests make every test cell differ from the student's copy; this keeps the
# "checksum has changed" warning for cells a student really edited.
from make_student import QuietOverwriteCells  # noqa: E402
from nbgrader.preprocessors import (  # noqa: E402
    CheckCellMetadata, ClearOutput, DeduplicateIds, OverwriteKernelspec)

c.Autograde.sanitize_preprocessors = [
    ClearOutput, DeduplicateIds, OverwriteKernelspec, QuietOverwriteCells,
    CheckCellMetadata]

# Feedback pages: every figure keeps its alt text (the lab notebooks store it in the
# cell metadata that the website reads; nbconvert reads it from the output).
from make_student import AltTextFromCellMetadata  # noqa: E402

c.HTMLExporter.preprocessors = [AltTextFromCellMetadata]

# nbgrader export: one row per student, one column per lab that has submissions
# (unreleased labs are left out, not reported as 0), ready for an LMS gradebook.
# nbgrader's own long format: nbgrader export --exporter=nbgrader.plugins.CsvExportPlugin
c.ExportApp.plugin_class = "make_student.LmsGradesExport"

# nbgrader zip_collect: one folder per student, named by the student's id, holding
# the lab notebook ("Copy of lab01_filters.ipynb" or "lab01_filters (1).ipynb" from
# Colab or a browser are accepted too).
c.FileNameCollectorPlugin.named_regexp = (
    r".*/(?P<student_id>[^/]+)/(?:Copy of )?(?P<file_id>lab\\d\\d_[a-z0-9_]+?)"
    r"(?: ?\\(\\d+\\))?\\.ipynb$")
'''


def config_text(course_dir: Path, exchange: str = DEFAULT_EXCHANGE) -> str:
    """The text of a course directory's ``nbgrader_config.py``."""
    course_dir = Path(course_dir).resolve()
    return CONFIG_TEMPLATE.format(
        scripts=str(Path(__file__).resolve().parent), root=str(course_dir),
        course_id=COURSE_ID, db_url=f"sqlite:///{course_dir / 'gradebook.db'}",
        exchange=str(exchange), timeout=EXECUTE_TIMEOUT_S)


def write_config(course_dir: Path, exchange: str = DEFAULT_EXCHANGE,
                 overwrite: bool = False) -> Path:
    """Write ``course_dir/nbgrader_config.py`` unless it exists (or ``overwrite``)."""
    path = Path(course_dir) / CONFIG_NAME
    if overwrite or not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(config_text(course_dir, exchange))
    return path


def nbgrader_config(course_dir: Path) -> Config:
    """The settings of ``course_dir/nbgrader_config.py`` (written first if missing)."""
    path = write_config(course_dir)
    return PyFileConfigLoader(path.name, path=str(path.parent)).load_config()


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


# --------------------------------------------------------------------------------------
# nbgrader plugins named in nbgrader_config.py
# --------------------------------------------------------------------------------------

def _quiet_overwrite_cells():
    from nbgrader.api import MissingEntry
    from nbgrader.preprocessors import ClearHiddenTests, OverwriteCells

    class QuietOverwriteCells(OverwriteCells):
        """nbgrader's ``OverwriteCells`` without the false "checksum has changed".

        A test cell with hidden tests never matches the checksum of its source (the
        student's copy lacks the hidden block), so nbgrader warns for every such cell
        of every submission. When the submitted cell is exactly the released one, put
        the source back first; an edited cell still gets the warning (and is restored).
        """

        def preprocess_cell(self, cell, resources, cell_index):
            grade_id = cell.metadata.get("nbgrader", {}).get("grade_id")
            if grade_id is not None and cell.metadata.nbgrader.get("locked"):
                try:
                    source = self.gradebook.find_source_cell(
                        grade_id, self.notebook_id, self.assignment_id)
                except MissingEntry:
                    source = None
                if source is not None and source.locked:
                    released = copy.deepcopy(cell)
                    released.source = source.source
                    ClearHiddenTests()._remove_hidden_test_region(released)
                    if cell.source == released.source:
                        cell.source = source.source
            return super().preprocess_cell(cell, resources, cell_index)

    return QuietOverwriteCells


def _lms_grades_export():
    from nbgrader.api import MissingEntry
    from nbgrader.plugins import ExportPlugin

    class LmsGradesExport(ExportPlugin):
        """``nbgrader export`` for an LMS: one row per student, one column per lab.

        Only labs with at least one submission (the released ones) get a column, so an
        unreleased lab does not look like a 0; a student without a submission of a
        released lab gets 0. ``--assignment`` and ``--student`` select as usual; the
        file is ``grades.csv`` unless ``--to`` names another.
        """

        def export(self, gradebook) -> None:
            wanted = {str(name) for name in self.assignment}
            labs = [assignment for assignment in gradebook.assignments
                    if (assignment.name in wanted if wanted
                        else assignment.submissions)]
            students = [student for student in gradebook.students
                        if not self.student or student.id in map(str, self.student)]
            with open(self.to or "grades.csv", "w", newline="") as handle:
                writer = csv.writer(handle)
                writer.writerow(["student_id", "last_name", "first_name", "email"]
                                + [f"{lab.name} ({lab.max_score:g})" for lab in labs])
                for student in students:
                    row = [student.id, student.last_name or "", student.first_name or "",
                           student.email or ""]
                    for lab in labs:
                        try:
                            score = gradebook.find_submission(lab.name, student.id).score
                        except MissingEntry:
                            score = 0.0
                        row.append(f"{score:g}")
                    writer.writerow(row)
            self.log.info("Exported %d students x %d labs to %s", len(students),
                          len(labs), self.to or "grades.csv")

    return LmsGradesExport


def _alt_text_from_cell_metadata():
    from nbconvert.preprocessors import Preprocessor

    class AltTextFromCellMetadata(Preprocessor):
        """Copy a figure cell's alt text (``metadata.mystnb.image.alt``, which the
        website uses) into its image outputs' metadata, where nbconvert's HTML
        templates look for it, so feedback pages describe every figure too."""

        def preprocess_cell(self, cell, resources, cell_index):
            alt = cell.metadata.get("mystnb", {}).get("image", {}).get("alt")
            if alt and cell.cell_type == "code":
                for output in cell.get("outputs", []):
                    for mime in ("image/png", "image/jpeg"):
                        if mime in output.get("data", {}):
                            output.setdefault("metadata", {}).setdefault(mime, {})
                            output.metadata[mime].setdefault("alt", alt)
            return cell, resources

    return AltTextFromCellMetadata


def __getattr__(name: str):
    # The plugin classes import nbgrader, which is slow: build them on first use.
    factories = {"QuietOverwriteCells": _quiet_overwrite_cells,
                 "LmsGradesExport": _lms_grades_export,
                 "AltTextFromCellMetadata": _alt_text_from_cell_metadata}
    if name in factories:
        value = factories[name]()
        globals()[name] = value
        return value
    raise AttributeError(name)


def _run(step: str, result: dict) -> None:
    if not result.get("success"):
        details = result.get("error") or result.get("log") or "(no log)"
        raise RuntimeError(f"nbgrader {step} failed:\n{details}")


def prepare_course(course_dir: Path, labs: list[Path], exchange: str | None = None):
    """Copy ``labs`` into ``course_dir/source`` and run ``generate_assignment`` on each.

    Writes ``course_dir/nbgrader_config.py`` first (``exchange`` given: rewritten with
    that exchange folder). Returns the ``NbGraderAPI`` of the course directory; its
    gradebook then knows every lab's cells and points, ready for ``autograde``.
    """
    course_dir = Path(course_dir)
    if exchange is not None:
        write_config(course_dir, exchange, overwrite=True)
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


def generate(output: Path | None = DEFAULT_OUTPUT, labs: list[Path] | None = None,
             course_dir: Path | None = None, exchange: str | None = None) -> list[Path]:
    """Write the student version of each lab (default: all) into ``output``.

    ``course_dir`` keeps nbgrader's course directory (configuration, source, release,
    gradebook); without it a temporary one is used and removed. ``output=None`` (only
    with ``course_dir``) copies nothing: the student versions stay in ``release/``.
    Returns the written paths.
    """
    labs = [Path(lab).resolve() for lab in (labs or all_labs())]
    if not labs:
        raise FileNotFoundError(f"no lab notebooks found in {LABS_DIR}")
    with tempfile.TemporaryDirectory(prefix="nbgrader-course-") as scratch:
        course = Path(course_dir) if course_dir else Path(scratch)
        prepare_course(course, labs, exchange)
        written = []
        if output is None:  # a course directory only: its release/ holds them
            return [release_path(course, lab) for lab in labs]
        output = Path(output)
        output.mkdir(parents=True, exist_ok=True)
        for lab in labs:
            target = output / lab.name
            shutil.copyfile(release_path(course, lab), target)
            written.append(target)
    return written


def lab_points(lab: Path) -> dict[str, float]:
    """Points of each autograded test cell of a lab, by grade_id, in notebook order
    (the 0-point reflection answers, read by the instructor, are not counted)."""
    nb = nbformat.read(lab, as_version=4)
    points = {}
    for cell in nb.cells:
        meta = cell.get("metadata", {}).get("nbgrader", {})
        if meta.get("grade") and cell.cell_type == "code":
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
    parser.add_argument("--output", type=Path, default=None,
                        help="folder for the student versions (default: student/, "
                             "or none with --course-dir: they are in its release/)")
    parser.add_argument("--course-dir", type=Path, default=None,
                        help="keep nbgrader's course directory here, with its "
                             "nbgrader_config.py (default: a temporary one)")
    parser.add_argument("--exchange", default=None,
                        help="nbgrader exchange folder to write into the course's "
                             f"nbgrader_config.py (default: {DEFAULT_EXCHANGE}); "
                             "rewrites an existing nbgrader_config.py")
    parser.add_argument("--points-table", action="store_true",
                        help="only print the points per lab as a Markdown table")
    args = parser.parse_args(argv)
    if args.points_table:
        print(points_table(args.labs or None))
        return
    output = args.output if args.output or args.course_dir else DEFAULT_OUTPUT
    for path in generate(output, args.labs or None, args.course_dir,
                         args.exchange):
        try:
            shown = path.resolve().relative_to(Path.cwd())
        except ValueError:
            shown = path
        print(f"wrote {shown}")


if __name__ == "__main__":
    sys.exit(main())
