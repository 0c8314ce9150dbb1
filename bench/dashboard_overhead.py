"""How much of the engine's speed survives in the app, with the live charts on.

Run from the repository root (needs Debian's chromium and Playwright, as the browser tests do):

    .venv/bin/python -m bench.dashboard_overhead [--seconds 10] [--rounds 3]

Measured alternately in one run, at the classic setting (Shakespeare, H=100, T=25, batch 1, Adagrad):
  engine   rnn_core Trainer.step in this process, iterations/s (the app's server is paused meanwhile)
  app      the dashboard's Train page training in headless Chromium, iterations/s read from the
           sidebar's live counter (the engine is idle meanwhile)
  app+long the same with a run whose history holds a million iterations (thinned to its bound),
           opened through its ?run= link: the charts must not get slower as the history grows
Target: app >= 70% of engine; app+long about equal to app.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from playground.run import PRESETS, Run
from playground.store import RunStore, new_run_id
from tests.browser import harness


def engine_rate(run: Run, seconds: float) -> float:
    tr = run.trainer
    start_iter, t0 = tr.iteration, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        tr.step(20)
    return (tr.iteration - start_iter) / (time.perf_counter() - t0)


def app_rate(page, seconds: float) -> float:
    harness.start_button(page).click()
    harness.wait_iteration_at_least(page, harness.read_iteration(page) + 200)   # past start-up
    i0, t0 = harness.read_iteration(page), time.perf_counter()
    time.sleep(seconds)   # a benchmark's measuring window, not synchronisation
    i1, t1 = harness.read_iteration(page), time.perf_counter()
    harness.pause_button(page).click()
    harness.wait_idle(page)
    return (i1 - i0) / (t1 - t0)


def long_history_run() -> Run:
    """A classic run whose history has seen 1,000,000 iterations (bounded storage keeps ~20k rows)."""
    run = Run.from_builtin(PRESETS["classic"])
    run.step(5)
    hist = run.trainer.history
    row = list(hist.to_matrix()[-1])
    for i in range(1, 1_000_001):
        row[0] = i
        hist.append(row)
    run.trainer.iteration = 1_000_000
    return run


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="measuring window per contender and round")
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args(argv)
    problem = harness.missing_browser_tools()
    if problem:
        raise SystemExit(f"cannot run: {problem}")

    engine_run = Run.from_builtin(PRESETS["classic"])
    long_run = long_history_run()
    print(f"long-history run keeps {len(long_run.trainer.history):,} rows for 1,000,000 iterations "
          f"({long_run.trainer.history.to_matrix().nbytes / 2**20:.1f} MB)")
    rates = {"engine": [], "app": [], "app+long": []}
    with tempfile.TemporaryDirectory() as data_dir:
        run_id = new_run_id()
        RunStore(Path(data_dir)).save(run_id, long_run.to_bytes())
        from playwright.sync_api import sync_playwright
        with harness.serve_app(Path(data_dir)) as server, sync_playwright() as pw:
            url = server.url
            browser = harness.launch_chromium(pw)
            _, fresh = harness.open_app(browser, url, width=1400, height=1600)
            _, long_page = harness.open_app(browser, f"{url}/?run={run_id}", width=1400, height=1600)
            for r in range(args.rounds):
                rates["engine"].append(engine_rate(engine_run, args.seconds))
                rates["app"].append(app_rate(fresh, args.seconds))
                rates["app+long"].append(app_rate(long_page, args.seconds))
                print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:,.0f} it/s" for k, v in rates.items()))
                for page in (fresh, long_page):
                    harness.assert_no_exception(page)
            browser.close()
    med = {k: statistics.median(v) for k, v in rates.items()}
    print("\nmedian iterations/s:  " + "   ".join(f"{k} {v:,.0f}" for k, v in med.items()))
    print(f"app / engine           = {med['app'] / med['engine']:.2f}   (target >= 0.70)")
    print(f"app+long / app         = {med['app+long'] / med['app']:.2f}   (target ~ 1: no slowdown with history)")


if __name__ == "__main__":
    main()
