"""The notebook checks can fail: pictures, numbers, animations, run-time budget.

* ``tests/nbval_images.py`` (the plugin that makes nbval compare pictures and HTML
  animations) is tested directly, and end to end: a copy of
  ``chapters/00_getting_started.ipynb`` with one stored number, one stored picture, one
  picture's size and one animation's frame count altered is run by pytest/nbval in a
  subprocess with the repository's configuration, and each altered cell must fail,
  named, while unaltered cells and cells tagged ``nbval-ignore-output`` pass.
* The recorded run times (``execution_times.json``, written by
  ``scripts/execute_notebooks.py``) cover every notebook and respect the budget, and
  ``execution_report.md`` shows them.
"""

from __future__ import annotations

import base64
import copy
import datetime
import io
import json
import os
import re
import subprocess
import sys
import xml.etree.ElementTree as ElementTree
from pathlib import Path

import nbformat
import nbval_images  # noqa: E402
import numpy as np
import pytest
from course_env import NOTEBOOK_ENV, REPO_ROOT, TEST_ENV, apply_notebook_env
from repo_scripts import load_script

GETTING_STARTED = REPO_ROOT / "chapters" / "00_getting_started.ipynb"


execute_notebooks = load_script("scripts/execute_notebooks.py")


# --------------------------------------------------------------------------------------
# Helpers: small pictures and animations made here, not read from a notebook
# --------------------------------------------------------------------------------------

def _png(array: np.ndarray) -> bytes:
    from PIL import Image

    buffer = io.BytesIO()
    Image.fromarray(array.astype(np.uint8)).save(buffer, format="png")
    return buffer.getvalue()


def _gradient(height=30, width=40) -> np.ndarray:
    ramp = np.linspace(0, 255, width)[None, :].repeat(height, axis=0)
    return np.stack([ramp, ramp[::-1], np.full_like(ramp, 128)], axis=2)


def _jshtml(frames: int = 3) -> str:
    import matplotlib

    matplotlib.use("Agg", force=False)
    import matplotlib.pyplot as plt
    from matplotlib.animation import FuncAnimation

    from utils import viz

    # in the course's figure style, as the notebook's kernel draws it (utils imported)
    with matplotlib.rc_context(viz.STYLE):
        fig, ax = plt.subplots(figsize=(1.2, 1.2))
        image = ax.imshow(np.eye(4), vmin=0, vmax=1)
        animation = FuncAnimation(
            fig, lambda i: image.set_data(np.roll(np.eye(4), i, axis=1)), frames=frames)
        html = animation.to_jshtml()
        plt.close(fig)
    return html


def _altered(png: bytes | str, resize: bool = False) -> str:
    """A stored picture, changed: a red square painted on it, or 10 px wider."""
    from PIL import Image, ImageDraw

    image = Image.open(io.BytesIO(nbval_images._as_bytes(png))).convert("RGBA")
    if resize:
        image = image.resize((image.width + 10, image.height))
    else:
        ImageDraw.Draw(image).rectangle([10, 10, 60, 60], fill=(255, 0, 0, 255))
    buffer = io.BytesIO()
    image.save(buffer, format="png")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


# --------------------------------------------------------------------------------------
# The comparison functions
# --------------------------------------------------------------------------------------

def test_tolerance_is_stated_once():
    import tomllib

    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())
    options = config["tool"]["pytest"]["ini_options"]
    assert float(options["nbval_image_tolerance"]) == nbval_images.DEFAULT_TOLERANCE == 1.0


def test_identical_pictures_have_zero_difference():
    png = _png(_gradient())
    assert nbval_images.image_difference(png, png) == ("rms", 0.0)
    stored = base64.b64encode(png).decode()  # as a notebook stores it
    assert nbval_images.image_difference(stored, png) == ("rms", 0.0)


def test_float_noise_is_within_tolerance_and_a_change_is_not():
    picture = _gradient()
    noisy = picture.copy()
    noisy[::7, ::5, 0] += 1  # one grey level on 3 % of the values
    _, rms = nbval_images.image_difference(_png(picture), _png(noisy))
    assert 0 < rms < nbval_images.DEFAULT_TOLERANCE
    changed = picture.copy()
    changed[5:15, 5:15] = 0  # a 10×10 black square
    _, rms = nbval_images.image_difference(_png(picture), _png(changed))
    assert rms > 10 * nbval_images.DEFAULT_TOLERANCE


def test_a_different_size_is_a_failure():
    comparison = nbval_images.CellImageComparison("nb.ipynb::Cell 4", 1.0)
    reference = [{"data": {"image/png": _png(_gradient(30, 40))}}]
    test = [{"data": {"image/png": _png(_gradient(30, 41))}}]
    comparison.pictures(reference, test)
    assert comparison.problems == [
        "nb.ipynb::Cell 4: picture 1 of 1 (image/png) changed size: 41×30 px, "
        "40×30 px committed"]


def test_a_missing_picture_is_a_failure():
    comparison = nbval_images.CellImageComparison("nb.ipynb::Cell 2", 1.0)
    comparison.pictures([{"data": {"image/png": _png(_gradient())}}], [{"data": {}}])
    assert comparison.problems == [
        "nb.ipynb::Cell 2: 0 picture(s) produced, 1 committed"]


def test_animation_ids_are_sanitised_and_frames_taken_out():
    first, second = _jshtml(), _jshtml()
    assert first != second  # matplotlib's ids are random uuids
    old, new = nbval_images.parse_animation(first), nbval_images.parse_animation(second)
    assert old.html == new.html
    assert len(old.frames) == len(new.frames) == 3
    assert "base64" not in old.html and "new Array(FRAMES)" in old.html
    for (_, a), (_, b) in zip(old.frames, new.frames, strict=True):
        assert nbval_images.image_difference(a, b) == ("rms", 0.0)
    assert nbval_images.parse_animation("<b>not an animation</b>") is None


def test_animation_frame_count_and_frames_are_compared():
    three, two = (nbval_images.parse_animation(_jshtml(n)) for n in (3, 2))
    comparison = nbval_images.CellImageComparison("nb.ipynb::Cell 9", 1.0)
    comparison.animations([three], [two])
    assert comparison.problems == [
        "nb.ipynb::Cell 9: HTML animation 1 has 2 frames, 3 committed"]
    changed = copy.deepcopy(three)
    changed.frames[1] = ("png", base64.b64decode(_altered(changed.frames[1][1])))
    comparison = nbval_images.CellImageComparison("nb.ipynb::Cell 9", 1.0)
    comparison.animations([three], [changed])
    assert len(comparison.problems) == 1
    assert "HTML animation 1, frame 1 differs" in comparison.problems[0]


def test_test_run_uses_portable_cpu_kernels_and_execution_does_not():
    assert TEST_ENV == {"ATEN_CPU_CAPABILITY": "default"}
    assert "ATEN_CPU_CAPABILITY" not in apply_notebook_env({}, testing=False)
    assert apply_notebook_env({}, testing=True)["ATEN_CPU_CAPABILITY"] == "default"
    assert not set(TEST_ENV) & set(NOTEBOOK_ENV)
    native = apply_notebook_env({"COURSE_TEST_NATIVE_CPU": "1"}, testing=True)
    assert "ATEN_CPU_CAPABILITY" not in native  # the diagnosis switch
    if os.environ.get("COURSE_TEST_NATIVE_CPU") != "1":
        assert os.environ.get("ATEN_CPU_CAPABILITY") == "default"  # set by conftest.py


# --------------------------------------------------------------------------------------
# End to end: an altered copy of chapter 0 fails, cell by cell, in nbval
# --------------------------------------------------------------------------------------

def _find(cells, predicate, what):
    found = [cell for cell in cells if predicate(cell)]
    assert found, f"{GETTING_STARTED.name} no longer has {what}; update this test"
    return found[0]


def _stdout(cell) -> str:
    return "".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream")


def _image_output(cell):
    return next(o for o in cell.outputs if "image/png" in o.get("data", {}))


ANIMATION_SOURCE = """\
from IPython.display import HTML
from matplotlib.animation import FuncAnimation

fig, ax = plt.subplots(figsize=(1.2, 1.2))
image = ax.imshow(np.eye(4), vmin=0, vmax=1)
animation = FuncAnimation(
    fig, lambda i: image.set_data(np.roll(np.eye(4), i, axis=1)), frames=3)
html = animation.to_jshtml()
plt.close(fig)
HTML(html)"""

CAPABILITY_SOURCE = """\
import os
print(torch.backends.cpu.get_cpu_capability(), os.environ["COURSE_BLOCK_NETWORK"])"""


def altered_copy() -> tuple[nbformat.NotebookNode, dict[str, int]]:
    """A short copy of chapter 0 with altered outputs; returns it and, for each case,
    the nbval cell number ("Cell N") where it sits."""
    nb = nbformat.read(GETTING_STARTED, as_version=4)
    cells = [cell for cell in nb.cells if cell.cell_type == "code"]
    setup = cells[0]
    imports = _find(cells, lambda c: "seed_everything" in c.source, "an imports cell")
    device = _find(cells, lambda c: "threads: 2" in _stdout(c), "a 'threads: 2' print")
    picture = _find(cells, lambda c: any("image/png" in o.get("data", {})
                                         for o in c.outputs), "a figure")

    def altered_number(cell, tags=()):
        cell = copy.deepcopy(cell)
        for output in cell.outputs:
            if output.output_type == "stream":
                output.text = output.text.replace("threads: 2", "threads: 3")
        cell.metadata["tags"] = list(tags)
        return cell

    def altered_picture(cell, resize=False, tags=()):
        cell = copy.deepcopy(cell)
        output = _image_output(cell)
        output.data["image/png"] = _altered(output.data["image/png"], resize)
        cell.metadata["tags"] = list(tags)
        return cell

    def animation_cell(frames_kept=None):
        html = _jshtml(3)  # the same animation the cell makes, made here
        if frames_kept is not None:
            html = re.sub(rf'[ \t]*frames\[{frames_kept}\] = "[^"]*"\n?', "", html)
        output = nbformat.v4.new_output(
            "execute_result", execution_count=1,
            data={"text/html": html, "text/plain": "<IPython.core.display.HTML object>"})
        return nbformat.v4.new_code_cell(ANIMATION_SOURCE, outputs=[output])

    capability = nbformat.v4.new_code_cell(CAPABILITY_SOURCE, outputs=[
        nbformat.v4.new_output("stream", name="stdout", text="DEFAULT 1\n")])
    ignored = ["nbval-ignore-output"]
    plan = [
        ("setup", setup), ("imports", imports), ("capability", capability),
        ("number", altered_number(device)),
        ("picture", altered_picture(picture)),
        ("size", altered_picture(picture, resize=True)),
        ("animation", animation_cell()),
        ("frames", animation_cell(frames_kept=2)),
        ("ignored number", altered_number(device, ignored)),
        ("ignored picture", altered_picture(picture, tags=ignored)),
        ("unaltered picture", picture),
    ]
    for count, (_, cell) in enumerate(plan, 1):
        cell.id = f"altered-{count}"
        cell.execution_count = count
        for output in cell.outputs:
            if output.output_type == "execute_result":
                output.execution_count = count
    nb.cells = [cell for _, cell in plan]
    return nb, {name: number for number, (name, _) in enumerate(plan)}


def run_nbval(notebook: Path, report: Path) -> subprocess.CompletedProcess:
    """pytest with the repository's configuration (nbval strict, sanitizer, plugin) on
    one notebook outside the repository."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT / "tests"), str(REPO_ROOT / "scripts"), env.get("PYTHONPATH", "")])
    env["COURSE_IMAGE_ARTIFACTS"] = str(report.parent / "image-artifacts")
    env.pop("COURSE_TEST_NATIVE_CPU", None)  # the configuration under test, as in CI
    command = [sys.executable, "-m", "pytest", "-c", str(REPO_ROOT / "pyproject.toml"),
               "--rootdir", str(notebook.parent), "-p", "nbval_images", "--color=no",
               f"--junitxml={report}", "-q", str(notebook)]
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True,
                          text=True, timeout=300)


def junit_outcomes(report: Path) -> dict[str, str | None]:
    """{"Cell N": failure text or None when it passed}."""
    outcomes = {}
    for case in ElementTree.parse(report).iter("testcase"):
        failure = case.find("failure")
        if failure is None:
            failure = case.find("error")
        outcomes[case.get("name")] = (None if failure is None
                                      else (failure.get("message", "") + failure.text))
    return outcomes


@pytest.fixture(scope="module")
def altered_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("altered")
    nb, cells = altered_copy()
    path = folder / "altered_getting_started.ipynb"
    nbformat.write(nb, path)
    result = run_nbval(path, folder / "report.xml")
    assert (folder / "report.xml").exists(), result.stdout + result.stderr
    return junit_outcomes(folder / "report.xml"), cells, result


def test_altered_copy_fails_exactly_in_the_altered_cells(altered_run):
    outcomes, cells, result = altered_run
    assert result.returncode == 1, result.stdout[-3000:]
    failed = {name for name, failure in outcomes.items() if failure is not None}
    expected = {f"Cell {cells[name]}" for name in ("number", "picture", "size", "frames")}
    assert failed == expected, result.stdout[-3000:]
    assert len(outcomes) == len(cells)


def test_altered_number_is_named(altered_run):
    outcomes, cells, _ = altered_run
    failure = outcomes[f"Cell {cells['number']}"]
    assert f"Cell {cells['number']}: Cell outputs differ" in failure
    assert "threads: 3" in failure and "threads: 2" in failure


def test_altered_picture_is_named_with_its_difference(altered_run):
    outcomes, cells, _ = altered_run
    failure = outcomes[f"Cell {cells['picture']}"]
    where = f"altered_getting_started.ipynb::Cell {cells['picture']}"
    assert f"{where}: picture 1 of 1 (image/png) differs from the committed picture: " \
           "RMS difference " in failure
    assert "> tolerance 1.0 (pixel values 0-255); see " in failure
    artifacts = sorted(path.name for path in (Path(failure.split("; see ")[1].split()[0])
                                              .parent.glob("*picture*")))
    assert any(name.endswith("-failed-diff.png") for name in artifacts), artifacts


def test_resized_picture_is_a_failure(altered_run):
    outcomes, cells, _ = altered_run
    failure = outcomes[f"Cell {cells['size']}"]
    stored = nbformat.read(GETTING_STARTED, as_version=4)
    png = next(o.data["image/png"] for c in stored.cells if c.cell_type == "code"
               for o in c.outputs if "image/png" in o.get("data", {}))
    height, width = nbval_images.decode_image(png).shape[:2]
    assert (f"picture 1 of 1 (image/png) changed size: {width}×{height} px, "
            f"{width + 10}×{height} px committed; see ") in failure


def test_animation_with_a_missing_frame_fails_and_an_intact_one_passes(altered_run):
    outcomes, cells, _ = altered_run
    assert "HTML animation 1 has 3 frames, 2 committed" in outcomes[f"Cell {cells['frames']}"]
    assert outcomes[f"Cell {cells['animation']}"] is None  # random ids, same frames


def test_ignored_cells_and_unaltered_cells_pass(altered_run):
    outcomes, cells, _ = altered_run
    for name in ("setup", "imports", "ignored number", "ignored picture",
                 "unaltered picture"):
        assert outcomes[f"Cell {cells[name]}"] is None, name


def test_kernels_run_with_portable_cpu_kernels_and_no_network(altered_run):
    outcomes, cells, _ = altered_run
    assert outcomes[f"Cell {cells['capability']}"] is None  # printed "DEFAULT 1"


# --------------------------------------------------------------------------------------
# Run-time budget and the execution report
# --------------------------------------------------------------------------------------

NOTEBOOKS = [path.relative_to(REPO_ROOT).as_posix()
             for path in execute_notebooks.all_notebooks()]


def recorded_times() -> dict:
    return json.loads((REPO_ROOT / "execution_times.json").read_text())


def test_every_notebook_has_a_recorded_time():
    times = recorded_times()["notebooks"]
    missing = [name for name in NOTEBOOKS if name not in times]
    assert not missing, (
        f"no recorded run time for {missing}: run `make execute NOTEBOOKS=...`")
    stale = [name for name in times if not (REPO_ROOT / name).exists()]
    assert not stale, f"execution_times.json lists notebooks that do not exist: {stale}"


def test_recorded_times_respect_the_budget():
    times = recorded_times()["notebooks"]
    slow = {name: seconds for name, seconds in times.items()
            if seconds > execute_notebooks.NOTEBOOK_BUDGET_S}
    assert not slow, (f"notebooks over {execute_notebooks.NOTEBOOK_BUDGET_S:.0f} s on the "
                      f"reference machine: {slow}")
    total = sum(times.values())
    assert total <= execute_notebooks.TOTAL_BUDGET_S, (
        f"all notebooks together take {total:.0f} s > "
        f"{execute_notebooks.TOTAL_BUDGET_S:.0f} s")
    assert (execute_notebooks.NOTEBOOK_BUDGET_S, execute_notebooks.TOTAL_BUDGET_S) == (
        120.0, 600.0)


def test_execution_report_shows_the_recorded_times():
    report = (REPO_ROOT / "execution_report.md").read_text()
    table = execute_notebooks.report_table(recorded_times())
    assert f"{execute_notebooks.REPORT_BEGIN}\n{table}{execute_notebooks.REPORT_END}" \
        in report, "execution_report.md is stale: run " \
                   "`python scripts/execute_notebooks.py --report-only`"


def test_outputs_were_produced_with_the_tested_versions():
    recorded = recorded_times()
    assert recorded.get("environment") == execute_notebooks.environment_versions(), (
        "the committed outputs were produced with other package versions than this "
        "environment has: run `make execute` and commit the outputs")
    assert set(recorded.get("executed_on", {})) == set(recorded["notebooks"])
    for date in recorded["executed_on"].values():
        datetime.date.fromisoformat(date)


def test_report_formats_times():
    assert execute_notebooks.format_seconds(4.26) == "4.3 s"
    assert execute_notebooks.format_seconds(65) == "1 min 05 s"
    table = execute_notebooks.report_table(
        {"notebooks": {"chapters/00_getting_started.ipynb": 4.3, "labs/x.ipynb": 130.0},
         "machine": "test machine"})
    assert "| {doc}`chapters/00_getting_started` | 4.3 s | yes | unknown |" in table
    assert "| `labs/x.ipynb` | 2 min 10 s | **no** | unknown |" in table
    assert "| **all 2 notebooks** | **2 min 14 s** | yes | |" in table
    dated = execute_notebooks.report_table(
        {"notebooks": {"labs/x.ipynb": 3.0}, "executed_on": {"labs/x.ipynb": "2026-12-04"},
         "environment": {"Python": "3.11.7", "PyTorch": "2.14.1"}, "machine": "m"})
    assert "| `labs/x.ipynb` | 3.0 s | yes | 2026-12-04 |" in dated
    assert "last produced on 2026-12-04 with Python 3.11.7, PyTorch 2.14.1." in dated


def test_runtime_badge_extension():
    runtime_badge = load_script("_ext/runtime_badge.py")

    assert runtime_badge.format_seconds(4.3) == "about 4 s"
    assert runtime_badge.format_seconds(83) == "about 1 min 25 s"
    assert runtime_badge.format_seconds(119) == "about 2 min"
    node = runtime_badge.runtime_node("chapters/00_getting_started", 4.3)
    assert "runs top to bottom in about 4 s" in node.astext()
    assert runtime_badge.load_times(REPO_ROOT) == recorded_times()["notebooks"]
    import yaml

    config = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())
    assert config["sphinx"]["local_extensions"].get("runtime_badge") == "_ext"
