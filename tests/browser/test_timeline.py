"""The Train page's timeline in headless Chromium (issue 15): train a fresh classic run to iteration
520, scrub to the first snapshot and see the untrained model's sample (the one the test computes
itself from the same seed), the mark on the loss chart at iteration 0; play the snapshots to the
last; continue from one as a new run.

Every wait is on a condition with a deadline (DOM state, the app's idle flag), never a fixed sleep.
"""
from __future__ import annotations

import re

import pytest

try:
    from playwright.sync_api import expect
except ImportError:   # the chromium_path fixture skips these tests (fails them under CI), saying why
    expect = None

from playground.runs.run import PRESETS, Run
from playground.views import timeline_view as tv
from playground.views.textviews import reveal_invisible

from .harness import assert_no_exception, chart_last_x, read_iteration, start_button, wait_chart_y_title, wait_idle

pytestmark = pytest.mark.browser

MARK = "timeline snapshot"
TARGET = 520           # snapshots at 0, 100, 200 and 500


def timeline(page):
    return page.locator(".st-key-timeline")


def scrubber(page):
    return page.locator(".st-key-timeline_pick input[type='range']")


def train_to(page, target: int) -> None:
    stop_at = page.locator(".st-key-stop_at input")
    stop_at.fill(str(target))
    stop_at.press("Enter")
    wait_idle(page)
    start_button(page).click()
    expect(page.get_by_text(f"Paused at iteration {target:,}, as set in the sidebar.")).to_be_visible()
    expect(start_button(page)).to_be_visible()
    wait_idle(page)
    assert read_iteration(page) == target


def shown_sample(page) -> str:
    return timeline(page).locator("[data-testid='stCode'] code").inner_text().rstrip("\n")


def untrained_sample() -> str:
    """What the timeline must show at a fresh classic run's first snapshot: computed here, from the
    same seeds, without the server."""
    run = Run.from_builtin(PRESETS["classic"])
    return reveal_invisible(tv.sample_text(run, run.timeline.snapshots[0])).rstrip("\n")


def test_scrub_to_the_first_snapshot_shows_the_untrained_sample_then_play_and_fork(page):
    expect(timeline(page)).to_be_visible()
    assert shown_sample(page) == untrained_sample()        # a new run: its one snapshot is the untrained model
    train_to(page, TARGET)
    expect(timeline(page).get_by_text(re.compile(r"^Iteration 500 ·"))).to_be_visible()   # the newest first
    assert chart_last_x(page, "loss_chart", MARK) == 500

    handle = scrubber(page)
    handle.focus()
    handle.press("Home")                                   # to the first snapshot
    expect(timeline(page).get_by_text(re.compile(r"^Iteration 0 ·"))).to_be_visible()
    wait_idle(page)
    assert shown_sample(page) == untrained_sample()
    page.wait_for_function(
        "() => { const g = document.querySelector('.st-key-loss_chart .js-plotly-plot');"
        " const t = g && g.data && g.data.find(t => t.name === 'timeline snapshot');"
        " return !!t && t.x.length === 1 && Number(t.x[0]) === 0; }")
    handle.press("End")
    expect(timeline(page).get_by_text(re.compile(r"^Iteration 500 ·"))).to_be_visible()
    wait_idle(page)
    trained = shown_sample(page)
    assert trained != untrained_sample()
    assert_no_exception(page)

    # Play: from the start, one snapshot per tick of the live fragment, until the newest again.
    timeline(page).get_by_role("button", name=re.compile("Play")).click()
    expect(timeline(page).get_by_role("button", name=re.compile("Pause"))).to_be_visible()
    expect(timeline(page).get_by_text(re.compile(r"^Iteration 100 ·"))).to_be_visible()
    expect(timeline(page).get_by_role("button", name=re.compile("Play"))).to_be_visible()
    expect(timeline(page).get_by_text(re.compile(r"^Iteration 500 ·"))).to_be_visible()
    wait_idle(page)
    assert shown_sample(page) == trained                   # the same text as before: a fixed seed
    assert_no_exception(page)

    # Continue from the snapshot at 200: a new run there; the old curve stays on the chart, dashed.
    handle.focus()
    handle.press("ArrowLeft")                              # one snapshot back: 500 -> 200
    expect(timeline(page).get_by_text(re.compile(r"^Iteration 200 ·"))).to_be_visible()
    wait_idle(page)
    timeline(page).get_by_role("button", name=re.compile("Continue from here")).click()
    expect(page.get_by_text(re.compile("A new run continues from iteration 200"))).to_be_visible()
    wait_idle(page)
    assert read_iteration(page) == 200
    names = page.evaluate("() => document.querySelector('.st-key-loss_chart .js-plotly-plot').data.map(t => t.name)")
    assert any("to 520" in (n or "") for n in names), names
    assert_no_exception(page)


def test_the_snapshots_survive_a_reload(page):
    train_to(page, 250)
    expect(timeline(page).get_by_text(re.compile(r"^Iteration 200 ·"))).to_be_visible()
    # Saved when it paused; the address bar gets the link at the next full run once the write is done:
    # harmless full reruns (another loss unit) until it has it.
    for unit, axis in [("bits/char", "bits per char"), ("nats/char", "nats per char")] * 5:
        if "?run=" in page.url:
            break
        page.locator(".st-key-loss_unit").get_by_role("radio", name=unit, exact=True).click()
        wait_chart_y_title(page, "loss_chart", axis)
        wait_idle(page)
    expect(page).to_have_url(re.compile(r"\?run="))        # saved, and the link restores it
    page.reload()
    start_button(page).wait_for(state="visible")
    wait_idle(page)
    assert read_iteration(page) == 250
    handle = scrubber(page)
    assert handle.get_attribute("max") == "2"              # snapshots 0, 100, 200 came back with the run
    handle.focus()
    handle.press("Home")
    expect(timeline(page).get_by_text(re.compile(r"^Iteration 0 ·"))).to_be_visible()
    wait_idle(page)
    assert shown_sample(page) == untrained_sample()
    assert_no_exception(page)
