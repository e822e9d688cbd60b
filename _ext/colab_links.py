"""Sphinx extension: the Colab and .ipynb download buttons open the plain-Markdown copy.

sphinx-book-theme's launch button opens ``<page>.ipynb`` of the repository in Colab,
and its download button hands out the page's source. Both are written in MyST, which
Colab and the classic Jupyter interfaces show as source (solutions in plain sight).
``scripts/make_colab.py`` (``make colab``) writes a copy of every notebook in plain
Markdown to ``colab/<page>.ipynb``; this extension

* points each notebook page's Colab button at ``colab/<page>.ipynb`` in the
  repository (same branch and repository as the theme's button);
* points its ``.ipynb`` download button at the same copy, shipped with the site as
  ``_build/html/colab/<page>.ipynb``.

A notebook page without a copy keeps the theme's buttons and logs a warning (an error
under ``-W``) that says to run ``make colab``. Registered in ``_config.yml`` under
``sphinx.local_extensions``; ``tests/test_browser.py`` checks the built buttons.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

from sphinx.util import logging

COPIES = "colab"
logger = logging.getLogger(__name__)


def copy_of(app, pagename: str) -> Path | None:
    path = Path(app.srcdir) / COPIES / f"{pagename}.ipynb"
    return path if path.is_file() else None


def buttons(context, label: str) -> list[dict]:
    for group in context.get("header_buttons", []):
        if group.get("label") == label:
            return group.get("buttons", [])
    return []


def rewrite_buttons(app, pagename: str, templatename, context, doctree) -> None:
    source = context.get("page_source_suffix")
    if source != ".ipynb":
        return
    copy = copy_of(app, pagename)
    if copy is None:
        logger.warning(f"{pagename}: no plain-Markdown copy {COPIES}/{pagename}.ipynb "
                       "for Colab; run `make colab`", type="colab_links")
        return
    relative = copy.relative_to(Path(app.srcdir)).as_posix()
    for button in buttons(context, "launch-buttons"):
        if button.get("text") == "Colab":
            # .../github/<org>/<repo>/blob/<branch>/<path of the page's notebook>
            button["url"] = re.sub(r"(/github/[^/]+/[^/]+/blob/[^/]+/).*$",
                                   lambda m: m.group(1) + relative, button["url"])
    for button in buttons(context, "download-buttons"):
        if button.get("label") in ("download-notebook-button", "download-source-button") \
                and button.get("text") == ".ipynb":
            button["url"] = context["pathto"](relative, 1)
            button["tooltip"] = "Download the notebook (plain Markdown, runs anywhere)"


def ship_copies(app, exception) -> None:
    """Copy ``colab/`` into the site, so the download buttons have their files."""
    if exception is not None or app.builder.format != "html":
        return
    source = Path(app.srcdir) / COPIES
    if source.is_dir():
        shutil.copytree(source, Path(app.outdir) / COPIES, dirs_exist_ok=True)


def setup(app):
    # after sphinx-book-theme has added its buttons (priority 501)
    app.connect("html-page-context", rewrite_buttons, priority=600)
    app.connect("build-finished", ship_copies)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
