"""Two UI replicas behind HAProxy over one local Ray (deploy/serve.py), in a real browser.

A run trains through replica A; its watch link opened on replica B sees it move (B finds the run's
actor by its id); replica A stops; the run's private link opened through the proxy lands on B and
finds the run still training (its actor lives in Ray, not in A); the actor is killed, and the
session says the training process restarted and trains on when started. Skipped, saying why, when HAProxy
or Ray is missing, except under CI (then a failure). Waits are conditions with deadlines.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

try:
    from playwright.sync_api import expect
except ImportError:   # the chromium_path fixture skips these tests (fails them under CI), saying why
    expect = None

from .harness import (
    open_app,
    pause_button,
    read_iteration,
    sidebar,
    start_button,
    step_button,
    wait_idle,
    wait_iteration_at_least,
    wait_training_past,
)
from .test_app_browser import go_to

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "deploy"))
import serve  # noqa: E402  (deploy/serve.py: what the README's commands run)

# Three servers, a Ray head and a browser: longer than the suite's 180 s per test on a slow machine.
pytestmark = [pytest.mark.browser, pytest.mark.timeout(600)]
WATCH_LINK = re.compile(r"https?://\S+/\?watch=([A-Za-z0-9_-]{16,64})")
RUN_IN_URL = re.compile(r"[?&]run=([A-Za-z0-9_-]{16,64})")


def _unavailable(reason: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but the deploy test cannot run: {reason}", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def deployment(chromium_path, tmp_path):
    if serve.find_haproxy() is None:
        _unavailable("HAProxy is missing (no /usr/sbin/haproxy): install Debian's haproxy")
    try:
        import ray  # noqa: F401
    except ImportError:
        _unavailable("Ray is not installed: pip install -r requirements-ray.txt")
    try:
        started = serve.Deployment(replicas_wanted=2, port=serve.free_port(), ray_head=True, ray_cpus=2,
                                   work_dir=tmp_path / "deploy").start()
    except serve.DeployError as exc:
        pytest.fail(str(exc), pytrace=False)
    yield started
    started.stop()


def kill_actor(deployment, run_id: str) -> None:
    """ray.kill the run's actor from a process of its own joined to the deployment's Ray."""
    code = ("import ray, sys; ray.init(address=sys.argv[1], log_to_driver=False); "
            "ray.kill(ray.get_actor(sys.argv[2], namespace='rnn-playground'), no_restart=True)")
    env = {**os.environ, **deployment.ray_env}
    done = subprocess.run([sys.executable, "-c", code, deployment.ray_address, run_id], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]


def open_context(browser, url: str):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    page.set_default_timeout(60_000)
    page.goto(url)
    return context, page


def test_a_run_trains_through_one_replica_is_watched_on_another_and_outlives_its_replica(browser, deployment):
    replica_a, replica_b = deployment.replicas
    contexts = []
    try:
        owner_context, owner = open_app(browser, replica_a.url)
        contexts.append(owner_context)
        step_button(owner).click()                              # saved: the run has its link now
        wait_iteration_at_least(owner, 1)
        owner.wait_for_url(RUN_IN_URL)
        run_id = RUN_IN_URL.search(owner.url).group(1)
        go_to(owner, "Save & load")
        wait_idle(owner)
        link = owner.get_by_text(WATCH_LINK).first
        link.wait_for(state="visible")
        watch_id = WATCH_LINK.search(link.inner_text()).group(1)
        start_button(owner).click()
        pause_button(owner).wait_for(state="visible")
        wait_training_past(owner, 100)

        # The watch link on the other replica: it finds the run's actor by the run's id.
        watcher_context, watcher = open_context(browser, f"{replica_b.url}/?watch={watch_id}")
        contexts.append(watcher_context)
        sidebar(watcher).locator(".st-key-btn_fork").get_by_role("button").wait_for(state="visible")
        seen = read_iteration(watcher)
        wait_iteration_at_least(watcher, seen + 1)

        # Replica A stops (gracefully: it saves its sessions' runs); the actor trains on in Ray.
        before_stop = read_iteration(owner)
        deployment.stop_replica(replica_a.index)
        assert replica_a.process.returncode == 0, "replica A did not stop gracefully (its exit saves)"

        # The private link through the proxy: HAProxy sends it to B, which attaches to the actor.
        reopened_context, reopened = open_context(browser, f"{deployment.url}/?run={run_id}")
        contexts.append(reopened_context)
        pause_button(reopened).wait_for(state="visible")        # training, not paused
        wait_iteration_at_least(reopened, before_stop + 1)
        moving = read_iteration(reopened)
        wait_iteration_at_least(reopened, moving + 1)             # and still moving
        assert "replica0" not in [c["value"] for c in reopened_context.cookies() if c["name"] == "RNNPG_REPLICA"]

        # The run's actor dies (its node, say): the session says what a restarted worker says.
        kill_actor(deployment, run_id)
        expect(reopened.get_by_text("The training process restarted; the run continues from iteration")).to_be_visible()
        start_button(reopened).wait_for(state="visible")      # paused, from its last copy
        restarted_at = read_iteration(reopened)
        start_button(reopened).click()                          # and it trains on in a new actor
        wait_training_past(reopened, restarted_at + 1)
    finally:
        for context in contexts:
            context.close()
