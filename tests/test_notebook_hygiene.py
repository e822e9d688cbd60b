"""The committed outputs of every chapter and lab are clean and complete.

nbval proves that the committed outputs are reproducible; these tests prove that they
are worth reproducing: no warnings, tracebacks, object reprs or memory addresses; the
shared set-up cell first; executed top to bottom; alt text on every figure. Each failure
names the notebook and the cell as nbval does ("Cell N" counts code cells from 0).
"""

from __future__ import annotations

import re

import nbformat
import pytest
from course_env import REPO_ROOT
from nbtemplate import SETUP_CELL, SETUP_TAGS

NOTEBOOKS = sorted(REPO_ROOT.glob("chapters/*.ipynb")) + sorted(REPO_ROOT.glob("labs/*.ipynb"))
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


# The checks themselves catch what they should (no notebook needed).

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
