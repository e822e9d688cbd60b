"""Sphinx extension: drop duplicate <script> entries from every page.

sphinx-thebe (loaded by Jupyter Book) adds an inline script declaring
``const THEBE_JS_URL``; with Sphinx 7.4 it reaches the page twice (once registered with
filename ``None``, once with ``""``, which Sphinx does not recognise as the same), and
the browser raises "Identifier 'THEBE_JS_URL' has already been declared" on every
page. Registered in ``_config.yml`` under ``sphinx.local_extensions``.
"""

from __future__ import annotations


def _key(script) -> tuple:
    attributes = getattr(script, "attributes", {}) or {}
    return (getattr(script, "filename", script) or "", tuple(sorted(attributes.items())))


def drop_duplicate_scripts(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if not isinstance(scripts, list):
        return
    seen: set[tuple] = set()
    unique = []
    for script in scripts:
        key = _key(script)
        if key not in seen:
            seen.add(key)
            unique.append(script)
    scripts[:] = unique


def setup(app):
    app.connect("html-page-context", drop_duplicate_scripts)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
