"""Start the real app and drive it in headless Chromium: shared by the browser tests and
docs/make_screenshot.py. Plain functions, no pytest, so the screenshot script can use them too.

Everything waits on a condition with a deadline (health endpoint, DOM state), never on a fixed sleep.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

REPO_ROOT = Path(__file__).resolve().parents[2]
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run"]
SERVER_START_SECONDS = 60
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
ITERATION_RE = re.compile(r"Iteration ([\d,]+)")


def find_chromium() -> str | None:
    """Debian's Chromium: /usr/bin/chromium, else `chromium` on PATH; None if neither exists."""
    if os.access("/usr/bin/chromium", os.X_OK):
        return "/usr/bin/chromium"
    return shutil.which("chromium")


def missing_browser_tools() -> str | None:
    """Why the browser can't be driven (a sentence), or None when Chromium and Playwright are there."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as exc:
        return f"Playwright for Python is not importable ({exc}): pip install -r requirements-dev.txt"
    if find_chromium() is None:
        return "Chromium is missing (no /usr/bin/chromium, no `chromium` on PATH): install Debian's chromium"
    return None


def free_port() -> int:
    """A currently unused TCP port on the loopback interface."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AppServerError(RuntimeError):
    """The Streamlit server died or never became healthy; the message carries its log."""


def _read_log(path: Path, limit: int = 6000) -> str:
    text = path.read_text(errors="replace") if path.exists() else ""
    return text[-limit:] if len(text) > limit else text


@dataclass(frozen=True)
class AppServer:
    """A running app: its base URL and the server's combined stdout/stderr log."""

    url: str
    log_path: Path
    process: subprocess.Popen

    def log_tail(self, limit: int = 6000) -> str:
        """The last ``limit`` characters of the server's log (tracebacks of app errors land here)."""
        return _read_log(self.log_path, limit)

    def alive(self) -> bool:
        return self.process.poll() is None


@contextlib.contextmanager
def serve_app(data_dir: Path | None = None, python: str = sys.executable,
              cpus: set[int] | None = None) -> Iterator[AppServer]:
    """Run `streamlit run dashboard.py` on a free loopback port; yield it as an AppServer; stop it after.

    Run files go to ``data_dir`` (a temporary directory if None) through RNN_PLAYGROUND_DATA_DIR,
    never to the user's cache. ``cpus``: the CPU cores the server (and so its trainer workers, one per
    core it may use) runs on; None: those of this process. Raises AppServerError, with the server's output, if it exits or is
    not healthy within SERVER_START_SECONDS.
    """
    with contextlib.ExitStack() as stack:
        if data_dir is None:
            data_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rnn-playground-runs-")))
        log_dir = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="rnn-playground-server-")))
        log_path = log_dir / "server.log"
        port = free_port()
        env = {**os.environ, "RNN_PLAYGROUND_DATA_DIR": str(data_dir), "PYTHONUNBUFFERED": "1"}
        cmd = [python, "-m", "streamlit", "run", "dashboard.py", "--server.headless", "true",
               "--server.port", str(port), "--server.address", "127.0.0.1",
               "--browser.gatherUsageStats", "false",
               # Others edit the tree while tests run: a file watcher would rerun sessions mid-test.
               "--server.fileWatcherType", "none"]
        with open(log_path, "wb") as log:
            pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None
            proc = subprocess.Popen(cmd, cwd=REPO_ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                    preexec_fn=pin)
        try:
            base_url = f"http://127.0.0.1:{port}"
            _wait_healthy(proc, base_url, log_path)
            yield AppServer(base_url, log_path, proc)
            # A server the test stopped itself (SIGTERM: a graceful stop) exits with code 0.
            if proc.poll() is not None and proc.returncode != 0:
                raise AppServerError(f"the app server exited early (code {proc.returncode}):\n"
                                     f"{_read_log(log_path)}")
        finally:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(timeout=10)


def _wait_healthy(proc: subprocess.Popen, base_url: str, log_path: Path) -> None:
    """Readiness poll of /_stcore/health with a deadline (not a sleep standing in for a condition)."""
    deadline = time.monotonic() + SERVER_START_SECONDS
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AppServerError(f"the app server exited during start-up (code {proc.returncode}):\n"
                                 f"{_read_log(log_path)}")
        try:
            with urllib.request.urlopen(f"{base_url}/_stcore/health", timeout=2) as resp:
                if resp.read().decode().strip() == "ok":
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            pass
        time.sleep(0.2)  # poll interval of a readiness check with a deadline
    raise AppServerError(f"the app server was not healthy after {SERVER_START_SECONDS} s:\n{_read_log(log_path)}")


def launch_chromium(playwright, executable: str | None = None):
    """Headless Debian Chromium through Playwright (never Playwright's own downloaded browsers)."""
    return playwright.chromium.launch(executable_path=executable or find_chromium(), args=CHROMIUM_ARGS,
                                      headless=True)


def wait_idle(page, timeout_ms: float | None = None) -> None:
    """Until the app's script (or fragment) run has finished (default: the page's default timeout)."""
    page.wait_for_selector(IDLE, timeout=timeout_ms)


def open_app(browser, url: str, *, width: int = 1400, height: int = 1000, timeout_ms: float = 60_000):
    """A fresh browser context (so a fresh Streamlit session and run) at ``url``, loaded and idle.

    Returns (context, page); the caller closes the context.
    """
    context = browser.new_context(viewport={"width": width, "height": height})
    page = context.new_page()
    page.set_default_timeout(timeout_ms)
    page.goto(url)
    # The sidebar's Start button exists once the first full run has drawn the sidebar.
    start_button(page).wait_for(state="visible", timeout=timeout_ms)
    wait_idle(page, timeout_ms)
    return context, page


def sidebar(page):
    return page.locator("[data-testid='stSidebar']")


# Buttons with a help tooltip are drawn twice (one copy hidden), so match by accessible role.
def start_button(page):
    return sidebar(page).locator(".st-key-btn_start").get_by_role("button")


def pause_button(page):
    return sidebar(page).locator(".st-key-btn_pause").get_by_role("button")


def step_button(page):
    return sidebar(page).locator(".st-key-btn_step").get_by_role("button")


def read_iteration(page) -> int:
    """The iteration count from the sidebar's status line ("Iteration 1,234 · training")."""
    text = sidebar(page).get_by_text(ITERATION_RE).first.inner_text()
    match = ITERATION_RE.search(text)
    if match is None:
        raise AssertionError(f"no iteration count in the sidebar status {text!r}")
    return int(match.group(1).replace(",", ""))


# JavaScript predicate: the sidebar's iteration count is at least `min`.
ITERATION_AT_LEAST_JS = """
(min) => {
  const side = document.querySelector("[data-testid='stSidebar']");
  if (!side) return false;
  const m = side.innerText.match(/Iteration ([\\d,]+)/);
  return m !== null && parseInt(m[1].replace(/,/g, ""), 10) >= min;
}
"""


def wait_iteration_at_least(page, minimum: int, timeout_ms: float | None = None) -> int:
    page.wait_for_function(ITERATION_AT_LEAST_JS, arg=minimum, timeout=timeout_ms)
    return read_iteration(page)


# JavaScript predicate: the count reached `min`, or the sidebar offers Start (training has stopped).
TRAINED_OR_STOPPED_JS = """
(min) => {
  const side = document.querySelector("[data-testid='stSidebar']");
  if (!side) return false;
  if (side.querySelector(".st-key-btn_start")) return true;
  const m = side.innerText.match(/Iteration ([\\d,]+)/);
  return m !== null && parseInt(m[1].replace(/,/g, ""), 10) >= min;
}
"""


def wait_training_past(page, minimum: int, timeout_ms: float | None = None) -> int:
    """Until a running session's count reaches ``minimum``. If training stops by itself first (the
    divergence guard, say), fail at once with the messages the app shows, not after a timeout."""
    for attempt in range(3):   # a Start button seen mid-rerun may be stale: look again once idle
        page.wait_for_function(TRAINED_OR_STOPPED_JS, arg=minimum, timeout=timeout_ms)
        if read_iteration(page) >= minimum:
            return read_iteration(page)
        wait_idle(page, timeout_ms)
        if attempt < 2 and start_button(page).count():
            # Right after a Start click the app may look idle before the click's rerun begins:
            # give the rerun a moment to show Pause before concluding that training stopped.
            try:
                pause_button(page).wait_for(state="visible", timeout=5_000)
            except Exception:   # still no Pause: the next attempt reports it
                pass
            continue
        if start_button(page).count() and read_iteration(page) < minimum:
            alerts = page.locator("[data-testid='stAlert']").all_inner_texts()
            raise AssertionError(f"training stopped by itself at iteration {read_iteration(page)} (waiting for "
                                 f"{minimum}) on {page.url}; the app says: {alerts}")
    return wait_iteration_at_least(page, minimum, timeout_ms)


def exception_texts(page) -> list[str]:
    """Texts of every st.exception box on the page (Streamlit shows uncaught errors this way)."""
    return page.locator("[data-testid='stException']").all_inner_texts()


def assert_no_exception(page) -> None:
    """Fail if the app shows an uncaught exception anywhere on the page."""
    texts = exception_texts(page)
    assert not texts, f"the app shows {len(texts)} exception(s) at {page.url}:\n" + "\n---\n".join(texts)


def metric_value(page, label: str) -> str:
    """Displayed value of the st.metric whose label is exactly ``label``."""
    metric = page.locator("[data-testid='stMetric']").filter(
        has=page.locator("[data-testid='stMetricLabel']", has_text=re.compile(rf"^\s*{re.escape(label)}\s*$")))
    return metric.first.locator("[data-testid='stMetricValue']").inner_text().strip()


def metric_int(page, label: str) -> int:
    return int(metric_value(page, label).replace(",", ""))


# JavaScript predicate: the st.metric labelled `label` shows an integer greater than `min`.
METRIC_ABOVE_JS = """
([label, min]) => [...document.querySelectorAll("[data-testid='stMetric']")].some(m => {
  const l = m.querySelector("[data-testid='stMetricLabel']");
  const v = m.querySelector("[data-testid='stMetricValue']");
  return l && v && l.innerText.trim() === label && parseInt(v.innerText.replace(/,/g, ""), 10) > min;
})
"""


def wait_metric_int_above(page, label: str, minimum: int, timeout_ms: float | None = None) -> int:
    page.wait_for_function(METRIC_ABOVE_JS, arg=[label, minimum], timeout=timeout_ms)
    return metric_int(page, label)


# JavaScript: the largest x value of the named trace in the chart with widget key `key` (for the
# loss chart: the newest iteration drawn); null when the chart or the trace is not drawn yet. Counting
# points would not do: the chart thins long histories out. Plotly specs may carry arrays as
# typed-array objects {dtype, bdata (base64)}, which are decoded here.
CHART_LAST_X_JS = """
([key, name]) => {
  const g = document.querySelector(`.st-key-${key} .js-plotly-plot`);
  const t = g && g.data && g.data.find(t => t.name === name);
  if (!t || !t.x) return null;
  let x = t.x;
  if (!Array.isArray(x) && !ArrayBuffer.isView(x)) {
    const types = {f8: Float64Array, f4: Float32Array, i4: Int32Array, u4: Uint32Array, i2: Int16Array,
                   u2: Uint16Array, i1: Int8Array, u1: Uint8Array, u1c: Uint8ClampedArray};
    if (typeof x.bdata !== "string" || !types[x.dtype]) return null;
    const bin = atob(x.bdata);
    const bytes = new Uint8Array(bin.length);
    for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
    x = new types[x.dtype](bytes.buffer);
  }
  return x.length ? Math.max(...x) : null;
}
"""

CHART_Y_TITLE_JS = """
(key) => {
  const g = document.querySelector(`.st-key-${key} .js-plotly-plot`);
  const t = g && g.layout && g.layout.yaxis && g.layout.yaxis.title;
  return t ? (typeof t === "string" ? t : t.text || "") : null;
}
"""


def chart_last_x(page, key: str, trace_name: str) -> float | None:
    return page.evaluate(CHART_LAST_X_JS, [key, trace_name])


def wait_chart_last_x_above(page, key: str, trace_name: str, minimum: float,
                            timeout_ms: float | None = None) -> float:
    page.wait_for_function(f"(args) => {{ const v = ({CHART_LAST_X_JS})(args); return v !== null && v > {float(minimum)}; }}",
                           arg=[key, trace_name], timeout=timeout_ms)
    return chart_last_x(page, key, trace_name)


def chart_y_title(page, key: str) -> str | None:
    return page.evaluate(CHART_Y_TITLE_JS, key)


def wait_chart_y_title(page, key: str, title: str, timeout_ms: float | None = None) -> None:
    page.wait_for_function(f"([key, want]) => ({CHART_Y_TITLE_JS})(key) === want", arg=[key, title],
                           timeout=timeout_ms)


def pause_and_settle(page) -> int:
    """Press Pause, wait until the sidebar offers Start again and the app is idle; return the iteration."""
    pause_button(page).click()
    start_button(page).wait_for(state="visible")
    wait_idle(page)
    return read_iteration(page)
