"""Unit tests for playground.views.backprop_view: the Backprop page's numbers, checked against the engine."""

import math

import numpy as np
import pytest

from playground.runs.run import Run, RunConfig, window_chars
from playground.views import backprop_view as bv
from playground.views import weight_figures
from rnn_core import PARAM_NAMES

TEXT = "the quick brown fox jumps over the lazy dog.\n" * 20


def make_run(steps=0, **config):
    config = {"corpus": "custom", "hidden_size": 8, "seq_length": 10, **config}
    run = Run(RunConfig(**config), TEXT, "test text")
    if steps:
        run.step(steps)
    return run


@pytest.fixture(scope="module")
def trained():
    """A run after 30 steps (realistic, non-tiny gradients) and its backprop window."""
    run = make_run(30)
    return run, bv.window_backprop(run)


# ---------------------------------------------------------------- the window
def test_window_is_the_next_training_window_and_its_trace(trained):
    run, window = trained
    inputs, targets, h0, chars = window_chars(run)
    assert np.array_equal(window.inputs, inputs) and np.array_equal(window.targets, targets)
    assert np.array_equal(window.h0, h0)
    assert window.chars == chars and window.target_chars == run.vocab.decode(targets)
    assert window.length == 10 and window.iteration == 30
    trace = run.trainer.model.backprop_trace(inputs, targets, h0)
    for key in ("hs", "ps", "dy", "dh", "dh_raw", "losses"):
        np.testing.assert_array_equal(window.trace[key], trace[key])


def test_step_label_makes_whitespace_visible(trained):
    _, window = trained
    t = window.chars.index(" ") if " " in window.chars else window.target_chars.index(" ")
    label = bv.step_label(window, t)
    assert label.startswith(f"t = {t}: ") and "␣" in label and " ' '" not in label


# ---------------------------------------------------------------- one time step
def test_step_facts_are_the_trace_numbers(trained):
    run, window = trained
    params = run.trainer.model.params
    tr = window.trace
    for t in range(window.length):
        facts = bv.step_facts(params, window, t)
        target = int(window.targets[t])
        assert facts["input_char"] == run.vocab.chars[window.inputs[t]]
        assert facts["target_char"] == run.vocab.chars[target]
        assert facts["p_target"] == pytest.approx(tr["ps"][t, target])
        assert facts["loss"] == pytest.approx(-math.log(facts["p_target"]))
        assert facts["dh_norm"] == pytest.approx(np.linalg.norm(tr["dh"][t]))
        assert facts["dh_raw_norm"] == pytest.approx(np.linalg.norm(tr["dh_raw"][t]))
    assert sum(bv.step_facts(params, window, t)["loss"] for t in range(window.length)) == pytest.approx(tr["loss"])


def test_dh_parts_add_up_to_the_engines_dh(trained):
    run, window = trained
    params = run.trainer.model.params
    for t in range(window.length):
        from_output, from_future = bv.dh_parts(params, window, t)
        np.testing.assert_allclose(from_output + from_future, window.trace["dh"][t], rtol=1e-12, atol=1e-15)
    _, last_future = bv.dh_parts(params, window, window.length - 1)
    assert not last_future.any()


def test_dy_table_rows_are_p_minus_onehot_largest_first(trained):
    run, window = trained
    vocab = run.vocab.chars
    for t in range(window.length):
        table = bv.dy_table(window, t, vocab, top=5)
        assert list(table.columns) == ["char", "p", "dy", "target"] and len(table) == 5
        assert table["target"].sum() == 1
        ids = [vocab.index(c.replace("␣", " ").replace("⏎", "\n")) for c in table["char"]]
        target = int(window.targets[t])
        expected_dy = window.trace["ps"][t, ids] - (np.array(ids) == target)
        np.testing.assert_allclose(table["dy"], expected_dy, atol=1e-15)
        np.testing.assert_allclose(table["p"], window.trace["ps"][t, ids])
        assert ids[int(np.flatnonzero(table["target"])[0])] == target


def test_dy_table_keeps_the_target_when_it_is_not_among_the_largest(trained):
    run, window = trained
    table = bv.dy_table(window, 0, run.vocab.chars, top=1)
    assert len(table) == 1 and bool(table["target"].iloc[0])
    assert table["dy"].iloc[0] == pytest.approx(window.trace["ps"][0, window.targets[0]] - 1.0)


def test_hidden_table_shows_tanh_derivative_times_dh(trained):
    run, window = trained
    t = 4
    table = bv.hidden_table(run.trainer.model.params, window, t, first=5)
    assert len(table) == 5 and list(table["unit"]) == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(table["h"], window.trace["hs"][t, :5])
    np.testing.assert_allclose(table["dh_raw"], table["1 − h²"] * table["dh"], rtol=1e-12)
    np.testing.assert_allclose(table["dh_raw"], window.trace["dh_raw"][t, :5])
    np.testing.assert_allclose(table["from output"] + table["from future"], table["dh"], rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("t", [-1, 10, 2.0, True])
def test_bad_time_step_raises_naming_t(trained, t):
    run, window = trained
    with pytest.raises(ValueError, match=r"t must be an integer time step in 0\.\.9"):
        bv.step_facts(run.trainer.model.params, window, t)


# ---------------------------------------------------------------- gradients of the window
def test_gradient_summary_counts_clipped_entries():
    grads = {"Wxh": np.array([[6.0, -7.0], [1.0, 0.0]]), "Whh": np.zeros((2, 2)), "Why": np.array([[5.0, -5.0]]),
             "bh": np.array([-0.5, 10.0]), "by": np.array([3.0])}
    table = bv.gradient_summary(grads, clip=5.0).set_index("parameter")
    assert list(table.index) == ["dWxh", "dWhh", "dWhy", "dbh", "dby"]
    assert table.loc["dWxh", "shape"] == "2×2" and table.loc["dbh", "shape"] == "2"
    assert table.loc["dWxh", "clipped"] == 2 and table.loc["dWxh", "clipped %"] == pytest.approx(50.0)
    assert table.loc["dWhy", "clipped"] == 0     # exactly ±clip is not changed by clipping
    assert table.loc["dWhh", "max |entry|"] == 0.0
    assert table.loc["dWxh", "norm"] == pytest.approx(math.sqrt(36 + 49 + 1))
    assert bv.clipped_fraction(grads, 5.0) == pytest.approx(3 / 13)   # 3 of 4 + 4 + 2 + 2 + 1 entries


def test_summary_predicts_the_next_steps_clipping_and_norms():
    run = make_run(20, clip=0.5)
    window = bv.window_backprop(run)
    grads = window.trace["grads"]
    predicted = bv.clipped_fraction(grads, run.trainer.clip)
    table = bv.gradient_summary(grads, run.trainer.clip).set_index("parameter")
    run.step(1)
    stats = run.trainer.last_stats
    assert predicted > 0
    assert predicted == pytest.approx(stats["clip_fraction"])
    assert stats["loss"] == pytest.approx(window.trace["loss"])
    for name in PARAM_NAMES:
        assert table.loc[f"d{name}", "norm"] == pytest.approx(stats["grad_norms"][name])


# ---------------------------------------------------------------- through time
def test_dh_norms_match_the_trainers_dh_norms():
    run = make_run(5)
    window = bv.window_backprop(run)
    norms = bv.dh_norms(window)
    run.step(1)
    np.testing.assert_allclose(norms, run.trainer.last_stats["dh_norms"], rtol=1e-12)


def test_last_loss_reach_matches_finite_differences(trained):
    run, window = trained
    model = run.trainer.model
    reach = bv.last_loss_reach(model.params, window)
    T, H = window.length, model.hidden_size
    target = int(window.targets[-1])

    def last_loss_from(t, h):       # -log p_{T-1}[target] with h_t replaced by h
        return -math.log(model.forward(window.inputs[t + 1:], h0=h).ps[-1, target])

    delta = 1e-6
    for t in (0, 3, T - 2):
        h = window.trace["hs"][t]
        grad = np.array([(last_loss_from(t, h + delta * e) - last_loss_from(t, h - delta * e)) / (2 * delta)
                         for e in np.eye(H)])
        assert reach[t] == pytest.approx(np.linalg.norm(grad), rel=1e-6)
    dy_last = window.trace["dy"][-1]
    assert reach[-1] == pytest.approx(np.linalg.norm(model.params["Why"].T @ dy_last))


# ---------------------------------------------------------------- gradient check
def test_checks_per_param_shrinks_with_model_size():
    assert bv.checks_per_param_for(25, 100, 65) == bv.CHECKS_PER_PARAM
    assert bv.checks_per_param_for(200, 512, 100) == 1
    sizes = [bv.checks_per_param_for(T, H, 65) for T, H in [(25, 100), (50, 192), (100, 256), (200, 512)]]
    assert sizes == sorted(sizes, reverse=True)


def test_noise_floor_scales_with_loss():
    assert bv.noise_floor(100.0) == pytest.approx(10 * np.finfo(float).eps * 100 / 1e-5)
    assert bv.noise_floor(0.001) == bv.noise_floor(1.0)


@pytest.mark.parametrize("analytic, numerical, expected", [
    (2.0, 2.0 * (1 + 1e-7), "pass"),
    (0.0, 0.0, "pass"),
    (1e-7, 1.01e-7, "pass (noise floor)"),
    (2.0, 2.1, "FAIL"),
    (1e-3, -1e-3, "FAIL"),
])
def test_check_result(analytic, numerical, expected):
    assert bv.check_result(analytic, numerical, floor=1e-8) == expected


def test_gradcheck_frame_passes_on_a_trained_model(trained):
    run, window = trained
    frame = bv.gradcheck_frame(run.trainer.model, window, checks_per_param=3)
    assert len(frame) == 15 and set(frame["parameter"]) == set(PARAM_NAMES)
    assert frame["result"].str.startswith("pass").all(), frame.to_string()
    np.testing.assert_allclose(frame["|a − n|"], (frame["analytic"] - frame["numerical"]).abs())
    bh_index = frame.loc[frame["parameter"] == "bh", "index"].iloc[0]
    assert bh_index.startswith("(") and "," not in bh_index


def test_gradcheck_frame_catches_a_wrong_gradient(trained, monkeypatch):
    run, window = trained
    model = run.trainer.model.copy()
    original = type(model).loss_and_grads

    def broken(self, inputs, targets, h0=None):
        loss, grads, h = original(self, inputs, targets, h0)
        grads["by"] = grads["by"] * 1.5 + 0.1
        return loss, grads, h

    monkeypatch.setattr(type(model), "loss_and_grads", broken)
    frame = bv.gradcheck_frame(model, window, checks_per_param=2)
    assert (frame.loc[frame["parameter"] == "by", "result"] == "FAIL").all()
    assert frame.loc[frame["parameter"] != "by", "result"].str.startswith("pass").all()


# ---------------------------------------------------------------- weights
def test_weight_axis_labels_use_the_vocabulary(trained):
    run, _ = trained
    params, vocab = run.trainer.model.params, run.vocab.chars
    wxh = bv.weight_axis_labels("Wxh", vocab)
    assert wxh == {"col_labels": list(vocab)}
    assert bv.weight_axis_labels("Why", vocab) == {"row_labels": list(vocab)}
    assert bv.weight_axis_labels("Whh", vocab) == {}
    fig = weight_figures.weight_heatmap(params["Wxh"], "Wxh", **wxh)
    assert "␣" in fig.layout.xaxis.ticktext
    with pytest.raises(ValueError, match="'Wzz'"):
        bv.weight_axis_labels("Wzz", vocab)


def test_spectral_series_is_bounded_and_spans_the_run():
    series = bv.SpectralSeries(cap=50)
    for it in range(0, 5000, 10):
        series.record("run", it, lambda it=it: it / 1000)
        assert len(series.iterations) <= 50
    its, radii = series.arrays()
    assert its[0] == 0 and its[-1] == 4990
    assert np.all(np.diff(its) > 0)
    np.testing.assert_allclose(radii, its / 1000)


def test_spectral_series_computes_once_per_iteration_and_follows_rollbacks_and_new_runs():
    calls = []

    def radius(value):
        return lambda: calls.append(value) or value

    series = bv.SpectralSeries()
    assert series.record("a", 0, radius(0.5)) == 0.5
    assert series.record("a", 0, radius(9.9)) == 0.5 and calls == [0.5]
    series.record("a", 10, radius(0.7))
    series.record("a", 20, radius(0.9))
    series.record("a", 15, radius(0.8))          # rolled back to 15: the point at 20 is gone
    assert series.iterations == [0, 10, 15] and series.radii == [0.5, 0.7, 0.8]
    series.record("b", 100, radius(1.2))         # another run starts afresh
    assert series.iterations == [100] and series.radii == [1.2]


def test_spectral_series_keeps_nan_for_non_finite_radius():
    series = bv.SpectralSeries()
    series.record("a", 1, lambda: float("inf"))
    assert math.isnan(series.radii[0])


# ---------------------------------------------------------------- equations
@pytest.mark.parametrize("optimizer", ["adagrad", "sgd", "momentum", "rmsprop", "adam"])
def test_update_latex_names_learning_rate_and_clip(optimizer):
    latex = bv.update_latex(optimizer, 0.05, 2.0)
    assert "0.05" in latex and r"\operatorname{clip}(g, -2, 2)" in latex


def test_update_latex_unknown_optimizer_raises():
    with pytest.raises(ValueError, match="'lbfgs'"):
        bv.update_latex("lbfgs", 0.1, 5.0)
