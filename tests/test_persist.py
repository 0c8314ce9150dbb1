"""Nothing lost: runs saved under the URL's run id and restored by a later session (AppTest with a
temporary data dir), the background saver, and every way a restore or a save can fail."""
import io
import os
import pathlib
import time

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from playground.runs import saver
from playground.runs.run import Run, RunConfig
from playground.runs.store import RunStore, SaveThrottle, new_run_id
from rnn_core import PARAM_NAMES

DASHBOARD = str(pathlib.Path(__file__).resolve().parents[1] / "dashboard.py")
POEM = "roses are red, violets are blue,\nsugar is sweet and so are you.\n" * 40


def small_run(iterations=0, text=POEM) -> Run:
    run = Run(RunConfig(corpus="custom", hidden_size=16, seq_length=10), text, "poems")
    if iterations:
        run.step(iterations)
    return run


def hello_run(iterations=0) -> Run:
    run = Run.from_builtin(RunConfig(corpus="hello", hidden_size=8, seq_length=5))
    if iterations:
        run.step(iterations)
    return run


def same_weights(a: Run, b: Run) -> bool:
    return all(np.array_equal(a.trainer.model.params[k], b.trainer.model.params[k]) for k in PARAM_NAMES)


@pytest.fixture
def data_dir(monkeypatch, tmp_path):
    """A temporary store for the app (never the user's cache), and AppTest running dashboard.py on
    every run as the real server does (see test_app_data_files.isolated_app)."""
    directory = tmp_path / "runs"
    monkeypatch.setenv("RNN_PLAYGROUND_DATA_DIR", str(directory))
    yield directory
    saver.wait_for_saves()


def session(run_id=None) -> AppTest:
    at = AppTest.from_file(DASHBOARD, default_timeout=60)
    if run_id is not None:
        at.query_params["run"] = run_id
    at.run()
    assert not at.exception
    return at


def with_run(at: AppTest, run: Run) -> AppTest:
    """Give the session ``run`` and let one script run see it (a paused, changed run gets saved)."""
    at.session_state.app.run = run
    at.run()
    saver.wait_for_saves()
    return at


def saved_files(directory) -> list[str]:
    """Run files and leftovers, without the store's lock file."""
    return sorted(p.name for p in directory.iterdir() if p.name != ".lock") if directory.exists() else []


def messages(at: AppTest) -> list[str]:
    """Warnings and errors, without the Train page's own "press Reset to apply" notice."""
    return [e.value for e in (*at.warning, *at.error) if "to apply" not in e.value]


# ---------------------------------------------------------------- snapshot and background saver
def test_a_snapshot_is_unaffected_by_later_training():
    run = small_run(iterations=3)
    before = run.to_bytes()
    snap = saver.snapshot(run)
    run.step(4)
    assert snap.to_bytes() == before and snap.iteration == 3 and run.iteration == 7


def test_the_worker_writes_the_newest_queued_snapshot(tmp_path):
    store = RunStore(tmp_path)
    status = saver.SaveStatus()
    run_id = new_run_id()
    run = small_run(iterations=2)
    saver._WORKER.submit(saver._Job(store, run_id, saver.snapshot(run), status))
    run.step(3)
    saver._WORKER.submit(saver._Job(store, run_id, saver.snapshot(run), status))
    assert saver.wait_for_saves(run_id)
    restored = Run.from_bytes(store.load(run_id))
    assert restored.iteration == 5 and same_weights(restored, run)
    assert status.error is None and status.saved_iteration == 5


class FullDisk:
    data_dir = pathlib.Path("/nonexistent")

    def save_unless_changed(self, run_id, payload, expected_version):
        raise OSError(28, "No space left on device")


def test_a_failed_write_is_reported_in_the_status_not_raised():
    status = saver.SaveStatus()
    run_id = new_run_id()
    saver._WORKER.submit(saver._Job(FullDisk(), run_id, saver.snapshot(small_run()), status))
    assert saver.wait_for_saves(run_id)
    assert status.error == "the server's disk is full" and status.saved_at is None


def save_as(store, run_id, run, status):
    saver._WORKER.submit(saver._Job(store, run_id, saver.snapshot(run), status))
    assert saver.wait_for_saves()


def test_two_sessions_on_one_run_never_overwrite_each_other(tmp_path):
    store = RunStore(tmp_path)
    run_id = new_run_id()
    save_as(store, run_id, small_run(iterations=1), saver.SaveStatus())   # the shared starting point
    tab_a, tab_b = saver.SaveStatus(), saver.SaveStatus()
    tab_a.version = tab_b.version = store.version(run_id)        # both opened the link
    run_a, run_b = small_run(iterations=4), small_run(iterations=7)

    save_as(store, run_id, run_a, tab_a)
    save_as(store, run_id, run_b, tab_b)          # A wrote since B read: B's save goes elsewhere
    moved = tab_b.moved_to
    assert moved and moved != run_id and tab_a.moved_to is None
    assert Run.from_bytes(store.load(run_id)).iteration == 4
    assert Run.from_bytes(store.load(moved)).iteration == 7

    run_a.step(1)
    run_b.step(1)
    save_as(store, run_id, run_a, tab_a)          # each goes on saving to its own file, no new copies
    save_as(store, run_id, run_b, tab_b)          # (B's session may still name the old id)
    assert sorted(saved_files(tmp_path)) == sorted([f"{run_id}.npz", f"{moved}.npz"])
    assert Run.from_bytes(store.load(run_id)).iteration == 5
    assert Run.from_bytes(store.load(moved)).iteration == 8


def test_one_session_saving_repeatedly_or_after_a_failure_keeps_its_run_id(tmp_path):
    store, status, run_id = RunStore(tmp_path), saver.SaveStatus(), new_run_id()
    run = small_run(iterations=1)
    for _ in range(3):                             # queued faster than written: replaced, then written
        saver._WORKER.submit(saver._Job(store, run_id, saver.snapshot(run), status))
        run.step(1)
    assert saver.wait_for_saves()
    save_as(FullDisk(), run_id, run, status)       # a failed write leaves the version as it was
    assert status.error
    save_as(store, run_id, run, status)
    assert status.moved_to is None and status.error is None
    assert saved_files(tmp_path) == [f"{run_id}.npz"]
    assert Run.from_bytes(store.load(run_id)).iteration == run.iteration


# ---------------------------------------------------------------- sessions in AppTest
def test_a_fresh_session_stores_nothing_and_has_no_link_yet(data_dir):
    at = session()
    at.run()
    saver.wait_for_saves()
    assert saved_files(data_dir) == [] and "run" not in at.query_params
    assert not at.session_state.app.persist.linked


def test_step_saves_and_a_new_session_with_the_link_continues_exactly(data_dir):
    at = with_run(session(), hello_run(iterations=4))
    at.button(key="btn_step").click().run()
    saver.wait_for_saves()
    run_id = at.session_state.app.persist.run_id
    assert at.query_params["run"] == run_id and saved_files(data_dir) == [f"{run_id}.npz"]

    again = session(run_id)      # a reload, or the link opened elsewhere
    restored, original = again.session_state.app.run, at.session_state.app.run
    assert restored.iteration == 5 and same_weights(restored, original)
    assert "iteration 5" in again.success[0].value and again.query_params["run"] == run_id
    assert again.session_state.cfg_corpus == "hello" and again.session_state.cfg_hidden_size == 8
    again.switch_page("app_pages/files.py").run()
    assert not again.exception and any(run_id in c.value for c in again.code)
    assert any("Last saved at iteration 5" in c.value for c in again.caption)
    restored.step(3)
    original.step(3)
    assert same_weights(restored, original)


def test_pause_and_reset_save_immediately(data_dir):
    at = with_run(session(), hello_run(iterations=2))
    at.button(key="btn_start").click().run()     # one training tick runs inside this script run
    assert at.session_state.app.running
    at.button(key="btn_pause").click().run()
    saver.wait_for_saves()
    run_id = at.session_state.app.persist.run_id
    paused_at = at.session_state.app.run.iteration
    assert paused_at > 2 and Run.from_bytes(RunStore(data_dir).load(run_id)).iteration == paused_at

    at.button(key="btn_reset").click().run()
    saver.wait_for_saves()
    assert at.session_state.app.run.iteration == 0
    assert Run.from_bytes(RunStore(data_dir).load(run_id)).iteration == 0


def test_training_autosaves_on_the_first_tick_and_then_when_the_throttle_is_due(data_dir):
    at = with_run(session(), hello_run())
    now = [1000.0]
    at.session_state.app.persist.throttle = SaveThrottle(30.0, clock=lambda: now[0])
    at.button(key="btn_start").click().run()     # its first tick saves (nothing saved before)
    saver.wait_for_saves()
    status = at.session_state.app.persist.status
    first = status.saved_iteration
    assert first is not None and at.query_params["run"] == at.session_state.app.persist.run_id
    rerun_until(at, lambda a: a.session_state.app.trainer.progress().iteration > first + 100, "more training")
    saver.wait_for_saves()                      # ticks 0 s later by the throttle's clock: no save
    assert status.saved_iteration == first
    now[0] += 30.0
    at.run()                                      # 30 s later: saved again, as the worker has it now
    saver.wait_for_saves()
    assert status.saved_iteration > first + 100


@pytest.mark.parametrize("requested", [new_run_id(), "../../etc/passwd", "x" * 200, "short"])
def test_an_unknown_or_malformed_link_starts_a_new_run_with_a_message(data_dir, requested):
    at = session(requested)
    assert "No saved run with that link" in messages(at)[0]
    assert at.session_state.app.persist.run_id != requested and "run" not in at.query_params
    assert at.session_state.app.run.iteration == 0


@pytest.mark.parametrize("payload", [
    b"not a checkpoint at all",
    b"PK\x03\x04 truncated zip",
    "foreign",
])
def test_a_corrupt_or_foreign_saved_run_is_skipped_with_a_message_and_left_on_disk(data_dir, payload):
    if payload == "foreign":
        buffer = io.BytesIO()
        np.savez(buffer, weights=np.ones((3, 3)))
        payload = buffer.getvalue()
    run_id = new_run_id()
    RunStore(data_dir).save(run_id, payload)
    at = session(run_id)
    assert "could not be read" in messages(at)[0] and "started a new one" in messages(at)[0]
    assert at.session_state.app.persist.run_id != run_id and at.session_state.app.run.iteration == 0
    assert RunStore(data_dir).load(run_id) == payload       # nothing overwritten


def test_a_truncated_saved_run_is_skipped(data_dir):
    run_id = new_run_id()
    RunStore(data_dir).save(run_id, hello_run(iterations=2).to_bytes()[:-100])
    at = session(run_id)
    assert "could not be read" in messages(at)[0] and at.session_state.app.run.iteration == 0


def test_a_restored_custom_text_run_brings_its_text_so_reset_works(data_dir):
    saved = small_run(iterations=3)
    run_id = new_run_id()
    RunStore(data_dir).save(run_id, saved.to_bytes())
    at = session(run_id)
    assert at.session_state.app.run.iteration == 3
    assert at.session_state.app.custom_text == POEM and at.session_state.app.custom_label == "poems"
    assert at.session_state.cfg_corpus == "custom"


def test_an_unusable_data_dir_is_reported_in_the_sidebar_until_a_save_succeeds(monkeypatch, data_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("RNN_PLAYGROUND_DATA_DIR", str(blocker / "runs"))
    at = session()
    at.session_state.app.run = hello_run()
    at.button(key="btn_step").click().run()      # the first save of this run fails
    assert not at.exception and at.session_state.app.run.iteration == 1
    problems = [e.value for e in at.sidebar.error]
    assert len(problems) == 1 and "could not be saved" in problems[0] and "download a checkpoint" in problems[0]
    assert str(blocker) not in problems[0] and "Errno" not in problems[0]
    assert messages(at) == problems              # said once, in the sidebar: not also in the page
    at.button(key="btn_step").click().run()      # still failing: still said, beside the controls
    assert not at.exception and [e.value for e in at.sidebar.error] == problems
    assert at.session_state.app.run.iteration == 2 and "run" not in at.query_params
    monkeypatch.setenv("RNN_PLAYGROUND_DATA_DIR", str(data_dir))   # the directory is usable again
    at.button(key="btn_step").click().run()
    saver.wait_for_saves()
    at.run()
    assert not at.sidebar.error and at.query_params["run"] == at.session_state.app.persist.run_id


def test_a_link_to_an_unusable_data_dir_starts_fresh_with_a_message(monkeypatch, data_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("RNN_PLAYGROUND_DATA_DIR", str(blocker / "runs"))
    at = session(new_run_id())
    assert "not available on this server" in messages(at)[0] and at.session_state.app.run.iteration == 0


def test_old_runs_are_pruned_once_but_never_the_sessions_own(data_dir):
    store = RunStore(data_dir)
    old_id, mine_id = new_run_id(), new_run_id()
    long_ago = time.time() - 30 * 86400
    for run_id in (old_id, mine_id):
        path = store.save(run_id, hello_run().to_bytes())
        os.utime(path, (long_ago, long_ago))
    at = session(mine_id)       # restoring an old run: it is the session's own
    at.button(key="btn_step").click().run()
    saver.wait_for_saves()
    assert saved_files(data_dir) == [f"{mine_id}.npz"]


def test_a_link_open_in_two_tabs_splits_into_two_runs_with_a_message(data_dir):
    first = with_run(session(), hello_run(iterations=2))
    first.button(key="btn_step").click().run()
    saver.wait_for_saves()
    run_id = first.session_state.app.persist.run_id
    second = session(run_id)                       # the same link in a second tab
    assert second.session_state.app.run.iteration == 3

    first.button(key="btn_step").click().run()     # the first tab saves: it keeps the link
    saver.wait_for_saves()
    second.button(key="btn_step").click().run()    # the second's save goes to a new run id, which
    saver.wait_for_saves()                       # the tab follows at once, and says so
    assert any("open in another tab" in m.value for m in second.info)
    moved = second.session_state.app.persist.run_id
    assert moved != run_id and second.query_params["run"] == moved
    second.button(key="btn_step").click().run()    # and it goes on saving there
    saver.wait_for_saves()

    assert second.session_state.app.persist.run_id == moved and second.query_params["run"] == moved
    assert first.session_state.app.persist.run_id == run_id and first.query_params["run"] == run_id
    store = RunStore(data_dir)
    assert Run.from_bytes(store.load(run_id)).iteration == 4
    assert Run.from_bytes(store.load(moved)).iteration == 5
    assert session(moved).session_state.app.run.iteration == 5     # the new link reopens the copy


# ---------------------------------------------------------------- nothing lost between saves
def rerun_until(at, condition, what: str, timeout: float = 60.0):
    """Rerun ``at`` (one sidebar tick each: the run trains in its worker meanwhile) until
    ``condition(at)`` holds; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition(at):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        at.run()
        assert not at.exception
    return at


def training_session(data_dir, past: int = 200) -> tuple[AppTest, str]:
    """A session training in its worker, past ``past`` iterations beyond its last save."""
    at = with_run(session(), hello_run())
    at.session_state.app.persist.throttle = SaveThrottle(3600.0)      # no autosave while the test looks
    at.button(key="btn_start").click().run()
    saver.wait_for_saves()
    run_id = at.session_state.app.persist.run_id
    saved = Run.from_bytes(RunStore(data_dir).load(run_id)).iteration
    rerun_until(at, lambda a: a.session_state.app.trainer.progress().iteration > saved + past, "training")
    return at, run_id


def stored_iteration(data_dir, run_id) -> int:
    saver.wait_for_saves()
    return Run.from_bytes(RunStore(data_dir).load(run_id)).iteration


def test_a_tab_gone_mid_training_has_its_trainer_released_saved_first(data_dir):
    at, run_id = training_session(data_dir)
    sp, handle = at.session_state.app.persist, at.session_state.app.trainer
    assert saver.sweep(now=sp.seen_at + 0.5, connected=lambda sid: False) == []   # still ticking
    assert handle.placed and handle.running
    assert saver.sweep(now=sp.seen_at + saver.IDLE_SECONDS + 0.5, connected=lambda sid: False) == [sp]
    assert not handle.placed and not handle.running                # the worker holds nothing of it
    assert stored_iteration(data_dir, run_id) == handle.latest.iteration > 200
    at.run()                                                       # the session comes back: paused,
    assert at.session_state.app.running is False                       # showing the run as it stopped
    assert at.session_state.app.run.iteration == handle.latest.iteration
    before = handle.latest.iteration
    at.button(key="btn_step").click().run()                        # and it trains on from there
    assert at.session_state.app.run.iteration == handle.latest.iteration == before + 1
    assert not handle.placed                                       # paused again: parked at once


def test_a_connected_tab_whose_timer_is_throttled_keeps_training_and_is_autosaved(data_dir):
    at, run_id = training_session(data_dir)
    sp, handle = at.session_state.app.persist, at.session_state.app.trainer
    now = [0.0]
    sp.throttle = SaveThrottle(saver.AUTOSAVE_SECONDS, clock=lambda: now[0])
    idle = sp.seen_at + saver.IDLE_SECONDS + 1
    assert saver.sweep(now=idle, connected=lambda sid: True) == [sp]   # never saved by this throttle
    first = stored_iteration(data_dir, run_id)
    assert handle.running and first > 200
    assert saver.sweep(now=idle, connected=lambda sid: True) == []     # saved just now
    now[0] += saver.AUTOSAVE_SECONDS
    wait = time.monotonic() + 60
    while handle.progress().iteration <= first and time.monotonic() < wait:
        pass
    assert saver.sweep(now=idle, connected=lambda sid: True) == [sp]
    assert stored_iteration(data_dir, run_id) > first and handle.running
    at.button(key="btn_pause").click().run()


def test_a_paused_idle_session_is_released_then_forgotten_and_comes_back_on_use(data_dir):
    at = with_run(session(), hello_run(iterations=3))
    sp, handle = at.session_state.app.persist, at.session_state.app.trainer
    assert saver.sweep(now=sp.seen_at + saver.IDLE_SECONDS + 1) == []     # connection unknown: wait
    assert saver.sweep(now=sp.seen_at + saver.RELEASE_SECONDS + 1) == [sp]
    assert not handle.placed and at.session_state.app.run.iteration == 3
    saver.sweep(now=sp.seen_at + saver.FORGET_SECONDS + 1)
    assert id(sp) not in saver._LIVE
    at.run()                                                       # re-joins when used
    assert id(sp) in saver._LIVE
    at.button(key="btn_step").click().run()
    assert at.session_state.app.run.iteration == 4 and not handle.placed      # stepped, then parked again


def test_a_reload_mid_training_continues_from_the_moment_of_the_reload(data_dir, monkeypatch):
    at, run_id = training_session(data_dir)
    monkeypatch.setattr(saver, "connected", lambda sid: False)   # the old tab has gone (a reload)
    reloaded = session(run_id)
    old = at.session_state.app.trainer
    assert not old.placed                                          # its trainer stopped, saved first
    assert reloaded.session_state.app.run.iteration == old.latest.iteration > 200
    assert same_weights(reloaded.session_state.app.run, old.latest)
    assert not reloaded.session_state.app.persist.status.moved_to


def test_a_second_tab_on_a_training_run_gets_it_as_it_is_and_the_first_trains_on(data_dir):
    at, run_id = training_session(data_dir)
    seen = at.session_state.app.trainer.progress().iteration
    other = session(run_id)                                        # connection unknown: both stay
    assert other.session_state.app.run.iteration >= seen and at.session_state.app.trainer.running
    at.button(key="btn_pause").click().run()


def test_a_graceful_server_stop_saves_every_live_session(data_dir):
    at, run_id = training_session(data_dir)
    other, other_id = training_session(data_dir)
    seen = (at.session_state.app.trainer.progress().iteration, other.session_state.app.trainer.progress().iteration)
    assert saver.save_all_at_exit(timeout=60)
    assert stored_iteration(data_dir, run_id) >= seen[0] and stored_iteration(data_dir, other_id) >= seen[1]
    at.button(key="btn_pause").click().run()
    other.button(key="btn_pause").click().run()


def test_the_save_page_offers_no_link_for_a_run_that_was_never_written(monkeypatch, data_dir, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    monkeypatch.setenv("RNN_PLAYGROUND_DATA_DIR", str(blocker / "runs"))
    at = with_run(session(), hello_run())
    at.button(key="btn_step").click().run()    # a save was attempted, and failed
    at.switch_page("app_pages/files.py").run()
    assert not at.exception and not at.code and "run" not in at.query_params
    assert not any("Open this link" in m.value for m in at.markdown)
    assert any("could not be saved" in e.value for e in at.sidebar.error)


def test_save_failures_are_said_in_the_users_terms():
    assert saver.save_error_sentence(OSError(28, "No space left on device", "/srv/x")) == "the server's disk is full"
    denied = saver.save_error_sentence(PermissionError(13, "Permission denied", "/srv/runs/abc.npz"))
    assert denied == "the server is not allowed to write to its data directory"
    odd = saver.save_error_sentence(IsADirectoryError(21, "Is a directory", "/srv/runs/46"))
    assert "/srv" not in odd and "46" not in odd and "Errno" not in odd
    assert "server's log" in saver.save_error_sentence(RuntimeError("boom"))
