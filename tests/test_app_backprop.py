"""The Backprop page through Streamlit's AppTest: it renders, follows training, checks gradients."""

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from playground import backprop_view as bv
from playground.textviews import visible_char

DASHBOARD = str(Path(__file__).resolve().parent.parent / "dashboard.py")


@pytest.fixture
def app(monkeypatch):
    """The app switched to the Backprop page.

    AppTest resets ``PagesManager.uses_pages_directory`` before every run, so with a pages/ folder each
    run after the first takes the old pages-folder route and runs the page script without
    dashboard.py (no sidebar). Keeping the flag False makes every run go through st.navigation, as
    the real server does after its first run.
    """
    original_init = PagesManager.__init__

    def init(self, *args, **kwargs):
        original_init(self, *args, **kwargs)
        PagesManager.uses_pages_directory = False

    monkeypatch.setattr(PagesManager, "__init__", init)
    at = AppTest.from_file(DASHBOARD, default_timeout=60)
    at.run()
    at.switch_page("pages/backprop.py").run()
    assert not at.exception
    return at


def open_tab(at, label):
    at.session_state["bp_tab"] = label
    at.run()
    assert not at.exception
    return at


def metric(at, label_start):
    return next(m.value for m in at.metric if m.label.startswith(label_start))


def chart_spec(at, title_start):
    for chart in at.get("plotly_chart"):
        spec = json.loads(chart.proto.spec)
        if spec["layout"]["title"]["text"].startswith(title_start):
            return spec
    raise AssertionError(f"no chart titled {title_start!r}")


def test_renders_at_iteration_zero(app):
    assert any(m.value.startswith("Iteration **0**") for m in app.markdown)
    assert [t.label for t in app.tabs] == ["Equations & numbers", "Gradient check", "Through time", "Weights"]
    assert len(app.get("latex")) == 3
    assert not app.get("plotly_chart")          # tabs are lazy: only the open one is drawn
    open_tab(app, "Through time")
    assert chart_spec(app, "Gradient norms")    # empty history: the chart shows a note, not an error
    assert not app.get("latex")
    open_tab(app, "Weights")
    run = app.session_state["run"]
    assert metric(app, "Spectral radius") == f"{run.trainer.model.spectral_radius():.4f}"


def test_follows_training_and_shows_the_engines_numbers(app):
    for _ in range(3):
        app.button(key="btn_step").click().run()
    assert not app.exception
    run = app.session_state["run"]
    assert run.iteration == 3
    assert any(m.value.startswith("Iteration **3**") for m in app.markdown)
    window = bv.window_backprop(run)
    summary = next(df.value for df in app.dataframe if "clipped %" in df.value.columns)
    np.testing.assert_allclose(summary["norm"], bv.gradient_summary(window.trace["grads"], run.trainer.clip)["norm"])
    # the page drew at iterations 0, 1, 2 and 3, and recorded the spectral radius each time
    assert app.session_state["bp_spectral"].iterations == [0, 1, 2, 3]
    open_tab(app, "Weights")
    spec = chart_spec(app, "Spectral radius")
    assert spec["data"][0]["name"] == "ρ(Whh)"
    open_tab(app, "Through time")
    dh = chart_spec(app, "Gradient reaching each hidden state")
    assert dh["data"][0]["type"] == "bar" and len(dh["layout"]["xaxis"]["ticktext"]) == window.length


def test_time_step_slider_changes_the_step_shown(app):
    run = app.session_state["run"]
    window = bv.window_backprop(run)
    T = window.length
    assert app.select_slider(key="bp_t").value == T // 2
    for t in (0, 7):
        app.select_slider(key="bp_t").set_value(t).run()
        assert not app.exception
        facts = bv.step_facts(run.trainer.model.params, window, t)
        assert metric(app, "$p_t") == f"{facts['p_target']:.4f}"
        assert metric(app, r"$\mathrm{loss}_t") == f"{facts['loss']:.3f}"
        assert metric(app, "input") == f"'{visible_char(facts['input_char'])}'"
        dy = next(df.value for df in app.dataframe if list(df.value.columns) == ["char", "p", "dy", "target"])
        np.testing.assert_allclose(dy["dy"], bv.dy_table(window, t, run.vocab.chars)["dy"])


def test_chosen_time_step_survives_the_window_moving(app):
    app.select_slider(key="bp_t").set_value(7).run()
    before = bv.window_backprop(app.session_state["run"]).chars
    app.button(key="btn_step").click().run()
    assert not app.exception
    run = app.session_state["run"]
    assert bv.window_backprop(run).chars != before      # the slider's labels changed...
    assert app.select_slider(key="bp_t").value == 7      # ...and the chosen step stayed
    assert metric(app, "input") == f"'{visible_char(bv.window_backprop(run).chars[7])}'"


def test_gradient_check_button_gives_a_passing_table(app):
    app.button(key="btn_step").click().run()
    open_tab(app, "Gradient check")
    app.button(key="btn_gradcheck").click().run()
    assert not app.exception
    frame = next(df.value for df in app.dataframe if "relative error" in df.value.columns)
    assert len(frame) == 5 * bv.CHECKS_PER_PARAM
    assert frame["result"].str.startswith("pass").all(), frame.to_string()
    assert app.success[0].value.startswith(f"{len(frame)} of {len(frame)} checked entries agree")


def test_weights_tab_switches_matrix(app):
    open_tab(app, "Weights")
    assert chart_spec(app, "Wxh 100×")
    app.segmented_control(key="bp_weight").set_value("Whh").run()
    assert not app.exception
    assert chart_spec(app, "Whh 100×100")


def test_one_step_windows_and_batches_render_in_every_tab(app):
    from playground.run import Run, RunConfig
    run = Run(RunConfig(corpus="custom", hidden_size=8, seq_length=1, batch_size=2), "abcab\n" * 20, "tiny")
    run.step(3)
    app.session_state["run"] = run
    app.run()
    assert not app.exception and not app.select_slider    # one step: nothing to slide over
    assert any("stream 0 alone" in c.value for c in app.caption)
    for label in ("Gradient check", "Through time", "Weights"):
        open_tab(app, label)
    assert app.session_state["bp_spectral"].iterations == [3]
