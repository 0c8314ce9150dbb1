"""What watchers cost the owner of a run: the owner's speed and the server's memory with W watch links open.

Run from the repository root (needs Debian's chromium and Playwright, as the browser tests do):

    .venv/bin/python -m bench.watchers [--watchers 1,5,10] [--rounds 2] [--seconds 10]

All in one headless Chromium, every session in a browser context of its own. An owner opens the app
(the classic run: Shakespeare, H=100, T=25, batch 1, Adagrad), presses Step once so the run is saved,
takes its watch link from the Save & load page and goes back to the Train page. W watchers open that
link (``/?watch=<id>``, the Train page). Each round measures, in turn:
  it/s     on one server: the owner alone (W=0), then with each W's watchers open (fresh ones for
           every W, closed after its window): the owner's iterations between Start and Pause, read
           while paused (exact), over the time from when the owner's page shows Pause (training has
           started) to when it shows Start again (stopped); "x alone" is the ratio to the owner
           alone. Not from click to click, as bench.dashboard_overhead times it: with watchers the
           answer to a click can take seconds, and training goes on until the Pause is handled, so
           click to click overstates the rate (it is printed in each round's line), while this
           window may understate it by the time the page takes to show Start after the stop
  Start, Pause s  seconds from the owner's click until its page shows Pause, and Start again
  cores    during each it/s window: CPU seconds per second of the trainer workers and the server
           (as bench.dashboard_overhead counts them) and of this bench's own Chromium (its processes
           below this one: another browser session on the machine is not counted)
  MB/w     for each W, on a server of its own: Pss (/proc/<pid>/smaps_rollup) of the Streamlit server
           process plus its trainer workers (its children with "multiprocessing" in their command
           line) after the W watchers opened, rendered and sat idle for a few seconds, minus before
           they opened, divided by W; that server's owner stays paused after its Step. One watcher opens first and stays: what a server pays once for
           its first watch session is printed on a line of its own, not in MB/w. A server of its own,
           because on the server of the it/s windows the memory moved by tens of MB, either way,
           between two such readings: the garbage of the owner's training (snapshots) and the
           sessions of closed tabs (Streamlit keeps them for reconnection, up to
           server.disconnectedSessionTTL) are freed when the server gets to them, not when the
           bench reads the memory. "private" is the same difference of Private_Clean +
           Private_Dirty: Pss splits shared pages among every process mapping them, so Python
           processes starting or ending elsewhere on the machine move it, and not "private"
With --split-cores the server (and its workers) and the owner's browser (a Chromium of its own: the
teacher's laptop) run on the first half of the machine's cores, and the watchers' Chromium on the
other half (CPU affinity of every process and thread, inherited by the renderers they start later):
what the watchers cost the server and the owner, apart from what their browsers cost the machines
they run on (in a lecture hall, the students' laptops). Without it, one Chromium, all cores shared.
The load average printed first says how busy the machine was: other work takes cores from the
workers, the server and Chromium alike. Figures are medians over the rounds. Targets (issue 12): with 10 watchers the owner keeps >= 0.8 x
its speed alone; <= 5 MB of server memory per watcher.
"""
from __future__ import annotations

import argparse
import os
import re
import statistics
import tempfile
import time
from pathlib import Path

from bench.dashboard_overhead import cpu_seconds
from tests.browser import harness

WATCH_ID_RE = re.compile(r"\?watch=([A-Za-z0-9_-]{16,64})")
SETTLE_SECONDS = 3.0       # watchers sit idle this long before the memory is read
TARGET_RATIO, TARGET_RATIO_AT = 0.8, 10
TARGET_MB_PER_WATCHER = 5.0


def fork_button(page):
    return harness.sidebar(page).locator(".st-key-btn_fork").get_by_role("button")


def nav_link(page, label: str):
    return page.locator("[data-testid='stSidebarNav'] a[data-testid='stSidebarNavLink']").filter(
        has_text=re.compile(rf"{re.escape(label)}\s*$"))


def go_to(page, label: str, path: str) -> None:
    """Another page of the same session (a new URL would be a new session): click its sidebar link."""
    nav_link(page, label).click()
    page.wait_for_url(re.compile(rf"/{re.escape(path)}(\?.*)?$"))
    harness.wait_idle(page)


def owner_watch_id(page) -> str:
    """Step once (the run is saved and gets its links), read the watch link on Save & load, and come
    back to the Train page."""
    harness.step_button(page).click()
    harness.wait_iteration_at_least(page, 1)
    harness.wait_idle(page)
    go_to(page, "Save & load", "files")
    page.get_by_text(WATCH_ID_RE).first.wait_for(state="visible")
    match = WATCH_ID_RE.search(page.content())
    if match is None:
        raise SystemExit("no watch link on the owner's Save & load page")
    go_to(page, "Train", "")
    harness.start_button(page).wait_for(state="visible")
    return match.group(1)


def open_watcher(browser, url: str, timeout_ms: float = 60_000):
    """A fresh browser context at a watch link, loaded and idle: its sidebar offers Make my own copy
    (a watcher has no Start button). Returns (context, page)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    page.goto(url)
    fork_button(page).wait_for(state="visible", timeout=timeout_ms)
    harness.wait_idle(page, timeout_ms)
    return context, page


def server_pids(server_pid: int) -> list[int]:
    """The server process and its trainer workers (children whose command line says multiprocessing)."""
    pids = [server_pid]
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            parent = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
            command = open(f"/proc/{pid}/cmdline", "rb").read()
        except OSError:
            continue   # exited meanwhile
        if parent == server_pid and b"multiprocessing" in command:
            pids.append(int(pid))
    return pids


def server_memory_mb(server_pid: int) -> tuple[float, float]:
    """(Pss, Private_Clean + Private_Dirty) of the server and its workers, MB (/proc/<pid>/smaps_rollup)."""
    pss_kb = private_kb = 0
    for pid in server_pids(server_pid):
        try:
            text = open(f"/proc/{pid}/smaps_rollup").read()
        except OSError:
            continue   # exited meanwhile
        fields = dict(re.findall(r"^(\w+):\s+(\d+) kB", text, re.M))
        pss_kb += int(fields.get("Pss", 0))
        private_kb += int(fields.get("Private_Clean", 0)) + int(fields.get("Private_Dirty", 0))
    return pss_kb / 1024, private_kb / 1024


def descendants(root: int) -> set[int]:
    """The processes below ``root`` (not ``root`` itself), from /proc."""
    parents = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            parents[int(pid)] = int(open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()[1])
        except OSError:
            continue   # exited meanwhile
    below, grew = set(), True
    while grew:
        new = {pid for pid, parent in parents.items() if (parent == root or parent in below) and pid not in below}
        below |= new
        grew = bool(new)
    return below


def pin(pids, cpus: set[int]) -> None:
    """Every thread of ``pids`` onto ``cpus`` (processes they start later inherit it)."""
    for pid in pids:
        try:
            for tid in os.listdir(f"/proc/{pid}/task"):
                os.sched_setaffinity(int(tid), cpus)
        except OSError:
            continue   # exited meanwhile


def launch_pinned(pw, cpus: set[int] | None):
    """A Chromium for this bench; with ``cpus``, its processes (present and future) pinned there."""
    before = descendants(os.getpid())
    browser = harness.launch_chromium(pw)
    if cpus:
        pin(descendants(os.getpid()) - before, cpus)
    return browser


def own_chromium_seconds() -> float:
    """CPU seconds used so far by the Chromium processes below this process (this bench's browsers)."""
    tick = os.sysconf("SC_CLK_TCK")
    total = 0.0
    for pid in descendants(os.getpid()):
        try:
            if b"chrom" not in open(f"/proc/{pid}/cmdline", "rb").read():
                continue
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:
            continue   # exited meanwhile
        total += (int(fields[11]) + int(fields[12])) / tick
    return total


def cores_used(server_pid: int) -> dict[str, float]:
    used = cpu_seconds(server_pid)
    return {"workers": used["workers"], "server": used["server"], "chromium": own_chromium_seconds()}


def owner_rate(page, seconds: float) -> tuple[float, float, float, float]:
    """Train for ``seconds``: (iterations/s from when the page shows Pause to when it shows Start
    again, iterations/s from the Start click to the Pause click, seconds from the Start click until
    the page shows Pause, seconds from the Pause click until it shows Start). The counts are read
    while paused, so they are exact."""
    before = harness.read_iteration(page)
    clicked = time.perf_counter()
    harness.start_button(page).click()
    harness.pause_button(page).wait_for(state="visible")
    started = time.perf_counter()
    time.sleep(seconds)   # a benchmark's measuring window, not synchronisation
    clicked_pause = time.perf_counter()
    harness.pause_button(page).click()
    harness.start_button(page).wait_for(state="visible")
    stopped = time.perf_counter()
    harness.wait_idle(page)
    trained = harness.read_iteration(page) - before
    return (trained / (stopped - started), trained / (clicked_pause - clicked), started - clicked,
            stopped - clicked_pause)


def measure(owner, server_pid: int, seconds: float) -> tuple[tuple[float, ...], dict[str, float]]:
    """``owner_rate`` over one window, and the cores busy meanwhile."""
    used, t0 = cores_used(server_pid), time.perf_counter()
    rate = owner_rate(owner, seconds)
    after, t1 = cores_used(server_pid), time.perf_counter()
    return rate, {k: (after[k] - used[k]) / (t1 - t0) for k in used}


SERVER_CPUS: set[int] | None = None   # --split-cores: the cores the app servers run on


def watcher_memory(browser, w: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """On a server of its own: an owner that pressed Step, one watcher that stays open, then W more.
    Returns the first watcher's (Pss, private) MB and the W watchers' (Pss, private) MB per watcher."""
    contexts = []
    try:
        with tempfile.TemporaryDirectory() as data_dir, harness.serve_app(Path(data_dir), cpus=SERVER_CPUS) as server:
            pid = server.process.pid
            context, owner = harness.open_app(browser, server.url, width=1400, height=1600)
            contexts.append(context)
            watch_url = f"{server.url}/?watch={owner_watch_id(owner)}"
            time.sleep(SETTLE_SECONDS)   # the same idle wait before every reading: a measurement
            before = server_memory_mb(pid)
            contexts.append(open_watcher(browser, watch_url)[0])
            time.sleep(SETTLE_SECONDS)
            first = server_memory_mb(pid)
            watchers = [open_watcher(browser, watch_url) for _ in range(w)]
            contexts += [context for context, _ in watchers]
            time.sleep(SETTLE_SECONDS)
            after = server_memory_mb(pid)
            for _, page in watchers:
                harness.assert_no_exception(page)
            return ((first[0] - before[0], first[1] - before[1]),
                    ((after[0] - first[0]) / w, (after[1] - first[1]) / w))
    finally:
        for context in contexts:
            context.close()


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--watchers", default="1,5,10", help="comma-separated numbers of watchers W")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--seconds", type=float, default=10.0, help="measuring window per W and round")
    ap.add_argument("--split-cores", action="store_true",
                    help="the servers on the first half of the cores, this bench's Chromium on the rest")
    args = ap.parse_args(argv)
    global SERVER_CPUS
    if args.split_cores:
        usable = sorted(os.sched_getaffinity(0))
        if len(usable) < 2:
            raise SystemExit("--split-cores needs at least 2 cores")
        SERVER_CPUS, browser_cpus = set(usable[: len(usable) // 2]), set(usable[len(usable) // 2:])
        print(f"servers, workers and the owner's Chromium on cores {sorted(SERVER_CPUS)}, the watchers' "
              f"Chromium on {sorted(browser_cpus)}")
    else:
        browser_cpus = None
    counts = [int(w) for w in args.watchers.split(",") if w.strip()]
    if not counts or min(counts) < 1:
        raise SystemExit("--watchers: one or more numbers >= 1")
    problem = harness.missing_browser_tools()
    if problem:
        raise SystemExit(f"cannot run: {problem}")

    rates = {w: [] for w in [0, *counts]}
    cores = {w: [] for w in [0, *counts]}
    latency = {w: [] for w in [0, *counts]}   # (Start, Pause) click to the page's answer, s
    memory = {w: [] for w in counts}     # (Pss, private) MB per watcher
    first = []                           # (Pss, private) MB of a server's first watcher
    lagging = []
    from playwright.sync_api import sync_playwright
    with tempfile.TemporaryDirectory() as data_dir, harness.serve_app(Path(data_dir), cpus=SERVER_CPUS) as server, \
            sync_playwright() as pw:
        pid = server.process.pid
        browser = launch_pinned(pw, browser_cpus)                   # the watchers'
        owner_browser = launch_pinned(pw, SERVER_CPUS) if args.split_cores else browser
        _, owner = harness.open_app(owner_browser, server.url, width=1400, height=1600)
        watch_url = f"{server.url}/?watch={owner_watch_id(owner)}"
        print(f"{os.cpu_count()} cores, load average " + " ".join(f"{x:.2f}" for x in os.getloadavg()))
        for r in range(args.rounds):
            (rate, _, *waits), busy = measure(owner, pid, args.seconds)
            rates[0].append(rate)
            latency[0].append(waits)
            cores[0].append(busy)
            line = [f"alone {rate:,.0f} it/s"]
            for w in counts:
                watchers = [open_watcher(browser, watch_url) for _ in range(w)]
                paused_at = harness.read_iteration(owner)
                for _, page in watchers:
                    harness.assert_no_exception(page)
                    if harness.read_iteration(page) != paused_at:
                        lagging.append((w, r + 1, harness.read_iteration(page), paused_at))
                (rate, by_clicks, *waits), busy = measure(owner, pid, args.seconds)
                rates[w].append(rate)
                latency[w].append(waits)
                cores[w].append(busy)
                for _, page in watchers:
                    harness.assert_no_exception(page)
                for context, _ in watchers:
                    context.close()
                line.append(f"W={w} {rate:,.0f} it/s ({rate / rates[0][-1]:.2f} x alone; click to click "
                            f"{by_clicks:,.0f}; Start/Pause answered in {waits[0]:.1f}/{waits[1]:.1f} s)")
            harness.assert_no_exception(owner)
            line.append("memory per watcher")
            for w in counts:
                one, each = watcher_memory(browser, w)
                first.append(one)
                memory[w].append(each)
                line.append(f"W={w} {each[0]:.2f} MB (private {each[1]:.2f})")
            print(f"round {r + 1}: " + "; ".join(line))
        browser.close()
        if owner_browser is not browser:
            owner_browser.close()

    alone = statistics.median(rates[0])
    print(f"\n{'W':>3} {'owner it/s':>11} {'x alone':>8} {'MB/watcher':>11} {'(private)':>10} "
          f"{'Start, Pause s':>15}   cores busy (of {os.cpu_count()}): workers, server, chromium")
    for w in [0, *counts]:
        med_rate = statistics.median(rates[w])
        mb = (f"{statistics.median(m[0] for m in memory[w]):11.2f} {statistics.median(m[1] for m in memory[w]):10.2f}"
              if w else f"{'':>11} {'':>10}")
        waits = ", ".join(f"{statistics.median(x[i] for x in latency[w]):.2f}" for i in (0, 1))
        busy = ", ".join(f"{statistics.median(c[k] for c in cores[w]):.2f}" for k in cores[w][0])
        print(f"{w:>3} {med_rate:11,.0f} {med_rate / alone:8.2f} {mb} {waits:>15}   {busy}")
    print(f"first watcher of a server: {statistics.median(m[0] for m in first):.2f} MB Pss (private "
          f"{statistics.median(m[1] for m in first):.2f}), one-time costs included; not in MB/watcher")
    print(f"targets (issue 12): owner with {TARGET_RATIO_AT} watchers >= {TARGET_RATIO} x alone"
          + ("" if TARGET_RATIO_AT in counts else f" (W={TARGET_RATIO_AT} not measured in this run)")
          + f"; <= {TARGET_MB_PER_WATCHER:g} MB of server memory per watcher")
    for w, r, seen, paused_at in lagging:
        print(f"note: W={w} round {r}: a watcher showed iteration {seen:,} while the owner was paused at "
              f"{paused_at:,}")


if __name__ == "__main__":
    main()
