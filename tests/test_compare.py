"""Kept curves to compare runs (playground.views.compare), their dashed lines on the loss chart, and the
Train page's Compare runs controls in AppTest."""
import json

import numpy as np

from playground.runs.run import Run, RunConfig
from playground.views import compare, loss_chart, style

POEM = "roses are red, violets are blue,\nsugar is sweet and so are you.\n" * 40


def small_run(lr=0.1, seq_length=10, iterations=0):
    run = Run(RunConfig(corpus="custom", hidden_size=16, seq_length=seq_length, learning_rate=lr), POEM, "poems")
    if iterations:
        run.step(iterations)
    return run


def test_keep_freezes_the_curve_and_keeps_at_most_five():
    run = small_run(iterations=4)
    kept = compare.keep((), run)
    assert len(kept) == 1 and kept[0].iterations.tolist() == [1, 2, 3, 4] and kept[0].seq_length == 10
    assert "lr 0.1" in kept[0].label and "to 4" in kept[0].label
    run.step(3)
    assert len(kept[0].loss) == 4                                  # later training does not change it
    assert compare.keep(kept, small_run()) == kept                 # a run with no history adds nothing
    for _ in range(7):
        kept = compare.keep(kept, run)
    assert len(kept) == compare.MAX_KEPT


def test_kept_curves_are_drawn_dashed_in_the_charts_unit_with_their_own_sequence_length():
    long_run, short_run = small_run(seq_length=20, iterations=5), small_run(seq_length=10, iterations=5)
    kept = compare.keep(compare.keep((), long_run), short_run)
    hist = short_run.trainer.history.as_arrays()
    fig = loss_chart.loss_figure(hist["iteration"], hist["loss"], hist["smooth_loss"], seq_length=10, vocab_size=20,
                              unit="nats", compare=compare.for_chart(kept, loss_chart.CLASSIC_SMOOTHING))
    dashed = [t for t in fig.data if t.line.dash == "dash"]
    assert [t.name for t in dashed] == [k.label for k in kept]
    np.testing.assert_allclose(dashed[0].y, kept[0].smooth_loss / 20)    # per char with T = 20
    np.testing.assert_allclose(dashed[1].y, kept[1].smooth_loss / 10)
    smoothed = compare.for_chart(kept, 0.9)[0].per_window                 # the chart's smoothing applies
    np.testing.assert_allclose(smoothed, loss_chart.debiased_ema(kept[0].iterations, kept[0].loss, 0.9))


def test_an_untrained_run_with_kept_curves_shows_them_without_the_start_note():
    kept = compare.keep((), small_run(iterations=3))
    empty = np.array([])
    fig = loss_chart.loss_figure(empty, empty, empty, seq_length=10, vocab_size=20,
                              compare=compare.for_chart(kept, loss_chart.CLASSIC_SMOOTHING))
    assert not fig.layout.annotations or all(style.EMPTY_TRAINING_MESSAGE not in a.text
                                             for a in fig.layout.annotations)
    assert any(t.name == kept[0].label for t in fig.data)


def _loss_chart_names(at):
    spec = next(json.loads(c.proto.spec) for c in at.get("plotly_chart")
                if "loss" in json.loads(c.proto.spec)["layout"]["title"]["text"].lower())
    return [t.get("name", "") for t in spec["data"]]


def test_train_page_keeps_a_curve_across_a_reset_and_clears_it(open_page):
    at = open_page("app_pages/train.py", timeout=60)
    assert at.button(key="keep_curve").disabled                          # nothing trained yet
    for _ in range(3):
        at.button(key="btn_step").click().run()
    at.button(key="keep_curve").click().run()
    label = at.session_state.app.kept_curves[0].label
    at.select_slider(key="cfg_hidden_size").set_value(32).run()
    at.button(key="btn_reset").click().run()
    assert at.session_state.app.run.iteration == 0 and not at.exception
    assert label in _loss_chart_names(at)                                 # still on the new run's chart
    at.button(key="clear_curves").click().run()
    assert not at.session_state.app.kept_curves and label not in _loss_chart_names(at)
