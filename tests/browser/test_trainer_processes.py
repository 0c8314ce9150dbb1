"""Runs train in the server's trainer processes: a worker killed mid-training (kill -9) is replaced,
and the session says where its run continues from, then trains on.
"""
from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

try:
    from playwright.sync_api import expect
except ImportError:   # the chromium_path fixture skips these tests (fails them under CI), saying why
    expect = None

from .harness import (
    AppServerError,
    assert_no_exception,
    open_app,
    pause_and_settle,
    pause_button,
    serve_app,
    start_button,
    wait_training_past,
)

pytestmark = pytest.mark.browser


def child_pids(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc): the server's trainer processes."""
    children = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        text = (task / "children").read_text().split()
        children += [int(c) for c in text]
    return children


@pytest.mark.skipif(not Path("/proc/self/task").exists(), reason="needs Linux /proc to find the workers")
def test_a_killed_trainer_process_is_replaced_and_the_session_says_where_its_run_continues(browser, tmp_path):
    try:
        with serve_app(tmp_path / "runs") as server:
            context, page = open_app(browser, server.url)
            try:
                start_button(page).click()
                pause_button(page).wait_for(state="visible")
                wait_training_past(page, 2000)
                workers = child_pids(server.process.pid)
                assert workers, "the server started no trainer process"
                for pid in workers:
                    os.kill(pid, signal.SIGKILL)
                expect(page.get_by_text("The training process restarted; the run continues from iteration")
                       ).to_be_visible()
                expect(start_button(page)).to_be_visible()            # paused, intact
                assert_no_exception(page)
                start_button(page).click()
                pause_button(page).wait_for(state="visible")
                resumed = wait_training_past(page, 2000)
                wait_training_past(page, resumed + 2000)               # training again, in a new worker
                pause_and_settle(page)
                assert set(child_pids(server.process.pid)).isdisjoint(workers)
            finally:
                context.close()
    except AppServerError as exc:
        pytest.fail(str(exc), pytrace=False)
