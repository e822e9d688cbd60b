"""Write the notebooks as Colab and plain Jupyter get them: ``colab/``, MyST made plain.

    python scripts/make_colab.py          # rewrite colab/ (``make colab``)
    python scripts/make_colab.py --check  # exit 1 if a copy is missing, stale or extra

The chapters are written in MyST Markdown: ``{exercise}`` and ``{solution}``
directives, admonitions, and the roles ``{term}``, ``{cite}``, ``{doc}``, ``{ref}``.
The website (Jupyter Book) and JupyterLab with ``jupyterlab-myst`` render them; Colab
and the classic Jupyter interfaces show them as source, solutions in plain sight. This
script writes a copy of every notebook of ``_toc.yml`` and of every student version
(``student/*.ipynb``) to ``colab/<same path>``, in which each Markdown cell is plain
Markdown that every renderer shows well:

* an exercise becomes a block quote headed **Exercise 2.1** (numbered as on the
  website), a solution an HTML ``<details>`` block that stays closed until the reader
  opens it, an admonition a block quote with its title in bold (``:class: dropdown``:
  a ``<details>`` block);
* ``{term}`` becomes its text; ``{doc}``, ``{ref}``, ``{numref}`` and links to other
  notebooks become links to the website's pages; ``{cite}`` becomes "(Author et al.,
  year)", as on the website, linked to its bibliography; ``(label)=`` targets and ``%``
  comments are dropped; maths stays ``$...$`` / ``$$...$$``.

Code cells and outputs are copied unchanged. The website's address is ``html.baseurl``
of ``_config.yml`` (the one place it is written). A construct this script does not
know stops it with an error naming the notebook, so nothing raw reaches a reader;
``tests/test_make_colab.py`` fails when a committed copy is stale or shows MyST syntax,
and ``_ext/colab_links.py`` points the website's Colab and download buttons at these
copies.
"""

from __future__ import annotations

import argparse
import codecs
import copy
import json
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

import latexcodec  # noqa: F401 (registers the "ulatex" codec)
import yaml
from course_env import REPO_ROOT

OUT_DIR = REPO_ROOT / "colab"
STUDENT_DIR = REPO_ROOT / "student"
CONFIG_FILE = REPO_ROOT / "_config.yml"
TOC_FILE = REPO_ROOT / "_toc.yml"
BIB_FILE = REPO_ROOT / "references.bib"

# Admonitions shown as a block quote with this title when the directive gives none.
ADMONITIONS = {"note": "Note", "tip": "Tip", "hint": "Hint", "important": "Important",
               "warning": "Warning", "caution": "Caution", "attention": "Attention",
               "danger": "Danger", "error": "Error", "seealso": "See also",
               "admonition": ""}
DIRECTIVE = re.compile(
    r"^(?P<indent>[ ]{0,3})(?P<fence>`{3,}|:{3,})\{(?P<name>[\w:-]+)\}[ \t]*(?P<arg>.*)$")
OPTION = re.compile(r"^:(?P<key>[\w-]+):[ \t]*(?P<value>.*)$")
ROLE = re.compile(r"\{(?P<name>[\w:-]+)\}`(?P<content>[^`]*)`")
EXPLICIT = re.compile(r"^(?P<text>.*?)\s*<(?P<target>[^<>]+)>$", re.S)
TARGET_LINE = re.compile(r"^\((?P<label>[\w:.-]+)\)=[ \t]*$")
HEADING = re.compile(r"^(?P<hashes>#{1,6})[ \t]+(?P<text>.+?)[ \t]*#*[ \t]*$")
LINK = re.compile(r"(?P<bang>!?)\[(?P<text>[^\]]*)\]\((?P<url>[^)\s]+)(?P<title>\s+\"[^\"]*\")?\)")
# What a reader must never see in a copy (tests/test_make_colab.py uses it too).
RAW_MYST = re.compile(
    r"\{[\w:-]+\}`|^[ ]{0,3}(`{3,}|:{3,})\{[\w:-]+\}|^:(label|class|name|nonumber)"
    r":|^\([\w:.-]+\)=\s*$", re.M)


class MystError(ValueError):
    """A MyST construct this script cannot translate."""


# --------------------------------------------------------------------------------------
# The book: website address, documents, titles, labels, exercise numbers, references
# --------------------------------------------------------------------------------------

def site_url() -> str:
    """The website's address (``html.baseurl`` of ``_config.yml``), ending in "/"."""
    config = yaml.safe_load(CONFIG_FILE.read_text())
    url = (config.get("html") or {}).get("baseurl")
    if not url:
        raise MystError("_config.yml has no html.baseurl (the website's address)")
    return url.rstrip("/") + "/"


def toc_entries() -> list[tuple[str, bool]]:
    """(document, in a numbered part) for every document of ``_toc.yml``, in order."""
    toc = yaml.safe_load(TOC_FILE.read_text())
    entries = [(toc["root"], False)]

    def walk(items, numbered):
        for item in items or []:
            if "file" in item:
                entries.append((item["file"], numbered))
            walk(item.get("sections"), numbered)

    for part in toc.get("parts", []):
        walk(part.get("chapters"), bool(part.get("numbered")))
    walk(toc.get("chapters"), False)
    return entries


def source_path(doc: str) -> Path | None:
    for suffix in (".ipynb", ".md"):
        path = REPO_ROOT / f"{doc}{suffix}"
        if path.exists():
            return path
    return None


def markdown_of(path: Path) -> str:
    if path.suffix == ".ipynb":
        cells = json.loads(path.read_text())["cells"]
        return "\n\n".join("".join(c["source"]) for c in cells
                           if c["cell_type"] == "markdown")
    return path.read_text()


def strip_inline(text: str) -> str:
    """A heading's text without Markdown emphasis, code ticks or roles."""
    text = ROLE.sub(lambda m: EXPLICIT.sub(r"\g<text>", m["content"]), text)
    return re.sub(r"[*_`]", "", text).strip()


@dataclass
class Book:
    url: str
    docs: dict[str, Path]  # the pages of _toc.yml whose source exists
    pages: set[str] = field(default_factory=set)  # every page of _toc.yml
    titles: dict[str, str] = field(default_factory=dict)
    labels: dict[str, tuple[str, str]] = field(default_factory=dict)  # label: doc, text
    chapter_numbers: dict[str, int] = field(default_factory=dict)
    references: dict[str, tuple[str, str]] = field(default_factory=dict)  # key: (who, year)

    @classmethod
    def load(cls) -> Book:
        entries = [(doc, numbered) for doc, numbered in toc_entries()
                   if source_path(doc) is not None]
        book = cls(url=site_url(), docs={doc: source_path(doc) for doc, _ in entries},
                   pages={doc for doc, _ in toc_entries()})
        number = 0
        for doc, numbered in entries:
            if numbered:
                number += 1
                book.chapter_numbers[doc] = number
            book.scan(doc, markdown_of(book.docs[doc]))
        book.references = read_references(BIB_FILE)
        return book

    def scan(self, doc: str, text: str) -> None:
        """Title, ``(label)=`` targets (named after the next heading) and exercise
        labels of one document."""
        lines = text.splitlines()
        pending = []
        exercise = 0
        for line in lines:
            heading = HEADING.match(line)
            target = TARGET_LINE.match(line.strip())
            directive = DIRECTIVE.match(line)
            if target:
                pending.append(target["label"])
            elif heading:
                title = strip_inline(heading["text"])
                self.titles.setdefault(doc, title)
                for label in pending:
                    self.labels[label] = (doc, title)
                pending = []
            if directive and directive["name"] == "exercise":
                exercise += 1
            if OPTION.match(line.strip()) and line.strip().startswith(":label:"):
                label = OPTION.match(line.strip())["value"].strip()
                self.labels[label] = (doc, f"Exercise {self.exercise_number(doc, exercise)}")

    def exercise_number(self, doc: str, index: int) -> str:
        chapter = self.chapter_numbers.get(doc)
        return f"{chapter}.{index}" if chapter is not None else str(index)

    def page(self, doc: str) -> str | None:
        """The website's page for ``doc``: itself, or for a lab's solution version
        (``labs/x``) the student version the website shows (``student/x``)."""
        if doc in self.pages:
            return doc
        student = "student/" + doc.removeprefix("labs/")
        return student if doc.startswith("labs/") and student in self.pages else None

    def page_url(self, doc: str, fragment: str = "") -> str:
        return self.url + doc + ".html" + (f"#{fragment}" if fragment else "")


def read_references(path: Path) -> dict[str, tuple[str, str]]:
    """``{key: ("LeCun et al.", "1998")}`` for every entry of the BibTeX file."""
    from pybtex.database import parse_file

    def plain(text: str) -> str:
        return codecs.decode(text, "ulatex").replace("{", "").replace("}", "")

    references = {}
    for key, entry in parse_file(str(path)).entries.items():
        people = entry.persons.get("author") or entry.persons.get("editor") or []
        names = [plain(" ".join(person.prelast_names + person.last_names))
                 for person in people]
        if len(names) >= 3:
            who = f"{names[0]} et al."
        elif len(names) == 2:
            who = f"{names[0]} and {names[1]}"
        else:
            who = names[0] if names else plain(entry.fields.get("title", key))
        references[key] = (who, entry.fields.get("year", "n.d."))
    return references


# --------------------------------------------------------------------------------------
# Markdown: directives, roles, links
# --------------------------------------------------------------------------------------

@dataclass
class Context:
    book: Book
    doc: str  # the document being translated, e.g. "chapters/02_classic_kernels"
    exercises: int = 0

    def fail(self, message: str) -> MystError:
        return MystError(f"{self.doc}: {message} (teach scripts/make_colab.py about it)")


def resolve_doc(target: str, ctx: Context) -> str:
    """A ``{doc}`` target or relative link as a document name of the book."""
    target = target.strip()
    if target.startswith("/"):
        name = target.lstrip("/")
    else:
        parts = []
        for part in (PurePosixPath(ctx.doc).parent / target).parts:
            if part == "..":
                if not parts:
                    raise ctx.fail(f"the link {target!r} leaves the book")
                parts.pop()
            elif part != ".":
                parts.append(part)
        name = "/".join(parts)
    for suffix in (".ipynb", ".md", ".html"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name


def role(match: re.Match, ctx: Context) -> str:
    name, content = match["name"], match["content"]
    explicit = EXPLICIT.match(content)
    text, target = (explicit["text"], explicit["target"]) if explicit else (None, content)
    book = ctx.book
    if name == "term":
        return text or target
    if name == "doc":
        doc = book.page(resolve_doc(target, ctx))
        if doc is None:
            raise ctx.fail(f"{{doc}}`{content}` names no page of _toc.yml")
        return f"[{text or book.titles.get(doc, doc)}]({book.page_url(doc)})"
    if name in ("ref", "numref"):
        if target not in book.labels:
            raise ctx.fail(f"{{{name}}}`{content}`: no such label")
        doc, label_text = book.labels[target]
        return f"[{text or label_text}]({book.page_url(doc, target)})"
    if name in ("cite", "cite:p", "cite:t"):
        keys = [key.strip() for key in target.split(",")]
        missing = [key for key in keys if key not in book.references]
        if missing:
            raise ctx.fail(f"{{cite}}`{content}`: {missing} not in references.bib")
        # as sphinxcontrib-bibtex's author_year style: {cite} and {cite:p} give
        # "(LeCun et al., 1998)", {cite:t} gives "LeCun et al. (1998)"
        where = f"{book.url}bibliography.html"
        if name == "cite:t":
            return "; ".join(f"[{who} ({year})]({where})"
                             for who, year in map(book.references.get, keys))
        cited = "; ".join(f"{who}, {year}" for who, year in map(book.references.get, keys))
        return f"([{cited}]({where}))"
    if name == "math":
        return f"${content}$"
    if name in ("sub", "sup"):
        return f"<{name}>{content}</{name}>"
    if name == "kbd":
        return f"<kbd>{content}</kbd>"
    raise ctx.fail(f"unknown role {{{name}}}")


def link(match: re.Match, ctx: Context) -> str:
    url = match["url"]
    if re.match(r"^[a-z][a-z0-9+.-]*:", url, re.I) or url.startswith("#"):
        return match[0]
    path, _, fragment = url.partition("#")
    page = ctx.book.page(resolve_doc(path, ctx))
    if page is not None:
        new = ctx.book.page_url(page, fragment)
    else:
        raise ctx.fail(f"the relative link {url!r} is no page of the book")
    return f"{match['bang']}[{match['text']}]({new}{match['title'] or ''})"


def inline(text: str, ctx: Context) -> str:
    """Roles, then relative links outside inline code, of a stretch of Markdown that
    holds no code block."""
    text = ROLE.sub(lambda m: role(m, ctx), text)
    parts = re.split(r"(`[^`\n]*`)", text)
    return "".join(part if index % 2 else LINK.sub(lambda m: link(m, ctx), part)
                   for index, part in enumerate(parts))


def quote(text: str) -> str:
    return "\n".join(("> " + line).rstrip() for line in text.split("\n"))


def details(summary: str, body: str) -> str:
    return f"<details>\n<summary>{summary}</summary>\n\n{body}\n\n</details>"


def directive(name: str, arg: str, options: dict, body: str, ctx: Context) -> str:
    body = translate(body, ctx).strip("\n")
    title = inline(arg.strip(), ctx)
    dropdown = "dropdown" in options.get("class", "").split()
    if name == "exercise":
        ctx.exercises += 1
        heading = f"**Exercise {ctx.book.exercise_number(ctx.doc, ctx.exercises)}**"
        heading += f" ({title})" if title else ""
        return quote(f"{heading}\n\n{body}")
    if name == "solution":
        return details("<b>Solution</b> (click to show)", body)
    if name in ADMONITIONS:
        title = title or ADMONITIONS[name]
        if dropdown:
            return details(f"<b>{title}</b> (click to show)", body)
        return quote(f"**{title}**\n\n{body}" if title else body)
    if name in ("math",):
        return f"$$\n{body}\n$$"
    raise ctx.fail(f"unknown directive {{{name}}}")


def translate(text: str, ctx: Context) -> str:
    """One Markdown cell (or directive body) as plain Markdown."""
    lines = text.split("\n")
    out: list[str] = []
    plain: list[str] = []

    def flush():
        if plain:
            out.append(inline("\n".join(plain), ctx))
            plain.clear()

    i = 0
    while i < len(lines):
        line = lines[i]
        opening = DIRECTIVE.match(line)
        fence = re.match(r"^[ ]{0,3}(`{3,}|~{3,})", line)
        if opening:
            char, size = opening["fence"][0], len(opening["fence"])
            closing = re.compile(rf"^[ ]{{0,3}}{re.escape(char)}{{{size},}}[ \t]*$")
            end = next((j for j in range(i + 1, len(lines)) if closing.match(lines[j])),
                       None)
            if end is None:
                raise ctx.fail(f"{{{opening['name']}}} is never closed")
            block = lines[i + 1:end]
            options = {}
            while block and OPTION.match(block[0].strip()):
                option = OPTION.match(block[0].strip())
                options[option["key"]] = option["value"].strip()
                block = block[1:]
            flush()
            out.append(directive(opening["name"], opening["arg"], options,
                                 "\n".join(block), ctx))
            i = end + 1
            continue
        if fence:  # an ordinary code block: copied as it is
            marker = fence.group(1)
            closing = re.compile(rf"^[ ]{{0,3}}{re.escape(marker[0])}{{{len(marker)},}}[ \t]*$")
            end = next((j for j in range(i + 1, len(lines)) if closing.match(lines[j])),
                       len(lines) - 1)
            flush()
            out.append("\n".join(lines[i:end + 1]))
            i = end + 1
            continue
        if TARGET_LINE.match(line.strip()) or re.match(r"^%", line):
            i += 1
            if not plain and i < len(lines) and not lines[i].strip():
                i += 1
            continue
        plain.append(line)
        i += 1
    flush()
    return "\n".join(out)


# --------------------------------------------------------------------------------------
# Notebooks
# --------------------------------------------------------------------------------------

def split_lines(text: str) -> list[str]:
    return text.splitlines(keepends=True)


def colab_notebook(source: Path, doc: str, book: Book) -> dict:
    """The notebook at ``source`` with plain-Markdown cells (``doc`` is its page name,
    for exercise numbers and relative links)."""
    notebook = json.loads(source.read_text())
    result = copy.deepcopy(notebook)
    ctx = Context(book=book, doc=doc)
    for cell in result["cells"]:
        if cell["cell_type"] != "markdown":
            continue
        text = "".join(cell["source"])
        new = translate(text, ctx)
        leftover = RAW_MYST.search(new)
        if leftover:
            raise ctx.fail(f"MyST syntax {leftover[0]!r} survives")
        cell["source"] = split_lines(new)
    result["metadata"]["colab_copy"] = {
        "source": source.relative_to(REPO_ROOT).as_posix(),
        "website": book.page_url(doc) if doc in book.docs else book.url,
        "generated_by": "scripts/make_colab.py (edit the source, then run make colab)",
    }
    return result


def notebook_text(notebook: dict) -> str:
    """As nbformat writes notebooks (indent 1, UTF-8, trailing newline)."""
    return json.dumps(notebook, indent=1, ensure_ascii=False, sort_keys=True) + "\n"


def sources(book: Book) -> dict[Path, tuple[Path, str]]:
    """``{copy: (source, page name)}`` for every notebook of the book and every
    student version of a lab."""
    found = {}
    for doc, path in book.docs.items():
        if path.suffix == ".ipynb":
            found[OUT_DIR / f"{doc}.ipynb"] = (path, doc)
    for path in sorted(STUDENT_DIR.glob("*.ipynb")):
        doc = f"student/{path.stem}"
        page = doc if doc in book.docs else f"labs/{path.stem}"
        found[OUT_DIR / "student" / path.name] = (path, page)
    return found


def expected_copies() -> dict[Path, str]:
    """``{path under colab/: file text}`` as this script writes them."""
    book = Book.load()
    return {target: notebook_text(colab_notebook(source, doc, book))
            for target, (source, doc) in sorted(sources(book).items())}


def shown(path: Path) -> str:
    return path.relative_to(OUT_DIR.parent).as_posix()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true",
                        help="compare colab/ with what would be written, write nothing")
    args = parser.parse_args(argv)
    try:
        copies = expected_copies()
    except MystError as error:
        print(f"make_colab: {error}", file=sys.stderr)
        return 2
    existing = set(OUT_DIR.rglob("*.ipynb")) if OUT_DIR.exists() else set()
    extra = sorted(existing - set(copies))
    if args.check:
        stale = [path for path, text in copies.items()
                 if not path.exists() or path.read_text() != text]
        for path in stale:
            print(f"stale or missing: {shown(path)}")
        for path in extra:
            print(f"no source: {shown(path)}")
        if stale or extra:
            print("run `make colab` (python scripts/make_colab.py) and commit colab/")
            return 1
        return 0
    for path in extra:
        path.unlink()
        print(f"removed {shown(path)}")
    for path, text in copies.items():
        if path.exists() and path.read_text() == text:
            continue
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        print(f"wrote {shown(path)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
