"""The Backprop page's animated player in headless Chromium: Play runs the forward pass and then the
backward pass to the last frame by itself (the fragment's own timer), and stops there.

Every wait is on a condition with a deadline (the DOM's text, the app's idle flag), never a fixed sleep.
"""
from __future__ import annotations

import re

import pytest

try:
    from playwright.sync_api import expect
except ImportError:   # the chromium_path fixture skips these tests (fails them under CI), saying why
    expect = None

from .harness import (
    assert_no_exception,
    pause_and_settle,
    pause_button,
    read_iteration,
    start_button,
    wait_idle,
    wait_iteration_at_least,
    wait_training_past,
)
from .test_app_browser import go_to

pytestmark = pytest.mark.browser

FRAME_RE = re.compile(r"Frame (\d+) of (\d+): (forward|backward) pass, step t = (\d+)")
# Two minutes for 50 frames at 4 a second on a loaded machine: a deadline, not an expected time.
PLAY_TIMEOUT_MS = 120_000


def frame_status(page) -> tuple[int, int, str, int]:
    """(frame number from 1, frame count, phase, t) from the player's status line."""
    text = page.get_by_text(FRAME_RE).first.inner_text()
    match = FRAME_RE.search(text)
    assert match is not None, f"no frame status in {text!r}"
    number, count, phase, t = match.groups()
    return int(number), int(count), phase, int(t)


def open_player(page) -> None:
    go_to(page, "Backprop")
    page.get_by_role("tab", name="Animated").click()
    expect(page.get_by_text(FRAME_RE).first).to_be_visible()
    wait_idle(page)


def test_play_runs_forward_then_backward_to_the_end(page):
    open_player(page)
    number, count, phase, t = frame_status(page)
    assert (number, phase, t) == (1, "forward", 0)
    T = count // 2
    assert count == 2 * T and T >= 2
    page.locator(".st-key-bp_speed").get_by_role("radio", name=re.compile("^fast")).click()
    wait_idle(page)
    page.locator(".st-key-bp_play").get_by_role("button").click()
    expect(page.locator(".st-key-bp_pause").get_by_role("button")).to_be_visible()
    # Halfway: the backward pass has begun at the last step (the timer keeps playing by itself).
    expect(page.get_by_text(re.compile(rf"Frame \d+ of {count}: backward pass")).first).to_be_visible(
        timeout=PLAY_TIMEOUT_MS)
    expect(page.get_by_text(f"Frame {count} of {count}: backward pass, step t = 0").first).to_be_visible(
        timeout=PLAY_TIMEOUT_MS)
    # At the end it stops by itself and offers Play again (from the start).
    expect(page.locator(".st-key-bp_play").get_by_role("button")).to_be_visible()
    wait_idle(page)
    assert frame_status(page) == (count, count, "backward", 0)
    heatmaps = page.locator(".st-key-bp_anim_dh .js-plotly-plot")
    expect(heatmaps).to_have_count(1)
    assert_no_exception(page)


def test_step_and_back_move_one_frame(page):
    open_player(page)
    page.locator(".st-key-bp_step").get_by_role("button").click()
    expect(page.get_by_text("Frame 2 of").first).to_be_visible()
    page.locator(".st-key-bp_back").get_by_role("button").click()
    expect(page.get_by_text(re.compile(r"Frame 1 of \d+: forward pass, step t = 0")).first).to_be_visible()
    assert_no_exception(page)


def test_while_training_the_player_keeps_its_window(page):
    start_button(page).click()
    expect(pause_button(page)).to_be_visible()
    wait_training_past(page, 1)
    open_player(page)
    for frame in (2, 3):
        # While training, a refresh may show an element's old copy beside its new one for a moment.
        page.locator(".st-key-bp_step").get_by_role("button").first.click()
        expect(page.get_by_text(re.compile(rf"Frame {frame} of \d+: forward pass, step t = {frame - 1}")).first
               ).to_be_visible()
        wait_idle(page)
    held = re.compile(r"Animating the window of iteration ([\d,]+); the model has trained since")
    note = page.get_by_text(held).first
    expect(note).to_be_visible()
    first = int(held.search(note.inner_text()).group(1).replace(",", ""))
    # The page refreshes while training; the frame and the window held stay as they were.
    wait_iteration_at_least(page, read_iteration(page) + 2)
    wait_idle(page)
    assert frame_status(page)[0] == 3
    assert int(held.search(page.get_by_text(held).first.inner_text()).group(1).replace(",", "")) == first
    page.locator(".st-key-bp_take_current").get_by_role("button").first.click()
    expect(page.get_by_text(re.compile(r"Frame 1 of \d+: forward pass, step t = 0")).first).to_be_visible()
    pause_and_settle(page)
    assert_no_exception(page)
