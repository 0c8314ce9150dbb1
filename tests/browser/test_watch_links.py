"""Watch links in a real browser: the owner trains in one context, a watcher in another sees the
count rise without any control, Make my own copy gives the watcher a run of its own, and a closed
watch link says so to whoever still has it open.
"""
from __future__ import annotations

import re

import pytest

try:
    from playwright.sync_api import expect
except ImportError:   # the chromium_path fixture skips these tests (fails them under CI), saying why
    expect = None

from .harness import (
    AppServerError,
    assert_no_exception,
    open_app,
    pause_and_settle,
    pause_button,
    read_iteration,
    serve_app,
    sidebar,
    start_button,
    step_button,
    wait_idle,
    wait_iteration_at_least,
    wait_training_past,
)
from .test_app_browser import go_to

pytestmark = pytest.mark.browser
WATCH_LINK = re.compile(r"https?://\S+/\?watch=([A-Za-z0-9_-]{16,64})")


def fork_button(page):
    return sidebar(page).locator(".st-key-btn_fork").get_by_role("button")


def open_watcher(browser, url: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    fork_button(page).wait_for(state="visible")
    wait_idle(page)
    return context, page


def test_a_watcher_follows_the_owners_run_forks_it_and_is_told_when_the_link_closes(browser, tmp_path):
    try:
        with serve_app(tmp_path / "runs") as server:
            owner_context, owner = open_app(browser, server.url)
            contexts = [owner_context]
            try:
                step_button(owner).click()                       # saved: the run has a link now
                wait_iteration_at_least(owner, 1)
                go_to(owner, "Save & load")                        # in the same session (a new URL is a new one)
                wait_idle(owner)
                link = owner.get_by_text(WATCH_LINK).first
                link.wait_for(state="visible")
                watch_url = WATCH_LINK.search(link.inner_text()).group(0)
                expect(owner.get_by_text("Scan to watch")).to_be_visible()      # the QR code's caption

                watcher_context, watcher = open_watcher(browser, watch_url)
                contexts.append(watcher_context)
                assert not start_button(watcher).count() and not step_button(watcher).count()
                assert "?run=" not in watcher.content()               # never the private link

                start_button(owner).click()
                pause_button(owner).wait_for(state="visible")
                wait_training_past(owner, 500)
                seen = wait_iteration_at_least(watcher, 500)        # the watcher's count rises with it
                wait_iteration_at_least(watcher, seen + 500)
                expect(sidebar(watcher).get_by_text(re.compile(r"Iteration [\d,]+ · training"))).to_be_visible()
                assert_no_exception(watcher)

                # Every view page renders on the owner's weights in watch mode.
                for page_path in ("hidden_states", "sample", "guess", "backprop", "data", "files"):
                    watcher.goto(f"{watch_url.split('?')[0].rstrip('/')}/{page_path}?{watch_url.split('?')[1]}")
                    fork_button(watcher).wait_for(state="visible")
                    wait_idle(watcher)
                    assert_no_exception(watcher)
                    assert not start_button(watcher).count()

                # The owner pauses: the watcher sees it stop at the owner's count.
                stopped = pause_and_settle(owner)
                expect(sidebar(watcher).get_by_text(f"Iteration {stopped:,} · paused")).to_be_visible()

                # Fork: the watcher's own run, from the owner's weights; the owner's run stays where it was.
                fork_button(watcher).click()
                start_button(watcher).wait_for(state="visible")
                wait_idle(watcher)
                assert read_iteration(watcher) == stopped
                expect(watcher).to_have_url(re.compile(r"\?run="))
                step_button(watcher).click()
                wait_iteration_at_least(watcher, stopped + 1)
                assert read_iteration(owner) == stopped

                # Close the link: a second watcher on it is told so, and gets a run of its own.
                second_context, second = open_watcher(browser, watch_url)
                contexts.append(second_context)
                owner.get_by_role("button", name="Close this watch link and make a new one").click()
                wait_idle(owner)
                expect(second.get_by_text("The owner closed this watch link")).to_be_visible()
                start_button(second).wait_for(state="visible")
                assert_no_exception(second)
                assert_no_exception(owner)
            finally:
                for context in contexts:
                    context.close()
    except AppServerError as exc:
        pytest.fail(str(exc), pytrace=False)
