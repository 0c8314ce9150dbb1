"""Keyboard shortcuts and experiment links in a real browser: Space starts and pauses training, →
steps once, and an experiment link opened in a new context starts a fresh run with its settings.
"""
from __future__ import annotations

import pytest

try:
    from playwright.sync_api import expect
except ImportError:   # the chromium_path fixture skips these tests (fails them under CI), saying why
    expect = None

from .harness import (
    AppServerError,
    assert_no_exception,
    open_app,
    pause_button,
    read_iteration,
    serve_app,
    sidebar,
    start_button,
    wait_idle,
    wait_iteration_at_least,
    wait_training_past,
)

pytestmark = pytest.mark.browser


def test_space_starts_and_pauses_training_and_right_steps_once(browser, tmp_path):
    try:
        with serve_app(tmp_path / "runs") as server:
            context, page = open_app(browser, server.url)
            try:
                page.locator("[data-testid='stMain'] h1").first.click()   # focus on the page, not a box
                page.keyboard.press("ArrowRight")
                wait_iteration_at_least(page, 1)
                wait_idle(page)
                assert read_iteration(page) == 1
                page.keyboard.press("Space")
                pause_button(page).wait_for(state="visible")
                wait_training_past(page, 300)
                page.keyboard.press("Space")
                start_button(page).wait_for(state="visible")
                wait_idle(page)
                stopped = read_iteration(page)
                assert stopped >= 300
                wait_idle(page)
                assert read_iteration(page) == stopped and start_button(page).count()   # it holds
                assert_no_exception(page)
            finally:
                context.close()
    except AppServerError as exc:
        pytest.fail(str(exc), pytrace=False)


def test_an_experiment_link_opens_a_fresh_run_with_its_settings(browser, tmp_path):
    try:
        with serve_app(tmp_path / "runs") as server:
            sender_context, sender = open_app(browser, f"{server.url}/?exp=1&corpus=hello&hidden_size=32"
                                                       f"&learning_rate=0.05&seq_length=12&loss_unit=bits")
            contexts = [sender_context]
            try:
                expect(sidebar(sender).get_by_text("hidden 32 · seq 12")).to_be_visible()
                sender.get_by_text("Copy link to this experiment").click()
                code = sender.locator("[data-testid='stCode']").filter(has_text="exp=1").first
                link = code.inner_text().replace("\n", "")
                assert "hidden_size=32" in link and "loss_unit=bits" in link
                receiver_context, receiver = open_app(browser, link)
                contexts.append(receiver_context)
                expect(sidebar(receiver).get_by_text("hidden 32 · seq 12")).to_be_visible()
                expect(sidebar(receiver).get_by_text("lr 0.05")).to_be_visible()
                assert read_iteration(receiver) == 0                  # a fresh run, not the sender's
                assert_no_exception(receiver)
            finally:
                for context in contexts:
                    context.close()
    except AppServerError as exc:
        pytest.fail(str(exc), pytrace=False)


PRESENTER_NUMBER_AT_LEAST_JS = """
(min) => {
  const n = document.querySelector(".present-number");
  return n !== null && parseInt(n.innerText.replace(/,/g, ""), 10) >= min;
}
"""


def test_presenter_mode_fits_a_1280x720_projector_with_back_row_type(browser, tmp_path):
    """P enters presenter mode; it trains from its own big buttons, colours the sample by a unit, and
    everything (numbers, sample, chart, controls) is on one 1280×720 screen in ≥ 24 px type."""
    try:
        with serve_app(tmp_path / "runs") as server:
            context, page = open_app(browser, server.url, width=1280, height=720)
            try:
                page.locator("[data-testid='stMain'] h1").first.click()
                page.keyboard.press("p")
                page.locator(".present-number").first.wait_for(state="visible")
                assert "present=1" in page.url
                expect(page.locator("[data-testid='stSidebar']")).to_be_hidden()   # no navigation column
                page.locator(".st-key-present_start button").click()
                page.wait_for_function(PRESENTER_NUMBER_AT_LEAST_JS, arg=500)
                page.locator(".st-key-present_pause button").click()
                page.locator(".st-key-present_start button").wait_for(state="visible")
                wait_idle(page)
                expect(page.get_by_text("sample at iteration")).to_be_visible()
                page.locator(".st-key-present_unit").get_by_role("combobox").click()
                page.get_by_role("option", name="colour: unit 5", exact=True).click()
                wait_idle(page)
                coloured = page.locator(".present-sample .rnn-textview")
                coloured.wait_for(state="visible")
                sizes = page.evaluate("""() => ({
                    number: getComputedStyle(document.querySelector('.present-number')).fontSize,
                    label: getComputedStyle(document.querySelector('.present-label')).fontSize,
                    sample: getComputedStyle(document.querySelector('.present-sample .rnn-textview')).fontSize,
                    button: getComputedStyle(document.querySelector('.st-key-present_controls button p')).fontSize,
                })""")
                page.screenshot(path=str(tmp_path / "presenter.png"))      # what the back row sees
                assert all(float(size.rstrip("px")) >= 24 for size in sizes.values()), sizes
                for locator in (page.locator(".st-key-present_controls"), page.locator(".present-number").first,
                                page.locator(".present-sample"), page.locator(".st-key-present_loss")):
                    box = locator.bounding_box()
                    assert box is not None and box["y"] >= 0 and box["y"] + box["height"] <= 720, box
                # Class link: the watch link as a QR code the back row can scan, all of it on the screen.
                page.get_by_role("button", name="Class link").click()
                qr_code = page.locator("[data-testid='stPopoverBody'] img")
                qr_code.wait_for(state="visible")
                expect(page.locator(".present-link")).to_contain_text("?watch=")
                box = qr_code.bounding_box()
                assert box["width"] >= 300 and box["y"] >= 0 and box["y"] + box["height"] <= 720, box
                page.screenshot(path=str(tmp_path / "presenter_class_link.png"))
                assert_no_exception(page)
            finally:
                context.close()
    except AppServerError as exc:
        pytest.fail(str(exc), pytrace=False)
