"""Nothing lost, in the real app on its own server: a reload mid-training continues from the moment of
the reload (not from the last autosave), and a graceful server stop (SIGTERM) saves the training up
to the moment it stopped.
"""
from __future__ import annotations

import signal
import urllib.parse

import pytest

from playground.runs.run import Run
from playground.runs.store import RunStore

from .harness import (
    AppServerError,
    open_app,
    pause_button,
    read_iteration,
    serve_app,
    start_button,
    wait_idle,
    wait_training_past,
)

pytestmark = pytest.mark.browser


def run_id_in(url: str) -> str:
    ids = urllib.parse.parse_qs(urllib.parse.urlparse(url).query).get("run")
    assert ids, f"no ?run= in {url}"
    return ids[0]


def test_a_reload_and_a_server_stop_lose_no_training(browser, tmp_path):
    data_dir = tmp_path / "runs"
    try:
        with serve_app(data_dir) as server:
            context, page = open_app(browser, server.url)
            try:
                start_button(page).click()
                pause_button(page).wait_for(state="visible")
                # Past the first autosave (on the first tick) by far: what a reload would lose.
                before_reload = wait_training_past(page, 3000)
                page.wait_for_url("**/?run=*")
                run_id = run_id_in(page.url)
                page.reload()
                start_button(page).wait_for(state="visible")
                wait_idle(page)
                restored = read_iteration(page)
                assert restored >= before_reload, (restored, before_reload)

                start_button(page).click()
                pause_button(page).wait_for(state="visible")     # the click's rerun has happened
                before_stop = wait_training_past(page, restored + 3000)
                server.process.send_signal(signal.SIGTERM)
                assert server.process.wait(timeout=60) == 0, server.log_tail()
            finally:
                context.close()
    except AppServerError as exc:
        pytest.fail(str(exc), pytrace=False)
    saved = Run.from_bytes(RunStore(data_dir).load(run_id))
    assert saved.iteration >= before_stop, (saved.iteration, before_stop)
