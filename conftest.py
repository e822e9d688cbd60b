"""Shared pytest set-up for unit and notebook tests.

* Every notebook kernel nbval starts gets the course's notebook environment (offline
  guard, 2 threads, quiet progress bars, and for the test run PyTorch's non-vectorised
  CPU kernels; see ``scripts/course_env.py``).
* ``tests/nbval_images.py`` extends nbval so that pictures and HTML animations are
  compared too (RMS tolerance, see ``nbval_image_tolerance`` in ``pyproject.toml``).
* ``tests/nbval_solutions.py`` adds to each notebook's items one per Python fence of its
  exercise solutions (``{solution}`` directives), run after the notebook in its kernel.
"""

from course_env import apply_notebook_env

apply_notebook_env(testing=True)

pytest_plugins = ["nbval_images", "nbval_solutions"]
