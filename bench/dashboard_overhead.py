"""How much of the engine's speed survives in the app, with the live charts on.

Run from the repository root (needs Debian's chromium and Playwright, as the browser tests do):

    .venv/bin/python -m bench.dashboard_overhead [--seconds 10] [--rounds 3] [--sessions 6]

Measured alternately in one run, at the classic setting (Shakespeare, H=100, T=25, batch 1, Adagrad),
each window starting once Chromium and the server are quiet (a chart that a Pause redraws would
otherwise spill into the next contender's window):
  engine   rnn_core Trainer.step in this process, iterations/s (the app's server is idle meanwhile)
  app      the dashboard's Train page training in headless Chromium: iterations between Start and
           Pause, read after Pause (the count shown while training lags by a tick)
  app+long the same with a run whose history holds a million iterations, opened through its ?run=
           link: the charts must not get slower as the history grows
  class    S sessions (browser contexts on the Save & load page) training at once: their summed
           iterations/s, and the slowest session's over the fastest's
  pause    seconds from a Pause click until the sidebar offers Start again
  cores    during the class row: CPU seconds per second of the trainer workers, the app's server
           process and headless Chromium (all its processes), which share this machine's cores
Targets (issue 11): app >= 0.95 x engine; class >= 1.4 x app with S = 6 on 2 cores, slowest/fastest
>= 0.6; pause <= 1 s. app+long about equal to app.
"""
from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

from playground.runs.run import PRESETS, Run
from playground.runs.store import RunStore, new_run_id
from tests.browser import harness


def engine_rate(run: Run, seconds: float) -> float:
    tr = run.trainer
    start_iter, t0 = tr.iteration, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        tr.step(20)
    return (tr.iteration - start_iter) / (time.perf_counter() - t0)


def pause(page) -> float:
    """Click Pause; seconds until the sidebar offers Start again."""
    t0 = time.perf_counter()
    harness.pause_button(page).click()
    harness.start_button(page).wait_for(state="visible")
    seconds = time.perf_counter() - t0
    harness.wait_idle(page)
    return seconds


def cpu_seconds(server_pid: int) -> dict[str, float]:
    """CPU seconds used so far by the server process, its trainer workers, and Chromium (Linux /proc)."""
    used = {"workers": 0.0, "server": 0.0, "chromium": 0.0}
    tick = os.sysconf("SC_CLK_TCK")
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            command = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue   # exited meanwhile
        seconds = (int(fields[11]) + int(fields[12])) / tick
        if int(pid) == server_pid:
            used["server"] += seconds
        elif int(fields[1]) == server_pid and b"multiprocessing" in command:   # fields[1]: parent pid
            used["workers"] += seconds
        elif b"chrom" in command:
            used["chromium"] += seconds
    return used


def wait_quiet(server_pid: int, busy_cores: float = 0.05, window: float = 0.5, longest: float = 15.0) -> float:
    """Until Chromium and the server have used under ``busy_cores`` of a core for ``window``
    seconds (at most ``longest``): a chart a Pause redraws, or a page still settling, must not
    spill into the next contender's measuring window. Returns the seconds waited."""
    t0 = time.perf_counter()
    before = cpu_seconds(server_pid)
    while time.perf_counter() - t0 < longest:
        time.sleep(window)   # a benchmark's sampling interval, not synchronisation
        now = cpu_seconds(server_pid)
        if (now["chromium"] - before["chromium"]) + (now["server"] - before["server"]) < busy_cores * window:
            break
        before = now
    return time.perf_counter() - t0


def app_rates(pages, seconds: float) -> tuple[list[float], list[float]]:
    """Train every page's session at once for ``seconds``: (iterations/s of each, Pause latencies).
    Counts are read while paused, before Start and after Pause, so they are exact."""
    before = [harness.read_iteration(page) for page in pages]
    starts = []
    for page in pages:
        starts.append(time.perf_counter())
        harness.start_button(page).click()
    for page in pages:
        harness.pause_button(page).wait_for(state="visible")
    time.sleep(seconds)   # a benchmark's measuring window, not synchronisation
    stops, latencies = [], []
    for page in pages:
        stops.append(time.perf_counter())
        latencies.append(pause(page))
    after = [harness.read_iteration(page) for page in pages]
    return [(a - b) / (t1 - t0) for a, b, t0, t1 in zip(after, before, starts, stops)], latencies


def app_rate(page, seconds: float) -> float:
    return app_rates([page], seconds)[0][0]


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
    ap.add_argument("--sessions", type=int, default=6, help="sessions training at once in the class row")
    args = ap.parse_args(argv)
    problem = harness.missing_browser_tools()
    if problem:
        raise SystemExit(f"cannot run: {problem}")

    engine_run = Run.from_builtin(PRESETS["classic"])
    long_run = long_history_run()
    print(f"long-history run keeps {len(long_run.trainer.history):,} rows for 1,000,000 iterations "
          f"({long_run.trainer.history.to_matrix().nbytes / 2**20:.1f} MB)")
    rates = {"engine": [], "app": [], "app+long": [], "class": []}
    spreads, pauses, cores = [], [], []
    with tempfile.TemporaryDirectory() as data_dir:
        run_id = new_run_id()
        RunStore(Path(data_dir)).save(run_id, long_run.to_bytes())
        from playwright.sync_api import sync_playwright
        with harness.serve_app(Path(data_dir)) as server, sync_playwright() as pw:
            url = server.url
            browser = harness.launch_chromium(pw)
            _, fresh = harness.open_app(browser, url, width=1400, height=1600)
            _, long_page = harness.open_app(browser, f"{url}/?run={run_id}", width=1400, height=1600)
            classroom = [harness.open_app(browser, f"{url}/files", width=1200, height=900)[1]
                         for _ in range(args.sessions)]
            pid = server.process.pid
            for r in range(args.rounds):
                wait_quiet(pid)
                rates["engine"].append(engine_rate(engine_run, args.seconds))
                wait_quiet(pid)
                one, latency = app_rates([fresh], args.seconds)
                rates["app"].append(one[0])
                pauses += latency
                wait_quiet(pid)
                rates["app+long"].append(app_rate(long_page, args.seconds))
                wait_quiet(pid)
                used, t0 = cpu_seconds(pid), time.perf_counter()
                each, latency = app_rates(classroom, args.seconds)
                after, t1 = cpu_seconds(pid), time.perf_counter()
                cores.append({k: (after[k] - used[k]) / (t1 - t0) for k in used})
                rates["class"].append(sum(each))
                spreads.append(min(each) / max(each))
                pauses += latency
                print(f"round {r + 1}: " + ", ".join(f"{k} {v[-1]:,.0f} it/s" for k, v in rates.items())
                      + f", app/engine {rates['app'][-1] / rates['engine'][-1]:.2f}"
                      + f", class/app {rates['class'][-1] / rates['app'][-1]:.2f}"
                      + f", class slowest/fastest {spreads[-1]:.2f}, class cores "
                      + ", ".join(f"{k} {v:.2f}" for k, v in cores[-1].items()))
                for page in (fresh, long_page, *classroom):
                    harness.assert_no_exception(page)
            browser.close()
    med = {k: statistics.median(v) for k, v in rates.items()}
    print("\nmedian iterations/s:  " + "   ".join(f"{k} {v:,.0f}" for k, v in med.items()))
    print(f"app / engine           = {med['app'] / med['engine']:.2f}   (target >= 0.95)")
    print(f"app+long / app         = {med['app+long'] / med['app']:.2f}   (target ~ 1: no slowdown with history)")
    print(f"class ({args.sessions}) / app        = {med['class'] / med['app']:.2f}   (target >= 1.4)")
    print(f"class slowest/fastest  = {statistics.median(spreads):.2f} (worst {min(spreads):.2f}; target >= 0.6)")
    print("class cores busy       = " + ", ".join(f"{k} {statistics.median(c[k] for c in cores):.2f}"
                                                  for k in cores[0]) + f" (of {os.cpu_count()})")
    print(f"pause latency          = median {statistics.median(pauses):.2f} s, worst {max(pauses):.2f} s "
          f"(target <= 1 s)")


if __name__ == "__main__":
    main()
