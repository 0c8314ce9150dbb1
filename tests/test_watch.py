"""Watch links: the store's watch ids, the watcher's handle (reads the owner's run, refuses every
control, below the UI), forks, revocation, and every page in watch mode (AppTest)."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from playground.runs import saver, watch
from playground.runs.run import RunConfig
from playground.runs.store import RunStore, new_run_id
from playground.runs.trainers import TrainerPool
from rnn_core import PARAM_NAMES
from tests.test_trainers import small_run, wait_for

DASHBOARD = str(Path(__file__).resolve().parents[1] / "dashboard.py")


@pytest.fixture(scope="module")
def pool():
    pool = TrainerPool(workers=1, max_training=8)
    yield pool
    pool.close()


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


def owned(store, pool, run=None):
    """An owner: a run saved under a run id, trained by a handle, with a watch link."""
    run = run or small_run()
    run_id = new_run_id()
    store.save(run_id, run.to_bytes())
    handle = pool.handle(run)
    watch_id = store.new_watch_link(run_id)
    owners = {run_id: handle}
    return run_id, handle, watch_id, owners


# ---------------------------------------------------------------- the store's watch ids
def test_a_watch_link_names_its_run_until_a_new_one_replaces_it(store):
    run_id = new_run_id()
    store.save(run_id, b"run")
    assert store.watch_id_of(run_id) is None
    first = store.new_watch_link(run_id)
    assert first != run_id and store.run_of_watch(first) == run_id and store.watch_id_of(run_id) == first
    second = store.new_watch_link(run_id)
    assert store.run_of_watch(second) == run_id and store.run_of_watch(first) is None
    assert store.run_of_watch(new_run_id()) is None
    with pytest.raises(ValueError, match="run_id"):
        store.run_of_watch("../../etc/passwd")


def test_a_watch_file_pointing_elsewhere_opens_nothing(store):
    """A hand-made <id>.watch naming another run is not a watch link: the run must name it back."""
    victim, forged = new_run_id(), new_run_id()
    store.save(victim, b"run")
    store.new_watch_link(victim)
    (store.data_dir / f"{forged}.watch").write_text(victim)
    assert store.run_of_watch(forged) is None


def test_pruning_a_run_removes_its_watch_link(store):
    run_id = new_run_id()
    store.save(run_id, b"x" * 10)
    watch_id = store.new_watch_link(run_id)
    store.max_age_seconds = 1.0
    assert store.prune(now=time.time() + 10) == [run_id]
    assert store.run_of_watch(watch_id) is None
    assert not list(store.data_dir.glob("*.watch*"))


# ---------------------------------------------------------------- the watcher's handle
def test_a_watcher_sees_the_owners_run_train_and_cannot_control_it(store, pool):
    run_id, owner, watch_id, owners = owned(store, pool)
    watcher = watch.WatchHandle(store, watch_id, owners.get)
    owner.start()
    seen = wait_for(lambda: (p := watcher.progress()).iteration >= 100 and p, "the watcher seeing training")
    assert seen.running and watcher.running
    forged = [lambda: watcher.start(), lambda: watcher.pause(), lambda: watcher.step(5),
              lambda: watcher.apply_live(RunConfig(corpus="custom", hidden_size=16, seq_length=10,
                                                   learning_rate=5.0)),
              lambda: watcher.set_stop_at(1), lambda: watcher.replace(small_run()), lambda: watcher.release()]
    for action in forged:
        with pytest.raises(watch.WatchOnly, match="owner"):
            action()
    assert owner.running
    wait_for(lambda: owner.progress().iteration > seen.iteration, "the owner training on")
    view = watcher.snapshot(max_age=0)
    assert view.trainer.learning_rate == 0.1 and view.iteration >= seen.iteration
    owner.pause()
    assert not watcher.running
    owner.release()


def test_watching_never_takes_the_owners_news(store, pool):
    """The owner's run pausing itself at stop_at is said to the owner, however often watchers look."""
    run_id, owner, watch_id, owners = owned(store, pool)
    watcher = watch.WatchHandle(store, watch_id, owners.get)
    owner.start(stop_at=300)
    wait_for(lambda: not watcher.progress().running and watcher.progress().iteration == 300, "the stop")
    assert owner.progress().reached == 300
    owner.release()


def test_a_watcher_without_a_live_owner_reads_the_last_save_and_follows_new_ones(store, pool, monkeypatch):
    monkeypatch.setattr(watch, "STORE_CHECK_SECONDS", 0.0)
    run_id, owner, watch_id, _ = owned(store, pool)
    nobody = {}.get                                   # the server restarted: no session holds the run
    watcher = watch.WatchHandle(store, watch_id, nobody)
    assert watcher.latest.iteration == 0 and not watcher.running
    trained, _ = owner.step(7)
    store.save(run_id, trained.to_bytes())
    assert watcher.progress().iteration == 7 and watcher.snapshot().iteration == 7
    owner.release()


def test_a_closed_watch_link_says_so_and_opens_nothing_new(store, pool):
    run_id, owner, watch_id, owners = owned(store, pool)
    watcher = watch.WatchHandle(store, watch_id, owners.get)
    assert not watcher.closed
    store.new_watch_link(run_id)
    assert watcher.closed
    with pytest.raises(watch.WatchClosed):
        watch.WatchHandle(store, watch_id, owners.get)
    with pytest.raises(watch.WatchClosed):
        watch.WatchHandle(store, "not a watch id!", owners.get)
    owner.release()


def test_a_fork_continues_from_the_watched_weights_and_leaves_the_owner_alone(store, pool):
    run_id, owner, watch_id, owners = owned(store, pool)
    watcher = watch.WatchHandle(store, watch_id, owners.get)
    owner.step(20)
    seen = watcher.snapshot()
    mine = watch.fork(seen)
    assert mine.uid != seen.uid and mine.iteration == 20
    for k in PARAM_NAMES:
        np.testing.assert_array_equal(mine.trainer.model.params[k], seen.trainer.model.params[k])
    for slot, views in seen.trainer.optimizer.state.items():
        for k in PARAM_NAMES:
            np.testing.assert_array_equal(mine.trainer.optimizer.state[slot][k], views[k])
    before = {k: seen.trainer.model.params[k].copy() for k in PARAM_NAMES}
    mine_handle = pool.handle(mine)
    moved, _ = mine_handle.step(10)
    assert moved.iteration == 30
    owners_now = owner.snapshot()
    assert owners_now.iteration == 20
    for k in PARAM_NAMES:
        np.testing.assert_array_equal(owners_now.trainer.model.params[k], before[k])
    mine_handle.release()
    owner.release()


# ---------------------------------------------------------------- every page in watch mode (AppTest)
PAGES = ["app_pages/train.py", "app_pages/data.py", "app_pages/hidden_states.py", "app_pages/sample.py", "app_pages/guess.py",
         "app_pages/backprop.py", "app_pages/files.py"]
CONTROLS = {"btn_start", "btn_pause", "btn_step", "btn_reset"}


def button_keys(at) -> set[str]:
    return {b.key for b in at.button if b.key}


@pytest.fixture
def owner_app():
    """The owner's session: one step (so the run is saved and linked), then Save & load (the watch link)."""
    at = AppTest.from_file(DASHBOARD, default_timeout=60)
    at.run()
    at.button(key="btn_step").click().run()
    at.switch_page("app_pages/files.py").run()
    assert not at.exception
    run_id = at.session_state.app.persist.run_id
    watch_id = saver.get_store().watch_id_of(run_id)
    assert watch_id and any(watch_id in c.value for c in at.code)
    return at, run_id, watch_id


def watcher_app(watch_id: str, page: str | None = None) -> AppTest:
    at = AppTest.from_file(DASHBOARD, default_timeout=60)
    at.query_params[watch.QUERY_KEY] = watch_id
    at.run()
    if page:
        at.switch_page(page).run()
    assert not at.exception, at.exception
    return at


@pytest.mark.parametrize("page", PAGES)
def test_every_page_in_watch_mode_shows_the_run_without_controls(owner_app, page):
    owner, run_id, watch_id = owner_app
    at = watcher_app(watch_id, page)
    keys = button_keys(at)
    assert not keys & CONTROLS and "btn_fork" in keys
    assert not [n for n in at.number_input if n.key == "stop_at"]
    assert at.session_state.app.run.iteration == 1
    shown = " ".join(c.value for c in at.code)
    assert run_id not in shown                       # never the private link
    assert "Watching a run" in " ".join(m.value for m in at.sidebar.markdown)


def test_a_watcher_who_changes_page_keeps_the_watch_link_in_the_address(owner_app):
    owner, run_id, watch_id = owner_app
    at = watcher_app(watch_id)
    del at.query_params[watch.QUERY_KEY]          # what the sidebar's navigation does to the query
    at.switch_page("app_pages/hidden_states.py").run()
    assert not at.exception and at.query_params[watch.QUERY_KEY] == watch_id   # a reload still watches
    assert "run" not in at.query_params


def test_the_watchers_session_holds_a_handle_that_refuses_control(owner_app):
    """What a forged request from a watch session would reach: the session's own handle."""
    owner, run_id, watch_id = owner_app
    at = watcher_app(watch_id)
    handle = at.session_state.app.trainer
    assert isinstance(handle, watch.WatchHandle)
    before = owner.session_state.app.trainer.snapshot().iteration
    for action in (handle.start, handle.pause, lambda: handle.step(3), lambda: handle.replace(small_run())):
        with pytest.raises(watch.WatchOnly):
            action()
    assert owner.session_state.app.trainer.snapshot().iteration == before


def test_make_my_own_copy_gives_the_watcher_an_independent_run(owner_app):
    owner, run_id, watch_id = owner_app
    at = watcher_app(watch_id)
    at.button(key="btn_fork").click().run()
    assert not at.exception
    assert "btn_start" in button_keys(at) and "btn_fork" not in button_keys(at)
    assert at.session_state.app.run.iteration == 1
    assert watch.QUERY_KEY not in at.query_params
    assert at.query_params["run"] != run_id              # saved under a link of its own
    at.button(key="btn_step").click().run()
    assert at.session_state.app.run.iteration == 2
    assert owner.session_state.app.trainer.snapshot().iteration == 1


def test_revoking_the_watch_link_tells_the_watcher(owner_app):
    owner, run_id, watch_id = owner_app
    at = watcher_app(watch_id)
    owner.button(key="files_new_watch").click().run()
    assert not owner.exception
    new_id = saver.get_store().watch_id_of(run_id)
    assert new_id != watch_id
    at.run()                                            # the next look (a tick or a page run)
    assert not at.exception
    assert watch.QUERY_KEY not in at.query_params
    assert any("closed this watch link" in w.value for w in at.warning)
    assert "btn_start" in button_keys(at)               # a run of its own now, not the owner's
