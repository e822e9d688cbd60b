"""Sphinx extension: small accessibility repairs of the generated HTML.

The bibliography (sphinxcontrib-bibtex through docutils) is a ``<div role="list">``
whose entries have the role ``doc-biblioentry``. ARIA 1.2 deprecates that role, so
assistive technology, and axe-core's rule ``aria-required-children`` (impact
"critical"), no longer see list items in the list. The entries become plain
``listitem``s, which is what they are. Checked by the axe-core run of
``tests/test_browser.py``. Registered in ``_config.yml`` under
``sphinx.local_extensions``.
"""

from __future__ import annotations

DEPRECATED_ROLES = {' role="doc-biblioentry"': ' role="listitem"'}


def repair_roles(app, pagename, templatename, context, doctree) -> None:
    body = context.get("body")
    if not isinstance(body, str):
        return
    for old, new in DEPRECATED_ROLES.items():
        body = body.replace(old, new)
    context["body"] = body


def setup(app):
    app.connect("html-page-context", repair_roles)
    return {"version": "1.0", "parallel_read_safe": True, "parallel_write_safe": True}
