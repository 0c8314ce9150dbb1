"""Make docs/screenshot.png: the Train page after a few seconds of training, at 1400x1000.

Starts the app on a free loopback port (run files go to a temporary directory), drives Debian's
Chromium through Playwright: Start, wait until the run reaches --iterations, Pause, screenshot.

    .venv/bin/python docs/make_screenshot.py [--iterations 1000] [--out docs/screenshot.png]
"""
from __future__ import annotations

import argparse
import importlib.util
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = REPO_ROOT / "docs" / "screenshot.png"
WIDTH, HEIGHT = 1400, 1000


def _load_harness():
    """tests/browser/harness.py (the browser tests' app and browser helpers), loaded by path."""
    path = REPO_ROOT / "tests" / "browser" / "harness.py"
    spec = importlib.util.spec_from_file_location("rnn_playground_browser_harness", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module   # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1000,
                        help="train until the run has at least this many iterations (default 1000)")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"PNG to write (default {DEFAULT_OUT})")
    parser.add_argument("--timeout", type=float, default=300.0,
                        help="seconds to wait for the training to get there (default 300)")
    args = parser.parse_args(argv)
    if args.iterations < 1:
        parser.error(f"--iterations must be an integer >= 1, got {args.iterations}")

    h = _load_harness()
    problem = h.missing_browser_tools()
    if problem:
        print(f"make_screenshot: {problem}", file=sys.stderr)
        return 2

    from playwright.sync_api import sync_playwright

    with h.serve_app() as server, sync_playwright() as playwright:
        browser = h.launch_chromium(playwright)
        try:
            context, page = h.open_app(browser, server.url, width=WIDTH, height=HEIGHT)
            h.start_button(page).click()
            h.pause_button(page).wait_for(state="visible")
            reached = h.wait_iteration_at_least(page, args.iterations, timeout_ms=args.timeout * 1000)
            h.pause_and_settle(page)
            # Draw the whole page once more while paused, so every panel shows the same final count.
            page.locator("[data-testid='stSidebarNav'] a[data-testid='stSidebarNavLink']").first.click()
            h.wait_idle(page)
            held = h.read_iteration(page)
            h.assert_no_exception(page)
            for key in ("loss_chart", "hidden_chart"):
                page.locator(f".st-key-{key} .js-plotly-plot").wait_for(state="visible")
            page.mouse.move(WIDTH - 5, HEIGHT - 5)   # no hover highlight or tooltip in the picture
            h.wait_idle(page)
            args.out.parent.mkdir(parents=True, exist_ok=True)
            page.screenshot(path=str(args.out))
            context.close()
        finally:
            browser.close()
    print(f"make_screenshot: wrote {args.out} ({WIDTH}x{HEIGHT}), paused at iteration {held:,} "
          f"(asked for >= {args.iterations:,}, saw {reached:,})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
