"""The real app in headless Chromium: training starts, pauses and steps from the sidebar, every
page renders without an exception, and concurrent sessions each train their own run.

Every wait is on a condition with a deadline (DOM state, the app's idle flag), never a fixed sleep.
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
    chart_last_x,
    chart_y_title,
    metric_int,
    open_app,
    pause_and_settle,
    pause_button,
    read_iteration,
    serve_app,
    start_button,
    step_button,
    wait_chart_last_x_above,
    wait_chart_y_title,
    wait_idle,
    wait_iteration_at_least,
    wait_metric_int_above,
    wait_training_past,
)

pytestmark = pytest.mark.browser

LOSS_CHART = "loss_chart"
SMOOTH_TRACE = "smoothed loss (min-char-rnn)"
# Sidebar navigation label -> URL path of that page (dashboard.py's st.Page list).
PAGES = {"Train": "", "Data": "data", "Hidden states": "hidden_states", "Sample": "sample", "Guess": "guess",
         "Backprop": "backprop", "Save & load": "files", "Lessons": "lessons"}


# Loss unit button -> the loss chart's y axis title in that unit.
UNIT_AXIS = {"bits/char": "bits per char", "nats/char": "nats per char", "perplexity": "perplexity"}


def switch_loss_unit(page, button: str) -> None:
    """A harmless full rerun: pick another loss unit and wait until the chart is redrawn in it."""
    page.locator(".st-key-loss_unit").get_by_role("radio", name=button, exact=True).click()
    wait_chart_y_title(page, LOSS_CHART, UNIT_AXIS[button])
    wait_idle(page)


def nav_link(page, label: str):
    return page.locator("[data-testid='stSidebarNav'] a[data-testid='stSidebarNavLink']").filter(
        has_text=re.compile(rf"{re.escape(label)}\s*$"))


def go_to(page, label: str) -> None:
    """Open a page from the sidebar navigation and wait until its own run has drawn it."""
    link = nav_link(page, label)
    link.click()
    expect(link).to_have_attribute("aria-current", "page")
    expect(page).to_have_url(re.compile(rf"/{re.escape(PAGES[label])}(\?.*)?$"))


def heading(page) -> str:
    h1 = page.locator("[data-testid='stMain'] h1").first
    expect(h1).to_be_visible()
    return h1.inner_text().strip()


def test_fresh_session_starts_untrained(page):
    assert read_iteration(page) == 0
    assert metric_int(page, "Iteration") == 0
    expect(start_button(page)).to_be_visible()
    assert heading(page) == "Train a character-level RNN"
    assert_no_exception(page)


def test_start_pause_step_from_the_sidebar(page):
    start_button(page).click()
    expect(pause_button(page)).to_be_visible()

    # Training advances: the sidebar count, the Train page's metric and the loss chart all grow.
    first = wait_training_past(page, 1)
    drawn = wait_chart_last_x_above(page, LOSS_CHART, SMOOTH_TRACE, 0)
    wait_training_past(page, first + 1)
    wait_metric_int_above(page, "Iteration", first)
    wait_chart_last_x_above(page, LOSS_CHART, SMOOTH_TRACE, drawn)

    # Pause holds the count still, across a full rerun of the page.
    held = pause_and_settle(page)
    assert held > first
    switch_loss_unit(page, "bits/char")
    assert chart_y_title(page, LOSS_CHART) == "bits per char"
    assert read_iteration(page) == held
    assert metric_int(page, "Iteration") == held
    assert chart_last_x(page, LOSS_CHART, SMOOTH_TRACE) == held
    expect(start_button(page)).to_be_visible()

    # Step trains exactly one iteration and stays paused.
    step_button(page).click()
    wait_iteration_at_least(page, held + 1)
    wait_idle(page)
    assert read_iteration(page) == held + 1
    assert metric_int(page, "Iteration") == held + 1
    expect(start_button(page)).to_be_visible()
    switch_loss_unit(page, "perplexity")
    assert read_iteration(page) == held + 1
    assert_no_exception(page)


def test_every_page_renders_without_exception(page):
    headings = {}
    for label in PAGES:
        go_to(page, label)
        wait_idle(page)
        headings[label] = heading(page)
        assert headings[label], f"the {label} page has an empty title"
        assert_no_exception(page)
        # The shared sidebar is on every page.
        expect(start_button(page)).to_be_visible()
        assert read_iteration(page) == 0
    assert headings["Train"] == "Train a character-level RNN"
    assert len(set(headings.values())) == len(PAGES), f"pages share a title: {headings}"


def test_training_continues_on_other_pages(page):
    # Pages draw nothing that ticks by itself: the sidebar's fragment trains, whatever page is shown.
    start_button(page).click()
    expect(pause_button(page)).to_be_visible()
    wait_training_past(page, 1)
    for label in ("Hidden states", "Save & load", "Train"):
        go_to(page, label)
        heading(page)
        arrived = read_iteration(page)
        wait_training_past(page, arrived + 1)
        expect(pause_button(page)).to_be_visible()
        assert_no_exception(page)
    held = pause_and_settle(page)
    switch_loss_unit(page, "nats/char")
    assert metric_int(page, "Iteration") == held
    assert_no_exception(page)


def sample_texts(page) -> list[str]:
    return page.locator("[data-testid='stMain'] [data-testid='stCode'] code").all_inner_texts()


def test_sample_page_generates_text(page):
    step_button(page).click()
    wait_iteration_at_least(page, 1)
    wait_idle(page)
    go_to(page, "Sample")
    wait_idle(page)
    prime = page.locator(".st-key-smp_prime textarea")
    prime.fill("ROMEO:")
    prime.press("Control+Enter")          # commits the text area's value (a rerun)
    generate = page.locator(".st-key-smp_generate").get_by_role("button")
    expect(generate).to_be_enabled()
    wait_idle(page)

    generate.click()
    expect(page.get_by_text("1 sample", exact=True)).to_be_visible()
    expect(page.get_by_text("model at iteration 1", exact=False)).to_be_visible()
    wait_idle(page)
    expect(page.get_by_text("PRIME (yours)")).to_be_visible()
    expect(page.get_by_text("300 characters", exact=False)).to_be_visible()
    (first,) = sample_texts(page)
    # 300 generated characters; st.code may add one padding newline at either end.
    assert 300 <= len(first) <= 302, f"expected a 300-character sample, got {len(first)}: {first!r}"

    # Two samples: the first uses the same seed (0) as before, so it is the same text; seed 1 differs.
    count = page.locator(".st-key-smp_count input")
    count.fill("2")
    count.press("Enter")
    wait_idle(page)
    generate.click()
    expect(page.get_by_text("2 samples", exact=True)).to_be_visible()
    wait_idle(page)
    again, other = sample_texts(page)
    assert again == first
    assert other != first
    assert_no_exception(page)


def test_three_sessions_train_their_own_runs(open_session):
    # The light Save & load page keeps three live sessions cheap for the browser; the sidebar (with
    # the training fragment) is on every page.
    sessions = [open_session("files") for _ in range(3)]
    for page in sessions:
        assert read_iteration(page) == 0
    for page in sessions:
        start_button(page).click()
    for page in sessions:
        expect(pause_button(page)).to_be_visible()
    marks = [wait_training_past(page, 1) for page in sessions]
    for page, mark in zip(sessions, marks):
        wait_training_past(page, mark + 1)

    # Pausing the first session leaves the others training, and its own count holds still.
    held = pause_and_settle(sessions[0])
    others = [read_iteration(page) for page in sessions[1:]]
    for page, mark in zip(sessions[1:], others):
        wait_training_past(page, mark + 1)
        expect(pause_button(page)).to_be_visible()
    go_to(sessions[0], "Train")           # a full rerun of another page
    wait_idle(sessions[0])
    assert read_iteration(sessions[0]) == held
    assert metric_int(sessions[0], "Iteration") == held

    # A step in the paused session moves only its own run, by exactly one.
    step_button(sessions[0]).click()
    wait_iteration_at_least(sessions[0], held + 1)
    wait_idle(sessions[0])
    assert read_iteration(sessions[0]) == held + 1
    for page in sessions[1:]:
        expect(pause_button(page)).to_be_visible()

    for page in sessions[1:]:
        pause_and_settle(page)
    for page in sessions:
        assert_no_exception(page)


RUN_IN_URL = re.compile(r"[?&]run=([A-Za-z0-9_-]+)")


def step_once(page, expected: int) -> None:
    step_button(page).click()
    wait_iteration_at_least(page, expected)
    wait_idle(page)


def run_in_url(page) -> str:
    match = RUN_IN_URL.search(page.url)
    assert match, f"no ?run= in {page.url}"
    return match.group(1)


def test_one_link_in_two_tabs_becomes_two_runs(open_session):
    first = open_session("files")
    step_once(first, 1)
    first.wait_for_url(RUN_IN_URL)
    run_id = run_in_url(first)
    second = open_session(f"files?run={run_id}")        # the same link in another tab
    assert read_iteration(second) == 1

    step_once(first, 2)                                  # the first tab saves to the link ...
    step_once(second, 2)                                 # ... so the second's save goes to a copy,
    second.wait_for_url(lambda url: RUN_IN_URL.search(url) and run_id not in url)   # which it follows
    expect(second.get_by_text("open in another tab too")).to_be_visible()
    moved = run_in_url(second)
    step_once(second, 3)                                 # and goes on saving there
    assert run_in_url(second) == moved
    assert run_in_url(first) == run_id and read_iteration(first) == 2

    # Each link reopens its own line of training.
    assert read_iteration(open_session(f"files?run={run_id}")) == 2
    assert read_iteration(open_session(f"files?run={moved}")) == 3
    for page in (first, second):
        assert_no_exception(page)


def test_a_fresh_server_opened_on_a_page_link_shows_the_apps_navigation(browser, tmp_path):
    # Its own server: what matters is the first request the process ever serves.
    try:
        with serve_app(tmp_path / "runs") as server:
            context, page = open_app(browser, f"{server.url}/hidden_states")
            try:
                nav = page.locator("[data-testid='stSidebarNav']")
                for label in PAGES:
                    expect(nav_link(page, label)).to_be_visible()
                expect(nav.get_by_text("dashboard", exact=True)).to_have_count(0)   # not the pages folder
                assert heading(page) == "Hidden states"
                assert_no_exception(page)
            finally:
                context.close()
    except AppServerError as exc:
        pytest.fail(str(exc), pytrace=False)


def test_training_pauses_by_itself_at_the_iteration_set_in_the_sidebar(page):
    target = page.locator(".st-key-stop_at input")
    target.fill("1500")
    target.press("Enter")
    wait_idle(page)
    start_button(page).click()
    expect(page.get_by_text("Paused at iteration 1,500, as set in the sidebar.")).to_be_visible()
    expect(start_button(page)).to_be_visible()
    wait_idle(page)
    assert read_iteration(page) == 1500 and metric_int(page, "Iteration") == 1500
    assert_no_exception(page)


def test_using_pasted_text_keeps_the_paste_tab_open(page):
    """The notice "Next run's text" appears above the Data page's tabs once a text is taken: the tab
    the user is on stays selected (an element appearing above tabs used to reset them)."""
    go_to(page, "Data")
    tabs = page.locator("[data-testid='stMain'] [role='tab']")
    tabs.filter(has_text="Paste text").click()
    box = page.locator(".st-key-data_paste textarea")
    box.fill("To be, or not to be, that is the question. " * 60)
    box.press("Control+Enter")
    wait_idle(page)
    page.locator(".st-key-data_paste_use button").click()
    expect(page.get_by_text("Next run's text:", exact=False)).to_be_visible()
    wait_idle(page)
    expect(tabs.filter(has_text="Paste text")).to_have_attribute("aria-selected", "true")
    assert_no_exception(page)
