"""The labs work as nbgrader assignments: valid metadata, clean student versions, grading.

For every ``labs/*.ipynb`` (the solution notebooks, the single source):

* the nbgrader metadata is valid (unique grade ids, points on test cells, solution
  regions in every solution cell, a hidden-test block per lab, solutions tagged
  ``hide-input``) and nbgrader's own validator accepts it;
* ``scripts/make_student.py`` generates student versions that contain no line from a
  solution or hidden-test region;
* a student version executed top to bottom (by ``nbgrader autograde``, which runs
  nbclient in this process's notebook environment and goes on after errors) runs
  every cell before the first answer cell and fails first there, with
  ``NotImplementedError``;
* ``nbgrader autograde`` in a temporary course gives the solutions full marks and the
  untouched student versions zero (one shared, module-scoped run; the points table is
  printed with ``-s``);
* ``instructor_guide.md`` shows the points that the notebooks' metadata gives;
* the numbers that the labs' prose states are what the computation gives.

The whole file executes each lab twice (solution and blank submission, in one shared
autograde run).
"""

from __future__ import annotations

import re
import shutil

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from course_env import REPO_ROOT
from repo_scripts import load_script  # noqa: E402

LABS = sorted((REPO_ROOT / "labs").glob("*.ipynb"))
GUIDE = REPO_ROOT / "instructor_guide.md"
SOLUTION_REGION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)
HIDDEN_REGION = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)
pytestmark = pytest.mark.filterwarnings(  # nbgrader's own gradebook session warnings
    "ignore::sqlalchemy.exc.SAWarning")
SOLUTION_STUDENT = "solution_student"  # submits the solution notebooks
BLANK_STUDENT = "blank_student"  # submits the untouched student versions


make_student = load_script("scripts/make_student.py")


def _ids(paths):
    return [path.stem for path in paths]


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _solution_cells(nb):
    return [cell for cell in nb.cells if _nbgrader(cell).get("solution")]


def _grade_cells(nb):
    return [cell for cell in nb.cells if _nbgrader(cell).get("grade")]


# --------------------------------------------------------------------------------------
# Metadata of the solution notebooks
# --------------------------------------------------------------------------------------

@pytest.mark.parametrize("lab", LABS, ids=_ids(LABS))
def test_nbgrader_metadata_is_valid(lab):
    nb = nbformat.read(lab, as_version=4)
    ids = [_nbgrader(cell)["grade_id"] for cell in nb.cells if _nbgrader(cell)]
    assert len(ids) == len(set(ids)), f"{lab.name}: duplicate grade_ids {ids}"
    assert all(grade_id.startswith(lab.stem.split("_")[0] + "-") for grade_id in ids), (
        f"{lab.name}: grade_ids should start with the lab's short name: {ids}")
    solutions, grades = _solution_cells(nb), _grade_cells(nb)
    assert solutions and grades, f"{lab.name}: no solution or no test cells"
    for cell in solutions:
        meta = _nbgrader(cell)
        name = f"{lab.name}::{meta['grade_id']}"
        assert cell.cell_type == "code" and not meta.get("grade"), (
            f"{name}: answers are ungraded code cells (prose answers are plain "
            f"markdown, not manually graded cells)")
        assert meta.get("locked") is False and meta.get("schema_version") == 3, name
        assert SOLUTION_REGION.search(cell.source), f"{name}: no solution region"
        assert "hide-input" in cell.metadata.get("tags", []), f"{name}: not hide-input"
        before = cell.source.split("### BEGIN SOLUTION")[0]
        assert before.strip().startswith("#"), (
            f"{name}: start with a comment saying what to compute")
    for cell in grades:
        meta = _nbgrader(cell)
        name = f"{lab.name}::{meta['grade_id']}"
        assert cell.cell_type == "code" and meta.get("locked") is True, name
        assert float(meta.get("points", 0)) > 0, f"{name}: a test cell without points"
        assert not meta.get("solution"), f"{name}: a test cell cannot be a solution"
        assert "### BEGIN SOLUTION" not in cell.source, name
    assert any(HIDDEN_REGION.search(cell.source) for cell in grades), (
        f"{lab.name}: no '### BEGIN HIDDEN TESTS' block in any test cell")
    assert not any(HIDDEN_REGION.search(cell.source) for cell in nb.cells
                   if not _nbgrader(cell).get("grade")), (
        f"{lab.name}: hidden tests outside a test cell")


@pytest.mark.parametrize("lab", LABS, ids=_ids(LABS))
def test_nbgrader_validator_accepts_the_lab(lab):
    from nbgrader.nbgraderformat import MetadataValidator
    from nbgrader.validator import Validator  # noqa: F401 (import check)

    nb = nbformat.read(lab, as_version=4)
    MetadataValidator().validate_nb(nb)  # raises ValidationError when invalid


# --------------------------------------------------------------------------------------
# Student versions
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Run the script's command line once, as `make student` does, keeping nbgrader's
    course directory (gradebook included) for the autograding tests."""
    root = tmp_path_factory.mktemp("labs")
    make_student.main(["--output", str(root / "student"),
                       "--course-dir", str(root / "course")])
    return root


@pytest.fixture(scope="module")
def student_dir(generated):
    return generated / "student"


@pytest.fixture(scope="module")
def course(generated):
    return generated / "course"


def _region_lines(nb) -> set[str]:
    """Non-empty lines inside solution and hidden-test regions."""
    lines = set()
    for cell in nb.cells:
        for region in (*SOLUTION_REGION.findall(cell.source),
                       *HIDDEN_REGION.findall(cell.source)):
            lines.update(line.strip() for line in region.splitlines() if line.strip())
    return lines


def _visible_lines(nb) -> set[str]:
    """Lines of the source notebook outside every region (students see these anyway)."""
    lines = set()
    for cell in nb.cells:
        text = HIDDEN_REGION.sub("", SOLUTION_REGION.sub("", cell.source))
        lines.update(line.strip() for line in text.splitlines() if line.strip())
    return lines


def test_make_student_writes_every_lab(student_dir):
    assert sorted(path.name for path in student_dir.glob("*.ipynb")) == \
        [lab.name for lab in LABS]


@pytest.mark.parametrize("lab", LABS, ids=_ids(LABS))
def test_student_version_contains_no_solution(lab, student_dir):
    source = nbformat.read(lab, as_version=4)
    student = nbformat.read(student_dir / lab.name, as_version=4)
    student_lines = {line.strip() for cell in student.cells
                     for line in cell.source.splitlines()}
    leaked = sorted((_region_lines(source) - _visible_lines(source)) & student_lines)
    assert not leaked, f"{lab.name}: student version shows solution lines: {leaked[:5]}"
    text = "\n".join(cell.source for cell in student.cells)
    for marker in ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS"):
        assert marker not in text, f"{lab.name}: '{marker}' left in the student version"
    assert all(not cell.get("outputs") for cell in student.cells
               if cell.cell_type == "code"), f"{lab.name}: outputs left in"
    stubs = [cell for cell in student.cells if _nbgrader(cell).get("solution")]
    assert len(stubs) == len(_solution_cells(source))
    assert all("raise NotImplementedError()" in cell.source for cell in stubs)


# --------------------------------------------------------------------------------------
# Autograding
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def grades(course):
    """Autograde the solutions and the blank student versions; {(lab, student): score}."""
    api = make_student.nbgrader_api(course)
    for lab in LABS:
        assignment = make_student.assignment_id(lab)
        for student, notebook in ((SOLUTION_STUDENT, lab),
                                  (BLANK_STUDENT, make_student.release_path(course, lab))):
            submitted = course / "submitted" / student / assignment
            submitted.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(notebook, submitted / lab.name)
            result = api.autograde(assignment, student, force=True, create=True)
            assert result["success"], result.get("error") or result.get("log")
    scores = {}
    with api.gradebook as gradebook:
        for lab in LABS:
            for student in (SOLUTION_STUDENT, BLANK_STUDENT):
                submission = gradebook.find_submission_notebook(
                    lab.stem, make_student.assignment_id(lab), student)
                scores[lab.stem, student] = (submission.score, submission.max_score)
    print("\nlab                      solution   blank   max")
    for lab in LABS:
        solution, maximum = scores[lab.stem, SOLUTION_STUDENT]
        blank, _ = scores[lab.stem, BLANK_STUDENT]
        print(f"{lab.stem:24} {solution:8g} {blank:7g} {maximum:5g}")
    return scores


@pytest.mark.parametrize("lab", LABS, ids=_ids(LABS))
def test_autograde_gives_solutions_full_marks(lab, grades):
    score, maximum = grades[lab.stem, SOLUTION_STUDENT]
    expected = sum(make_student.lab_points(lab).values())
    assert maximum == expected
    assert score == maximum, f"{lab.name}: the solution scores {score} of {maximum}"


@pytest.mark.parametrize("lab", LABS, ids=_ids(LABS))
def test_autograde_gives_blank_submissions_zero(lab, grades):
    score, maximum = grades[lab.stem, BLANK_STUDENT]
    assert maximum > 0 and score == 0, f"{lab.name}: a blank submission scores {score}"


# --------------------------------------------------------------------------------------
# The instructor guide
# --------------------------------------------------------------------------------------

def test_instructor_guide_points_table_matches_the_notebooks():
    text = GUIDE.read_text()
    table = make_student.points_table(LABS)
    assert table in text, (
        "the points table in instructor_guide.md differs from the labs' metadata; "
        "replace it with the output of `python scripts/make_student.py "
        f"--points-table`:\n{table}")


# --------------------------------------------------------------------------------------
# Numbers stated in the labs' prose, computed independently (OpenCV, SciPy, PyTorch)
# --------------------------------------------------------------------------------------

def _sobel_magnitude(image: np.ndarray) -> np.ndarray:
    import cv2

    image = image.astype(np.float64)
    gx = cv2.Sobel(image, cv2.CV_64F, 1, 0, ksize=3, borderType=cv2.BORDER_CONSTANT)
    gy = cv2.Sobel(image, cv2.CV_64F, 0, 1, ksize=3, borderType=cv2.BORDER_CONSTANT)
    return np.hypot(gx, gy)


def test_lab01_numbers():
    import cv2
    import scipy.ndimage

    from utils import data

    digit = data.load_mnist(train=False).data[0].numpy() / 255
    assert int(np.nonzero(digit)[0].max()) == 26  # the 7 reaches row 26
    padded = _sobel_magnitude(digit)
    assert padded[-1].max() > 0 and padded[0].max() == 0  # bottom ring only
    grey = _sobel_magnitude(np.full((6, 6), 0.5))
    assert grey[0, 2] == pytest.approx(2.0) and grey[0, 0] == pytest.approx(2.12, abs=5e-3)
    strengths, edge_pixels = [], []
    for size in (1, 3, 5):
        magnitude = _sobel_magnitude(
            scipy.ndimage.uniform_filter(digit, size=size, mode="constant"))
        strengths.append(round(float(magnitude.max()), 2))
        edge_pixels.append(int((magnitude > 0.5).sum()))
    assert strengths == [4.33, 2.73, 1.50]
    assert edge_pixels[0] == 181 and edge_pixels[2] == 235
    images, labels = data.cifar10_sample()
    assert data.CIFAR10_CLASSES[int(labels[1373])] == "frog"
    rgb = images[1373].permute(1, 2, 0).numpy().astype(np.float32) / 255
    red = _sobel_magnitude(rgb[..., 0]).sum()
    grey = _sobel_magnitude(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY)).sum()
    assert round(red / grey, 1) == 1.6


def test_lab02_numbers():
    from torch import nn
    from torch.utils.flop_counter import FlopCounterMode

    from utils import arithmetic

    stack = nn.Sequential(
        nn.Conv2d(1, 1, 3, padding=1), nn.Conv2d(1, 1, 3, padding=1), nn.AvgPool2d(2),
        nn.Conv2d(1, 1, 3, padding=2, dilation=2),
        nn.Conv2d(1, 1, 3, stride=2, padding=1), nn.Conv2d(1, 1, 3, padding=1),
    ).double()
    assert arithmetic.measured_receptive_field(stack, 96) == 26  # r of the lab's stack
    assert nn.ConvTranspose2d(1, 1, 4, stride=2, padding=1)(
        torch.zeros(1, 1, 16, 16)).shape[-1] == 32

    def macs(model, shape):
        with FlopCounterMode(display=False) as counter:
            model(torch.zeros(1, *shape))
        return counter.get_total_flops() // 2

    layer_a = macs(nn.Conv2d(3, 32, 3, padding=1), (3, 32, 32))
    separable_b = macs(nn.Sequential(nn.Conv2d(32, 32, 3, 2, 1, groups=32),
                                     nn.Conv2d(32, 64, 1)), (32, 32, 32))
    separable_c = macs(nn.Sequential(nn.Conv2d(64, 64, 3, 2, 1, groups=64),
                                     nn.Conv2d(64, 128, 1)), (64, 16, 16))
    standard = layer_a + macs(nn.Conv2d(32, 64, 3, 2, 1), (32, 32, 32)) \
        + macs(nn.Conv2d(64, 128, 3, 2, 1), (64, 16, 16))
    assert layer_a > max(separable_b, separable_c)
    assert round((layer_a + separable_b + separable_c) / standard, 1) == 0.2
    assert round(separable_c / macs(nn.Conv2d(64, 128, 3, 2, 1), (64, 16, 16)), 2) \
        == round(1 / 128 + 1 / 9, 2) == 0.12
    columns = F.unfold(torch.zeros(1, 64, 224, 224), 3, padding=1)
    assert round(columns.numel() * 4 / 1e6) == 116


@pytest.mark.parametrize("lab", LABS, ids=_ids(LABS))
def test_student_version_runs_until_the_first_answer(lab, grades, course):
    """The blank submission, executed top to bottom by nbgrader autograde (nbclient,
    in this process's notebook environment, continuing after errors), ran every cell
    before the first answer cell without error and failed first there."""
    nb = nbformat.read(course / "autograded" / BLANK_STUDENT / lab.stem / lab.name,
                       as_version=4)
    first_answer = next(index for index, cell in enumerate(nb.cells)
                        if _nbgrader(cell).get("solution"))
    errors = [(index, output.ename) for index, cell in enumerate(nb.cells)
              if cell.cell_type == "code"
              for output in cell.get("outputs", []) if output.output_type == "error"]
    assert errors, f"{lab.name}: the student version ran without any error"
    assert errors[0] == (first_answer, "NotImplementedError"), (
        f"{lab.name}: the first error is {errors[0][1]} in cell {errors[0][0]}, "
        f"expected NotImplementedError in the first answer cell {first_answer}")
    skipped = [index for index, cell in enumerate(nb.cells[:first_answer])
               if cell.cell_type == "code" and cell.source.strip()
               and cell.execution_count is None]
    assert not skipped, f"{lab.name}: cells {skipped} before the first answer did not run"
