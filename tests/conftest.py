"""Fixtures of the browser tests: Chromium, the website served on 127.0.0.1, and one
browser for the whole session (helpers in ``tests/browser_site.py``)."""

from __future__ import annotations

import functools
import http.server
import threading
from pathlib import Path

import pytest
from browser_site import SITE, _missing, _QuietHandler, build_site, find_chromium


@pytest.fixture(scope="session")
def chromium_path() -> str:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        _missing("the Python package playwright is not installed")
    path = find_chromium()
    if path is None:
        from playwright.sync_api import sync_playwright

        with sync_playwright() as p:  # Playwright's own download, if there is one
            own = p.chromium.executable_path
        path = own if own and Path(own).is_file() else None
    if path is None:
        _missing("no Chromium binary was found")
    return path


@pytest.fixture(scope="session")
def site_url(chromium_path):
    build_site()
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}/"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        chromium = p.chromium.launch(executable_path=chromium_path, headless=True)
        yield chromium
        chromium.close()


# --------------------------------------------------------------------------------------
# Markers: every test gets one kind, so that `make unit` can run the fast ones alone
# (`pytest -m unit`); `make test` runs everything. Registered in pyproject.toml.
# --------------------------------------------------------------------------------------

BROWSER_MODULES = {"test_browser", "test_explorer", "test_accessibility"}
# Modules that execute notebooks, build environments, or train and ascend at full size
SLOW_MODULES = {"test_labs", "test_colab_setup", "test_notebook_checks",
                "test_offline_guard", "test_lab03_04_numbers", "test_chapter05_numbers",
                "test_chapter06_numbers", "test_chapter07_numbers",
                "test_chapter08_numbers"}
# Unit tests that take seconds each (HTML animations, a full VGG16 on the CPU): they
# run in `make test`, and `make unit` stays well under a minute without them.
SLOW_TESTS = {"test_portable_mode_gives_the_same_weights_on_two_simulated_cpus",
              "test_portable_mode_refuses_to_start_too_late", "test_fft_gradcheck",
              "test_a_portable_training_step_runs_no_cpu_dispatching_backend",
              "test_the_backend_check_fails_when_nnpack_is_switched_back_on",
              "test_pinned_portable_training_digest",
              "test_mkl_zen_code_path_is_not_switched_off_by_mkl_cbwr",
              "test_animation_html_has_alt_text_and_a_labelled_slider",
              "test_animation_html_is_reproducible_and_ids_are_stable",
              "test_sliding_window_animation_frames_and_html",
              "test_vgg16_layer_names_follow_torchvision_layout",
              "test_chapter1_exercises",
              "test_solution_items_run_after_the_notebook_in_its_kernel",
              "test_notebook_kernels_get_retina_figures_at_their_logical_size",
              "test_animation_frames_are_wide_sharp_and_their_text_legible"}


def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if item.path.suffix == ".ipynb":
            item.add_marker(pytest.mark.notebooks)
            continue
        module = item.path.stem
        if module in BROWSER_MODULES:
            item.add_marker(pytest.mark.browser)
        elif module in SLOW_MODULES or item.originalname in SLOW_TESTS:
            item.add_marker(pytest.mark.slow)
        else:
            item.add_marker(pytest.mark.unit)
