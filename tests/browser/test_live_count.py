"""The sidebar's iteration count is live on every page: while a run trains, the number the user sees
keeps moving, not only the number the server has.

The browser records every value the status line shows (a MutationObserver in the page), and the
test waits on that record, never on a fixed sleep.
"""
from __future__ import annotations

import re

import pytest

from .harness import pause_and_settle, pause_button, start_button, wait_idle, wait_training_past

pytestmark = pytest.mark.browser

# Installs an observer that keeps the distinct counts the sidebar's status line has shown, in order.
RECORD_COUNTS_JS = """
() => {
  window.__seenCounts = [];
  const side = document.querySelector("[data-testid='stSidebar']");
  const look = () => {
    const m = side.innerText.match(/Iteration ([\\d,]+)/);
    if (m === null) return;
    const n = parseInt(m[1].replace(/,/g, ""), 10);
    const seen = window.__seenCounts;
    if (seen.length === 0 || seen[seen.length - 1] !== n) seen.push(n);
  };
  new MutationObserver(look).observe(side, {subtree: true, childList: true, characterData: true});
  look();
}
"""
SEEN_AT_LEAST_JS = "(k) => window.__seenCounts.length >= k"

# Distinct counts to see. Measured before the fix: the Guess page showed one new count in 10 s of
# training, so waiting for this many within the default deadline fails on a frozen count.
DISTINCT_COUNTS = 12


@pytest.mark.parametrize("page_label,path", [("Guess", "guess"), ("Data", "data")])
def test_the_iteration_count_moves_while_training_on_a_page_other_than_train(page, page_label, path):
    wait_idle(page)
    start_button(page).click()
    pause_button(page).wait_for(state="visible")     # the click's rerun has happened
    wait_training_past(page, 1)
    # Through the app's navigation: the same session (a page load would start a new one).
    link = page.locator("[data-testid='stSidebarNav'] a[data-testid='stSidebarNavLink']").filter(
        has_text=re.compile(rf"{re.escape(page_label)}\s*$"))
    link.click()
    page.wait_for_url(re.compile(rf"/{path}(\?.*)?$"))
    wait_training_past(page, 1)
    page.evaluate(RECORD_COUNTS_JS)
    page.wait_for_function(SEEN_AT_LEAST_JS, arg=DISTINCT_COUNTS, timeout=30_000)
    seen = page.evaluate("window.__seenCounts")
    assert seen == sorted(seen), f"the count went backwards on {page_label}: {seen}"
    shown = seen[-1]
    final = pause_and_settle(page)
    assert final >= shown
