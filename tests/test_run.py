"""The app's Run: settings, ticks, samples, the divergence guard and persistence (no server)."""
import math
from collections import deque
from dataclasses import replace

import numpy as np
import pytest

from playground.runs import run as run_module
from playground.runs.run import CHUNK_SECONDS, EXPLODE_FACTOR, MAX_SAMPLES_KEPT, PRESETS, Run, RunConfig

TEXT = "hello world, hello rnn.\n" * 40


def small_run(**overrides) -> Run:
    config = RunConfig(corpus="custom", hidden_size=16, seq_length=8, **overrides)
    return Run(config, TEXT, "toy")


def test_defaults_are_the_classic_setting():
    c = PRESETS["classic"]
    assert (c.hidden_size, c.seq_length, c.learning_rate, c.batch_size, c.optimizer, c.clip) == (
        100, 25, 0.1, 1, "adagrad", 5.0)


def test_step_moves_exactly_n_iterations_and_splits_validation():
    run = small_run()
    assert run.step(3).iterations == 3
    assert run.iteration == 3
    assert len(run.trainer.data) + len(run.trainer.val_ids) == len(TEXT)


@pytest.mark.parametrize("field, value, word", [
    ("hidden_size", 0, "hidden_size"), ("seq_length", 1000, "seq_length"),
    ("learning_rate", float("nan"), "learning_rate"), ("batch_size", 0, "batch_size"),
    ("optimizer", "lbfgs", "optimizer"), ("clip", 0.0, "clip"), ("corpus", "klingon", "corpus"),
])
def test_bad_config_names_the_setting(field, value, word):
    with pytest.raises(ValueError, match=word):
        RunConfig(**{field: value}).validate()


def test_text_too_short_for_settings_is_refused():
    with pytest.raises(ValueError, match="needs at least"):
        Run(RunConfig(corpus="custom", seq_length=50), "short text", "x")


def test_reset_changes_lists_only_fields_that_need_a_reset():
    a = RunConfig()
    b = RunConfig(hidden_size=64, learning_rate=0.01, clip=1.0)
    assert a.reset_changes(b) == [("hidden_size", 100, 64)]


def test_apply_live_changes_learning_rate_and_keeps_adagrad_memory():
    run = small_run()
    run.step(5)
    mem = {k: v.copy() for k, v in run.trainer.optimizer.state["mem"].items()}
    run.apply_live(RunConfig(corpus="custom", hidden_size=16, seq_length=8, learning_rate=0.01, clip=2.0))
    assert run.trainer.learning_rate == 0.01 and run.trainer.clip == 2.0
    for k, v in mem.items():
        np.testing.assert_array_equal(run.trainer.optimizer.state["mem"][k], v)
    with pytest.raises(ValueError, match="learning_rate"):
        run.apply_live(RunConfig(learning_rate=float("inf")))
    assert run.trainer.learning_rate == 0.01


def test_tick_trains_for_the_given_clock_time_and_samples_periodically():
    run = small_run(sample_every=10)
    now = [0.0]

    def clock():   # a fake clock: each reading advances 1 ms, so the tick ends deterministically
        now[0] += 0.001
        return now[0]

    report = run.tick(0.05, clock=clock)
    assert report.iterations > 0 and run.iteration == report.iterations
    assert run.samples and all(len(text) == 200 for _, text in run.samples)
    assert len(run.trainer.val_history) >= 1


def test_tick_stops_exactly_at_the_requested_iteration():
    run = small_run()
    now = [0.0]

    def clock():
        now[0] += 0.001
        return now[0]

    report = run.tick(60.0, clock=clock, stop_at=7)      # a long tick, cut short by the target
    assert run.iteration == 7 and report.iterations == 7 and report.reached == 7
    report = run.tick(0.02, clock=clock, stop_at=7)      # already there: trains on, stops at nothing
    assert run.iteration > 7 and report.reached is None
    before = run.iteration
    report = run.tick(0.02, clock=clock, stop_at=None)
    assert run.iteration > before and report.reached is None


def test_samples_are_bounded():
    run = small_run(sample_every=1)
    for _ in range(MAX_SAMPLES_KEPT + 15):
        run.step(1)
        run.add_sample(length=5)
    assert len(run.samples) == MAX_SAMPLES_KEPT


def test_exploding_loss_pauses_and_rolls_back_to_the_last_good_state(trainer_state, monkeypatch):
    snapshot, assert_same_state = trainer_state
    # The run validates once VALIDATE_SECONDS of wall time have passed and the bare trainer it is
    # compared with never does: only the untrained model's validation, so a stall cannot fail this.
    monkeypatch.setattr(run_module, "VALIDATE_SECONDS", math.inf)
    run = small_run()
    run.step(5)
    good = run.trainer.clone()
    run._last_good = good.clone()
    # Sabotage: output weights so large that the next loss is far above the untrained loss.
    run.trainer.model.params["Why"][...] = 50.0 * np.sign(np.random.default_rng(0).standard_normal(
        run.trainer.model.params["Why"].shape))
    report = run.step(1)
    assert report.alert and "rolled back" in report.alert and "learning rate" in report.alert
    assert run.iteration == good.iteration
    for k in good.model.params:
        np.testing.assert_array_equal(run.trainer.model.params[k], good.model.params[k])
    assert_same_state(snapshot(run.trainer), snapshot(good))       # histories, RNG, hprev ... too
    run.step(3)
    good.step(3)
    assert_same_state(snapshot(run.trainer), snapshot(good))       # and it trains on identically
    assert EXPLODE_FACTOR > 1


def array_bytes(obj, seen: set) -> int:
    """Bytes of the NumPy buffers reachable from obj (through dicts, sequences and attributes) that
    are not in ``seen`` (ids of buffers and objects already counted; updated)."""
    if isinstance(obj, np.ndarray):
        base = obj
        while isinstance(base.base, np.ndarray):
            base = base.base
        if id(base) in seen:
            return 0
        seen.add(id(base))
        return base.nbytes
    if id(obj) in seen or isinstance(obj, (str, bytes, int, float, type(None))):
        return 0
    seen.add(id(obj))
    parts = list(obj.values()) if isinstance(obj, dict) else list(obj) if isinstance(obj, (list, tuple, deque)) else []
    parts += list(getattr(obj, "__dict__", {}).values())
    return sum(array_bytes(p, seen) for p in parts)


def test_the_guards_last_good_state_holds_a_fraction_of_the_trainers_memory():
    # Large windows, so the trainer's scratch (its Workspace) dominates, as at the app's limits.
    run = Run(RunConfig(corpus="custom", hidden_size=64, seq_length=100, batch_size=32), TEXT * 5, "toy")
    run.step(1)
    run._last_good_at = -math.inf          # the guard's next look keeps a fresh last good state
    run.step(1)
    assert run._last_good.iteration == run.iteration == 2
    counted: set = set()
    trainer_bytes = array_bytes(run.trainer, counted)
    extra = array_bytes(run._last_good, counted)     # what the snapshot holds beyond what it shares
    assert extra < 0.1 * trainer_bytes


class CostedClock:
    """A fake clock that moves only by the cost given to each training step and validation; it
    records the chunk sizes the run asks its trainer for."""

    def __init__(self, run: Run, step_seconds: float, validate_seconds: float = 0.0):
        self.now, self.chunks = 0.0, []
        tr = run.trainer
        real_step, real_validate = tr.step, tr.validate

        def step(n=1):
            self.chunks.append(n)
            loss = real_step(n)
            tr.last_stats["step_time"] = step_seconds
            self.now += n * step_seconds
            return loss

        def validate(*args, **kwargs):
            self.now += validate_seconds
            return real_validate(*args, **kwargs)

        tr.step, tr.validate = step, validate

    def __call__(self) -> float:
        return self.now


def test_a_fresh_runs_first_chunk_is_one_step_timed_before_any_chunk_is_sized():
    # The largest settings: one step takes over a second. A first chunk sized by a guess at the step
    # time (1 ms) ran 10 of them before the first tick could end.
    run = small_run()
    clock = CostedClock(run, step_seconds=1.5)
    run.tick(0.3, clock=clock)
    assert clock.chunks == [1] and clock() == 1.5
    # Small settings: the first chunk is one step all the same, then ~CHUNK_SECONDS of steps.
    run = small_run()
    clock = CostedClock(run, step_seconds=1e-4)
    run.tick(0.3, clock=clock)
    assert clock.chunks[0] == 1 and 1 < clock.chunks[1] <= CHUNK_SECONDS / 1e-4 + 1
    # A run read back from bytes has no step timed either.
    restored = Run.from_bytes(run.to_bytes())
    clock = CostedClock(restored, step_seconds=1e-4)
    restored.tick(0.3, clock=clock)
    assert clock.chunks[0] == 1


@pytest.mark.parametrize("step_seconds", [3e-4, 0.007, 0.25, 1.5])
def test_a_tick_ends_within_one_step_of_its_deadline(step_seconds):
    run = small_run()
    clock = CostedClock(run, step_seconds)
    for _ in range(3):
        start = clock()
        report = run.tick(0.3, clock=clock)
        assert report.iterations >= 1
        assert 0.3 <= clock() - start <= 0.3 + step_seconds + 1e-9


def test_a_due_validation_takes_a_turn_of_its_own():
    run = small_run()
    clock = CostedClock(run, step_seconds=0.25, validate_seconds=0.4)
    report = run.tick(0.3, clock=clock)             # the untrained model's validation fills this tick
    assert report.iterations == 0 and len(run.trainer.val_history) == 1
    report = run.tick(0.3, clock=clock)
    assert report.iterations == 2 and len(run.trainer.val_history) == 1
    run._last_val = -math.inf                       # the next validation is due
    start = clock()
    report = run.tick(0.3, clock=clock)
    assert report.iterations == 0 and len(run.trainer.val_history) == 2 and clock() - start == 0.4


def test_non_finite_loss_pauses_with_a_message_and_keeps_the_state():
    run = small_run()
    run.step(2)
    run.trainer.model.params["by"][0] = np.inf   # any step now produces a non-finite loss
    before = run.iteration
    report = run.step(1)
    assert report.alert and "Nothing was lost" in report.alert
    assert run.iteration == before


def test_a_model_that_cannot_be_validated_still_pauses_with_a_message():
    run = small_run()
    run.trainer.model.params["by"][0] = np.inf       # validation gives no number, the step diverges
    report = run.step(1)
    assert report.alert and "Nothing was lost" in report.alert
    assert run.iteration == 0 and len(run.trainer.val_history) == 0


def test_bytes_round_trip_keeps_settings_samples_and_continues_identically():
    run = small_run(sample_every=5)
    run.step(12)
    run.add_sample()
    restored = Run.from_bytes(run.to_bytes())
    assert restored.config == run.config and restored.corpus_label == "toy"
    assert list(restored.samples) == list(run.samples)
    run.step(7)
    restored.step(7)
    for k in run.trainer.model.params:
        np.testing.assert_array_equal(run.trainer.model.params[k], restored.trainer.model.params[k])
    assert math.isclose(run.trainer.smooth_loss, restored.trainer.smooth_loss, rel_tol=0, abs_tol=0)


def test_from_bytes_refuses_garbage_with_a_clear_message():
    with pytest.raises(ValueError, match="not a valid checkpoint"):
        Run.from_bytes(b"this is not a checkpoint")


def test_validation_curve_starts_at_the_untrained_model():
    run = small_run()
    run.step(1)
    first = run.trainer.val_history.as_arrays()
    assert first["iteration"][0] == 0
    # An untrained model guesses near uniformly: about log2(V) bits per character.
    assert abs(first["val_bits_per_char"][0] - math.log2(run.vocab.size)) < 0.05


def test_one_window_of_unusual_text_does_not_trip_the_guard_but_a_sustained_rise_does():
    from playground.runs.run import EXPLODE_FACTOR

    run = Run(RunConfig(corpus="custom", hidden_size=16, seq_length=10), "roses are red\n" * 200, "roses")
    run.step(5)
    real_step = run.trainer.step
    losses = iter([3.2 * EXPLODE_FACTOR * run.untrained_loss / 3.0] + [run.untrained_loss] * 3
                  + [10 * run.untrained_loss] * 10)

    def step_with(n):      # the real step, reporting the loss the test chooses
        real_step(n)
        run.trainer.last_stats["loss"] = next(losses)

    run.trainer.step = step_with
    assert run.step(1).alert is None                    # one window above the line: a stretch of odd text
    for _ in range(3):
        assert run.step(1).alert is None
    alerts = [run.step(1).alert for _ in range(3)]
    assert any(a and "Training paused" in a for a in alerts)   # losses that stay up: rolled back


def test_model_key_changes_with_every_change_of_the_model_and_travels_with_its_copies():
    from playground.runs import trainers

    run = Run(RunConfig(corpus="custom", hidden_size=8, seq_length=5), TEXT, "toy")
    keys = [run.model_key]
    run.step(3)
    keys.append(run.model_key)
    run.apply_live(replace(run.config, learning_rate=0.05))   # same weights, other settings
    keys.append(run.model_key)
    assert len(set(keys)) == 3 and {k[0] for k in keys} == {run.uid}
    assert run.copy().model_key == run.model_key                           # a snapshot: the same model
    assert trainers.unpack(trainers.pack(run)).model_key == run.model_key  # ...in another process too
    assert Run.from_bytes(run.to_bytes()).uid != run.uid                   # a loaded file is another run
    assert run.continue_from(0).uid != run.uid


def test_a_rollback_changes_the_model_key_though_the_iteration_goes_back():
    run = Run(RunConfig(corpus="custom", hidden_size=8, seq_length=5), TEXT, "toy")
    run.step(2)
    before = run.model_key
    run._roll_back(loss=1e9)
    assert run.model_key != before and run.model_key[0] == before[0]
