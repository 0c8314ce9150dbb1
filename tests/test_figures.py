"""Unit tests for the figure modules of playground.views (style, downsampling, loss_units,
loss_chart, hidden_figures, prediction_figures, weight_figures): pure builders, no server."""

import math

import numpy as np
import plotly.graph_objects as go
import pytest

from playground.views import analysis as A
from playground.views import (
    downsampling,
    hidden_figures,
    loss_chart,
    loss_units,
    prediction_figures,
    style,
    weight_figures,
)
from rnn_core.history import BoundedHistory
from rnn_core.trainer import HISTORY_COLUMNS

T, V = 25, 65


def _annotation_texts(fig):
    return [a.text for a in fig.layout.annotations]


# ---------------------------------------------------------------- units


def test_units_keys_and_labels():
    assert set(loss_units.UNITS) == {"window", "nats", "bits", "perplexity"}
    assert all(isinstance(label, str) and label for label in loss_units.UNITS.values())


def test_convert_loss_values():
    per_window = 50.0
    assert loss_units.convert_loss(per_window, "window", T) == pytest.approx(50.0)
    assert loss_units.convert_loss(per_window, "nats", T) == pytest.approx(2.0)
    assert loss_units.convert_loss(per_window, "bits", T) == pytest.approx(50.0 / T / math.log(2))
    assert loss_units.convert_loss(per_window, "perplexity", T) == pytest.approx(math.exp(2.0))


def test_convert_loss_array_keeps_shape():
    out = loss_units.convert_loss(np.array([[25.0, 50.0]]), "nats", 25)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, [[1.0, 2.0]])


def test_perplexity_of_uniform_guess_is_vocab_size():
    assert loss_units.untrained_loss(V, T, "perplexity") == pytest.approx(V)
    assert loss_units.convert_loss(math.log(V) * T, "perplexity", T) == pytest.approx(V)
    assert loss_units.untrained_loss(V, T, "bits") == pytest.approx(math.log2(V))


def test_bits_per_char_round_trip():
    window = loss_units.bits_per_char_to_window(3.0, T)
    assert loss_units.convert_loss(window, "bits", T) == pytest.approx(3.0)


def test_unknown_unit_raises_naming_it():
    with pytest.raises(ValueError, match="furlongs"):
        loss_units.convert_loss(1.0, "furlongs", T)
    with pytest.raises(ValueError, match="furlongs"):
        loss_chart.loss_figure([1], [1.0], [1.0], seq_length=T, vocab_size=V, unit="furlongs")


def test_bad_seq_length_raises():
    with pytest.raises(ValueError, match="seq_length"):
        loss_units.convert_loss(1.0, "nats", 0)


# ---------------------------------------------------------------- downsampling


def test_downsample_short_series_unchanged():
    x, y = downsampling.downsample(np.arange(10), np.arange(10) * 2.0, max_points=2000)
    np.testing.assert_array_equal(x, np.arange(10))
    np.testing.assert_array_equal(y, np.arange(10) * 2.0)


def test_downsample_million_points_bounded_and_keeps_ends_and_spikes():
    n = 1_000_000
    rng = np.random.default_rng(0)
    x = np.arange(n) + 1
    y = rng.random(n)
    y[0], y[-1] = 7.0, 8.0
    y[333_333] = 100.0  # spike
    y[777_777] = -100.0  # dip
    xs, ys = downsampling.downsample(x, y, max_points=2000)
    assert xs.shape == ys.shape
    assert len(xs) <= 2000
    assert (xs[0], ys[0]) == (1, 7.0)
    assert (xs[-1], ys[-1]) == (n, 8.0)
    assert 100.0 in ys and -100.0 in ys
    assert np.all(np.diff(xs) > 0)


@pytest.mark.parametrize("n", [2001, 2002, 4999, 12345])
def test_downsample_bound_for_awkward_lengths(n):
    xs, ys = downsampling.downsample(np.arange(n), np.sin(np.arange(n)), max_points=2000)
    assert len(xs) <= 2000
    assert xs[0] == 0 and xs[-1] == n - 1


def test_downsample_mismatched_lengths():
    with pytest.raises(ValueError, match="y"):
        downsampling.downsample(np.arange(3), np.arange(4))


def test_min_max_band():
    x = np.arange(10)
    y = np.array([1, 5, 2, 8, 3, 0, 4, 4, 9, 6], dtype=float)
    bx, lo, hi = downsampling.min_max_band(x, y, max_buckets=5)
    np.testing.assert_array_equal(lo, [1, 2, 0, 4, 6])
    np.testing.assert_array_equal(hi, [5, 8, 3, 4, 9])
    assert bx[0] == 0 and bx[-1] == 9
    assert np.all(lo <= hi)


def test_min_max_band_bounded_for_long_input():
    n = 1_000_000
    bx, lo, hi = downsampling.min_max_band(np.arange(n), np.arange(n, dtype=float), max_buckets=2000)
    assert len(bx) <= 2000 and len(lo) == len(hi) == len(bx)
    assert lo[0] == 0 and hi[-1] == n - 1


# ---------------------------------------------------------------- loss figure


def _history(n):
    it = np.arange(1, n + 1)
    loss = np.linspace(math.log(V) * T, 30.0, n)
    return it, loss, loss * 1.01


def test_loss_figure_short_history_traces_and_titles():
    it, loss, smooth = _history(100)
    fig = loss_chart.loss_figure(it, loss, smooth, seq_length=T, vocab_size=V, unit="bits")
    assert isinstance(fig, go.Figure)
    names = [tr.name for tr in fig.data]
    assert names == ["loss (each step)", "smoothed loss"]
    raw, sm = fig.data
    assert raw.opacity < 0.5 and raw.line.width < sm.line.width
    np.testing.assert_allclose(raw.y, loss / T / math.log(2))
    np.testing.assert_allclose(sm.y, smooth / T / math.log(2))
    assert fig.layout.xaxis.title.text == "iteration"
    assert fig.layout.yaxis.title.text == loss_units.UNITS["bits"]
    assert fig.layout.height == style.LOSS_HEIGHT
    assert fig.layout.plot_bgcolor == style.BACKGROUND


@pytest.mark.parametrize("unit", ["window", "nats", "bits", "perplexity"])
def test_loss_figure_reference_line(unit):
    it, loss, smooth = _history(10)
    fig = loss_chart.loss_figure(it, loss, smooth, seq_length=T, vocab_size=V, unit=unit)
    (line,) = [s for s in fig.layout.shapes if s.line.dash == "dash"]
    expected = {"window": math.log(V) * T, "nats": math.log(V), "bits": math.log2(V), "perplexity": V}[unit]
    assert line.y0 == pytest.approx(expected) and line.y1 == pytest.approx(expected)


@pytest.mark.parametrize("unit", ["window", "nats", "bits", "perplexity"])
@pytest.mark.parametrize("bucketed", [False, True])
def test_every_loss_chart_hover_names_the_iteration_the_quantity_and_the_current_unit(unit, bucketed):
    it, loss, smooth = _history(3000 if bucketed else 10)
    curve = loss_chart.ComparedCurve(label="kept: lr 0.1", iterations=it, per_window=smooth, seq_length=T)
    fig = loss_chart.loss_figure(it, loss, smooth, seq_length=T, vocab_size=V, unit=unit, max_points=1000,
                        val_iterations=[5, 10], val_bits_per_char=[4.0, 3.0], compare=[curve])
    hovers = [tr.hovertemplate for tr in fig.data]
    assert len(hovers) == (5 if bucketed else 4)   # raw (or its band: 2), smoothed, kept run, validation
    for hover in hovers:
        assert "iteration" in hover and loss_units.HOVER_UNITS[unit] in hover, hover
    joined = " | ".join(hovers)
    for meaning in ("smoothed loss:", "validation loss (held-out text)", "kept run's loss"):
        assert meaning in joined
    assert ("lowest window loss" in joined and "highest window loss" in joined) if bucketed else \
        "loss on this window" in joined


def test_hidden_heatmap_hover_names_unit_character_and_activation():
    (hm,) = hidden_figures.hidden_heatmap(np.zeros((3, 4)), "abc").data
    for part in ("hidden unit %{y}", "char '%{customdata}'", "activation hₜ = %{z:+.3f}"):
        assert part in hm.hovertemplate


def test_loss_figure_validation_converted_from_bits():
    it, loss, smooth = _history(10)
    fig = loss_chart.loss_figure(it, loss, smooth, seq_length=T, vocab_size=V, unit="nats",
                        val_iterations=[5, 10], val_bits_per_char=[4.0, 3.0])
    (val,) = [tr for tr in fig.data if tr.name == "validation"]
    np.testing.assert_allclose(val.y, np.array([4.0, 3.0]) * math.log(2))
    fig_bits = loss_chart.loss_figure(it, loss, smooth, seq_length=T, vocab_size=V, unit="bits",
                             val_iterations=[5, 10], val_bits_per_char=[4.0, 3.0])
    np.testing.assert_allclose(fig_bits.data[-1].y, [4.0, 3.0])


def test_loss_figure_million_points_uses_band_and_stays_bounded():
    n = 1_000_000
    it = np.arange(n)
    loss = np.full(n, 80.0)
    loss[500_000] = 400.0
    fig = loss_chart.loss_figure(it, loss, loss, seq_length=T, vocab_size=V, max_points=2000)
    for tr in fig.data:
        assert len(tr.x) <= 2000
    band_top = [tr for tr in fig.data if tr.fill == "tonexty"]
    assert len(band_top) == 1 and max(band_top[0].y) == 400.0
    smooth = [tr for tr in fig.data if tr.name == "smoothed loss"][0]
    assert smooth.x[0] == 0 and smooth.x[-1] == n - 1 and max(smooth.y) == 400.0


def _trained_history(iterations: int, spike_at: int) -> dict:
    """The Train page's arrays of a BoundedHistory that saw ``iterations`` iterations as the trainer
    appends them (a falling noisy loss, one spike)."""
    it = np.arange(1, iterations + 1, dtype=float)
    loss = 60.0 * np.exp(-it / (0.05 * iterations)) + 40.0 + np.random.default_rng(0).random(iterations)
    loss[spike_at - 1] = 400.0
    smooth = np.empty_like(loss)   # min-char-rnn's running average, as the trainer keeps it
    s = math.log(V) * T
    for k, value in enumerate(loss.tolist()):
        s = 0.999 * s + 0.001 * value
        smooth[k] = s
    rows = np.zeros((iterations, len(HISTORY_COLUMNS)))
    for name, column in (("iteration", it), ("loss", loss), ("smooth_loss", smooth), ("loss_min", loss),
                         ("loss_max", loss)):
        rows[:, HISTORY_COLUMNS.index(name)] = column
    hist = BoundedHistory(HISTORY_COLUMNS)
    for chunk in np.array_split(rows, 5):
        hist.extend(chunk)
    return hist.as_arrays("iteration", "loss", "smooth_loss", "loss_min", "loss_max")


@pytest.mark.parametrize("smoothing", [loss_chart.CLASSIC_SMOOTHING, 0.999])
def test_the_loss_chart_of_a_million_iterations_has_no_gap_over_one_percent(smoothing):
    n, spike_at = 10**6, 12_345
    hist = _trained_history(n, spike_at)
    smooth, label = loss_chart.smoothed_series(hist["iteration"], hist["loss"], hist["smooth_loss"], smoothing)
    # As the Train page draws it.
    fig = loss_chart.loss_figure(hist["iteration"], hist["loss"], smooth, seq_length=T, vocab_size=V, max_points=1000,
                        smooth_label=label, loss_min=hist["loss_min"], loss_max=hist["loss_max"])
    traces = [tr for tr in fig.data if tr.x is not None]
    assert {tr.name for tr in traces} == {"loss min", "loss (min–max per bucket)", label}
    for tr in traces:
        x = np.asarray(tr.x, dtype=float)
        assert len(x) <= 1000
        assert np.diff(np.concatenate(([0.0], x, [n]))).max() <= 0.01 * n
        assert (x <= 0.02 * n).sum() >= 5                   # the early fall of the loss is drawn
    band_top = [tr for tr in traces if tr.fill == "tonexty"][0]
    assert max(band_top.y) == 400.0                          # one raw iteration's spike, merged long ago
    band_bottom = [tr for tr in traces if tr.name == "loss min"][0]
    assert min(band_bottom.y) == pytest.approx(40.0, abs=0.01)


def test_rows_that_are_buckets_draw_their_own_min_and_max_as_the_band():
    fig = loss_chart.loss_figure([4, 8, 12], [50.0, 45.0, 44.0], [52.0, 50.0, 48.0], seq_length=T, vocab_size=V,
                        loss_min=[41.0, 40.0, 39.0], loss_max=[60.0, 58.0, 50.0])
    names = [tr.name for tr in fig.data]
    assert "loss (each step)" not in names                   # the rows are means, not steps
    band_top = [tr for tr in fig.data if tr.fill == "tonexty"][0]
    band_bottom = [tr for tr in fig.data if tr.name == "loss min"][0]
    np.testing.assert_array_equal(band_top.y, [60.0, 58.0, 50.0])
    np.testing.assert_array_equal(band_bottom.y, [41.0, 40.0, 39.0])
    fig_bits = loss_chart.loss_figure([4, 8, 12], [50.0, 45.0, 44.0], [52.0, 50.0, 48.0], seq_length=T, vocab_size=V,
                             unit="bits", loss_min=[41.0, 40.0, 39.0], loss_max=[60.0, 58.0, 50.0])
    top_bits = [tr for tr in fig_bits.data if tr.fill == "tonexty"][0]
    np.testing.assert_allclose(top_bits.y, loss_units.convert_loss(np.array([60.0, 58.0, 50.0]), "bits", T))
    # One iteration per row (min = max = loss): the faint line of each step, as before.
    fig_steps = loss_chart.loss_figure([1, 2, 3], [50.0, 45.0, 44.0], [52.0, 50.0, 48.0], seq_length=T, vocab_size=V,
                              loss_min=[50.0, 45.0, 44.0], loss_max=[50.0, 45.0, 44.0])
    assert "loss (each step)" in [tr.name for tr in fig_steps.data]


def test_loss_figure_empty_history():
    fig = loss_chart.loss_figure([], [], [], seq_length=T, vocab_size=V)
    assert len(fig.data) == 0
    assert style.EMPTY_TRAINING_MESSAGE in _annotation_texts(fig)
    assert style.EMPTY_TRAINING_MESSAGE == "Press Start or Step to train"


def test_loss_figure_mismatched_lengths():
    with pytest.raises(ValueError, match="smooth_loss"):
        loss_chart.loss_figure([1, 2], [1.0, 2.0], [1.0], seq_length=T, vocab_size=V)


# ---------------------------------------------------------------- hidden and weights


def test_hidden_heatmap_fixed_range_and_char_ticks():
    hs = np.tanh(np.random.default_rng(1).normal(size=(6, 4)) * 0.1)  # small values: range must not autoscale
    chars = "a b\n\t<"
    fig = hidden_figures.hidden_heatmap(hs, chars)
    (hm,) = fig.data
    assert hm.type == "heatmap"
    assert (hm.zmin, hm.zmax, hm.zmid) == (-1.0, 1.0, 0.0)
    assert np.asarray(hm.z).shape == (4, 6)  # H rows, T columns
    assert list(fig.layout.xaxis.ticktext) == ["a", "␣", "b", "⏎", "⇥", "<"]
    assert list(fig.layout.xaxis.tickvals) == list(range(6))
    assert "unit" in hm.hovertemplate and "char" in hm.hovertemplate
    assert fig.layout.yaxis.title.text == "hidden unit"
    # Blue for -1, red for +1.
    first, last = hm.colorscale[0][1], hm.colorscale[-1][1]
    assert first == "rgb(33, 102, 172)" and last == "rgb(230, 97, 1)"


def test_hidden_heatmap_chars_length_mismatch():
    with pytest.raises(ValueError, match="chars"):
        hidden_figures.hidden_heatmap(np.zeros((3, 2)), "ab")


def test_weight_heatmap_symmetric_range():
    W = np.array([[0.5, -2.0, 1.0], [0.0, 0.1, -0.3]])
    fig = weight_figures.weight_heatmap(W, "Whh")
    (hm,) = fig.data
    assert hm.zmin == -2.0 and hm.zmax == 2.0
    assert fig.layout.yaxis.title.text and fig.layout.xaxis.title.text
    assert "Whh" in fig.layout.title.text


def test_weight_heatmap_bias_and_all_zero():
    fig = weight_figures.weight_heatmap(np.zeros(4), "bh")
    (hm,) = fig.data
    assert np.asarray(hm.z).shape == (4, 1)
    assert hm.zmin == -hm.zmax and hm.zmax > 0


def test_weight_histogram_counts_all_entries():
    W = np.random.default_rng(2).normal(size=(30, 40))
    fig = weight_figures.weight_histogram(W, "Wxh", bins=25)
    (bar,) = fig.data
    assert len(bar.x) == 25 and sum(bar.y) == W.size
    assert fig.layout.xaxis.title.text == "weight value"
    assert fig.layout.yaxis.title.text == "count"


# ---------------------------------------------------------------- gradients


def test_dh_norm_figure_with_chars_and_log_axis():
    fig = weight_figures.dh_norm_figure(np.array([1e-3, 1e-2, 0.1, 1.0]), chars="ab \n")
    (bar,) = fig.data
    assert len(bar.y) == 4
    assert fig.layout.yaxis.type == "log"
    assert list(fig.layout.xaxis.ticktext) == ["a", "b", "␣", "⏎"]
    linear = weight_figures.dh_norm_figure(np.ones(3), log_y=False)
    assert linear.layout.yaxis.type != "log"


def test_dh_norm_figure_empty():
    fig = weight_figures.dh_norm_figure(np.zeros(0))
    assert len(fig.data) == 0 and _annotation_texts(fig)


def test_grad_norms_figure_with_clip_panel():
    n = 50
    it = np.arange(n)
    norms = {name: np.linspace(0.1, 10, n) for name in ("Wxh", "Whh", "Why", "bh", "by")}
    fig = weight_figures.grad_norms_figure(it, norms, clip_fraction=np.linspace(0, 0.2, n), clip=5.0)
    assert [tr.name for tr in fig.data] == ["Wxh", "Whh", "Why", "bh", "by", "clipped"]
    assert fig.layout.yaxis.type == "log"
    assert fig.data[-1].yaxis == "y2"
    assert fig.data[-1].y[-1] == pytest.approx(20.0)  # shown in percent
    assert "5" in fig.layout.yaxis2.title.text
    assert fig.layout.xaxis2.title.text == "iteration"


def test_grad_norms_figure_bounded_and_no_clip_panel():
    n = 100_000
    fig = weight_figures.grad_norms_figure(np.arange(n), {"Whh": np.ones(n)}, max_points=500)
    assert len(fig.data) == 1 and len(fig.data[0].x) <= 500
    assert fig.layout.yaxis.type == "log"


def test_grad_norms_figure_mismatch_and_empty():
    with pytest.raises(ValueError, match="Wxh"):
        weight_figures.grad_norms_figure(np.arange(3), {"Wxh": np.ones(2)})
    fig = weight_figures.grad_norms_figure([], {"Wxh": []})
    assert len(fig.data) == 0 and style.EMPTY_TRAINING_MESSAGE in _annotation_texts(fig)


# ---------------------------------------------------------------- predictions


def test_topk_figure_cells_and_hits():
    vocab = "ab c"
    probs = np.array([
        [0.1, 0.6, 0.2, 0.1],
        [0.7, 0.1, 0.1, 0.1],
        [0.05, 0.05, 0.8, 0.1],
    ])
    fig = prediction_figures.topk_figure("xyz", probs, vocab, actual_next=[1, 3, 0], k=2)
    hm, hits = fig.data
    assert np.asarray(hm.z).shape == (2, 3)
    assert hm.zmin == 0.0 and hm.zmax == 1.0
    # Rank 1 row, then rank 2 (ties keep vocabulary order, so 'b' before ' ' and 'c' at t=1).
    assert list(hm.text[0]) == ["b", "a", "␣"]
    assert list(hm.text[1]) == ["␣", "b", "c"]
    np.testing.assert_allclose(np.asarray(hm.z)[0], [0.6, 0.7, 0.8])
    # actual next: 'b' at t=0 rank 1; 'c' at t=1 not in top 2; 'a' at t=2 not in top 2
    assert list(hits.x) == [0] and list(hits.y) == [1]
    assert list(fig.layout.xaxis.ticktext) == ["x", "y", "z"]
    assert "1/3" in fig.layout.title.text


def test_topk_figure_actual_next_as_string_and_errors():
    probs = np.full((2, 3), 1 / 3)
    fig = prediction_figures.topk_figure("ab", probs, "abc", actual_next="ca", k=3)
    assert len(fig.data[1].x) == 2
    with pytest.raises(ValueError, match="vocab_chars"):
        prediction_figures.topk_figure("ab", probs, "ab")
    with pytest.raises(ValueError, match="actual_next"):
        prediction_figures.topk_figure("ab", probs, "abc", actual_next=[0])


def test_sample_probability_figure_sorted():
    fig = prediction_figures.sample_probability_figure(np.array([0.2, 0.5, 0.3]), "a\nb", temperature=0.5)
    (bar,) = fig.data
    np.testing.assert_allclose(bar.y, [0.5, 0.3, 0.2])
    assert list(fig.layout.xaxis.ticktext) == ["⏎", "b", "a"]
    assert "0.5" in fig.layout.title.text


# ---------------------------------------------------------------- spectral radius


def test_spectral_radius_figure_reference_at_one():
    fig = weight_figures.spectral_radius_figure([1, 2, 3], [0.8, 0.95, 1.1])
    (shape,) = fig.layout.shapes
    assert shape.y0 == 1.0 and shape.y1 == 1.0
    assert list(fig.data[0].y) == [0.8, 0.95, 1.1]
    assert fig.layout.yaxis.title.text and fig.layout.xaxis.title.text == "iteration"
    empty = weight_figures.spectral_radius_figure([], [])
    assert len(empty.data) == 0


def test_every_figure_has_fixed_height_and_template():
    figs = [
        loss_chart.loss_figure([1], [1.0], [1.0], seq_length=T, vocab_size=V),
        hidden_figures.hidden_heatmap(np.zeros((2, 2)), "ab"),
        weight_figures.weight_heatmap(np.eye(2), "Whh"),
        weight_figures.weight_histogram(np.eye(2), "Whh"),
        weight_figures.dh_norm_figure(np.ones(2)),
        weight_figures.grad_norms_figure([1], {"Wxh": [1.0]}, clip_fraction=[0.0]),
        prediction_figures.topk_figure("a", np.array([[1.0]]), "a"),
        weight_figures.spectral_radius_figure([1], [0.5]),
        prediction_figures.sample_probability_figure([1.0], "a"),
    ]
    for fig in figs:
        assert isinstance(fig.layout.height, int) and fig.layout.height > 0
        assert fig.layout.margin.t <= 60
        assert fig.layout.plot_bgcolor == style.BACKGROUND


def test_state_trail_figure_labels_points_with_visible_characters_in_reading_order():
    coords = np.array([[0.0, 0.0], [1.0, 0.5], [2.0, -1.0], [0.5, 0.5]])
    fig = hidden_figures.state_trail_figure(coords, "a b\n", [0.6, 0.3], first_t=10)
    line, points = fig.data
    np.testing.assert_array_equal(line.x, coords[:, 0])                 # the path, in reading order
    np.testing.assert_array_equal(points.y, coords[:, 1])
    assert list(points.text) == ["a", "␣", "b", "⏎"]
    assert [row[0] for row in points.customdata] == [10, 11, 12, 13]     # time steps for the hover
    assert fig.layout.xaxis.title.text == "direction 1 (60% of the variation)"
    assert fig.layout.yaxis.scaleanchor == "x"


def test_state_trail_figure_colours_one_trace_per_group():
    coords = np.arange(10.0).reshape(5, 2)
    fig = hidden_figures.state_trail_figure(coords, "ab c\n", [0.5, 0.2], groups=["x", "x", "sp", "x", "nl"])
    names = [trace.name for trace in fig.data[1:]]
    assert names == ["x", "sp", "nl"]
    assert list(fig.data[1].text) == ["a", "b", "c"] and list(fig.data[2].text) == ["␣"]
    classes = A.char_classes("aB 1,\n")
    assert classes == ["lowercase letter", "capital letter", "space", "digit", "punctuation & other", "line break"]
    assert set(classes) == set(A.CHAR_CLASSES) and set(hidden_figures.GROUP_COLOURS) == set(A.CHAR_CLASSES)


def test_state_trail_figure_rejects_mismatched_inputs():
    coords = np.zeros((4, 2))
    with pytest.raises(ValueError, match="one character per time step"):
        hidden_figures.state_trail_figure(coords, "abc", [0.6, 0.3])
    with pytest.raises(ValueError, match=r"shape \(T, 2\)"):
        hidden_figures.state_trail_figure(np.zeros((4, 3)), "abcd", [0.6, 0.3])
    with pytest.raises(ValueError, match="one name per point"):
        hidden_figures.state_trail_figure(coords, "abcd", [0.6, 0.3], groups=["a"])


def test_debiased_ema_follows_from_the_first_point_and_matches_the_textbook_recurrence():
    y = np.array([10.0, 4.0, 7.0, 1.0, 3.0])
    it = np.arange(1, 6)
    w = 0.8
    expected, s = [], 0.0
    for n, value in enumerate(y, start=1):
        s = w * s + (1 - w) * value
        expected.append(s / (1 - w ** n))
    np.testing.assert_allclose(loss_chart.debiased_ema(it, y, w), expected)
    np.testing.assert_allclose(loss_chart.debiased_ema(it, np.full(5, 3.0), 0.99), 3.0)   # no pull towards 0
    np.testing.assert_array_equal(loss_chart.debiased_ema(it, y, 0.0), y)


def test_debiased_ema_treats_a_gap_of_d_iterations_as_d_steps():
    # A history thinned as BoundedHistory thins (iterations 1, 3, 5, ... kept) of a loss that is
    # constant over each dropped-and-kept pair (2, 3), (4, 5), ... smooths, at the kept rows, to what
    # the whole history gives.
    whole_it = np.arange(1, 14)
    whole = np.r_[8.0, np.repeat([9.0, 5.0, 6.0, 2.0, 4.0, 3.0], 2)]
    full = loss_chart.debiased_ema(whole_it, whole, 0.7)
    np.testing.assert_allclose(loss_chart.debiased_ema(whole_it[::2], whole[::2], 0.7), full[::2])
    with pytest.raises(ValueError, match=r"weight must be a number in \[0, 1\), got 1.0"):
        loss_chart.debiased_ema(whole_it, whole, 1.0)
    with pytest.raises(ValueError, match="same length"):
        loss_chart.debiased_ema(whole_it, whole[:3], 0.5)


def test_log_axes_label_one_tick_per_decade_only_over_wide_ranges():
    wide = weight_figures.dh_norm_figure(np.logspace(-6, 0, 25))
    assert wide.layout.yaxis.type == "log" and wide.layout.yaxis.dtick == 1
    narrow = weight_figures.dh_norm_figure(np.linspace(2.0, 9.0, 25))     # under a decade: plotly's own ticks
    assert narrow.layout.yaxis.type == "log" and narrow.layout.yaxis.dtick is None
    # one to two decades below 1: whole values at 1, 2, 5 of each decade, never a bare "9 8 7"
    middle = weight_figures.dh_norm_figure(np.linspace(0.03, 0.9, 25))
    assert middle.layout.yaxis.dtick is None
    assert list(middle.layout.yaxis.ticktext) == ["0.05", "0.1", "0.2", "0.5"]
    assert list(middle.layout.yaxis.tickvals) == pytest.approx([0.05, 0.1, 0.2, 0.5])


def test_weight_heatmap_hover_says_what_the_row_and_column_are():
    (hm,) = weight_figures.weight_heatmap(np.ones((3, 3)), "Whh").data
    assert "Whh[%{y}, %{x}] = %{z:+.4f}" in hm.hovertemplate
    assert "to hidden unit (t) %{y} ← from hidden unit (t−1) %{x}" in hm.hovertemplate
    (bias,) = weight_figures.weight_heatmap(np.ones(3), "bh").data
    assert "hidden unit %{y}" in bias.hovertemplate and "←" not in bias.hovertemplate
