"""Sphinx extension: show each notebook's expected run time near the top of its page.

Reads ``execution_times.json`` (written by ``scripts/execute_notebooks.py``) and puts a
small admonition right under the page title of every notebook that has a recorded
time, linking to the execution report. The notebooks themselves are not modified.
Registered in ``_config.yml`` under ``sphinx.local_extensions``.
"""

from __future__ import annotations

import json
from pathlib import Path

from docutils import nodes
from sphinx import addnodes

TIMES_FILE = "execution_times.json"
REPORT_DOC = "execution_report"


def format_seconds(seconds: float) -> str:
    """``about 5 s`` under a minute, ``about 1 min 20 s`` above (nearest 5 s)."""
    if seconds < 60:
        return f"about {max(1, round(seconds))} s"
    minutes, rest = divmod(int(5 * round(seconds / 5)), 60)
    return f"about {minutes} min" + (f" {rest} s" if rest else "")


def load_times(srcdir: str | Path) -> dict[str, float]:
    path = Path(srcdir) / TIMES_FILE
    try:
        return dict(json.loads(path.read_text()).get("notebooks", {}))
    except (OSError, ValueError):
        return {}


def runtime_node(docname: str, seconds: float, cores: str = "2") -> nodes.Element:
    """The admonition: run time and a link to the execution report."""
    admonition = nodes.admonition(classes=["note", "runtime-badge"])
    admonition += nodes.title(text="Run time")
    paragraph = nodes.paragraph()
    paragraph += nodes.Text(
        f"This notebook runs top to bottom in {format_seconds(seconds)} on the "
        f"reference machine ({cores} CPU cores). See the ")
    reference = addnodes.pending_xref(
        "", refdomain="std", reftype="doc", reftarget=f"/{REPORT_DOC}",
        refexplicit=True, refwarn=True, refdoc=docname)
    reference += nodes.inline(text="execution report", classes=["xref", "std", "std-doc"])
    paragraph += reference
    paragraph += nodes.Text(".")
    admonition += paragraph
    return admonition


def add_runtime_badge(app, doctree: nodes.document) -> None:
    env = app.env
    docname = env.docname
    source = Path(env.doc2path(docname))
    if source.suffix != ".ipynb":
        return
    times_path = Path(app.srcdir) / TIMES_FILE
    if times_path.exists():
        env.note_dependency(str(times_path))  # rebuild the page when times change
    key = source.resolve().relative_to(Path(app.srcdir).resolve()).as_posix()
    seconds = load_times(app.srcdir).get(key)
    if seconds is None:
        return
    section = next(iter(doctree.findall(nodes.section)), None)
    if section is None:
        return
    titles = [index for index, child in enumerate(section.children)
              if isinstance(child, nodes.title)]
    position = titles[0] + 1 if titles else 0
    section.insert(position, runtime_node(docname, seconds))


def setup(app):
    app.connect("doctree-read", add_runtime_badge)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
