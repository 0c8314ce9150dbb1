"""The trainer pool without a server: runs train in worker processes behind handles.

Waits are on conditions (the worker's reported progress) with a deadline, never fixed sleeps.
"""
from __future__ import annotations

import os
import queue
import signal
import threading
import time

import numpy as np
import pytest

from playground.runs import trainers
from playground.runs.run import Run, RunConfig
from playground.runs.trainers import ServerFull, TrainerPool
from rnn_core import PARAM_NAMES

POEM = "roses are red, violets are blue,\nsugar is sweet and so are you.\n" * 40
DEADLINE = 60.0


def small_run(**overrides) -> Run:
    return Run(RunConfig(corpus="custom", hidden_size=16, seq_length=10, **overrides), POEM, "poems")


def same_weights(a: Run, b: Run) -> bool:
    return all(np.array_equal(a.trainer.model.params[k], b.trainer.model.params[k]) for k in PARAM_NAMES)


def wait_for(condition, what: str, timeout: float = DEADLINE):
    """Poll ``condition()`` until it returns something truthy; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)   # poll interval of a condition wait


@pytest.fixture(scope="module")
def pool():
    pool = TrainerPool(workers=2, max_training=16)
    yield pool
    pool.close()


def trained_past(handle, n: int):
    return wait_for(lambda: (p := handle.progress()).iteration >= n and p, f"iteration {n}")


def test_a_started_run_trains_in_its_worker_and_a_pause_holds(pool):
    handle = pool.handle(small_run())
    assert handle.worker_pid in pool.pids() and handle.worker_pid != os.getpid()
    handle.start()
    progress = trained_past(handle, 200)
    assert progress.running
    wait_for(lambda: handle.progress().iterations_per_second > 0, "a measured speed")
    paused = handle.pause()
    assert paused.iteration >= 200 and not handle.running
    for _ in range(3):   # nothing trains after Pause
        assert handle.progress().iteration == paused.iteration and not handle.progress().running
    assert handle.snapshot().iteration == paused.iteration
    handle.release()


def test_step_is_exact_and_the_numbers_are_the_engines(pool):
    handle = pool.handle(small_run())
    local = small_run()
    run, alert = handle.step(5)
    local.step(5)
    assert alert is None and run.iteration == 5 and same_weights(run, local)
    run, _ = handle.step(1)
    local.step(1)
    assert run.iteration == 6 and same_weights(run, local)
    assert run.trainer.smooth_loss == local.trainer.smooth_loss
    for slot, views in local.trainer.optimizer.state.items():   # what a checkpoint of the snapshot saves
        for k in PARAM_NAMES:
            np.testing.assert_array_equal(run.trainer.optimizer.state[slot][k], views[k])
    handle.release()


def test_live_settings_reach_the_running_run_and_a_bad_one_changes_nothing(pool):
    handle = pool.handle(small_run())
    handle.start()
    trained_past(handle, 10)
    run = handle.apply_live(RunConfig(corpus="custom", hidden_size=16, seq_length=10, learning_rate=0.05,
                                      optimizer="adam", clip=2.0, sample_every=50))
    assert (run.trainer.learning_rate, run.trainer.optimizer_name, run.trainer.clip) == (0.05, "adam", 2.0)
    assert run.config.sample_every == 50 and handle.running
    with pytest.raises(ValueError, match="learning_rate"):
        handle.apply_live(RunConfig(corpus="custom", hidden_size=16, seq_length=10, learning_rate=float("nan")))
    after = handle.pause()
    assert after.trainer.learning_rate == 0.05
    handle.release()


def test_the_run_pauses_itself_exactly_at_stop_at(pool):
    handle = pool.handle(small_run())
    handle.start(stop_at=333)
    reached = wait_for(lambda: (p := handle.progress()).reached and p, "stop_at reached")
    assert reached.reached == 333 and not reached.running and not handle.running
    assert handle.snapshot().iteration == 333
    assert handle.progress().reached is None          # said once
    handle.release()


def test_stop_at_can_be_set_while_training(pool):
    handle = pool.handle(small_run())
    handle.start()
    at = trained_past(handle, 50).iteration
    target = at + 20_000     # well ahead of the run when the setting arrives
    handle.set_stop_at(target)
    wait_for(lambda: handle.progress().reached == target, "the new stop_at")
    assert handle.snapshot().iteration == target
    handle.release()


def test_a_diverging_run_is_rolled_back_in_the_worker_and_says_so(pool):
    handle = pool.handle(Run(RunConfig(corpus="custom", hidden_size=32, seq_length=10, learning_rate=10.0,
                                       optimizer="sgd", clip=100.0), POEM, "poems"))
    handle.start()
    stopped = wait_for(lambda: (p := handle.progress()).alert and p, "the divergence guard")
    assert not stopped.running and "Training paused" in stopped.alert
    run = handle.snapshot()
    assert all(np.isfinite(run.trainer.model.params[k]).all() for k in PARAM_NAMES)
    assert run.trainer.smooth_loss < 3 * run.untrained_loss
    handle.release()


def test_a_snapshot_taken_while_training_is_consistent(pool):
    handle = pool.handle(small_run())
    handle.start()
    trained_past(handle, 100)
    for _ in range(5):
        run = handle.snapshot()
        history = run.trainer.history.as_arrays("iteration")["iteration"]
        assert history[-1] == run.trainer.iteration            # taken between two steps
        assert run.trainer.chars_seen == run.iteration * run.trainer.seq_length
        assert handle.latest is run
    assert handle.snapshot(max_age=3600) is handle.latest       # fresh enough: no round trip
    handle.release()


def test_a_killed_worker_is_replaced_and_its_runs_continue_from_the_last_snapshot():
    pool = TrainerPool(workers=1)
    try:
        handle = pool.handle(small_run())
        handle.start()
        trained_past(handle, 100)
        kept = handle.snapshot()
        os.kill(handle.worker_pid, signal.SIGKILL)
        said = wait_for(lambda: (p := handle.progress()).restarted is not None and p, "the restart")
        assert said.restarted == kept.iteration and not said.running and not handle.running
        assert pool.restarts == 1 and handle.worker_pid not in (None,) and pool.training == 0
        assert handle.progress().restarted is None                 # said once
        run, _ = handle.step(2)
        assert run.iteration == kept.iteration + 2
        handle.start()                                             # trains again, in the new worker
        trained_past(handle, kept.iteration + 50)
        handle.pause()
    finally:
        pool.close()


def test_a_released_run_frees_its_worker_and_comes_back_from_its_last_snapshot(pool):
    handle = pool.handle(small_run())
    handle.start()
    trained_past(handle, 100)
    pid = handle.worker_pid
    run = handle.release()
    assert not handle.placed and not handle.running and run.iteration >= 100
    client = pool.client(pool._clients.index(next(c for c in pool._clients if c and c.pid == pid)))
    with pytest.raises(KeyError):
        client.call("progress", handle.key)                       # the worker holds nothing of it
    again, _ = handle.step(1)                                      # used again: placed from that snapshot
    assert handle.placed and again.iteration == run.iteration + 1
    handle.release()


def test_past_the_cap_start_says_the_server_is_full_and_the_run_stays_paused():
    pool = TrainerPool(workers=1, max_training=1)
    try:
        first, second = pool.handle(small_run()), pool.handle(small_run())
        first.start()
        with pytest.raises(ServerFull, match="server is full"):
            second.start()
        assert not second.running and second.progress().iteration == 0 and not second.progress().running
        first.pause()
        second.start()
        trained_past(second, 10)
        second.pause()
        assert pool.training == 0
    finally:
        pool.close()


def test_the_worker_pool_size_comes_from_the_environment(monkeypatch):
    monkeypatch.setenv(trainers.ENV_WORKERS, "3")
    assert trainers.default_workers() == 3
    monkeypatch.setenv(trainers.ENV_WORKERS, "zero")
    with pytest.raises(ValueError, match="RNN_PLAYGROUND_WORKERS must be a whole number from 1 to 1024, got 'zero'"):
        trainers.default_workers()
    monkeypatch.delenv(trainers.ENV_WORKERS)
    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert trainers.default_workers() == expected
    monkeypatch.setenv(trainers.ENV_MAX_TRAINING, "-1")
    with pytest.raises(ValueError, match="RNN_PLAYGROUND_MAX_TRAINING"):
        trainers.default_max_training(2)
    monkeypatch.delenv(trainers.ENV_MAX_TRAINING)
    assert trainers.default_max_training(2) == 2 * trainers.TRAINING_PER_WORKER


# ---------------------------------------------------------------- inside a worker, in this process
class FakeConn:
    """The worker's end of a pipe, in-process: requests in, replies out."""

    def __init__(self):
        self.requests: queue.Queue = queue.Queue()
        self.replies: queue.Queue = queue.Queue()

    def recv(self):
        return self.requests.get()

    def send_bytes(self, data: bytes) -> None:
        import pickle
        self.replies.put(pickle.loads(data))


def test_a_run_busy_in_a_long_step_never_holds_up_another_runs_commands():
    conn = FakeConn()
    worker = trainers._Worker(conn)
    threading.Thread(target=worker.serve, daemon=True).start()
    conn.requests.put((1, "place", "big", trainers.pack(small_run())))
    conn.requests.put((2, "place", "small", trainers.pack(small_run())))
    assert {conn.replies.get(timeout=DEADLINE)[0] for _ in range(2)} == {1, 2}
    big = worker.slots["big"]
    with big.lock:                            # as if "big" were in the middle of a long step
        conn.requests.put((3, "snapshot", "big", None))      # must wait for the step
        conn.requests.put((4, "progress", "big", None))      # must not: the last published progress
        conn.requests.put((5, "step", "small", 2))           # must not: another run
        first = [conn.replies.get(timeout=DEADLINE) for _ in range(2)]
        assert sorted(r[0] for r in first) == [4, 5] and all(r[1] for r in first)
        assert conn.replies.empty()
    req_id, ok, data = conn.replies.get(timeout=DEADLINE)
    assert (req_id, ok) == (3, True) and trainers.unpack(data).iteration == 0


def test_runs_on_one_text_hold_its_ids_once_per_process(pool):
    first, second = pool.handle(small_run()), pool.handle(small_run())
    assert first.latest.trainer.data is second.latest.trainer.data
    assert first.latest.trainer.val_ids is second.latest.trainer.val_ids
    a, b = first.snapshot(), second.snapshot()             # copies from the workers, shared again here
    assert a.trainer.data is b.trainer.data is first.latest.trainer.data
    other = Run(RunConfig(corpus="custom", hidden_size=16, seq_length=10), POEM[::-1], "backwards")
    assert trainers.share_text(other).trainer.data is not a.trainer.data
    run, _ = first.step(3)                                 # training reads the shared ids as its own
    local = small_run()
    local.step(3)
    assert same_weights(run, local)
    with pytest.raises(ValueError, match="equal"):
        other.trainer.share_text(a.trainer.data, a.trainer.val_ids)
    first.release()
    second.release()


def test_a_run_sent_to_another_process_trains_on_with_the_same_optimizer_state():
    """What a worker does: unpack a run, train it, pack it back for a snapshot or a save."""
    local = small_run()
    local.step(3)
    sent = trainers.unpack(trainers.pack(local))
    sent.step(4)
    local.step(4)
    back = trainers.unpack(trainers.pack(sent))
    assert same_weights(back, local)
    for slot, views in local.trainer.optimizer.state.items():
        for k in PARAM_NAMES:
            np.testing.assert_array_equal(back.trainer.optimizer.state[slot][k], views[k])


def test_a_command_waits_at_most_for_the_slice_under_way(monkeypatch):
    """The training loop takes a running run's lock again right after each slice; a command that
    waits for it (a Pause, a snapshot) goes first, so it never waits more than one slice."""
    worker = trainers._Worker(conn=None)
    slot = trainers._Slot(small_run())
    events: list[str] = []
    tick, execute = Run.tick, worker._execute_locked
    monkeypatch.setattr(Run, "tick", lambda *a, **k: (events.append("slice"), tick(*a, **k))[1])
    worker._execute_locked = lambda *a: (events.append("command"), execute(*a))[1]
    worker.slots["k"], slot.running = slot, True
    threading.Thread(target=worker.train_forever, daemon=True).start()
    wait_for(lambda: events.count("slice") >= 3, "training")
    for _ in range(10):
        events.append("asked")
        worker._execute(slot, "snapshot", None)
    worker._execute(slot, "pause", None)
    asked = [i for i, e in enumerate(events) if e == "asked"]
    for start in asked:
        answered = events.index("command", start)
        assert events[start:answered].count("slice") <= 1, events[start:answered]


def test_park_frees_a_paused_runs_worker_copy_and_leaves_a_training_run_alone(pool):
    handle = pool.handle(small_run())
    handle.start()
    trained_past(handle, 5)
    handle.park()                                  # still training: nothing to free
    assert handle.placed and handle.running
    paused = handle.pause()
    handle.park()
    assert not handle.placed and handle.latest.iteration == paused.iteration
    again, _ = handle.step(1)                      # placed again from the session's copy
    assert again.iteration == paused.iteration + 1
    handle.release()
