"""The shared first cell of every notebook, and a helper to create new notebooks.

Every chapter and lab starts with ``SETUP_CELL`` (tagged ``remove-cell`` so the website
hides it). Outside the repository (Colab, a downloaded notebook) it clones the course
and puts its ``utils`` on ``sys.path``; it installs only packages Colab lacks, never
torch or torchvision. ``COURSE_REPO`` may name another clone source (a local path in
the tests). Inside the repository ``utils`` is already importable and it does nothing.
``tests/test_notebook_hygiene.py`` checks that every notebook starts with it.

    python scripts/nbtemplate.py chapters/07_new_topic.ipynb "Title"
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

REPO_URL = "https://github.com/cnn-kernels-course/cnn-kernels-and-feature-maps"

SETUP_CELL = f'''\
# Set-up for Colab and other fresh environments: get the course's `utils` package.
try:
    import utils.kernels  # noqa: F401 (only asks: is the course importable?)
except ModuleNotFoundError:
    import os
    import subprocess
    import sys

    repo = os.environ.get("COURSE_REPO", "{REPO_URL}")
    course_dir = os.path.abspath("cnn-kernels-course")
    if not os.path.isdir(course_dir):
        subprocess.run(["git", "clone", "--depth", "1", repo, course_dir], check=True)
    requirements = os.path.join(course_dir, "requirements-colab.txt")
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", requirements],
                   check=True)
    sys.path.insert(0, course_dir)'''

SETUP_TAGS = ["remove-cell"]


def setup_cell() -> nbformat.NotebookNode:
    return nbformat.v4.new_code_cell(SETUP_CELL, metadata={"tags": list(SETUP_TAGS)})


def new_notebook(title: str) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    nb.metadata["language_info"] = {"name": "python"}
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {title}"), setup_cell()]
    return nb


if __name__ == "__main__":
    target, title = Path(sys.argv[1]), sys.argv[2]
    nbformat.write(new_notebook(title), target)
