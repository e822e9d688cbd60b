"""pytest plugin: nbval runs the code of every exercise solution after its notebook.

A chapter states its exercises in MyST markdown (sphinx-exercise)::

    ```{exercise}
    :label: ch5-shift
    ...
    ```
    ````{solution} ch5-shift
    :class: dropdown
    ```python
    ...  # asserts what the prose of the solution claims
    ```
    ````

The book shows that code but never runs it. This plugin makes nbval (0.11) run it:
every ```` ```python ```` fence inside a ``{solution}`` directive becomes one more item of
its notebook, collected after the notebook's own cells and named after the exercise,
``chapters/05_tinycnn_mnist.ipynb::solution ch5-shift[1]`` (``[n]`` counts the fences
of one solution). The item executes the fence in the notebook's kernel, the same
kernel nbval has just run every cell of the notebook in, so the notebook is executed
once, not once more per solution. The solution's outputs are not compared (there are
no committed ones); the item fails when the code raises, naming the notebook, the
exercise label, the exception, the code with line numbers and the kernel's traceback.
Figures a solution draws go to the inline backend (no window, nothing blocks) and are
closed afterwards; what the code displays is only shown when it fails, without reprs.

* A fence whose first line is ``# not run: <reason>`` is collected and skipped with
  that reason (pytest's ``-ra`` summary lists it).
* A solution without a Python fence (prose only) yields no item.
* A solution item is skipped, saying why, when a cell of its notebook raised or did
  not run (a ``-k`` selection, a timeout): it needs the state the whole notebook leaves.

Hook points: ``pytest_collectstart`` gives every nbval notebook collector
(``nbval.plugin.IPyNbFile``) a subclass whose ``collect`` yields nbval's cell items,
then the solution items; a solution item is an ``nbval.plugin.IPyNbCell`` with output
checking off, whose ``runtest`` is nbval's own (same kernel, same timeout);
``pytest_runtest_makereport`` records which notebook cells ran and whether one raised.
The parser (``iter_directives``, ``solution_fences``, ``exercise_labels``) needs
neither nbval nor a kernel; ``tests/test_notebook_hygiene.py`` tests it and checks that
every exercise of the chapters has a solution.

Loaded by the root ``conftest.py`` (``pytest_plugins``), next to ``nbval_images``.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest

PYTHON_INFO = {"python", "python3", "py", "ipython", "ipython3"}
NOT_RUN = re.compile(r"^#\s*not run:\s*(?P<reason>\S.*?)\s*$", re.IGNORECASE)
_OPENER = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,}|:{3,})\s*(?P<info>.*?)\s*$")
_DIRECTIVE = re.compile(r"^\{(?P<name>[A-Za-z0-9_:+-]+)\}\s*(?P<argument>.*)$")
_OPTION = re.compile(r"^:(?P<key>[A-Za-z0-9_-]+):\s*(?P<value>.*)$")
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


# --------------------------------------------------------------------------------------
# Parsing MyST markdown (no nbval, no kernel)
# --------------------------------------------------------------------------------------

@dataclass
class Block:
    """One fenced block of MyST markdown: a code fence or a directive."""

    fence: str  # the opening fence, e.g. "````" or ":::"
    info: str  # what follows the fence: "python", "{solution} ch5-shift", ...
    line: int  # line of the opening fence in the text it was found in (1-based)
    body: list[str] = field(default_factory=list)

    @property
    def directive(self) -> str | None:
        match = _DIRECTIVE.match(self.info)
        return match.group("name") if match else None

    @property
    def argument(self) -> str:
        match = _DIRECTIVE.match(self.info)
        return match.group("argument").strip() if match else ""

    def options_and_content(self) -> tuple[dict[str, str], list[str], int]:
        """A directive's options (``:key: value`` lines or a ``---`` YAML block), its
        content lines, and how many body lines the options took."""
        options, body = {}, self.body
        if body and body[0].strip() == "---":
            end = next((i for i in range(1, len(body)) if body[i].strip() == "---"), None)
            if end is not None:
                for line in body[1:end]:
                    key, _, value = line.partition(":")
                    if key.strip():
                        options[key.strip()] = value.strip()
                return options, body[end + 1:], end + 1
        count = 0
        for line in body:
            match = _OPTION.match(line.strip())
            if match is None:
                break
            options[match.group("key")] = match.group("value").strip()
            count += 1
        return options, body[count:], count


def iter_blocks(lines: list[str], first_line: int = 1) -> Iterator[Block]:
    """The top-level fenced blocks of markdown ``lines`` (CommonMark fences of ```
    or ~~~, and MyST's ::: colon fences); a block ends at a line of the same fence
    character at least as long, and its body is not searched for further openers."""
    index = 0
    while index < len(lines):
        opener = _OPENER.match(lines[index])
        fence = opener.group("fence") if opener else ""
        if not opener or (fence[0] == "`" and "`" in opener.group("info")):
            index += 1
            continue
        block = Block(fence, opener.group("info"), first_line + index)
        closing = re.compile(rf"^ {{0,3}}{re.escape(fence[0])}{{{len(fence)},}}\s*$")
        index += 1
        while index < len(lines) and not closing.match(lines[index]):
            block.body.append(lines[index])
            index += 1
        index += 1  # the closing fence (or the end of the text: an unclosed block)
        yield block


def iter_directives(text: str, first_line: int = 1) -> Iterator[Block]:
    """Every MyST directive of a markdown text, nested ones included (a directive's
    content is markdown; the content of a code fence is not searched)."""
    for block in iter_blocks(text.splitlines(), first_line):
        if block.directive is None:
            continue
        yield block
        _, content, skipped = block.options_and_content()
        yield from iter_directives("\n".join(content), block.line + 1 + skipped)


def _code_fences(lines: list[str], first_line: int) -> Iterator[tuple[int, list[str]]]:
    """(line of the first code line, code lines) of every Python fence in ``lines``,
    looking inside nested directives too (``{code-block} python`` counts)."""
    for block in iter_blocks(lines, first_line):
        info = block.info
        name = block.directive
        if name is None:
            language = info.split()[0].lower() if info.split() else ""
            if language in PYTHON_INFO:
                yield block.line + 1, block.body
        elif name in ("code-block", "code", "sourcecode", "code-cell"):
            if block.argument.split()[:1] and block.argument.split()[0].lower() in PYTHON_INFO:
                _, content, skipped = block.options_and_content()
                yield block.line + 1 + skipped, content
        else:
            _, content, skipped = block.options_and_content()
            yield from _code_fences(content, block.line + 1 + skipped)


@dataclass(frozen=True)
class SolutionCode:
    """One Python fence of a ``{solution}`` directive of a notebook."""

    label: str  # the exercise the solution answers (the directive's argument)
    index: int  # 1-based, among the Python fences of that solution
    code: str
    cell: int  # index of the markdown cell in the notebook's cells (0-based)
    line: int  # line of the first code line in that cell's source (1-based)
    skip_reason: str | None = None  # from a first line "# not run: <reason>"

    @property
    def name(self) -> str:
        return f"solution {self.label or '(no label)'}[{self.index}]"


def _source(cell) -> str:
    source = cell.get("source", "")
    return "".join(source) if isinstance(source, list) else source


def _markdown_cells(nb) -> Iterator[tuple[int, str]]:
    for number, cell in enumerate(nb["cells"]):
        if cell.get("cell_type") == "markdown":
            yield number, _source(cell)


def solution_fences(nb) -> list[SolutionCode]:
    """Every Python fence inside a ``{solution}`` directive of notebook ``nb`` (an
    ``nbformat`` notebook or its JSON dict), in the order of the notebook."""
    found = []
    for number, text in _markdown_cells(nb):
        for directive in iter_directives(text):
            if directive.directive != "solution":
                continue
            _, content, skipped = directive.options_and_content()
            fences = _code_fences(content, directive.line + 1 + skipped)
            for index, (line, code_lines) in enumerate(fences, 1):
                first = next((item.strip() for item in code_lines if item.strip()), "")
                match = NOT_RUN.match(first)
                found.append(SolutionCode(
                    label=directive.argument, index=index,
                    code="\n".join(code_lines) + "\n", cell=number, line=line,
                    skip_reason=match.group("reason") if match else None))
    return found


def exercise_labels(nb) -> list[tuple[str, int]]:
    """(``:label:`` of each ``{exercise}`` directive, index of its markdown cell);
    an exercise without a label gives ``""``."""
    return [(directive.options_and_content()[0].get("label", ""), number)
            for number, text in _markdown_cells(nb)
            for directive in iter_directives(text) if directive.directive == "exercise"]


def solution_labels(nb) -> list[tuple[str, int]]:
    """(the exercise label each ``{solution}`` directive names, index of its cell)."""
    return [(directive.argument, number)
            for number, text in _markdown_cells(nb)
            for directive in iter_directives(text) if directive.directive == "solution"]


# --------------------------------------------------------------------------------------
# The pytest items (nbval)
# --------------------------------------------------------------------------------------

class SolutionError(Exception):
    """A solution's code raised (or timed out) in the notebook's kernel."""

    def __init__(self, message: str, details: str):
        super().__init__(message)
        self.details = details


def _numbered(code: str) -> str:
    lines = code.rstrip("\n").splitlines()
    width = len(str(len(lines)))
    return "\n".join(f"  {number:>{width}} | {line}" for number, line in enumerate(lines, 1))


def _printed(outputs) -> str:
    """What a solution printed (streams), and a word for each other output."""
    parts = []
    for output in outputs or []:
        kind = output.get("output_type")
        if kind == "stream":
            parts.append(_ANSI.sub("", output.get("text", "")).rstrip("\n"))
        elif kind in ("display_data", "execute_result"):
            data = output.get("data", {})
            plain = str(data.get("text/plain", ""))
            if any(mime.startswith("image/") for mime in data) or "<Figure" in plain:
                parts.append("[a figure]")
            elif kind == "execute_result":
                parts.append(f"[value: {plain[:200]}]")
    return "\n".join(part for part in parts if part)


def _classes():
    """nbval's notebook collector and cell item, extended (created once, on demand, so
    that importing this module needs no nbval)."""
    if _CLASSES:
        return _CLASSES["file"], _CLASSES["item"]
    from nbformat.v4 import new_code_cell
    from nbval.plugin import IPyNbCell, IPyNbFile, NbCellError

    class SolutionItem(IPyNbCell):
        """Runs one solution fence in its notebook's kernel, after the notebook."""

        def __init__(self, name, parent, solution: SolutionCode, cell_num: int):
            cell = new_code_cell(solution.code)
            options = defaultdict(bool, check=False)  # no committed outputs to compare
            super().__init__(name, parent, cell_num, cell, options)
            self.solution = solution

        @property
        def where(self) -> str:
            path = self.parent.fspath.relto(self.config.rootdir) or str(self.parent.fspath)
            return (f"{path}, {self.solution.name} (markdown cell {self.solution.cell}, "
                    f"line {self.solution.line})")

        def reportinfo(self):
            # pytest -v then shows the node id, chapters/x.ipynb::solution label[1]
            return self.fspath, 0, self.name

        def setup(self):
            super().setup()  # nbval: xfail after a timeout
            if self.solution.skip_reason is not None:
                self._skip(f"not run: {self.solution.skip_reason}")
            state = _state(self.parent)
            if state["raised"]:
                self._skip(f"not run, because {state['raised']} raised (a solution runs "
                           "in the state the whole notebook leaves)")
            missing = state["code_cells"] - len(state["ran"])
            if missing:
                self._skip(f"not run, because {missing} of the notebook's "
                           f"{state['code_cells']} code cells did not run (deselected?); "
                           "a solution runs in the state the whole notebook leaves")

        def _skip(self, reason: str):
            """Skip, reported at the notebook rather than at this plugin's line."""
            raise pytest.skip.Exception(f"{self.where}: {reason}",
                                        _use_item_location=True)

        def runtest(self):
            try:
                super().runtest()
            except NbCellError as error:
                raise self._solution_error(error) from None
            finally:
                self._close_figures()

        def _solution_error(self, error) -> SolutionError:
            failure = next((output for output in self.test_outputs or []
                            if output.get("output_type") == "error"), None)
            if failure is not None:
                message = (f"{self.where} raised {failure['ename']}: "
                           f"{_ANSI.sub('', str(failure['evalue']))}")
            else:  # a timeout, or a dead kernel
                message = f"{self.where} failed: {error}"
            details = [message, "", "Code (run after the whole notebook, in its kernel):",
                       _numbered(self.solution.code)]
            printed = _printed([output for output in self.test_outputs or []
                                if output.get("output_type") != "error"])
            if printed:
                details += ["", "Output before the error:", printed]
            if error.inner_traceback:
                details += ["", "Traceback:", _ANSI.sub("", error.inner_traceback).strip("\n")]
            return SolutionError(message, "\n".join(details))

        def _close_figures(self):
            """Close the figures a solution left open (the inline backend closes those it
            showed; this catches a figure of a solution that raised before showing it)."""
            kernel = self.parent.kernel
            if kernel is None or not kernel.is_alive() or self.parent.timed_out:
                return
            code = ("import sys as _sys\n"
                    "if 'matplotlib.pyplot' in _sys.modules:\n"
                    "    _sys.modules['matplotlib.pyplot'].close('all')\n"
                    "del _sys\n")
            try:
                msg_id = kernel.kc.execute(code, silent=True, store_history=False,
                                           allow_stdin=False, stop_on_error=False)
                kernel.await_reply(msg_id, timeout=self.output_timeout)
                kernel.await_idle(msg_id, timeout=self.output_timeout)
            except Exception:  # the solution's own result matters more
                pass

        def repr_failure(self, excinfo):
            if isinstance(excinfo.value, SolutionError):
                return excinfo.value.details
            return super().repr_failure(excinfo)

    class SolutionsNbFile(IPyNbFile):
        """nbval's notebook collector: the notebook's cells, then its solutions."""

        def collect(self):
            yield from super().collect()
            cells = [cell for cell in self.nb.cells if cell.cell_type == "code"]
            _state(self)["code_cells"] = len(cells)
            for solution in solution_fences(self.nb):
                yield SolutionItem.from_parent(
                    self, name=solution.name, solution=solution, cell_num=len(cells))

    _CLASSES.update(file=SolutionsNbFile, item=SolutionItem, cell=IPyNbCell,
                    base=IPyNbFile, error=NbCellError)
    return SolutionsNbFile, SolutionItem


_CLASSES: dict[str, type] = {}


def _state(notebook) -> dict:
    """Per notebook collector: its number of code cells, the cells that ran, the first
    that raised."""
    if not hasattr(notebook, "_solution_state"):
        notebook._solution_state = {"code_cells": 0, "ran": set(), "raised": None}
    return notebook._solution_state


def pytest_collectstart(collector):
    """Give every nbval notebook collector the solution-collecting subclass."""
    if type(collector).__name__ != "IPyNbFile":
        return
    try:
        solutions_file, _ = _classes()
    except ImportError:  # nbval not installed: nothing to extend
        return
    if type(collector) is _CLASSES["base"]:
        collector.__class__ = solutions_file


def pytest_runtest_makereport(item, call):
    """Record, per notebook, which of its cells ran and the first one that raised (a
    mere difference of outputs leaves the kernel's state complete)."""
    if call.when != "call" or not _CLASSES:
        return None
    if not isinstance(item, _CLASSES["cell"]) or isinstance(item, _CLASSES["item"]):
        return None
    state = _state(item.parent)
    state["ran"].add(item.cell_num)
    failure = call.excinfo
    if failure is None or state["raised"] or failure.errisinstance(pytest.skip.Exception):
        return None
    if failure.errisinstance(_CLASSES["error"]) and str(failure.value) == "Cell outputs differ":
        return None
    state["raised"] = f"Cell {item.cell_num}"
    return None
