"""The Backprop page through Streamlit's AppTest: it renders, follows training, checks gradients."""

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from playground.views import backprop_view as bv
from playground.views.textviews import visible_char

DASHBOARD = str(Path(__file__).resolve().parent.parent / "dashboard.py")


@pytest.fixture
def app(monkeypatch):
    """The app switched to the Backprop page (every run goes through dashboard.py's st.navigation:
    the page scripts live in app_pages/, so Streamlit never serves them the pages-folder way)."""
    at = AppTest.from_file(DASHBOARD, default_timeout=60)
    at.run()
    at.switch_page("app_pages/backprop.py").run()
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
    assert [t.label for t in app.tabs] == ["Equations & numbers", "Animated", "Gradient check", "Through time",
                                           "Weights"]
    assert len(app.get("latex")) == 3
    assert not app.get("plotly_chart")          # tabs are lazy: only the open one is drawn
    open_tab(app, "Through time")
    assert chart_spec(app, "Gradient norms")    # empty history: the chart shows a note, not an error
    assert not app.get("latex")
    open_tab(app, "Weights")
    run = app.session_state.app.run
    assert metric(app, "Spectral radius") == f"{run.trainer.model.spectral_radius():.4f}"


def test_follows_training_and_shows_the_engines_numbers(app):
    for _ in range(3):
        app.button(key="btn_step").click().run()
    assert not app.exception
    run = app.session_state.app.run
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
    run = app.session_state.app.run
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
    before = bv.window_backprop(app.session_state.app.run).chars
    app.button(key="btn_step").click().run()
    assert not app.exception
    run = app.session_state.app.run
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
    from playground.runs.run import Run, RunConfig
    run = Run(RunConfig(corpus="custom", hidden_size=8, seq_length=1, batch_size=2), "abcab\n" * 20, "tiny")
    run.step(3)
    app.session_state.app.run = run
    app.run()
    assert not app.exception and not app.select_slider    # one step: nothing to slide over
    assert any("stream 0 alone" in c.value for c in app.caption)
    for label in ("Animated", "Gradient check", "Through time", "Weights"):
        open_tab(app, label)
    assert app.session_state["bp_spectral"].iterations == [3]
    open_tab(app, "Animated")
    app.button(key="bp_step").click().run()
    assert not app.exception and player_status(app).startswith("**Frame 2 of 2: backward pass, step t = 0**")


# ---------------------------------------------------------------- the animated player (issue 15)
def decode(values):
    """A Plotly spec array: a list, or a typed array {dtype, bdata (base64)}, as a float array."""
    if isinstance(values, dict):
        import base64
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"])).astype(float)
    return np.array([np.nan if v is None else v for v in np.ravel(values)], dtype=float)


def heatmap_z(spec):
    trace = spec["data"][0]
    z = trace["z"]
    if isinstance(z, dict):
        return decode(z).reshape(z["shape"] if isinstance(z["shape"], list) else
                                 [int(n) for n in str(z["shape"]).split(",")])
    return np.array([[np.nan if v is None else v for v in row] for row in z], dtype=float)


def player_status(at):
    return next(m.value for m in at.markdown if m.value.startswith("**Frame "))


def held(at):
    return at.session_state["bp_player"]


def test_player_steps_forward_then_backward_with_the_engines_numbers(app):
    open_tab(app, "Animated")
    run = app.session_state.app.run
    window = bv.window_backprop(run)
    T = window.length
    assert player_status(app).startswith(f"**Frame 1 of {2 * T}: forward pass, step t = 0**")
    z = heatmap_z(chart_spec(app, "Forward: hidden state"))
    np.testing.assert_array_equal(z[:, 0], window.trace["hs"][0])       # the same numbers, exactly
    assert np.isnan(z[:, 1:]).all()                                     # later steps not computed yet
    assert metric(app, r"$\mathrm{loss}_t") == f"{window.trace['losses'][0]:.4f}"
    assert any(r"h_{0}" in latex.value for latex in app.get("latex"))
    for _ in range(T):
        app.button(key="bp_step").click().run()
    assert not app.exception
    assert player_status(app).startswith(f"**Frame {T + 1} of {2 * T}: backward pass, step t = {T - 1}**")
    dh = heatmap_z(chart_spec(app, "Backward: gradient"))
    np.testing.assert_array_equal(dh[:, T - 1], window.trace["dh"][T - 1])
    assert np.isnan(dh[:, : T - 1]).all()
    assert metric(app, "L so far") == f"{np.cumsum(window.trace['losses'])[-1]:.3f}"
    assert metric(app, r"$\|dh_t") == f"{np.linalg.norm(window.trace['dh'][T - 1]):.4g}"
    app.button(key="bp_back").click().run()
    assert player_status(app).startswith(f"**Frame {T} of {2 * T}: forward pass, step t = {T - 1}**")
    app.button(key="bp_first").click().run()
    assert player_status(app).startswith("**Frame 1 of")


def test_player_plays_pauses_and_stops_at_the_end(app):
    from playground.views import bptt_player as bp
    open_tab(app, "Animated")
    app.button(key="bp_play").click().run()
    assert not app.exception
    assert held(app)["state"].playing and app.button(key="bp_pause")
    # AppTest never fires run_every: a timer tick is a rerun once a frame's time has passed.
    held(app)["state"] = bp.PlayerState(0, True, last_advance=-1e9)
    app.run()
    assert held(app)["state"].index == 1 and player_status(app).startswith("**Frame 2 of")
    app.run()                  # a rerun sooner than a frame's time (not a tick) does not advance
    assert held(app)["state"].index == 1
    app.button(key="bp_pause").click().run()
    assert not held(app)["state"].playing and app.button(key="bp_play")
    n = 2 * bv.window_backprop(app.session_state.app.run).length
    held(app)["state"] = bp.PlayerState(n - 2, True, last_advance=-1e9)
    app.run()
    assert held(app)["state"] == bp.PlayerState(n - 1, False, held(app)["state"].last_advance)
    assert player_status(app).startswith(f"**Frame {n} of {n}: backward pass, step t = 0**")
    app.button(key="bp_play").click().run()            # at the end, Play starts again from the first frame
    assert held(app)["state"].index == 0 and held(app)["state"].playing


def test_player_slider_speed_and_gradient_choice(app):
    open_tab(app, "Animated")
    slider = next(s for s in app.slider if s.label == "Frame")
    slider.set_value(30).run()
    assert not app.exception
    assert held(app)["state"].index == 30 and player_status(app).startswith("**Frame 31 of 50: backward pass, "
                                                                             "step t = 19**")
    app.segmented_control(key="bp_speed").set_value("fast").run()
    assert held(app)["speed"] == "fast"
    app.segmented_control(key="bp_anim_grad").set_value("Why").run()
    assert not app.exception
    spec = chart_spec(app, "Weight gradient dWhy")
    run = app.session_state.app.run
    assert heatmap_z(spec).shape == run.trainer.model.params["Why"].shape


def test_player_follows_a_step_while_paused(app):
    open_tab(app, "Animated")
    before = held(app)["window"].chars
    app.button(key="btn_step").click().run()
    assert not app.exception
    assert held(app)["window"].iteration == 1 and held(app)["window"].chars != before


def test_every_chart_hovers_and_every_metric_explains_itself(app):
    app.button(key="btn_step").click().run()
    for label in ("Equations & numbers", "Animated", "Through time", "Weights"):
        open_tab(app, label)
        for m in app.metric:
            assert m.help, f"metric {m.label!r} on the {label} tab has no help tooltip"
        for chart in app.get("plotly_chart"):
            spec = json.loads(chart.proto.spec)
            for trace in spec["data"]:
                assert trace.get("hovertemplate"), (label, spec["layout"]["title"]["text"], trace.get("name"))


def test_characters_in_metrics_and_the_players_status_are_escaped(app):
    from playground.escape import markdown_text
    from playground.runs.run import Run, RunConfig
    run = Run(RunConfig(corpus="custom", hidden_size=8, seq_length=4), "*$[x](y)_`" * 30, "hostile")
    app.session_state.app.run = run
    app.run()
    assert not app.exception
    window = bv.window_backprop(run)
    t = app.select_slider(key="bp_t").value
    assert metric(app, "input") == f"'{markdown_text(visible_char(window.chars[t]))}'"
    open_tab(app, "Animated")
    status = player_status(app)
    assert f"input '{markdown_text(visible_char(window.chars[0]))}'" in status
    assert "*$" not in status
