"""The Ray backend without a UI: runs as named, detached Ray actors behind the TrainerHandle interface.

Against a local Ray started by the module's fixture (2 CPUs, no dashboard). Skipped when Ray is not
installed, except under CI (requirements-dev.txt installs requirements-ray.txt there), where a
missing Ray fails. Waits poll a condition with a deadline; nothing here is timed.
"""
from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from playground.runs import trainers
from playground.runs.store import RunStore, new_run_id, path_from_url
from tests.test_trainers import same_weights, small_run, wait_for

try:
    import ray
except ImportError:
    ray = None

REPO = Path(__file__).resolve().parent.parent


def local_ray():
    """A module's local Ray (a generator for a fixture to ``yield from``): yields ray_backend. Its
    node, and so every actor, has this process's environment as it is when Ray starts."""
    if ray is None:
        if os.environ.get("CI"):
            pytest.fail("CI is set but Ray is not installed: pip install -r requirements-ray.txt", pytrace=False)
        pytest.skip("Ray is not installed (pip install -r requirements-ray.txt to run the Ray backend's tests)")
    from playground.runs import ray_backend
    started = not ray.is_initialized()
    if started:
        # address="local": a Ray of its own, never one another process on the machine started
        ray.init(address="local", num_cpus=2, include_dashboard=False, namespace=ray_backend.NAMESPACE,
                 log_to_driver=False)
    yield ray_backend
    if started:
        ray.shutdown()


@pytest.fixture(scope="module")
def cluster():
    yield from local_ray()


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs")


@pytest.fixture
def pool(cluster, store):
    pool = cluster.RayPool(store_dir=str(store.data_dir), max_training=16, idle_seconds=600)
    yield pool
    pool.close()


def trained_past(handle, n: int):
    return wait_for(lambda: (p := handle.progress()).iteration >= n and p, f"iteration {n}")


def test_a_run_trains_in_a_named_actor_and_a_pause_holds(cluster, pool, store):
    handle = pool.handle(small_run())
    assert not handle.placed               # no actor until the session trains
    run_id = new_run_id()
    handle.bind(run_id)
    handle.start()
    assert handle.placed and handle.worker_pid not in (None, os.getpid())
    assert cluster.lookup(run_id) is not None and store.actor_marked(run_id)
    environ = Path(f"/proc/{handle.worker_pid}/environ")
    if environ.exists():       # one BLAS thread per run, as in a local worker
        assert b"OPENBLAS_NUM_THREADS=1" in environ.read_bytes().split(b"\0")
    progress = trained_past(handle, 200)
    assert progress.running
    paused = handle.pause()
    assert paused.iteration >= 200 and not handle.running
    for _ in range(3):
        assert handle.progress().iteration == paused.iteration and not handle.progress().running
    handle.release()
    wait_for(lambda: cluster.lookup(run_id) is None, "the actor to end with its last lease")
    assert not store.actor_marked(run_id)


def test_step_and_live_settings_are_the_engines(pool):
    handle = pool.handle(small_run())
    local = small_run()
    run, alert = handle.step(5)
    local.step(5)
    assert alert is None and run.iteration == 5 and same_weights(run, local)
    with pytest.raises(ValueError) as bad:
        handle.apply_live(_bad_config())
    assert "Traceback" not in str(bad.value) and "\n" not in str(bad.value)
    assert handle.snapshot().iteration == 5
    handle.park()                                  # a paused run keeps its actor
    assert handle.placed
    handle.release()


def _bad_config():
    config = small_run().config
    object.__setattr__(config, "learning_rate", -1.0)   # past validate(): the actor's own check says no
    return config


def test_another_replica_finds_the_run_by_its_id_watches_it_and_controls_it(cluster, pool, store):
    owner = pool.handle(small_run())
    run_id = new_run_id()
    owner.bind(run_id)
    owner.start()
    trained_past(owner, 50)
    other_replica = cluster.RayPool(store_dir=str(store.data_dir), max_training=16)
    view = other_replica.find(run_id)
    seen = view.peek().iteration
    wait_for(lambda: view.peek().iteration > seen, "the watcher to see the run move")
    assert view.running and view.snapshot().iteration >= seen
    second = other_replica.attach(run_id)          # its private link opened on the other replica
    assert second.running and second.latest.iteration >= seen
    owner.release()                                # the first session leaves: the run trains on
    moved = second.progress().iteration
    wait_for(lambda: second.progress().iteration > moved, "training to go on for the other lease")
    stopped = second.pause()
    assert not second.progress().running and second.progress().iteration == stopped.iteration
    second.release()
    wait_for(lambda: cluster.lookup(run_id) is None, "the actor to end with its last lease")


def test_a_dead_actor_is_replaced_from_the_last_copy_with_the_restart_news(cluster, pool, store):
    handle = pool.handle(small_run())
    run_id = new_run_id()
    handle.bind(run_id)
    handle.start()
    trained_past(handle, 20)
    kept = handle.snapshot().iteration
    ray.kill(cluster.lookup(run_id), no_restart=True)     # its node died
    assert store.actor_marked(run_id)                      # what tells the next replica it died
    progress = wait_for(lambda: (p := handle.progress()).restarted is not None and p, "the restart news")
    assert progress.restarted == kept and not handle.running
    assert trainers.restarted_sentence(kept).startswith("The training process restarted")
    assert handle.progress().restarted is None             # said once
    handle.start()
    trained_past(handle, kept + 10)
    handle.release()


def test_an_actor_nobody_polls_saves_itself_and_ends(cluster, store):
    idle_pool = cluster.RayPool(store_dir=str(store.data_dir), max_training=16, idle_seconds=1.0)
    handle = idle_pool.handle(small_run())
    run_id = new_run_id()
    handle.bind(run_id)
    handle.start()
    reached = trained_past(handle, 20).iteration
    # The UI process goes away without a word: no more calls.
    wait_for(lambda: cluster.lookup(run_id) is None, "the idle actor to end")
    saved = wait_for(lambda: store.load(run_id), "the idle actor's save")
    from playground.runs.run import Run
    assert Run.from_bytes(saved).iteration >= reached
    assert not store.actor_marked(run_id)


def test_a_run_whose_link_changes_moves_to_an_actor_of_that_name(cluster, pool):
    handle = pool.handle(small_run())
    first, second = new_run_id(), new_run_id()
    handle.bind(first)
    handle.start()
    trained_past(handle, 10)
    handle.bind(second)
    assert handle.running and cluster.lookup(second) is not None
    wait_for(lambda: cluster.lookup(first) is None, "the old name to be free")
    trained_past(handle, 30)
    handle.release()


def test_without_the_variable_the_app_never_imports_ray():
    env = {k: v for k, v in os.environ.items() if k != trainers.ENV_RAY_ADDRESS}
    code = textwrap.dedent("""
        import sys
        from playground.runs import trainers, saver, watch, store
        from playground.session import persist, state
        pool = trainers.get_pool()
        assert type(pool) is trainers.TrainerPool, type(pool)
        print("ray" in sys.modules)
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr[-2000:]
    assert out.stdout.strip().splitlines()[-1] == "False"


def test_an_unreachable_cluster_is_one_sentence_naming_the_variable(cluster):
    env = {**os.environ, trainers.ENV_RAY_ADDRESS: "ray://127.0.0.1:9"}
    code = textwrap.dedent("""
        from playground.runs import trainers
        from playground.runs.run import Run, RunConfig
        handle = trainers.get_pool().handle(Run(RunConfig(corpus="custom", hidden_size=8, seq_length=5),
                                            "abcdefgh " * 50, "letters"))
        try:
            handle.start()
        except trainers.ServerFull as exc:
            print("SENTENCE", exc)
    """)
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, env=env, capture_output=True, text=True,
                         timeout=300)
    line = [s for s in out.stdout.splitlines() if s.startswith("SENTENCE ")]
    assert line, out.stderr[-2000:]
    assert line[0] == ("SENTENCE the Ray cluster named by RNN_PLAYGROUND_RAY_ADDRESS (ray://127.0.0.1:9) "
                       "cannot be reached")


def test_store_urls():
    assert path_from_url("file:///srv/runs") == Path("/srv/runs")
    assert path_from_url("file://localhost/srv/my%20runs") == Path("/srv/my runs")
    assert path_from_url("/srv/runs") == Path("/srv/runs")
    for bad in ("s3://bucket/runs", "file://elsewhere/srv"):
        with pytest.raises(ValueError) as exc:
            path_from_url(bad)
        assert "RNN_PLAYGROUND_STORE_URL" in str(exc.value)


def test_the_actor_marker_goes_with_its_run(store):
    run_id = new_run_id()
    store.save(run_id, b"payload")
    store.mark_actor(run_id)
    assert store.actor_marked(run_id)
    store.delete(run_id)
    assert not store.actor_marked(run_id)


def test_opening_a_link_attaches_to_its_live_actor_or_says_the_actor_died(cluster, pool, store, monkeypatch):
    """persist.restore_from_url's step on a Ray cluster: a live actor is joined (training on), a
    marker without an actor gives the restarted-worker sentence with the last save's iteration."""
    import streamlit as st

    from playground.runs.run import Run
    from playground.session import persist
    monkeypatch.setattr(trainers, "get_pool", lambda: pool)
    owner = pool.handle(small_run())
    live_id = new_run_id()
    owner.bind(live_id)
    owner.start()
    trained_past(owner, 30)
    store.save(live_id, owner.snapshot().to_bytes())
    stored = Run.from_bytes(store.load(live_id))
    run, sentence = persist._live_copy(live_id, store, stored)
    assert sentence is None and st.session_state.app.running
    joined = st.session_state.app.trainer
    assert joined.running and run is joined.latest and run.iteration >= stored.iteration
    joined.release()
    owner.release()
    wait_for(lambda: cluster.lookup(live_id) is None, "the actor to end with its last lease")

    dead_id = new_run_id()
    store.save(dead_id, stored.to_bytes())
    store.mark_actor(dead_id)          # an actor was running it; its node died with it
    run, sentence = persist._live_copy(dead_id, store, stored)
    assert run is stored and sentence == trainers.restarted_sentence(stored.iteration)
    assert not store.actor_marked(dead_id)
    assert persist._live_copy(dead_id, store, stored) == (stored, None)   # said once


def test_start_on_a_full_cluster_says_so_and_the_run_stays_paused(cluster, store):
    greedy = cluster.RayPool(store_dir=str(store.data_dir), max_training=16, cpus_per_run=64)   # > 2 CPUs
    greedy.create_timeout = 2.0        # how long a pending actor counts as "not placed yet"
    handle = greedy.handle(small_run())
    with pytest.raises(trainers.ServerFull) as full:
        handle.start()
    assert str(full.value) == "the cluster is full: no machine has room for another training run now"
    assert not handle.running and not handle.placed and greedy.training == 0
    assert handle.snapshot().iteration == 0


def test_the_idle_limit_is_a_setting(cluster, monkeypatch):
    monkeypatch.setenv(cluster.ENV_IDLE_MINUTES, "0.5")
    assert cluster.RayPool(store_dir=None).idle_seconds == 30.0
    monkeypatch.setenv(cluster.ENV_IDLE_MINUTES, "soon")
    with pytest.raises(ValueError, match="RNN_PLAYGROUND_RAY_IDLE_MINUTES must be a number above 0"):
        cluster.RayPool(store_dir=None)


def test_a_replica_that_exits_gives_its_leases_back_and_the_run_trains_on(cluster, store):
    leaving = cluster.RayPool(store_dir=str(store.data_dir), max_training=16)
    handle = leaving.handle(small_run())
    run_id = new_run_id()
    handle.bind(run_id)
    handle.start()
    trained_past(handle, 20)
    leaving.give_back_leases()            # what its exit hook does, after saving its sessions
    staying = cluster.RayPool(store_dir=str(store.data_dir), max_training=16)
    reopened = staying.attach(run_id)
    moved = reopened.progress().iteration
    wait_for(lambda: reopened.progress().iteration > moved, "the run to train on")
    reopened.release()                    # now the only lease: the run stops and its actor ends
    wait_for(lambda: cluster.lookup(run_id) is None, "the actor to end with its last lease")
    assert not store.actor_marked(run_id)


def test_an_unreachable_address_is_not_tried_again_on_every_call(cluster, monkeypatch):
    monkeypatch.setitem(cluster._FAILED_AT, "ray://127.0.0.1:9", __import__("time").monotonic())
    monkeypatch.setattr(ray, "is_initialized", lambda: False)
    monkeypatch.setattr(ray, "init", lambda *a, **k: pytest.fail("tried to join again at once"))
    with pytest.raises(cluster.ClusterUnreachable, match=r"RNN_PLAYGROUND_RAY_ADDRESS \(ray://127.0.0.1:9\)"):
        cluster.connect("ray://127.0.0.1:9")


def test_a_released_run_can_be_placed_again_at_once_under_its_name(cluster, pool):
    """A reload: the old tab's session releases the run, the new one starts it straight away."""
    run_id = new_run_id()
    old_tab = pool.handle(small_run())
    old_tab.bind(run_id)
    old_tab.start()
    trained_past(old_tab, 10)
    run = old_tab.release()
    new_tab = pool.handle(run)
    new_tab.bind(run_id)
    new_tab.start()
    assert trained_past(new_tab, run.iteration + 10).iteration > run.iteration
    new_tab.release()
