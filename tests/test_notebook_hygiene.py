"""The committed outputs of every chapter and lab are clean and complete.

nbval proves that the committed outputs are reproducible; these tests prove that they
are worth reproducing: no warnings, tracebacks, object reprs or memory addresses; the
shared set-up cell first; executed top to bottom; alt text on every figure; every
exercise of a chapter has a solution (whose code ``tests/nbval_solutions.py`` runs).
Each failure names the notebook and the cell as nbval does ("Cell N" counts code cells
from 0; "markdown cell N" counts all cells from 0).
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from xml.etree import ElementTree

import nbformat
import pytest
from course_env import REPO_ROOT
from nbtemplate import SETUP_CELL, SETUP_TAGS
from nbval_solutions import exercise_labels, solution_fences, solution_labels

CHAPTERS = sorted(REPO_ROOT.glob("chapters/*.ipynb"))
NOTEBOOKS = CHAPTERS + sorted(REPO_ROOT.glob("labs/*.ipynb"))
IMAGE_MIMES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
ADDRESS = re.compile(r"0x[0-9a-fA-F]{6,}")
FIGURE_REPR = "<Figure size"
DATA_URI = re.compile(r"data:[a-z]+/[a-z0-9.+-]+;base64,[A-Za-z0-9+/=\\\s]*")


def _ids(paths):
    return [path.relative_to(REPO_ROOT).as_posix() for path in paths]


class Notebook(nbformat.NotebookNode):
    """A notebook that shows as its path in failure reports."""

    def __repr__(self) -> str:
        return f"<notebook {self.path}>"


@pytest.fixture(scope="module", params=NOTEBOOKS, ids=_ids(NOTEBOOKS))
def notebook(request):
    nb = Notebook(nbformat.read(request.param, as_version=4))
    nb.path = request.param.relative_to(REPO_ROOT).as_posix()
    return nb


def code_cells(nb):
    return [cell for cell in nb.cells if cell.cell_type == "code"]


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def output_problems(cell) -> list[str]:
    """What is wrong with one code cell's committed outputs (empty list: nothing)."""
    problems = []
    tags = cell.get("metadata", {}).get("tags", [])
    for output in cell.get("outputs", []):
        kind = output.get("output_type")
        if kind == "stream":
            text = _text(output.get("text", ""))
            if output.get("name") == "stderr" and re.search(r"Warning|Traceback", text):
                problems.append(f"a warning on stderr: {text.strip()[:200]!r}")
            if FIGURE_REPR in text:
                problems.append("a printed '<Figure size …>' repr")
            if ADDRESS.search(text):
                problems.append(f"a memory address in printed text: "
                                f"{ADDRESS.search(text).group()}")
        elif kind == "error":
            if "raises-exception" not in tags:
                problems.append(f"an error output ({output.get('ename')}: "
                                f"{_text(output.get('evalue', ''))[:120]})")
        elif kind in ("execute_result", "display_data"):
            data = output.get("data", {})
            plain = _text(data.get("text/plain", ""))
            has_image = any(mime in data for mime in IMAGE_MIMES)
            if FIGURE_REPR in plain and (kind == "execute_result" or not has_image):
                problems.append(f"a leaked figure repr {plain.strip()!r} (end the cell "
                                f"with plt.show() or ';')")
            for mime in ("text/plain", "text/html", "text/markdown", "text/latex"):
                text = DATA_URI.sub("", _text(data.get(mime, "")))
                if ADDRESS.search(text):
                    problems.append(f"a memory address in the {mime} output: "
                                    f"{plain.strip()[:120] or ADDRESS.search(text).group()}")
                    break
    return problems


def test_first_code_cell_is_the_shared_setup_cell(notebook):
    cells = code_cells(notebook)
    assert cells, f"{notebook.path} has no code cell"
    first = cells[0]
    assert first.source == SETUP_CELL, (
        f"{notebook.path}::Cell 0 is not scripts/nbtemplate.SETUP_CELL (create notebooks "
        f"with scripts/nbtemplate.py and keep its first code cell unchanged)")
    tags = first.get("metadata", {}).get("tags", [])
    assert set(SETUP_TAGS) <= set(tags), (
        f"{notebook.path}::Cell 0 (set-up) lacks the tag(s) {SETUP_TAGS}")


def test_executed_top_to_bottom(notebook):
    counts = [(number, cell.get("execution_count"))
              for number, cell in enumerate(code_cells(notebook)) if cell.source.strip()]
    expected = list(range(1, len(counts) + 1))
    wrong = [f"Cell {number}: {count}"
             for (number, count), want in zip(counts, expected, strict=True) if count != want]
    assert not wrong, (
        f"{notebook.path} was not executed once, top to bottom (execution counts should "
        f"be 1..{len(counts)}; run `make execute NOTEBOOKS={notebook.path}`): "
        + ", ".join(wrong[:10]))


def test_outputs_are_clean(notebook):
    problems = [f"{notebook.path}::Cell {number}: {problem}"
                for number, cell in enumerate(code_cells(notebook))
                for problem in output_problems(cell)]
    assert not problems, "unclean committed outputs:\n" + "\n".join(problems)


def test_every_figure_has_alt_text(notebook):
    missing = []
    for number, cell in enumerate(code_cells(notebook)):
        has_image = any(mime in output.get("data", {})
                        for output in cell.get("outputs", []) for mime in IMAGE_MIMES)
        alt = cell.get("metadata", {}).get("mystnb", {}).get("image", {}).get("alt")
        if has_image and not (isinstance(alt, str) and alt.strip()):
            missing.append(f"{notebook.path}::Cell {number}")
    assert not missing, (
        'cells with a figure but no alt text (cell metadata {"mystnb": {"image": '
        '{"alt": "..."}}}): ' + ", ".join(missing))


@pytest.mark.parametrize("path", CHAPTERS, ids=_ids(CHAPTERS))
def test_every_exercise_has_a_solution(path):
    """Every ``{exercise}`` of a chapter has a ``:label:`` and a ``{solution}`` naming
    it, in the same notebook; every ``{solution}`` names an exercise there."""
    nb = nbformat.read(path, as_version=4)
    name = path.relative_to(REPO_ROOT).as_posix()
    exercises, solutions = exercise_labels(nb), solution_labels(nb)
    known, answered = {label for label, _ in exercises}, {label for label, _ in solutions}
    problems = [f"{name}, markdown cell {cell}: an {{exercise}} without a :label:"
                for label, cell in exercises if not label]
    problems += [f"{name}, markdown cell {cell}: exercise {label!r} has no "
                 f"````{{solution}} {label}```` directive"
                 for label, cell in exercises if label and label not in answered]
    problems += [f"{name}, markdown cell {cell}: {{solution}} {label!r} names no exercise "
                 f"of this notebook" for label, cell in solutions if label not in known]
    labels = [label for label, _ in exercises if label]
    problems += [f"{name}: exercise label {label!r} is used twice"
                 for label in sorted(set(labels)) if labels.count(label) > 1]
    assert not problems, "\n".join(problems)


# The checks themselves catch what they should (no notebook needed).

SYNTHETIC_EXERCISES = """Prose with ```inline``` code.

````{exercise} A title
:label: ex-two-fences
```python
# the exercise's own code is not a solution
```
````

````{solution} ex-two-fences
:class: dropdown

First part:
```python
a = 1
assert a == 1
```
Some text, a non-Python block (not run):
```text
a = 2
```
```{code-block} python
:caption: second part
b = 2
```
````

```{exercise}
:label: ex-prose
```
````{solution} ex-prose
:class: dropdown
Only words: no code to run.
````

:::{solution} ex-skipped
```python
# not run: needs a GPU
import torch
```
:::
"""


def test_solution_parser_finds_the_python_fences_of_solutions():
    nb = nbformat.v4.new_notebook(cells=[
        nbformat.v4.new_code_cell("x = 1"),
        nbformat.v4.new_markdown_cell(SYNTHETIC_EXERCISES),
        nbformat.v4.new_markdown_cell("```python\nnot_a_solution = 1\n```\n")])
    found = solution_fences(nb)
    assert [(s.name, s.code, s.cell, s.skip_reason) for s in found] == [
        ("solution ex-two-fences[1]", "a = 1\nassert a == 1\n", 1, None),
        ("solution ex-two-fences[2]", "b = 2\n", 1, None),
        ("solution ex-skipped[1]", "# not run: needs a GPU\nimport torch\n", 1,
         "needs a GPU"),
    ]
    lines = SYNTHETIC_EXERCISES.splitlines()
    for solution in found:  # `line` points at the first code line in the cell
        assert lines[solution.line - 1] == solution.code.splitlines()[0], solution
    assert exercise_labels(nb) == [("ex-two-fences", 1), ("ex-prose", 1)]
    assert solution_labels(nb) == [("ex-two-fences", 1), ("ex-prose", 1),
                                   ("ex-skipped", 1)]
    # a prose-only solution is allowed and yields no item
    assert "ex-prose" not in {s.label for s in found}


def _cell(outputs, tags=()):
    return nbformat.v4.new_code_cell("x", outputs=outputs, metadata={"tags": list(tags)})


def test_output_checks_catch_leaks_and_accept_figures():
    figure = nbformat.v4.new_output(
        "display_data", data={"image/png": "iVBORw0KGgo=",
                              "text/plain": "<Figure size 450x300 with 1 Axes>"})
    assert output_problems(_cell([figure])) == []
    leaked = nbformat.v4.new_output(
        "execute_result", data={"text/plain": "<Figure size 450x300 with 1 Axes>"},
        execution_count=1)
    generator = nbformat.v4.new_output(
        "execute_result", data={"text/plain": "<torch._C.Generator at 0x7f2883794310>"},
        execution_count=1)
    warning = nbformat.v4.new_output(
        "stream", name="stderr", text="/x.py:3: UserWarning: careful\n")
    error = nbformat.v4.new_output("error", ename="ValueError", evalue="bad",
                                   traceback=[])
    for output in (leaked, generator, warning, error):
        assert output_problems(_cell([output])), output
    assert output_problems(_cell([error], tags=["raises-exception"])) == []
    animation = nbformat.v4.new_output(
        "execute_result", execution_count=1,
        data={"text/html": 'frames[0] = "data:image/png;base64,AAAA0xabcdef12\\\nQQ=="',
              "text/plain": "<IPython.core.display.HTML object>"})
    assert output_problems(_cell([animation])) == []


DEMO_SOLUTIONS = """```{exercise}
:label: demo-pass
```
````{solution} demo-pass
```python
assert x == 3, "a solution sees the state of the notebook's last cell"
import matplotlib.pyplot as plt
fig, ax = plt.subplots()
ax.plot([1, 2])
fig
```
```python
plt.figure()
plt.show()
```
````

```{exercise}
:label: demo-fail
```
````{solution} demo-fail
```python
print("printed before the error")
y = x + 1
assert y == 5, f"y is {y}, not 5"
```
````

```{exercise}
:label: demo-skip
```
````{solution} demo-skip
```python
# not run: needs the internet
raise SystemExit
```
````

```{exercise}
:label: demo-prose
```
````{solution} demo-prose
Only words.
````
"""


def test_solution_items_run_after_the_notebook_in_its_kernel(tmp_path):
    """tests/nbval_solutions.py end to end: nbval runs a small notebook once, then its
    solutions in the same kernel; a raising solution fails with a clear message."""
    cells = [nbformat.v4.new_code_cell(
                 'x = 1\nwith open("runs.txt", "a") as runs:\n    runs.write("run\\n")'),
             nbformat.v4.new_markdown_cell(DEMO_SOLUTIONS),
             nbformat.v4.new_code_cell("x = 3")]
    for count, cell in enumerate((cells[0], cells[2]), 1):
        cell.execution_count = count
    nb = nbformat.v4.new_notebook(cells=cells)
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    path = tmp_path / "demo.ipynb"
    nbformat.write(nb, path)
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(REPO_ROOT / "tests"), str(REPO_ROOT / "scripts"), env.get("PYTHONPATH", "")])
    report = tmp_path / "report.xml"
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-c", str(REPO_ROOT / "pyproject.toml"),
         "--rootdir", str(tmp_path), "-p", "nbval_images", "-p", "nbval_solutions",
         "--color=no", f"--junitxml={report}", str(path)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
    log = result.stdout + result.stderr
    outcomes = {}
    for case in ElementTree.parse(report).iter("testcase"):
        found = [child for child in case if child.tag in ("failure", "error", "skipped")]
        outcomes[case.get("name")] = (
            (found[0].tag, found[0].get("message", "") + (found[0].text or ""))
            if found else ("passed", ""))
    assert {name: outcome for name, (outcome, _) in outcomes.items()} == {
        "Cell 0": "passed", "Cell 1": "passed",
        "solution demo-pass[1]": "passed", "solution demo-pass[2]": "passed",
        "solution demo-fail[1]": "failure", "solution demo-skip[1]": "skipped"}, log
    assert (tmp_path / "runs.txt").read_text() == "run\n", "the notebook ran more than once"
    failure = outcomes["solution demo-fail[1]"][1]
    for expected in ("demo.ipynb, solution demo-fail[1] (markdown cell 1, line 23) "
                     "raised AssertionError: y is 4, not 5",
                     "3 | assert y == 5", "printed before the error", "Traceback:"):
        assert expected in failure, failure
    assert "not run: needs the internet" in outcomes["solution demo-skip[1]"][1]
    assert "<Figure" not in log, log
