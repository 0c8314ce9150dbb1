"""Fixtures for the browser tests: one app server and one headless Chromium per test session, and a
fresh browser context (so a fresh Streamlit session with its own run) per test.

Without Chromium or Playwright the tests are skipped with the reason, except when the CI environment
variable is set: then a missing browser is a failure, so CI can never pass by skipping them all.
"""
from __future__ import annotations

import os

import pytest

from .harness import AppServerError, find_chromium, launch_chromium, missing_browser_tools, open_app, serve_app

EXPECT_TIMEOUT_MS = 30_000


def _unavailable(reason: str) -> None:
    """Skip with ``reason``; under CI fail instead (a CI run must never pass by skipping these)."""
    if os.environ.get("CI"):
        if find_chromium() is None:
            pytest.fail("CI is set but Chromium is missing: install Debian's chromium", pytrace=False)
        pytest.fail(f"CI is set but the browser tests cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture(scope="session")
def chromium_path() -> str:
    """Path of Debian's Chromium; skips (or fails under CI) when it or Playwright is missing."""
    reason = missing_browser_tools()
    if reason is not None:
        _unavailable(reason)
    return find_chromium()


@pytest.fixture(scope="session")
def app_server(chromium_path, tmp_path_factory):
    """The app, served by `streamlit run dashboard.py` for the whole test session (an AppServer).

    Saved runs go to a temporary directory (RNN_PLAYGROUND_DATA_DIR), never to the user's cache.
    """
    data_dir = tmp_path_factory.mktemp("runs")
    try:
        with serve_app(data_dir) as server:
            yield server
    except AppServerError as exc:
        pytest.fail(str(exc), pytrace=False)


@pytest.fixture(scope="session")
def app_url(app_server) -> str:
    return app_server.url


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """A failing browser test also reports the end of the server's log (where app tracebacks go:
    the page itself shows only a redacted message)."""
    outcome = yield
    report = outcome.get_result()
    server = item.funcargs.get("app_server") if hasattr(item, "funcargs") else None
    if report.failed and server is not None:
        state = "running" if server.alive() else f"exited with code {server.process.returncode}"
        report.sections.append((f"app server log (last 6000 characters; server {state})", server.log_tail()))


@pytest.fixture(scope="session")
def browser(chromium_path):
    from playwright.sync_api import expect, sync_playwright

    # Waits are conditions, so a generous deadline costs nothing when the machine is fast and keeps
    # a loaded machine (2 shared cores) from failing a correct app.
    expect.set_options(timeout=EXPECT_TIMEOUT_MS)
    with sync_playwright() as playwright:
        browser = launch_chromium(playwright, chromium_path)
        yield browser
        browser.close()


@pytest.fixture
def page(browser, app_url):
    """The app's Train page in a new browser context (a new session), loaded and idle."""
    context, page = open_app(browser, app_url)
    yield page
    context.close()


@pytest.fixture
def open_session(browser, app_url):
    """Factory for extra independent sessions: ``open_session(path="")`` -> page showing that page
    (URL path, e.g. "files"); every context is closed after the test."""
    contexts = []

    def open_one(path: str = ""):
        context, page = open_app(browser, f"{app_url}/{path}")
        contexts.append(context)
        return page

    yield open_one
    for context in contexts:
        context.close()
