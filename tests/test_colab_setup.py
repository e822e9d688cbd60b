"""The notebooks' set-up cell works in a Colab-like environment and never touches torch.

Every notebook starts with ``scripts/nbtemplate.SETUP_CELL``: where ``utils`` is not
importable it clones the course (``COURSE_REPO``), pip-installs
``requirements-colab.txt`` and puts the clone on ``sys.path``, leaving the
preinstalled torch/torchvision alone. This test runs real notebooks, the copies that
the website's Colab button opens (``colab/``, plain Markdown), through that path,
offline, in an environment that looks like Colab:

* **Colab's packages.** A separate virtual environment, outside the repository, holds
  a torch/torchvision pair *different* from the course's lock (``COLAB_PACKAGES``)
  plus Jupyter, NumPy, SciPy, matplotlib and OpenCV, but not scikit-image or
  ipywidgets. It is built once and cached under ``~/.cache/cnn-course-colab-sim/``
  (``COURSE_COLAB_SIM_CACHE`` moves it), keyed by a hash of its specification and of
  the lock, and never modified afterwards: each run gets a fresh, small virtual
  environment that sees the cached one through a ``.pth`` file, as Colab's user site
  sits over its system packages. To build it, the packages other than torch and
  torchvision (with everything they need, CUDA libraries included) are hard-linked
  from the course's own environment, and the older torch/torchvision pair comes from
  the registry with ``--no-deps``.
* **The course's repository.** ``COURSE_REPO`` is a ``file://`` git repository made
  from the current working tree (tracked and untracked, not ignored, files), so the
  test checks what is about to be committed, on a fresh CI clone as on a laptop.
* **No network.** The kernel and everything it starts run behind
  ``tests/offline_guard`` (any connection but loopback fails); pip reads only a local
  wheelhouse of ``requirements-colab.txt``, downloaded with the cached environment.

It then asserts that the notebooks ran without errors, that ``utils`` came from the
clone, that the notebooks used the preinstalled torch/torchvision, that pip neither
installed, upgraded nor removed them (its log, the files' modification times and
RECORD), and that every requirement of ``requirements-colab.txt`` is satisfied
afterwards. First run on the reference machine: about 1 minute to build the cached
environment (plus the torch wheel's download when pip's cache lacks it) and 1 minute
to run the notebooks; later runs only the second.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from importlib import metadata
from pathlib import Path

import nbformat
import pytest
from course_env import REPO_ROOT
from nbtemplate import SETUP_CELL
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name
from packaging.version import Version

GUARD_DIR = Path(__file__).resolve().parent / "offline_guard"
COLAB_REQUIREMENTS = REPO_ROOT / "requirements-colab.txt"
LOCK_FILE = REPO_ROOT / "requirements-lock.txt"


# A matching pair from the registry, older than the course's lock (torch 2.14.1,
# torchvision 0.29.1), both CUDA builds, which run on CPU. "===" excludes local
# builds such as 2.13.0+cpu, with which the registry's torchvision cannot import.
COLAB_TORCH, COLAB_TORCHVISION = "2.13.0", "0.28.0"
COLAB_PACKAGES = (
    f"torch==={COLAB_TORCH}", f"torchvision==={COLAB_TORCHVISION}",
    "numpy", "scipy", "matplotlib", "opencv-python<5", "pillow", "tqdm",
    "ipykernel", "nbclient", "nbformat", "packaging",
)
# Colab lacks these; the set-up cell must install them from requirements-colab.txt.
EXPECTED_NEW = ("scikit-image", "ipywidgets")
# The copies that the website's Colab button opens (scripts/make_colab.py)
NOTEBOOKS = ("colab/chapters/00_getting_started.ipynb",
             "colab/chapters/02_classic_kernels.ipynb")
PROTECTED = ("torch", "torchvision")
CLONE_NAME = "cnn-kernels-course"  # the folder SETUP_CELL clones into
PROBE = "COLAB-SIM-PROBE "
BUILD_TIMEOUT_S = 1800


def cache_root() -> Path:
    default = Path.home() / ".cache" / "cnn-course-colab-sim"
    return Path(os.environ.get("COURSE_COLAB_SIM_CACHE") or default).expanduser()


def _digest(*parts: str) -> str:
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _python_tag() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _build_env() -> dict[str, str]:
    """This process's environment without the notebook settings conftest.py added
    (the offline guard would stop pip from reaching the registry)."""
    env = dict(os.environ)
    for name in ("PYTHONPATH", "COURSE_BLOCK_NETWORK", "PYTHONHASHSEED"):
        env.pop(name, None)
    return env


def _run(command: list[str], timeout: int = BUILD_TIMEOUT_S, **kwargs) -> str:
    result = subprocess.run(command, capture_output=True, text=True, timeout=timeout,
                            **kwargs)
    if result.returncode != 0:
        raise RuntimeError(f"{' '.join(map(str, command))} failed "
                           f"({result.returncode}):\n{result.stdout[-3000:]}\n"
                           f"{result.stderr[-3000:]}")
    return result.stdout


def _venv_python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _site_packages(venv: Path) -> Path:
    return venv / "lib" / f"python{_python_tag()}" / "site-packages"


class _Locked:
    """An exclusive lock on a file in the cache (two test runs may build at once)."""

    def __init__(self, path: Path):
        self.path = path

    def __enter__(self):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.file = open(self.path, "w")
        fcntl.flock(self.file, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc):
        self.file.close()


def _cached(name: str, build, valid=lambda target: True) -> Path:
    """``cache_root()/name``, built by ``build(path)`` unless a complete one exists
    (and passes ``valid``)."""
    target = cache_root() / name
    with _Locked(cache_root() / f"{name}.lock"):
        if (target / ".complete").exists() and valid(target):
            return target
        shutil.rmtree(target, ignore_errors=True)
        build(target)
        (target / ".complete").write_text("")
    return target


def _closure(names) -> dict:
    """The distributions installed in this process's environment that the
    requirements ``names`` need, recursively, with their extras (torch's CUDA
    libraries come through extras of ``cuda-toolkit``)."""
    found, done = {}, set()
    todo = [(Requirement(name), "") for name in names]
    while todo:
        requirement, extra = todo.pop()
        if requirement.marker and not requirement.marker.evaluate({"extra": extra}):
            continue
        key = canonicalize_name(requirement.name)
        dist = found.setdefault(key, metadata.distribution(requirement.name))
        for wanted in ("", *sorted(requirement.extras)):
            if (key, wanted) not in done:
                done.add((key, wanted))
                todo.extend((Requirement(line), wanted) for line in dist.requires or [])
    return found


def _copy_distribution(dist, site: Path) -> None:
    """Hard-link (or, across file systems, symlink) one installed distribution's
    files from its RECORD into ``site``; files outside site-packages (scripts, shared
    data) are left out."""
    root = Path(dist.locate_file(""))
    for entry in dist.files or []:
        if str(entry).startswith(".."):
            continue
        source, target = root / entry, site / entry
        if not source.is_file():  # e.g. __pycache__ entries never written
            continue
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)
        except OSError:
            os.symlink(source, target)


def colab_base() -> Path:
    """The cached Colab-like environment (built on first use, never modified).

    Colab's own packages (``COLAB_PACKAGES`` but torch/torchvision, and everything
    they need, torch's CUDA libraries included) are linked in from the course's
    environment, which already holds them, rather than downloaded a second time;
    then the older torch/torchvision pair is installed on top with ``--no-deps``.
    """
    key = _digest(_python_tag(), *COLAB_PACKAGES, LOCK_FILE.read_text())
    others = [name for name in COLAB_PACKAGES
              if canonicalize_name(Requirement(name).name) not in PROTECTED]
    torch_needs = [line for name in PROTECTED
                   for line in metadata.distribution(name).requires or []]

    def build(target: Path) -> None:
        _run([sys.executable, "-m", "venv", str(target)], env=_build_env())
        site = _site_packages(target)
        present = {canonicalize_name(path.name.split("-")[0])
                   for path in site.glob("*.dist-info")}  # pip, setuptools
        for name, dist in _closure([*others, *torch_needs]).items():
            if name not in present and name not in PROTECTED:
                _copy_distribution(dist, site)
        _run([str(_venv_python(target)), "-m", "pip", "install", "--quiet",
              "--progress-bar", "off", "--no-deps",
              *(name for name in COLAB_PACKAGES
                if canonicalize_name(Requirement(name).name) in PROTECTED)],
             env=_build_env())

    def valid(target: Path) -> bool:  # a symlinked file may have gone with .venv
        return all(path.exists() for path in _site_packages(target).rglob("*")
                   if path.is_symlink())

    return _cached(f"base-py{_python_tag()}-{key}", build, valid)


def colab_wheelhouse(base: Path) -> Path:
    """Wheels for ``requirements-colab.txt`` and their dependencies: what pip may use
    inside the offline notebook."""
    key = _digest(_python_tag(), COLAB_REQUIREMENTS.read_text())

    def build(target: Path) -> None:
        _run([str(_venv_python(base)), "-m", "pip", "download", "--quiet",
              "--progress-bar", "off", "--only-binary", ":all:", "-d", str(target),
              "-r", str(COLAB_REQUIREMENTS)], env=_build_env())

    return _cached(f"wheels-py{_python_tag()}-{key}", build)


def snapshot_repository(target: Path) -> Path:
    """A git repository holding the working tree's tracked and untracked, not ignored,
    files, committed: what a clone of the next commit will contain."""
    listing = _run(["git", "ls-files", "-z", "--cached", "--others",
                    "--exclude-standard"], cwd=REPO_ROOT)
    for name in filter(None, listing.split("\0")):
        source = REPO_ROOT / name
        if source.is_file():
            (target / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target / name)
    git = ["git", "-c", "user.name=colab-sim", "-c", "user.email=colab-sim@localhost",
           "-c", "commit.gpgsign=false", "-c", "init.defaultBranch=main"]
    _run([*git, "init", "-q"], cwd=target)
    _run([*git, "add", "-A"], cwd=target)
    _run([*git, "commit", "-q", "-m", "snapshot of the working tree"], cwd=target)
    return target


def _link_or_copy(source: str, target: str) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copy2(source, target)


def _dist_info(site: Path, name: str) -> Path | None:
    found = sorted(site.glob(f"{name}-*.dist-info"))
    return found[0] if found else None


def _fingerprint(site: Path, name: str) -> dict:
    """Version, modification times and RECORD digest of an installed package."""
    info = _dist_info(site, name)
    if info is None:
        return {}
    package = site / name
    return {
        "dist_info": info.name,
        "dist_info_mtime": info.stat().st_mtime_ns,
        "init_mtime": (package / "__init__.py").stat().st_mtime_ns,
        "record_sha256": hashlib.sha256((info / "RECORD").read_bytes()).hexdigest(),
    }


def _probe_cell() -> nbformat.NotebookNode:
    """A last cell that reports where torch, torchvision and utils came from and which
    versions of the Colab requirements are installed."""
    names = [Requirement(line).name for line in _requirement_lines()]
    source = textwrap.dedent(f"""\
        import importlib.metadata, json, torch, torchvision, utils
        report = {{"torch": [torch.__version__, torch.__file__],
                  "torchvision": [torchvision.__version__, torchvision.__file__],
                  "utils": utils.__file__, "versions": {{}}}}
        for name in {names!r}:
            report["versions"][name] = importlib.metadata.version(name)
        print({PROBE!r} + json.dumps(report))""")
    return nbformat.v4.new_code_cell(source)


def _requirement_lines() -> list[str]:
    lines = [line.split("#", 1)[0].strip() for line in COLAB_REQUIREMENTS.read_text()
             .splitlines()]
    return [line for line in lines if line]


RUNNER = """\
import sys
import nbformat
from nbclient import NotebookClient

for path in sys.argv[1:]:
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=600, kernel_name="python3",
                   resources={"metadata": {"path": "."}}).execute()
    nbformat.write(nb, path)
    print("executed", path, flush=True)
"""


def _notebook_env(home: Path, repo: Path, wheels: Path, data: Path, pip_log: Path,
                  run_venv: Path) -> dict[str, str]:
    """A clean, Colab-like, offline environment: no repository on PYTHONPATH."""
    env = {
        "PATH": os.pathsep.join([str(run_venv / "bin"),
                                 os.environ.get("PATH", "/usr/bin:/bin")]),
        "HOME": str(home),
        "LANG": "C.UTF-8",
        "TMPDIR": str(home),
        "COURSE_REPO": repo.as_uri(),
        "COURSE_DATA_DIR": str(data),
        "COURSE_BLOCK_NETWORK": "1",
        "PYTHONPATH": str(GUARD_DIR),  # only sitecustomize.py: the network guard
        "PIP_CONFIG_FILE": os.devnull,
        "PIP_NO_INDEX": "1",
        "PIP_FIND_LINKS": str(wheels),
        "PIP_DISABLE_PIP_VERSION_CHECK": "1",
        "PIP_LOG": str(pip_log),
        "COURSE_NUM_THREADS": "2",
        "OMP_NUM_THREADS": "2",
        "TQDM_DISABLE": "1",
        "PYDEVD_DISABLE_FILE_VALIDATION": "1",
        "MPLBACKEND": "module://matplotlib_inline.backend_inline",
    }
    if os.environ.get("COURSE_DATA_MIRROR"):
        env["COURSE_DATA_MIRROR"] = os.environ["COURSE_DATA_MIRROR"]
    return env


def pip_touched(log: str, names=PROTECTED) -> list[str]:
    """Lines of a pip log that collect, download, install or remove one of ``names``."""
    name = "(" + "|".join(re.escape(name) for name in names) + ")"
    alone = rf"{name}\b(?![-_.]?[a-z])"  # torch, not torchmetrics or torch-geometric
    patterns = [
        rf"(Collecting|Downloading|Attempting uninstall:|Uninstalling|"
        rf"Found existing installation:)\s+{alone}",
        rf"Processing\s+(\S*/)?{name}-\d",
        rf"Installing collected packages:.*\b{alone}",
        rf"Successfully (installed|uninstalled)\b.*\b{name}-\d",
    ]
    touched = re.compile("|".join(f"(?:{pattern})" for pattern in patterns), re.I)
    return [line for line in log.splitlines() if touched.search(line)]


def test_pip_touched_reads_pip_logs():
    log = ("Collecting scikit-image>=0.22\n"
           "Requirement already satisfied: torch in /x/site-packages\n"
           "Collecting torchvision==0.29.1\n"
           "Processing /wheels/scikit_image-0.26.0-py3-none-any.whl\n"
           "Processing /wheels/torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl\n"
           "Installing collected packages: imageio, torch, scikit-image\n"
           "Installing collected packages: torchmetrics, torch-geometric\n"
           "Attempting uninstall: torch\n"
           "Successfully installed ipywidgets-8.1.9 scikit-image-0.26.0\n"
           "Successfully installed torch-2.14.1\n"
           "Collecting torchmetrics\n")
    assert pip_touched(log) == [
        "Collecting torchvision==0.29.1",
        "Processing /wheels/torch-2.14.1-cp311-cp311-manylinux_2_28_x86_64.whl",
        "Installing collected packages: imageio, torch, scikit-image",
        "Attempting uninstall: torch",
        "Successfully installed torch-2.14.1"]


def test_colab_requirements_leave_torch_alone():
    names = {Requirement(line).name.lower() for line in _requirement_lines()}
    assert names and not names & set(PROTECTED)


def test_colab_pair_differs_from_the_lock():
    pins = dict(line.split("==", 1) for line in LOCK_FILE.read_text().splitlines()
                if "==" in line and not line.startswith("#"))
    assert Version(pins["torch"]) != Version(COLAB_TORCH)
    assert Version(pins["torchvision"]) != Version(COLAB_TORCHVISION)


@pytest.fixture(scope="module")
def colab_environment():
    if shutil.which("git") is None:
        pytest.fail("git is needed to test the notebooks' set-up cell")
    base = colab_base()
    return base, colab_wheelhouse(base)


def test_setup_cell_in_a_colab_like_environment(colab_environment, tmp_path):
    base, wheels = colab_environment
    base_site = _site_packages(base)
    before = {name: _fingerprint(base_site, name) for name in PROTECTED}
    assert all(before.values()), f"the Colab environment lacks torch: {before}"

    repo = snapshot_repository(tmp_path / "course-repo")
    run_venv = tmp_path / "colab-venv"
    _run([sys.executable, "-m", "venv", str(run_venv)], env=_build_env(), timeout=300)
    overlay = _site_packages(run_venv) / "colab_system_packages.pth"
    overlay.write_text(f"{base_site}\n")
    data = tmp_path / "data"
    shutil.copytree(REPO_ROOT / "data", data, copy_function=_link_or_copy)
    home, work, pip_log = tmp_path / "home", tmp_path / "content", tmp_path / "pip.log"
    home.mkdir()
    work.mkdir()  # Colab's /content: the notebooks' working directory
    paths = []
    for name in NOTEBOOKS:
        nb = nbformat.read(REPO_ROOT / name, as_version=4)
        assert nb.cells[1].source == SETUP_CELL, f"{name}: no SETUP_CELL first"
        nb.cells.append(_probe_cell())
        paths.append(work / Path(name).name)
        nbformat.write(nb, paths[-1])

    env = _notebook_env(home, repo, wheels, data, pip_log, run_venv)
    command = [str(_venv_python(run_venv)), "-c", RUNNER, *map(str, paths)]
    result = subprocess.run(command, cwd=work, env=env, capture_output=True, text=True,
                            timeout=900)
    assert result.returncode == 0, (
        f"a notebook failed in the Colab-like environment:\n{result.stdout[-2000:]}\n"
        f"{result.stderr[-6000:]}")

    clone = (work / CLONE_NAME).resolve()
    log = pip_log.read_text() if pip_log.exists() else ""
    for path in paths:
        executed = nbformat.read(path, as_version=4)
        outputs = [output for cell in executed.cells
                   for output in cell.get("outputs", [])]
        errors = [output for output in outputs if output.output_type == "error"]
        assert not errors, f"{path.name}: {errors[0]['ename']}: {errors[0]['evalue']}"
        probe = next(output.text for output in executed.cells[-1].outputs
                     if output.output_type == "stream" and PROBE in output.text)
        report = json.loads(probe.split(PROBE, 1)[1])
        assert Path(report["utils"]).resolve().is_relative_to(clone), report["utils"]
        for name, version in ((PROTECTED[0], COLAB_TORCH),
                              (PROTECTED[1], COLAB_TORCHVISION)):
            found_version, found_file = report[name]
            # the runtime string carries the build, e.g. 2.13.0+cu130
            assert Version(found_version).public == version, (name, found_version)
            assert Path(found_file).resolve().is_relative_to(base_site.resolve())
        for line in _requirement_lines():
            requirement = Requirement(line)
            installed = report["versions"][requirement.name]
            assert requirement.specifier.contains(installed, prereleases=True), (
                f"{path.name}: {requirement.name} {installed} does not satisfy {line}")

    cloned_requirements = (clone / "requirements-colab.txt").read_text()
    assert cloned_requirements == COLAB_REQUIREMENTS.read_text()
    assert "Successfully installed" in log, "pip installed nothing (log missing?)"
    new = re.findall(r"Successfully installed (.*)", log)
    for name in EXPECTED_NEW:
        assert any(re.search(rf"\b{name}-\d", line) for line in new), (name, new)
    assert pip_touched(log) == [], "pip touched torch/torchvision"
    assert {name: _fingerprint(base_site, name) for name in PROTECTED} == before
    run_site = _site_packages(run_venv)
    assert not [p.name for name in PROTECTED for p in run_site.glob(f"{name}-*")]
