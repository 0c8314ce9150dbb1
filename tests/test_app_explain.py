"""Hover and explain (issue 14): every metric on every page carries a help tooltip that states how
it is computed, with this run's own numbers where the formula has them. AppTest, no browser."""

import math

import pytest

# Pages with metrics. The Backprop page's own metrics are tested with it (tests/test_app_backprop.py).
PAGES_WITH_METRICS = ["app_pages/train.py", "app_pages/data.py", "app_pages/hidden_states.py", "app_pages/guess.py"]

# A help text that explains a number says how it is made: an equation or an operator of one.
FORMULA_SIGNS = ("=", "÷", "−", "Σ", "·", "argmax", "among")


@pytest.mark.parametrize("page", PAGES_WITH_METRICS)
def test_every_metric_has_a_help_tooltip_with_its_formula(open_page, page):
    at = open_page(page)
    assert at.metric, f"{page} shows no metric"
    for metric in at.metric:
        help_text = metric.proto.help
        assert help_text.strip(), f"{page}: metric {metric.label!r} has no help"
        assert any(sign in help_text for sign in FORMULA_SIGNS), f"{page}: {metric.label!r}: {help_text!r}"


def test_the_train_page_helps_quote_this_runs_sizes_and_untrained_loss(open_page):
    at = open_page("app_pages/train.py")
    run = at.session_state.app.run
    helps = {m.label: m.proto.help for m in at.metric}
    T, B, V = run.trainer.seq_length, run.trainer.batch_size, run.vocab.size
    assert f"T = {T}" in helps["Iteration"] and f"B = {B}" in helps["Iteration"]
    assert f"{len(run.trainer.data):,}" in helps["Epoch"]
    assert f"{run.untrained_loss:.2f}" in helps["Smooth loss"] and "0.999" in helps["Smooth loss"]
    assert f"V = {V}" in helps["Bits per char"] and f"{math.log2(V):.2f}" in helps["Bits per char"]
