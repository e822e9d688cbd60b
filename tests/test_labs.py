"""The labs work as nbgrader assignments an instructor can hand out and grade fairly.

For every ``labs/*.ipynb`` (the solution notebooks, the single source):

* the nbgrader metadata is valid (unique grade ids, points on test cells, a solution
  region in every answer cell, a hidden-test block and one ``Task n passed (k points)``
  line in every test cell, reflection answers as 0-point Markdown cells, a locked
  set-up cell) and nbgrader's own validator accepts it;
* ``scripts/make_student.py`` generates student versions with no line of a solution,
  hidden test or model answer; the committed ``student/`` versions are exactly what it
  generates now; the built site (``_build/html``, when there is one) contains no such
  line either;
* the instructor workflow trial, repeated: ``nbgrader autograde`` in one temporary
  course grades six submissions per lab (the full solution, a blank one, a partial
  one, a cheat that hard-codes one task and edits its test cell, one whose code
  raises a warning inside a test cell, one that delegates tasks to the course's
  ``utils`` or to a forbidden built-in) and each task gets exactly the expected points;
  no "checksum has changed" warning for cells nobody edited;
* every command of ``instructor_guide.md``'s term walk-through runs, in order, in a
  second temporary course with its own exchange (release, fetch, submit, collect,
  zip_collect, timestamps, autograde, unknown students, --force, feedback, export);
* ``make clean`` touches neither ``student/`` nor a gradebook;
* ``instructor_guide.md`` shows the points that the notebooks' metadata gives;
* the numbers that the labs' prose states are what the computation gives.

The trial executes each lab six times; the guide's course autogrades lab 1 six times.
Both run once per session (module-scoped fixtures), printing the grades with ``-s``.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import nbformat
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from course_env import REPO_ROOT
from repo_scripts import load_script  # noqa: E402

LABS = sorted((REPO_ROOT / "labs").glob("*.ipynb"))
STUDENT_DIR = REPO_ROOT / "student"
GUIDE = REPO_ROOT / "instructor_guide.md"
SITE = REPO_ROOT / "_build" / "html"
SOLUTION_REGION = re.compile(r"### BEGIN SOLUTION\n(.*?)### END SOLUTION", re.S)
HIDDEN_REGION = re.compile(r"### BEGIN HIDDEN TESTS\n(.*?)### END HIDDEN TESTS", re.S)
PASS_LINE = re.compile(r'print\("Task (\d+) passed \((\d+) points?\)"\)')
pytestmark = pytest.mark.filterwarnings(  # nbgrader's own gradebook session warnings
    "ignore::sqlalchemy.exc.SAWarning")

make_student = load_script("scripts/make_student.py")


def _ids(paths):
    return [path.stem for path in paths]


def _nbgrader(cell) -> dict:
    return cell.get("metadata", {}).get("nbgrader", {})


def _answer_cells(nb):
    """Code cells students fill in (solution cells that are not graded)."""
    return [cell for cell in nb.cells
            if _nbgrader(cell).get("solution") and cell.cell_type == "code"]


def _reflection_cells(nb):
    """0-point Markdown answers: the model answer in the solution version."""
    return [cell for cell in nb.cells
            if _nbgrader(cell).get("solution") and cell.cell_type == "markdown"]


def _test_cells(nb):
    return [cell for cell in nb.cells
            if _nbgrader(cell).get("grade") and cell.cell_type == "code"]


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
    answers, tests = _answer_cells(nb), _test_cells(nb)
    assert answers and tests, f"{lab.name}: no answer or no test cells"
    for cell in answers:
        meta = _nbgrader(cell)
        name = f"{lab.name}::{meta['grade_id']}"
        assert not meta.get("grade"), f"{name}: answers are ungraded code cells"
        assert meta.get("locked") is False and meta.get("schema_version") == 3, name
        assert SOLUTION_REGION.search(cell.source), f"{name}: no solution region"
        assert "hide-input" not in cell.metadata.get("tags", []), (
            f"{name}: the site shows the student version: its task comment stays visible")
        before = cell.source.split("### BEGIN SOLUTION")[0]
        assert before.strip().startswith("#"), (
            f"{name}: start with a comment saying what to compute")
    for cell in _reflection_cells(nb):
        meta = _nbgrader(cell)
        name = f"{lab.name}::{meta['grade_id']}"
        assert meta.get("grade") and float(meta.get("points", -1)) == 0, (
            f"{name}: a reflection answer is a 0-point manually graded Markdown cell")
        assert SOLUTION_REGION.search(cell.source), f"{name}: no model answer"
    numbers = []
    for cell in tests:
        meta = _nbgrader(cell)
        name = f"{lab.name}::{meta['grade_id']}"
        assert meta.get("locked") is True, name
        assert float(meta.get("points", 0)) > 0, f"{name}: a test cell without points"
        assert not meta.get("solution"), f"{name}: a test cell cannot be a solution"
        assert "### BEGIN SOLUTION" not in cell.source, name
        assert HIDDEN_REGION.search(cell.source), f"{name}: no hidden tests"
        last = cell.source.rstrip().splitlines()[-1]
        match = PASS_LINE.fullmatch(last)
        assert match, (f"{name}: a test cell ends with "
                       f'print("Task n passed (k points)"), not {last!r}')
        assert int(match[2]) == float(meta["points"]), f"{name}: points differ"
        assert match[2] == "1" or "points)" in last, name
        numbers.append(int(match[1]))
    assert numbers == list(range(1, len(tests) + 1)), f"{lab.name}: tasks {numbers}"
    first_code = next(cell for cell in nb.cells if cell.cell_type == "code"
                      and "remove-cell" not in cell.metadata.get("tags", []))
    assert _nbgrader(first_code).get("locked") and "captureWarnings(True)" in \
        first_code.source, (f"{lab.name}: the set-up cell is locked and sends "
                            f"warnings to stdout (nbgrader zeroes a cell with stderr)")
    assert not any(HIDDEN_REGION.search(cell.source) for cell in nb.cells
                   if cell not in tests), f"{lab.name}: hidden tests outside a test cell"
    assert not any("{admonition} One possible answer" in cell.source
                   for cell in nb.cells), (
        f"{lab.name}: a model answer in a public admonition; use a reflection answer "
        f"cell")


@pytest.mark.parametrize("lab", LABS, ids=_ids(LABS))
def test_nbgrader_validator_accepts_the_lab(lab):
    from nbgrader.nbgraderformat import MetadataValidator

    nb = nbformat.read(lab, as_version=4)
    MetadataValidator().validate_nb(nb)  # raises ValidationError when invalid


# --------------------------------------------------------------------------------------
# Student versions
# --------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def generated(tmp_path_factory):
    """Run the script's command line once, keeping nbgrader's course directory
    (gradebook included) for the trial."""
    root = tmp_path_factory.mktemp("labs")
    make_student.main(["--output", str(root / "student"),
                       "--course-dir", str(root / "course"),
                       "--exchange", str(root / "exchange")])
    return root


@pytest.fixture(scope="module")
def student_dir(generated):
    return generated / "student"


@pytest.fixture(scope="module")
def course(generated):
    return generated / "course"


def _secret_lines(nb) -> set[str]:
    """Non-empty lines inside solution and hidden-test regions that appear nowhere
    else in the notebook (students see those anyway)."""
    inside, outside = set(), set()
    for cell in nb.cells:
        for region in (*SOLUTION_REGION.findall(cell.source),
                       *HIDDEN_REGION.findall(cell.source)):
            inside.update(line.strip() for line in region.splitlines() if line.strip())
        text = HIDDEN_REGION.sub("", SOLUTION_REGION.sub("", cell.source))
        outside.update(line.strip() for line in text.splitlines() if line.strip())
    return inside - outside


def test_make_student_writes_every_lab(student_dir, course):
    assert sorted(path.name for path in student_dir.glob("*.ipynb")) == \
        [lab.name for lab in LABS]
    config = (course / "nbgrader_config.py").read_text()
    for setting in ("CourseDirectory.course_id", "CourseDirectory.db_url",
                    "Exchange.root", "Execute.timeout", "Autograde.create_student",
                    "LateSubmissionPlugin.penalty_method", "ExportApp.plugin_class",
                    "FileNameCollectorPlugin.named_regexp",
                    "Autograde.sanitize_preprocessors"):
        assert f"c.{setting} = " in config, f"nbgrader_config.py lacks {setting}"


@pytest.mark.parametrize("lab", LABS, ids=_ids(LABS))
def test_student_version_contains_no_solution(lab, student_dir):
    source = nbformat.read(lab, as_version=4)
    student = nbformat.read(student_dir / lab.name, as_version=4)
    student_lines = {line.strip() for cell in student.cells
                     for line in cell.source.splitlines()}
    leaked = sorted(_secret_lines(source) & student_lines)
    assert not leaked, f"{lab.name}: student version shows solution lines: {leaked[:5]}"
    text = "\n".join(cell.source for cell in student.cells)
    for marker in ("### BEGIN SOLUTION", "### BEGIN HIDDEN TESTS", "One possible answer"):
        assert marker not in text, f"{lab.name}: '{marker}' left in the student version"
    assert all(not cell.get("outputs") for cell in student.cells
               if cell.cell_type == "code"), f"{lab.name}: outputs left in"
    stubs = _answer_cells(student)
    assert len(stubs) == len(_answer_cells(source))
    assert all("raise NotImplementedError()" in cell.source for cell in stubs)
    assert all("YOUR ANSWER HERE" in cell.source for cell in _reflection_cells(student))


@pytest.mark.parametrize("lab", LABS, ids=_ids(LABS))
def test_committed_student_version_is_current(lab, student_dir):
    committed = STUDENT_DIR / lab.name
    assert committed.exists(), (
        f"student/{lab.name} is missing: run `make student` and commit student/")
    assert committed.read_bytes() == (student_dir / lab.name).read_bytes(), (
        f"student/{lab.name} is stale: run `make student` and commit student/")


def _site_pages() -> list[Path]:
    return sorted(SITE.rglob("*.html")) + sorted((SITE / "_sources").rglob("*.ipynb"))


def _page_text(path: Path) -> str:
    text = path.read_text(errors="replace")
    if path.suffix == ".html":
        text = html.unescape(re.sub(r"<[^>]+>", "", text))
    else:  # a notebook offered for download: its sources, with JSON escapes undone
        nb = json.loads(text)
        text = "\n".join("".join(cell.get("source", "")) for cell in nb.get("cells", []))
    return text


@pytest.mark.skipif(not SITE.is_dir(), reason="no built site (make book)")
def test_built_site_contains_no_solution_hidden_test_or_model_answer():
    # Lines the chapters show anyway (a seeded generator, a loop header) are no leak.
    public = {line.strip() for chapter in sorted((REPO_ROOT / "chapters").glob("*.ipynb"))
              for cell in nbformat.read(chapter, as_version=4).cells
              for line in cell.source.splitlines()}
    # So are the student versions' own lines (tested line by line above): a task comment
    # may name the variable a solution line assigns.
    handed_out = "\n".join(cell.source for path in sorted(STUDENT_DIR.glob("*.ipynb"))
                           for cell in nbformat.read(path, as_version=4).cells)
    secrets = {}
    for lab in LABS:
        for line in _secret_lines(nbformat.read(lab, as_version=4)) - public:
            if len(line) >= 24 and line not in handed_out:  # short lines occur anywhere
                secrets.setdefault(line, lab.name)
    found = []
    for page in _site_pages():
        text = _page_text(page)
        if ("BEGIN HIDDEN TESTS" in text or "BEGIN SOLUTION" in text) and \
                not page.name.startswith("instructor_guide"):  # the guide names them
            found.append((page.relative_to(SITE), "a region marker"))
        found += [(page.relative_to(SITE), f"{lab}: {line}")
                  for line, lab in secrets.items() if line in text]
    assert not found, (f"the site shows solution / hidden-test lines (rebuild after "
                       f"`make clean` if these are old pages): {found[:5]}")


def test_make_clean_keeps_student_versions_and_gradebooks():
    recipe = subprocess.run(["make", "-n", "clean"], cwd=REPO_ROOT, capture_output=True,
                            text=True, check=True).stdout
    for kept in ("student", "nbgrader", "gradebook", "course"):
        assert kept not in recipe, f"make clean would delete {kept}: {recipe}"


# --------------------------------------------------------------------------------------
# The instructor workflow trial, repeated for every lab
# --------------------------------------------------------------------------------------

STUB = None  # an answer left as released (raise NotImplementedError())


def _frog_grey_literal() -> str:
    import cv2

    from utils import data

    images, _ = data.cifar10_sample()
    rgb = images[1373].permute(1, 2, 0).numpy().astype(np.float32) / 255
    return repr(cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY).tolist())


def _code(text: str) -> str:
    return textwrap.dedent(text).strip()


SOLVED_IM2COL = _code("""
    batch, _, height, width = x.shape
    out_channels, _, kernel_h, kernel_w = weight.shape
    out_h = conv_output_size(height, kernel_h, stride, padding)
    out_w = conv_output_size(width, kernel_w, stride, padding)
    columns = F.unfold(x, (kernel_h, kernel_w), padding=padding, stride=stride)
    out = weight.reshape(out_channels, -1) @ columns
    return out.reshape(batch, out_channels, out_h, out_w)
""")


# {lab: {student: ({answer grade_id: code or STUB}, {test grade_id: points lost},
#                  {test grade_id: text its output must contain}, edited test cells)}}
# Answers not named are the solution's. Each warning is raised when a test cell first
# calls the function: the case nbgrader scores 0 when warnings go to stderr.
def _trial():
    warns = "torch.tensor(torch.ones(1))  # copy-constructing a tensor: UserWarning"
    return {
        "lab01_filters": {
            "partial": ({"lab01-padding": STUB, "lab01-blur": STUB, "lab01-cifar": STUB},
                        {"lab01-padding-test": 1, "lab01-blur-test": 1,
                         "lab01-cifar-test": 2}, {}, ()),
            "cheat": ({"lab01-cifar": "def to_grayscale(images):\n    return torch.tensor("
                                      + _frog_grey_literal() + ").view(1, 1, 32, 32)"},
                      {"lab01-cifar-test": 2}, {}, ("lab01-cifar-test",)),
            "warn": ({"lab01-box": _code("""
                def box_blur(images, size):
                    kernel = torch.tensor(torch.full((1, 1, size, size), 1.0 / size**2))
                    return F.conv2d(images, kernel, padding=(size - 1) // 2)
                """)}, {}, {"lab01-box-test": "UserWarning"}, ()),
            "delegate": ({"lab01-box": _code("""
                def box_blur(images, size):
                    kernel = kernels.box(size).view(1, 1, size, size)
                    return F.conv2d(images, kernel, padding=(size - 1) // 2)
                """), "lab01-cifar": _code("""
                def to_grayscale(images):
                    rgb = images.permute(0, 2, 3, 1).numpy().astype(np.float32) / 255
                    grey = [cv2.cvtColor(image, cv2.COLOR_RGB2GRAY) for image in rgb]
                    return torch.from_numpy(np.stack(grey)).unsqueeze(1)
                """)},
                {"lab01-box-test": 1, "lab01-cifar-test": 2},
                {"lab01-box-test": "task 2 asks you to build the box kernel",
                 "lab01-cifar-test": "task 6 asks you to weigh the channels"}, ()),
        },
        "lab02_conv_arithmetic": {
            "partial": ({"lab02-cost": STUB, "lab02-im2col": STUB},
                        {"lab02-cost-test": 3, "lab02-im2col-test": 3}, {}, ()),
            "cheat": ({"lab02-sizes": _code("""
                def conv_output_size(n, kernel_size, stride=1, padding=0, dilation=1):
                    return {(28, 3, 1, 1, 1): 28, (28, 3, 1, 0, 1): 26, (32, 5, 2, 2, 1): 16,
                            (224, 7, 2, 3, 1): 112, (15, 3, 1, 2, 2): 15,
                            (10, 3, 3, 0, 1): 3}[(n, kernel_size, stride, padding, dilation)]


                def transposed_output_size(n, kernel_size, stride=1, padding=0,
                                           output_padding=0, dilation=1):
                    return ((n - 1) * stride - 2 * padding + dilation * (kernel_size - 1)
                            + output_padding + 1)
                """)}, {"lab02-sizes-test": 2}, {}, ("lab02-sizes-test",)),
            "warn": ({"lab02-im2col": "def my_conv2d(x, weight, stride=1, padding=0):\n    "
                                      + warns + "\n" + textwrap.indent(SOLVED_IM2COL, "    ")},
                     {}, {"lab02-im2col-test": "UserWarning"}, ()),
            "delegate": ({"lab02-sizes": _code("""
                def conv_output_size(n, kernel_size, stride=1, padding=0, dilation=1):
                    return arithmetic.output_size(n, kernel_size, stride, padding, dilation)


                def transposed_output_size(n, kernel_size, stride=1, padding=0,
                                           output_padding=0, dilation=1):
                    return arithmetic.transposed_output_size(
                        n, kernel_size, stride, padding, output_padding, dilation)
                """), "lab02-im2col": _code("""
                def my_conv2d(x, weight, stride=1, padding=0):
                    return F.conv2d(x, weight, stride=stride, padding=padding)
                """)},
                {"lab02-sizes-test": 2, "lab02-im2col-test": 3},
                {"lab02-sizes-test": "task 1 asks you to write the formulas",
                 "lab02-im2col-test": "task 4 asks for F.unfold"}, ()),
        },
        "lab03_tinycnn": {
            "partial": ({"lab03-train": STUB, "lab03-kernels": STUB, "lab03-maps": STUB,
                         "lab03-correlation": STUB},  # no training: the cheapest partial
                        {"lab03-train-test": 2, "lab03-kernels-test": 1,
                         "lab03-maps-test": 1, "lab03-correlation-test": 3}, {}, ()),
            "cheat": ({"lab03-params": _code("""
                def count_parameters(model):
                    return 20490


                n_parameters = count_parameters(tinycnn)
                """)}, {"lab03-params-test": 1}, {}, ("lab03-params-test",)),
            "warn": ({"lab03-correlation": _code("""
                def normalised_correlation(a, b):
                    torch.tensor(a)  # copy-constructing a tensor: UserWarning
                    a_rows = a.double().flatten(start_dim=1)
                    b_rows = b.double().flatten(start_dim=1)
                    a_rows = a_rows - a_rows.mean(dim=1, keepdim=True)
                    b_rows = b_rows - b_rows.mean(dim=1, keepdim=True)
                    a_rows = a_rows / a_rows.norm(dim=1, keepdim=True).clamp_min(1e-12)
                    b_rows = b_rows / b_rows.norm(dim=1, keepdim=True).clamp_min(1e-12)
                    return a_rows @ b_rows.T
                """)}, {}, {"lab03-correlation-test": "UserWarning"}, ()),
            "delegate": ({"lab03-train": _code("""
                def train_one_epoch(model, images, labels, optimizer, batch_size, generator):
                    return train.train_epoch(model, images, labels, optimizer, batch_size,
                                             generator=generator, progress=False)
                """), "lab03-correlation": _code("""
                def normalised_correlation(a, b):
                    return kernels.kernel_correlation(a, b).double()
                """)},
                {"lab03-train-test": 2, "lab03-correlation-test": 3},
                {"lab03-train-test": "task 3 asks you to write the loop",
                 "lab03-correlation-test": "task 6 asks you to centre"}, ()),
        },
        "lab04_feature_maps": {
            "partial": ({"lab04-pooling": STUB, "lab04-ascent": STUB},
                        {"lab04-pooling-test": 2, "lab04-ascent-test": 3}, {}, ()),
            "cheat": ({"lab04-zeros": _code("""
                def zero_fraction(activation):
                    if activation.dim() == 4:  # tuned to the example
                        return (activation == 0).double().mean().item()
                    return 0.5
                """)}, {"lab04-zeros-test": 2}, {}, ("lab04-zeros-test",)),
            "warn": ({"lab04-pooling": _code("""
                def pool_2x2(maps):
                    torch.tensor(maps)  # copy-constructing a tensor: UserWarning
                    n, c, h, w = maps.shape
                    even = maps[:, :, : h - h % 2, : w - w % 2]
                    windows = even.reshape(n, c, h // 2, 2, w // 2, 2)
                    return windows.amax(dim=(3, 5)), windows.mean(dim=(3, 5))
                """)}, {}, {"lab04-pooling-test": "UserWarning"}, ()),
            "delegate": ({"lab04-hook": _code("""
                def capture_output(model, index, batch):
                    with torch.no_grad(), capture_activations(model, str(index)) as captured:
                        model(batch)
                    return captured[str(index)]


                relu2_2_maps = capture_output(vgg, 8, batch)
                """), "lab04-pooling": _code("""
                def pool_2x2(maps):
                    return F.max_pool2d(maps, 2), F.avg_pool2d(maps, 2)


                max_pooled, average_pooled = pool_2x2(relu2_2_maps)
                """)},
                {"lab04-hook-test": 3, "lab04-pooling-test": 2},
                {"lab04-hook-test": "task 1 asks you to register",
                 "lab04-pooling-test": "task 3 asks you to pool by reshaping"}, ()),
        },
        "lab05_attribution": {
            "cheat": ({"lab05-randomise": _code("""
                def randomise_from_top(model, layer_names, seed):
                    generator = torch.Generator().manual_seed(0)  # ignores seed
                    current = copy.deepcopy(model)
                    networks = []
                    with torch.no_grad():
                        for name in layer_names:
                            layer = getattr(current, name)
                            std = layer.weight.double().std()
                            layer.weight.copy_(torch.randn(
                                layer.weight.shape, generator=generator,
                                dtype=torch.float64) * std)
                            layer.bias.zero_()
                            networks.append(copy.deepcopy(current))
                    return networks


                randomised = randomise_from_top(model, ["fc", "conv2", "conv1"], seed=0)
                """)}, {"lab05-randomise-test": 3}, {}, ("lab05-randomise-test",)),
            "warn": ({"lab05-spearman": _code("""
                def spearman_rho(a, b):
                    torch.tensor(a)  # copy-constructing a tensor: UserWarning
                    ranks_a = scipy.stats.rankdata(a.detach().flatten().double().numpy())
                    ranks_b = scipy.stats.rankdata(b.detach().flatten().double().numpy())
                    ranks_a = ranks_a - ranks_a.mean()
                    ranks_b = ranks_b - ranks_b.mean()
                    denominator = np.sqrt((ranks_a**2).sum() * (ranks_b**2).sum())
                    if not denominator:
                        return float("nan")
                    return float((ranks_a * ranks_b).sum() / denominator)
                """)}, {}, {"lab05-spearman-test": "UserWarning"}, ()),
            "delegate": ({"lab05-spearman": _code("""
                def spearman_rho(a, b):
                    return attribution.spearman(a, b)
                """)}, {"lab05-spearman-test": 2},
                {"lab05-spearman-test": "asks you to write it yourself"}, ()),
        },
    }


TRIAL_STUDENTS = ("full", "blank", "partial", "cheat", "warn", "delegate")


def _solution_answer(cell) -> str:
    """The answer a student would write: the solution cell without its markers."""
    return "\n".join(line for line in cell.source.splitlines()
                     if line.strip() not in ("### BEGIN SOLUTION", "### END SOLUTION"))


def _generic_plan(lab: Path, student: str):
    """Labs without a hand-written trial (lab 5 while it changes): full, blank and a
    partial submission that answers the first half of the tasks."""
    nb = nbformat.read(lab, as_version=4)
    answers = [_nbgrader(cell)["grade_id"] for cell in _answer_cells(nb)]
    if student == "blank":
        return dict.fromkeys(answers, STUB), None, {}, ()
    if student == "partial":
        unanswered = answers[len(answers) // 2:]
        lost, current = {}, None
        for cell in nb.cells:
            meta = _nbgrader(cell)
            if cell in _answer_cells(nb):
                current = meta["grade_id"]
            elif cell in _test_cells(nb) and current in unanswered:
                lost[meta["grade_id"]] = float(meta["points"])
        return dict.fromkeys(unanswered, STUB), lost, {}, ()
    return {}, {}, {}, ()


def _plan(lab: Path, student: str, trial: dict):
    if student == "full":
        return {}, {}, {}, ()
    if student == "blank":
        return _generic_plan(lab, "blank")
    if student in trial.get(lab.stem, {}):
        return trial[lab.stem][student]
    return _generic_plan(lab, student) if student == "partial" else None


def _submission(lab: Path, release: Path, answers: dict, edited_tests) -> nbformat.NotebookNode:
    """The released notebook with answers filled in, as a student returns it."""
    solution = {(_nbgrader(cell)["grade_id"]): cell
                for cell in nbformat.read(lab, as_version=4).cells if _nbgrader(cell)}
    nb = nbformat.read(release, as_version=4)
    for cell in nb.cells:
        grade_id = _nbgrader(cell).get("grade_id")
        if cell in _answer_cells(nb):
            answer = answers.get(grade_id, _solution_answer(solution[grade_id]))
            if answer is not STUB:
                comment = cell.source.split("# YOUR CODE HERE")[0]
                cell.source = comment + answer
        elif cell in _reflection_cells(nb) and answers.get(grade_id, "") is not STUB:
            cell.source = cell.source.replace("YOUR ANSWER HERE", "I would pad by reflection.")
        elif grade_id in edited_tests:
            cell.source = "pass  # the student replaced the visible checks"
    return nb


@pytest.fixture(scope="module")
def trial(course):
    """graded(lab) autogrades the six submissions of a lab once (in the shared course)
    and returns {student: result}; the grades are printed with ``-s``."""
    api = make_student.nbgrader_api(course)
    plans = _trial()
    with api.gradebook as gradebook:
        for student in TRIAL_STUDENTS:
            gradebook.update_or_create_student(student)
    cache = {}

    def graded(lab: Path) -> dict:
        if lab.stem not in cache:
            cache[lab.stem] = _grade_lab(api, course, lab, plans)
            row = [sum(score or 0 for score, _ in cache[lab.stem][s]["scores"].values())
                   if s in cache[lab.stem] else float("nan") for s in TRIAL_STUDENTS]
            print(f"\n{lab.stem:24} " + "  ".join(f"{s} {value:g}" for s, value
                                                   in zip(TRIAL_STUDENTS, row, strict=True)))
        return cache[lab.stem]

    return graded


def _grade_lab(api, course: Path, lab: Path, plans: dict) -> dict:
    from nbgrader.api import MissingEntry

    assignment = make_student.assignment_id(lab)
    results = {}
    for student in TRIAL_STUDENTS:
        plan = _plan(lab, student, plans)
        if plan is None:
            continue
        answers, lost, expected_output, edited = plan
        nb = _submission(lab, make_student.release_path(course, lab), answers, edited)
        submitted = course / "submitted" / student / assignment
        submitted.mkdir(parents=True, exist_ok=True)
        nbformat.write(nb, submitted / lab.name)
        result = api.autograde(assignment, student, force=True, create=False)
        assert result["success"], result.get("error") or result.get("log")
        results[student] = {"plan": plan, "log": result.get("log") or ""}
    with api.gradebook as gradebook:
        for student, result in results.items():
            scores = {}
            for grade_id, points in make_student.lab_points(lab).items():
                try:
                    grade = gradebook.find_grade(grade_id, lab.stem, assignment, student)
                    scores[grade_id] = (grade.score, points)
                except MissingEntry:
                    scores[grade_id] = (None, points)
            result["scores"] = scores
            result["notebook"] = nbformat.read(
                course / "autograded" / student / assignment / lab.name, as_version=4)
    return results


def _cell_text(nb, grade_id) -> str:
    cell = next(cell for cell in nb.cells if _nbgrader(cell).get("grade_id") == grade_id)
    parts = []
    for output in cell.get("outputs", []):
        if output.output_type == "stream":
            parts.append(output.text)
        elif output.output_type == "error":
            parts.append(f"{output.ename}: {output.evalue}")
    return "".join(parts)


TRIAL_CASES = [(lab, student) for lab in LABS for student in TRIAL_STUDENTS]


@pytest.mark.parametrize("lab, student", TRIAL_CASES,
                         ids=[f"{lab.stem}-{student}" for lab, student in TRIAL_CASES])
def test_trial_grades_each_task_as_expected(lab, student, trial):
    results = trial(lab)
    if student not in results:
        pytest.skip(f"no hand-written {student} submission for {lab.stem}")
    result = results[student]
    _, lost, expected_output, edited = result["plan"]
    nb = result["notebook"]
    for grade_id, (score, points) in result["scores"].items():
        expected = 0 if lost is None else points - lost.get(grade_id, 0)
        assert score == expected, (
            f"{lab.stem}, {student} submission: {grade_id} scored {score} of {points}, "
            f"expected {expected}; its output:\n{_cell_text(nb, grade_id)[-1500:]}")
        if score == points:
            number = PASS_LINE.fullmatch(next(
                cell for cell in nb.cells
                if _nbgrader(cell).get("grade_id") == grade_id).source.rstrip()
                .splitlines()[-1])[1]
            assert f"Task {number} passed" in _cell_text(nb, grade_id), grade_id
    for grade_id, text in expected_output.items():
        assert text in _cell_text(nb, grade_id), (
            f"{lab.stem}, {student}: {grade_id}'s output lacks {text!r}:\n"
            f"{_cell_text(nb, grade_id)[-1500:]}")
    checksum_warnings = re.findall(r"Attribute 'checksum' for cell (\S+) has changed",
                                   result["log"])
    assert sorted(checksum_warnings) == sorted(edited), (
        f"{lab.stem}, {student}: checksum warnings for {checksum_warnings}, expected "
        f"only for the edited test cells {list(edited)}")


@pytest.mark.parametrize("lab", LABS, ids=_ids(LABS))
def test_student_version_runs_until_the_first_answer(lab, trial):
    """The blank submission, executed top to bottom by nbgrader autograde (nbclient,
    continuing after errors), ran every cell before the first answer cell without
    error and failed first there."""
    nb = trial(lab)["blank"]["notebook"]
    first_answer = next(index for index, cell in enumerate(nb.cells)
                        if _nbgrader(cell).get("solution") and cell.cell_type == "code")
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


# --------------------------------------------------------------------------------------
# The instructor guide: points, and every command of the term, run in order
# --------------------------------------------------------------------------------------

def test_instructor_guide_points_table_matches_the_notebooks():
    text = GUIDE.read_text()
    table = make_student.points_table(LABS)
    assert table in text, (
        "the points table in instructor_guide.md differs from the labs' metadata; "
        "replace it with the output of `.venv/bin/python scripts/make_student.py "
        f"--points-table`:\n{table}")


GUIDE_STEP = re.compile(r"<!-- guide-step: (\S+) -->\n```(\w+)\n(.*?)```", re.S)
GUIDE_STEPS = ["create", "students.csv", "students", "student-config", "release",
               "student-submit", "collect", "zip-collect", "timestamp", "autograde",
               "unknown-student", "regrade", "feedback", "export"]


def _guide_steps() -> dict[str, tuple[str, str]]:
    return {name: (kind, body) for name, kind, body in GUIDE_STEP.findall(GUIDE.read_text())}


def test_instructor_guide_steps_are_the_tested_ones():
    assert list(_guide_steps()) == GUIDE_STEPS
    text = GUIDE.read_text()
    assert "$COURSE" not in text and "nbgrader_work" not in text


@pytest.fixture(scope="module")
def guide_course(tmp_path_factory, student_dir):
    """Run every step of the guide's walk-through in a temporary home, course and
    exchange, filling in what students and the LMS would do between the steps."""
    root = tmp_path_factory.mktemp("guide")
    home, student_home, exchange = root / "home", root / "student-home", root / "exchange"
    for folder in (home, student_home / ".jupyter", exchange):
        folder.mkdir(parents=True)
    bin_dir = str(Path(sys.executable).parent)
    base_env = {**os.environ, "PATH": os.pathsep.join([bin_dir, os.environ["PATH"]]),
                "PYTHONWARNINGS": "ignore"}
    steps = _guide_steps()
    course_dir = home / "cnn-course-2027"
    lab = REPO_ROOT / "labs" / "lab01_filters.ipynb"
    osuser = __import__("pwd").getpwuid(os.getuid())[0]
    ran = []

    def run(step, line, cwd, env_home):
        command = line.replace("/srv/nbgrader/exchange", str(exchange))
        if "release_feedback" in command:  # fay's exchange submission came from osuser
            command = command.replace("--student=fay", f"--student={osuser}")
        if command.startswith("cd "):
            return Path(command[3:].strip().replace("~", str(env_home), 1))
        env = {**base_env, "HOME": str(env_home)}
        done = subprocess.run(["bash", "-c", command], cwd=cwd, env=env,
                              capture_output=True, text=True, timeout=600)
        ran.append((step, line, done.returncode, done.stdout + done.stderr))
        assert done.returncode == 0, (f"guide step {step}: `{line}` failed "
                                      f"(rc {done.returncode}):\n{done.stdout}{done.stderr}")
        return cwd

    def run_block(step, cwd, env_home=home, between=None):
        kind, body = steps[step]
        for index, line in enumerate(line for line in body.splitlines() if line.strip()):
            cwd = run(step, line, cwd, env_home)
            if between:
                between(index, cwd)
        return cwd

    run_block("create", REPO_ROOT)
    assert (course_dir / "nbgrader_config.py").exists()
    (course_dir / "students.csv").write_text(steps["students.csv"][1])
    cwd = run_block("students", REPO_ROOT)
    assert cwd == course_dir
    # The exchange submission comes from the operating-system user running the test.
    run("students", f"nbgrader db student add {osuser} --first-name=Ola --last-name=Os",
        cwd, home)
    (student_home / ".jupyter" / "nbgrader_config.py").write_text(
        steps["student-config"][1].replace("/srv/nbgrader/exchange", str(exchange)))
    run_block("release", cwd)

    def answer_after_fetch(index, student_cwd):
        if index == 0:  # after fetch_assignment: the student answers every task
            fetched = student_cwd / "lab01_filters" / "lab01_filters.ipynb"
            nbformat.write(_submission(lab, fetched, {}, ()), fetched)

    run_block("student-submit", student_home, student_home, answer_after_fetch)
    run_block("collect", cwd)
    archive = cwd / "downloaded" / "lab01_filters" / "archive"
    archive.mkdir(parents=True)
    with zipfile.ZipFile(archive / "lms-download.zip", "w") as bundle:
        blank = (student_dir / "lab01_filters.ipynb").read_text()
        bundle.writestr("gus/Copy of lab01_filters.ipynb", blank)
        partial = _submission(lab, student_dir / "lab01_filters.ipynb",
                              _trial()["lab01_filters"]["partial"][0], ())
        bundle.writestr("fay/lab01_filters (1).ipynb", nbformat.writes(partial))
    run_block("zip-collect", cwd)
    run_block("timestamp", cwd)
    run_block("autograde", cwd)
    # A submission from someone not in the gradebook: refused until added.
    hal = cwd / "submitted" / "hal" / "lab01_filters"
    hal.mkdir(parents=True)
    shutil.copyfile(student_dir / "lab01_filters.ipynb", hal / "lab01_filters.ipynb")
    (hal / "timestamp.txt").write_text("2027-03-01 16:59:00 UTC")  # as the guide says
    refused = subprocess.run(["nbgrader", "autograde", "lab01_filters", "--student=hal"],
                             cwd=cwd, env={**base_env, "HOME": str(home)},
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "hal" in refused.stdout + refused.stderr
    run_block("unknown-student", cwd)
    run_block("regrade", cwd)
    run_block("feedback", cwd)
    run_block("export", cwd)
    return {"course": cwd, "exchange": exchange, "ran": ran, "osuser": osuser}


def test_instructor_guide_commands_all_run(guide_course):
    ran = {step for step, *_ in guide_course["ran"]}
    commands = [step for step in GUIDE_STEPS
                if step not in ("students.csv", "student-config")]
    assert ran == set(commands), f"steps not run: {set(commands) - ran}"
    print("\n" + "\n".join(f"{step:16} rc {rc}  {line}"
                           for step, line, rc, _ in guide_course["ran"]))


def test_instructor_guide_term_ends_with_the_right_grades(guide_course):
    import csv

    course = guide_course["course"]
    with open(course / "grades.csv", newline="") as handle:
        rows = {row["student_id"]: row for row in csv.DictReader(handle)}
    column = "lab01_filters (10)"
    assert set(next(iter(rows.values()))) == {"student_id", "last_name", "first_name",
                                              "email", column}, (
        "unreleased labs must not be listed (they would read as 0)")
    osuser = guide_course["osuser"]
    # zip_collect replaced fay's exchange submission with the partial one (6 of 10).
    assert {student: float(row[column]) for student, row in rows.items()} == {
        osuser: 10.0, "fay": 6.0, "gus": 0.0, "hal": 0.0}
    long_format = (course / "grades_long.csv").read_text()
    assert "lab02_conv_arithmetic" in long_format and "late_submission_penalty" in \
        long_format
    times = {student: (course / "submitted" / student / "lab01_filters" / "timestamp.txt")
             .read_text().strip() for student in ("gus", "fay")}
    assert times == {"gus": "2027-03-01 16:45:00 UTC", "fay": "2027-03-01 17:00:00 UTC"}
    feedback = course / "feedback" / osuser / "lab01_filters" / "lab01_filters.html"
    assert feedback.exists()
    images = re.findall(r"<img\b[^>]*>", feedback.read_text())
    assert images and all(re.search(r'alt="[^"]{10,}"', tag)
                          and "No description has been provided" not in tag
                          for tag in images), (
        "every figure on a feedback page needs its alt text (AltTextFromCellMetadata)")
    assert list(guide_course["exchange"].rglob("feedback/*.html")), "no feedback released"
    collected = course / "submitted" / osuser / "lab01_filters" / "timestamp.txt"
    assert collected.exists(), "collect keeps the exchange's submission time"


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
