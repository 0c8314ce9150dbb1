"""The run's timeline (issue 15): schedule and thinning as pure functions, snapshots taken by the Run
at the scheduled iterations in bounded memory, bit-for-bit restore, reproducible samples, forks that
leave the original untouched, saving with the run, and every saved field checked as hostile input."""
import dataclasses
import io
import json

import numpy as np
import pytest

from playground.runs import timeline as tl
from playground.runs.run import Run, RunConfig
from playground.views import loss_chart
from playground.views import timeline_view as tv
from rnn_core import VanillaRNN
from rnn_core.checkpoint import MAX_APP_STATE_VALUES

TEXT = "hello world, hello rnn.\n" * 40
POEM = "roses are red, violets are blue,\nsugar is sweet and so are you.\n" * 40


def small_run(**overrides) -> Run:
    config = RunConfig(corpus="custom", **{"hidden_size": 16, "seq_length": 8, **overrides})
    return Run(config, TEXT, "toy")


def quiet(run: Run) -> Run:
    """``run`` without its periodic samples: they draw from the trainer's RNG when the clock says, so
    a reference copy taken after a step could hold one draw more than the snapshot of that moment."""
    run._periodic = lambda clock: None
    return run


def trainer_state(tr) -> dict:
    """Everything that decides how a trainer trains on, for exact comparisons."""
    return {"params": tr.model.flat_params().copy(),
            "opt": {k: v.copy() for k, v in tr.optimizer.flat.items()}, "t": tr.optimizer.t,
            "opt_name": tr.optimizer_name, "hprev": tr.hprev.copy(), "iteration": tr.iteration,
            "position": tr.position, "chars_seen": tr.chars_seen, "smooth_loss": tr.smooth_loss,
            "rng": tr.rng.bit_generator.state, "lr": tr.learning_rate, "clip": tr.clip}


def assert_same_state(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for k in a:
        if k == "opt":
            assert a[k].keys() == b[k].keys()
            for slot in a[k]:
                assert np.array_equal(a[k][slot], b[k][slot]), slot
        elif isinstance(a[k], np.ndarray):
            assert a[k].dtype == b[k].dtype and np.array_equal(a[k], b[k]), k
        else:
            assert a[k] == b[k], k


# ---------------------------------------------------------------- schedule and thinning
def test_schedule_is_dense_early_then_every_n():
    moments = [i for i in range(60_001) if tl.on_schedule(i)]
    assert moments == [0, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 30_000, 40_000, 50_000, 60_000]
    assert [tl.next_scheduled(i) for i in (0, 99, 100, 4_999, 10_000, 10_001, 25_000)] == [
        100, 100, 200, 5_000, 20_000, 20_000, 30_000]


def test_thinning_never_drops_the_first_or_the_newest_and_keeps_the_spread():
    assert tl.thin_index([0, 100]) is None
    assert tl.thin_index([0, 100, 200]) == 1
    # in log(1 + i) terms 100 -> 200 is a smaller step than 200 -> 500... the closest neighbours go first
    assert tl.thin_index([0, 100, 200, 500, 1_000]) == 2
    kept = []
    for i in (i for i in range(0, 2_000_001, 100) if tl.on_schedule(i)):
        kept.append(i)
        while len(kept) > 13:
            del kept[tl.thin_index(kept)]
    assert kept[0] == 0 and kept[-1] == 2_000_000 and len(kept) == 13
    assert kept == sorted(set(kept))
    logs = np.diff(np.log1p(kept[1:]))
    assert logs.max() < 4 * logs.min()          # spread evenly in log(iteration), not bunched anywhere
    assert sum(i <= 20_000 for i in kept) >= 3  # denser early: the first 1% of the run keeps several


def test_capacity_holds_the_budget_at_hidden_100():
    size = tl.state_size(65, 100, 1, "adagrad") * 8
    assert size == 8 * (2 * (2 * 65 * 100 + 100 * 100 + 100 + 65) + 100)
    capacity = tl.capacity_for(65, 100, 1, "adagrad")
    assert capacity == 13 and capacity * size <= tl.BUDGET_BYTES < (capacity + 1) * size
    assert tl.capacity_for(10, 8, 1, "adagrad") == tl.MAX_SNAPSHOTS
    assert tl.capacity_for(256, 512, 128, "adam") == tl.MIN_SNAPSHOTS   # one is over the budget: first and newest


def test_a_timeline_past_its_capacity_stays_within_budget_and_keeps_first_and_newest():
    run = Run.from_builtin(RunConfig())             # the classic setting: H 100 on Shakespeare
    snap = run.timeline.snapshots[0]
    timeline = tl.Timeline.for_trainer(run.trainer)
    moments = [i for i in range(0, 500_001, 100) if tl.on_schedule(i)]
    for i in moments:
        timeline.add(dataclasses.replace(snap, iteration=i))
    assert len(timeline) == timeline.capacity == 13
    assert timeline.nbytes <= tl.BUDGET_BYTES
    assert timeline.iterations[0] == 0 and timeline.iterations[-1] == moments[-1]
    with pytest.raises(ValueError, match="must come after"):
        timeline.add(dataclasses.replace(snap, iteration=100))


def test_switching_to_an_optimizer_with_more_state_still_keeps_the_budget():
    run = Run.from_builtin(RunConfig())
    timeline = tl.Timeline.for_trainer(run.trainer)
    run.trainer.set_optimizer("adam")
    adam = tl.take(run.trainer)
    for i in (i for i in range(0, 300_001, 100) if tl.on_schedule(i)):
        timeline.add(dataclasses.replace(adam, iteration=i))
    assert timeline.nbytes <= tl.BUDGET_BYTES and len(timeline) < timeline.capacity


# ---------------------------------------------------------------- the Run takes them
def test_a_run_takes_snapshots_at_the_scheduled_iterations():
    run = small_run()
    assert run.timeline.iterations == [0]            # the untrained model, before any step
    run.step(650)
    assert run.iteration == 650                      # chunks end at the snapshots, the count stays exact
    assert run.timeline.iterations == [0, 100, 200, 500]
    for snap in run.timeline.snapshots:
        assert not snap.state.flags.writeable


def test_ticks_stop_their_chunks_at_the_scheduled_iterations():
    run = small_run()
    run.step(3)                                      # a timed step, so ticks run chunks of many steps
    while run.iteration < 1_100:
        run.tick(0.05)
    assert run.timeline.iterations[:5] == [0, 100, 200, 500, 1_000]


def test_pause_at_an_iteration_still_stops_exactly_there():
    run = small_run()
    run.step(3)
    while run.iteration < 150:
        report = run.tick(0.05, stop_at=150)
    assert run.iteration == 150 and report.reached == 150
    assert run.timeline.iterations == [0, 100]


def test_a_snapshot_restores_bit_for_bit():
    run = quiet(small_run(batch_size=2))
    run.step(200)
    reference = run.trainer.clone()                  # the state at iteration 200, to compare with
    run.step(150)
    snap = run.timeline.snapshots[run.timeline.iterations.index(200)]
    restored = tl.restore(run.trainer, snap)
    assert_same_state(trainer_state(restored), trainer_state(reference))
    restored.step(60)
    reference.step(60)                               # and both train on identically
    assert_same_state(trainer_state(restored), trainer_state(reference))
    assert restored.history.last()["iteration"] == 260


def test_restore_with_another_optimizer_and_learning_rate_since():
    run = quiet(small_run(optimizer="adam", learning_rate=0.01))
    run.step(100)
    reference = run.trainer.clone()
    run.trainer.set_optimizer("sgd")
    # A learning rate far from where SGD blows up on this text: at 0.5 its loss grows chaotically,
    # and whether the divergence guard rolls back within 50 steps depended on round-off.
    run.trainer.learning_rate = 0.02
    report = run.step(50)
    assert report.alert is None and run.iteration == 150
    restored = tl.restore(run.trainer, run.timeline.snapshots[-1])
    assert_same_state(trainer_state(restored), trainer_state(reference))


def test_the_timeline_sample_is_reproducible_and_the_first_is_untrained():
    run = small_run()
    run.step(250)
    first, later = run.timeline.snapshots[0], run.timeline.snapshots[-1]
    text = tv.sample_text(run, first)
    assert len(text) == tl.SAMPLE_LENGTH and text == tv.sample_text(run, first)
    assert tv.sample_text(run, later) == tv.sample_text(run, later) != text
    # the first snapshot is the untrained model: the same weights as a new model with the run's seed
    fresh = VanillaRNN(run.vocab.size, 16, seed=run.config.seed)
    prime = int(tv.passage(run)[0][0])
    expected = fresh.sample(tl.SAMPLE_LENGTH, prime=np.array([prime]), h0=np.zeros(16),
                            rng=np.random.default_rng(tl.SAMPLE_SEED))
    assert text == run.vocab.decode(expected)


def test_continue_from_a_snapshot_forks_and_leaves_the_original_untouched():
    run = small_run()
    run.step(300)
    run.add_sample(20)
    before, saved = trainer_state(run.trainer), run.to_bytes()
    snapshots = list(run.timeline.snapshots)
    fork = run.continue_from(run.timeline.iterations.index(100))
    assert fork.uid != run.uid and fork.iteration == 100
    assert fork.timeline.iterations == [0, 100]
    assert all(i <= 100 for i, _ in fork.samples)
    assert fork.trainer.history.last()["iteration"] == 100
    fork.step(120)
    assert fork.timeline.iterations == [0, 100, 200]
    assert_same_state(trainer_state(run.trainer), before)
    assert run.timeline.snapshots == snapshots and run.iteration == 300
    assert Run.from_bytes(run.to_bytes()).iteration == Run.from_bytes(saved).iteration == 300
    with pytest.raises(ValueError, match="index"):
        run.continue_from(len(run.timeline))


def test_a_rollback_drops_the_snapshots_after_it():
    run = small_run()
    run.step(250)
    run._last_good = run.trainer.clone()
    run._last_good.iteration = 150                       # as if the last good copy were from iteration 150
    run._roll_back(1e9)
    assert run.timeline.iterations == [0, 100]


def test_a_copy_has_its_own_timeline():
    run = small_run()
    other = run.copy()
    run.step(120)
    assert run.timeline.iterations == [0, 100] and other.timeline.iterations == [0]


# ---------------------------------------------------------------- saved with the run
def test_snapshots_survive_saving_and_loading_bit_for_bit():
    run = small_run(optimizer="adam", learning_rate=0.01)
    run.step(220)
    loaded = Run.from_bytes(run.to_bytes())
    assert loaded.timeline.iterations == run.timeline.iterations == [0, 100, 200]
    for a, b in zip(run.timeline.snapshots, loaded.timeline.snapshots):
        assert a.facts() == b.facts() and np.array_equal(a.state, b.state) and a.state.dtype == b.state.dtype
        assert not b.state.flags.writeable
    restored = tl.restore(loaded.trainer, loaded.timeline.snapshots[1])
    assert_same_state(trainer_state(restored), trainer_state(tl.restore(run.trainer, run.timeline.snapshots[1])))


def test_a_run_that_switched_optimizer_saves_and_loads_its_timeline():
    run = small_run()                                # Adagrad: capacity 24 at this size
    run.step(1_100)
    run.apply_live(RunConfig(corpus="custom", hidden_size=16, seq_length=8, optimizer="sgd"))
    run.step(1_000)
    loaded = Run.from_bytes(run.to_bytes())
    assert loaded.timeline.iterations == run.timeline.iterations == [0, 100, 200, 500, 1_000, 2_000]
    assert [s.optimizer for s in loaded.timeline.snapshots] == ["adagrad"] * 5 + ["sgd"]
    fork = loaded.continue_from(4)
    assert fork.trainer.optimizer_name == "adagrad" and fork.config.optimizer == "adagrad"


def test_a_checkpoint_without_a_timeline_starts_one_where_it_is():
    from rnn_core import checkpoint_bytes
    run = small_run()
    run.step(30)
    loaded = Run.from_bytes(checkpoint_bytes(run.trainer, run.vocab))   # as the command line writes them
    assert loaded.timeline.iterations == [30]


# ---------------------------------------------------------------- hostile timelines
@pytest.fixture(scope="module")
def saved():
    run = Run(RunConfig(corpus="custom", hidden_size=8, seq_length=10), POEM, "poems")
    run.step(210)
    return run.to_bytes()


def entries(data: bytes) -> dict:
    with np.load(io.BytesIO(data)) as npz:
        return {k: npz[k] for k in npz.files}


def repack(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return buf.getvalue()


def edited(data: bytes, edit_timeline=None, values=None) -> bytes:
    """``data`` with its timeline facts changed by ``edit_timeline(list)`` and/or its values replaced."""
    arrays = entries(data)
    meta = json.loads(str(arrays["meta"]))
    if edit_timeline is not None:
        edit_timeline(meta["metadata"]["app"])
    arrays["meta"] = np.array(json.dumps(meta))
    if values is not None:
        if values == "drop":
            arrays.pop("app_state")
        else:
            arrays["app_state"] = values(arrays["app_state"])
    return repack(arrays)


def refused(data: bytes, match: str) -> None:
    with pytest.raises(ValueError, match="not a valid checkpoint") as info:
        Run.from_bytes(data)
    assert match in str(info.value), str(info.value)


def test_the_saved_fixture_loads(saved):
    assert Run.from_bytes(saved).timeline.iterations == [0, 100, 200]


def set_field(i, key, value):
    def edit(app):
        app["timeline"][i][key] = value
    return edit


@pytest.mark.parametrize("edit, match", [
    (set_field(1, "iteration", 10**6), "iteration"),
    (set_field(1, "iteration", 0), "iterations increase"),
    (set_field(1, "iteration", 1.5), "iteration"),
    (set_field(0, "position", -1), "position"),
    (set_field(0, "position", 10**9), "position"),
    (set_field(0, "chars_seen", -3), "chars_seen"),
    (set_field(0, "optimizer_steps", True), "optimizer_steps"),
    (set_field(2, "smooth_loss", -1.0), "smooth_loss"),
    (set_field(2, "learning_rate", 1e9), "learning_rate"),
    (set_field(2, "clip", 0), "clip"),
    (set_field(2, "clip", "5"), "clip"),
    (set_field(1, "optimizer", "lbfgs"), "unknown optimizer"),
    (set_field(1, "rng_state", {"bit_generator": "MT19937"}), "random generator"),
    (set_field(1, "rng_state", "seed"), "random generator"),
    (set_field(1, "surprise", 1), "exactly the fields"),
    (lambda app: app["timeline"][0].pop("clip"), "exactly the fields"),
    (lambda app: app["timeline"].__setitem__(0, [1, 2]), "exactly the fields"),
    (lambda app: app.__setitem__("timeline", {"a": 1}), "must be a list"),
    (lambda app: app.__setitem__("timeline", app["timeline"] * 9), "at most 24"),
    (lambda app: app.pop("timeline"), "values but no timeline"),
    (set_field(1, "optimizer", "adam"), "need"),        # an Adam snapshot needs more values than are there
])
def test_a_tampered_timeline_is_refused(saved, edit, match):
    refused(edited(saved, edit), match)


@pytest.mark.parametrize("values, match", [
    (lambda v: v[:-1], "need"),
    (lambda v: np.concatenate([v, v]), "need"),
    (lambda v: v.astype(np.float32), "dtype"),
    (lambda v: v.reshape(-1, 1)[:, [0, 0]], "1-D"),
    (lambda v: np.where(np.arange(v.size) == 3, np.nan, v), "NaN"),
    ("drop", "no values"),
])
def test_tampered_timeline_values_are_refused(saved, values, match):
    refused(edited(saved, values=values), match)


def test_negative_adagrad_memory_and_hidden_states_outside_tanh_are_refused(saved):
    run = Run.from_bytes(saved)
    m = run.trainer.model
    n_params = tl.state_size(m.vocab_size, m.hidden_size, 1, "adagrad") - m.hidden_size
    n_params //= 2
    size = tl.state_size(m.vocab_size, m.hidden_size, 1, "adagrad")

    def negative_memory(v):
        v = v.copy()
        v[size + n_params + 5] = -1.0             # snapshot 1's Adagrad memory
        return v

    def big_hidden(v):
        v = v.copy()
        v[2 * size - 1] = 1.5                     # snapshot 1's last hidden unit
        return v

    refused(edited(saved, values=negative_memory), "negative entries")
    refused(edited(saved, values=big_hidden), "outside [-1, 1]")


def test_a_huge_timeline_entry_is_refused_from_its_header(saved):
    """A header promising more values than allowed is refused before anything is allocated."""
    arrays = entries(saved)
    buf = io.BytesIO()
    np.savez(buf, **{k: v for k, v in arrays.items() if k != "app_state"})
    import zipfile
    header = io.BytesIO()
    np.lib.format.write_array_header_1_0(header, {"descr": "<f8", "fortran_order": False,
                                                   "shape": (MAX_APP_STATE_VALUES + 1,)})
    with zipfile.ZipFile(buf, "a") as archive:
        archive.writestr("app_state.npy", header.getvalue())
    with pytest.raises(ValueError, match="not a valid checkpoint: entry 'app_state'"):
        Run.from_bytes(buf.getvalue())


# ---------------------------------------------------------------- the views' pure builders
def test_the_passage_and_its_heatmap_come_from_the_snapshot():
    run = small_run()
    run.step(120)
    ids, text = tv.passage(run)
    assert len(ids) == len(text) == tl.PASSAGE_LENGTH
    assert text == run.vocab.decode(run.trainer.val_ids[:tl.PASSAGE_LENGTH])
    first, later = run.timeline.snapshots
    hs0, _ = tv.passage_states(run, first)
    hs1, _ = tv.passage_states(run, later)
    assert hs0.shape == (tl.PASSAGE_LENGTH, 16) and not np.array_equal(hs0, hs1)
    fresh = VanillaRNN(run.vocab.size, 16, seed=0)
    np.testing.assert_array_equal(hs0, fresh.forward(ids, np.zeros(16)).hs)
    fig = tv.passage_heatmap(run, later)
    assert "iteration 100" in fig.layout.title.text
    np.testing.assert_allclose(np.asarray(fig.data[0].z, dtype=float), hs1.T)


def test_the_mark_sits_on_the_bold_line_in_the_charts_unit():
    run = small_run()
    run.step(220)
    snap = run.timeline.snapshots[1]                 # iteration 100
    hist = run.trainer.history.as_arrays("iteration", "loss", "smooth_loss")
    smooth_at_100 = hist["smooth_loss"][hist["iteration"] == 100][0]
    assert tv.chart_value(run, snap, "window", loss_chart.CLASSIC_SMOOTHING) == snap.smooth_loss == smooth_at_100
    assert tv.chart_value(run, snap, "bits", loss_chart.CLASSIC_SMOOTHING) == pytest.approx(
        snap.smooth_loss / 8 / np.log(2))
    loss_at_100 = hist["loss"][hist["iteration"] == 100][0]
    assert tv.chart_value(run, snap, "window", 0.0) == pytest.approx(loss_at_100)
    fig = loss_chart.loss_figure(hist["iteration"], hist["loss"], hist["smooth_loss"], seq_length=8,
                              vocab_size=run.vocab.size)
    n = len(fig.data)
    tv.mark_snapshot(fig, 100, 12.5, "window")
    assert len(fig.data) == n + 1
    mark = fig.data[-1]
    assert (list(mark.x), list(mark.y), mark.name) == ([100], [12.5], "timeline snapshot")
    assert any(shape.x0 == 100 and shape.x1 == 100 for shape in fig.layout.shapes)


def test_labels():
    assert tv.moment_label(0) == "start (untrained)" and tv.moment_label(12_000) == "12,000"
    run = small_run()
    line = tv.describe(run.timeline.snapshots[0], 8)
    assert line.startswith("Iteration 0 ·") and "adagrad lr 0.1" in line
