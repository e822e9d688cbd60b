"""The notebooks as Colab gets them (``colab/``, written by ``scripts/make_colab.py``):
up to date, no MyST syntax a reader would see as source, solutions closed, links that
work outside the repository, and code and outputs exactly the source's."""

from __future__ import annotations

import json
import re
from urllib.parse import urlparse

import pytest
import yaml
from course_env import REPO_ROOT
from repo_scripts import load_script

make_colab = load_script("scripts/make_colab.py")
COLAB = REPO_ROOT / "colab"
# What Colab and classic Jupyter would show as raw source (beyond make_colab.RAW_MYST)
FORBIDDEN = ("{exercise}", "{solution}", "{admonition}", "{doc}", "{term}", "{cite}",
             "{ref}", "{numref}", ":label:", ":class:", ":::")


def copies() -> list:
    return sorted(COLAB.rglob("*.ipynb"))


def markdown_cells(path) -> list[str]:
    cells = json.loads(path.read_text())["cells"]
    return ["".join(cell["source"]) for cell in cells if cell["cell_type"] == "markdown"]


def outside_code(text: str) -> str:
    """The Markdown without fenced code blocks (code may mention anything)."""
    return re.sub(r"^```[^\n]*\n.*?^```[ \t]*$", "", text, flags=re.M | re.S)


def test_committed_copies_are_up_to_date():
    expected = make_colab.expected_copies()
    assert expected, "no notebooks found in _toc.yml"
    stale = [path.relative_to(REPO_ROOT).as_posix() for path, text in expected.items()
             if not path.is_file() or path.read_text() != text]
    extra = [path.relative_to(REPO_ROOT).as_posix() for path in copies()
             if path not in expected]
    assert not stale and not extra, (
        f"colab/ is out of date (stale or missing: {stale}; without a source: {extra}); "
        "run `make colab` and commit colab/")


def test_every_notebook_of_the_book_and_every_student_version_has_a_copy():
    book = make_colab.Book.load()
    wanted = {COLAB / f"{doc}.ipynb" for doc, path in book.docs.items()
              if path.suffix == ".ipynb"}
    wanted |= {COLAB / "student" / path.name
               for path in (REPO_ROOT / "student").glob("*.ipynb")}
    assert wanted and wanted <= set(copies())


@pytest.mark.parametrize("path", copies(), ids=lambda p: p.relative_to(COLAB).as_posix())
def test_copy_shows_no_myst_syntax(path):
    problems = []
    for index, text in enumerate(markdown_cells(path)):
        prose = outside_code(text)
        found = [token for token in FORBIDDEN if token in prose]
        raw = make_colab.RAW_MYST.search(prose)
        if found or raw:
            problems.append((index, found or raw[0]))
        for url in re.findall(r"\]\(([^)\s]+)", prose):
            if not (urlparse(url).scheme in ("http", "https", "mailto")
                    or url.startswith("#")):
                problems.append((index, f"relative link {url}"))
        if prose.count("<details>") != prose.count("</details>"):
            problems.append((index, "unbalanced <details>"))
    assert problems == []


@pytest.mark.parametrize("path", copies(), ids=lambda p: p.relative_to(COLAB).as_posix())
def test_copy_keeps_code_and_outputs_and_closes_every_solution(path):
    copy = json.loads(path.read_text())
    source = json.loads((REPO_ROOT / copy["metadata"]["colab_copy"]["source"]).read_text())
    assert len(copy["cells"]) == len(source["cells"])
    for ours, theirs in zip(copy["cells"], source["cells"], strict=True):
        assert ours["cell_type"] == theirs["cell_type"]
        if ours["cell_type"] == "code":
            assert ours == theirs, "code cells and their outputs are copied unchanged"
    solutions = sum(text.count("{solution}") for text in (
        "".join(c["source"]) for c in source["cells"] if c["cell_type"] == "markdown"))
    closed = sum(text.count("<details>\n<summary><b>Solution</b>")
                 for text in markdown_cells(path))
    assert closed == solutions, "every solution sits in a closed <details> block"


def test_website_address_is_the_github_pages_of_the_repository():
    config = yaml.safe_load((REPO_ROOT / "_config.yml").read_text())
    owner, repo = urlparse(config["repository"]["url"]).path.strip("/").split("/")
    assert make_colab.site_url() == f"https://{owner}.github.io/{repo}/"


SAMPLE = """\
(sec-edges)=
## Edges

% a comment for authors
A {term}`kernel` and {term}`feature maps <feature map>`, as in
{doc}`01_convolution_operation` and {doc}`the explorer <../explorer>`; see
{ref}`sec-edges`, {ref}`ch2-sample`, [lab 1](../student/lab01_filters.ipynb#task-1)
and [the lab](../labs/lab01_filters.ipynb). After {cite}`lecun1998gradient`,
{cite:t}`marr1980theory`, {cite}`simonyan2014very,zeiler2014visualizing`. Maths
$\\sqrt{g_x^2}$ and `code` stay.

```{exercise} Blur sizes
:label: ch2-sample

Try $k = 3$.
```

````{solution} ch2-sample
:class: dropdown

```python
print({"term": 1})
```
````

```{admonition} One possible answer
:class: dropdown

Zero padding.
```

```{note}
Read {term}`stride`.
```
"""


def test_translation_of_each_construct():
    book = make_colab.Book.load()
    book.scan("chapters/02_classic_kernels", SAMPLE)
    ctx = make_colab.Context(book=book, doc="chapters/02_classic_kernels")
    out = make_colab.translate(SAMPLE, ctx)
    site = make_colab.site_url()
    assert not make_colab.RAW_MYST.search(outside_code(out)), out
    assert "(sec-edges)=" not in out and "% a comment" not in out
    assert "A kernel and feature maps, as in" in out
    assert f"[The convolution operation]({site}chapters/01_convolution_operation.html)" \
        in out or f"]({site}chapters/01_convolution_operation.html)" in out
    assert f"[the explorer]({site}explorer.html)" in out
    assert f"[Edges]({site}chapters/02_classic_kernels.html#sec-edges)" in out
    assert f"({site}chapters/02_classic_kernels.html#ch2-sample)" in out
    assert f"[lab 1]({site}student/lab01_filters.html#task-1)" in out
    assert f"[the lab]({site}student/lab01_filters.html)" in out
    assert f"([LeCun et al., 1998]({site}bibliography.html))" in out
    assert f"[Marr and Hildreth (1980)]({site}bibliography.html)" in out
    assert "Simonyan and Zisserman, 2014; Zeiler and Fergus, 2014" in out
    assert "$\\sqrt{g_x^2}$ and `code` stay." in out
    assert "> **Exercise 2.1** (Blur sizes)\n>\n> Try $k = 3$." in out
    assert ("<details>\n<summary><b>Solution</b> (click to show)</summary>\n\n"
            "```python\nprint({\"term\": 1})\n```\n\n</details>") in out
    assert "<summary><b>One possible answer</b> (click to show)</summary>" in out
    assert "> **Note**\n>\n> Read stride." in out


@pytest.mark.parametrize("text, message", [
    ("```{figure} x.png\n```", "unknown directive {figure}"),
    ("see {abbr}`x`", "unknown role {abbr}"),
    ("{doc}`nowhere`", "names no page"),
    ("[x](../data/file.txt)", "no page of the book"),
    ("{cite}`nobody2099`", "not in references.bib"),
    ("```{exercise}\nnever closed", "never closed"),
])
def test_unknown_constructs_stop_the_script(text, message):
    ctx = make_colab.Context(book=make_colab.Book.load(), doc="chapters/02_classic_kernels")
    with pytest.raises(make_colab.MystError, match=re.escape(message)):
        make_colab.translate(text, ctx)


def test_check_mode_reports_a_stale_copy(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(make_colab, "OUT_DIR", tmp_path / "colab")
    every = make_colab.sources
    monkeypatch.setattr(make_colab, "sources", lambda book: dict(  # one, for speed
        [min(every(book).items())]))
    assert make_colab.main([]) == 0
    assert make_colab.main(["--check"]) == 0
    first = sorted((tmp_path / "colab").rglob("*.ipynb"))[0]
    first.write_text(first.read_text().replace("e", "E", 1))
    (tmp_path / "colab" / "old.ipynb").write_text("{}")
    assert make_colab.main(["--check"]) == 1
    report = capsys.readouterr().out
    assert "stale or missing" in report and "no source: " in report
