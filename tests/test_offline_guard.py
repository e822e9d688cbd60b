"""Notebooks execute with outbound network access blocked, loopback allowed.

``tests/offline_guard/sitecustomize.py`` is loaded in every notebook kernel (see
``scripts/course_env.py``). Here a small notebook that tries to reach the internet is
run by pytest/nbval in a subprocess with the repository's configuration: each cell that
tries must fail, named, even when it catches ``Exception``; a cell that talks to a
server on 127.0.0.1 must pass.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from test_notebook_checks import junit_outcomes, run_nbval

GUARD = Path(__file__).resolve().parent / "offline_guard"

CELLS = {
    "urlopen": 'import urllib.request\nurllib.request.urlopen("https://example.com")',
    "create_connection": 'import socket\nsocket.create_connection(("example.com", 443))',
    "ip_address": 'socket.create_connection(("93.184.216.34", 80), timeout=5)',
    "hidden_by_except": (
        "try:\n"
        '    urllib.request.urlopen("https://example.com", timeout=5)\n'
        "except Exception:\n"
        '    print("offline fallback")'),
    "loopback": (
        "server = socket.socket()\n"
        'server.bind(("127.0.0.1", 0))\n'
        "server.listen()\n"
        "client = socket.create_connection(server.getsockname())\n"
        "peer, _ = server.accept()\n"
        'client.sendall(b"ping")\n'
        'print(peer.recv(4).decode(), "over loopback")\n'
        "for open_socket in (peer, client, server):\n"
        "    open_socket.close()"),
}
BLOCKED = ("urlopen", "create_connection", "ip_address", "hidden_by_except")


@pytest.fixture(scope="module")
def guarded_run(tmp_path_factory):
    folder = tmp_path_factory.mktemp("offline")
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3",
                                 "language": "python"}
    for count, source in enumerate(CELLS.values(), 1):
        outputs = []
        if "loopback" in source:
            outputs = [nbformat.v4.new_output("stream", name="stdout",
                                              text="ping over loopback\n")]
        nb.cells.append(nbformat.v4.new_code_cell(
            source, execution_count=count, outputs=outputs, id=f"offline-{count}"))
    path = folder / "network.ipynb"
    nbformat.write(nb, path)
    result = run_nbval(path, folder / "report.xml")
    assert (folder / "report.xml").exists(), result.stdout + result.stderr
    return junit_outcomes(folder / "report.xml"), result


def _outcome(outcomes, name):
    return outcomes[f"Cell {list(CELLS).index(name)}"]


@pytest.mark.parametrize("name", BLOCKED)
def test_cell_reaching_the_network_fails_named(guarded_run, name):
    outcomes, result = guarded_run
    failure = _outcome(outcomes, name)
    assert failure is not None, f"{name} reached the network:\n{result.stdout[-2000:]}"
    number = list(CELLS).index(name)
    assert f"Cell {number}: Cell execution caused an exception" in failure
    assert "NetworkBlocked" in failure and "network access is blocked" in failure


def test_loopback_still_works(guarded_run):
    outcomes, result = guarded_run
    assert _outcome(outcomes, "loopback") is None, result.stdout[-2000:]
    assert result.returncode == 1  # the blocked cells fail the run


def test_guard_is_on_the_notebook_path_and_inherited_by_child_processes():
    code = ("import urllib.request\n"
            "try:\n"
            "    urllib.request.urlopen('https://example.com', timeout=5)\n"
            "except BaseException as error:\n"
            "    print(type(error).__name__)\n")
    env = dict(os.environ)  # conftest.py applied the notebook environment
    assert str(GUARD) in env["PYTHONPATH"].split(os.pathsep)
    assert env["COURSE_BLOCK_NETWORK"] == "1"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True,
                            text=True, timeout=60)
    assert result.stdout.strip() == "NetworkBlocked", result.stderr
