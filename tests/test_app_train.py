"""The Train page and the shared sidebar in Streamlit's AppTest (no browser; run_every never fires).

Runs train in the trainer pool's worker processes: a test that lets a run train reruns the app (as
the sidebar's timer would) until what it waits for has happened, with a deadline.
"""
import base64
import copy
import json
import time
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

DASHBOARD = str(Path(__file__).resolve().parent.parent / "dashboard.py")


@pytest.fixture
def app():
    at = AppTest.from_file(DASHBOARD, default_timeout=60)
    at.run()
    assert not at.exception
    return at


def iteration(at) -> int:
    return at.session_state.app.run.iteration


def rerun_until(at, condition, what: str, timeout: float = 60.0):
    """Rerun ``at`` (one sidebar tick each) until ``condition(at)`` holds; fail after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not condition(at):
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        at.run()
        assert not at.exception
    return at


def test_renders_with_the_classic_defaults_and_shared_controls(app):
    c = app.session_state.app.run.config
    assert (c.hidden_size, c.seq_length, c.learning_rate, c.batch_size, c.optimizer, c.clip) == (
        100, 25, 0.1, 1, "adagrad", 5.0)
    assert {"btn_start", "btn_step", "btn_reset"} <= {b.key for b in app.button}
    assert [m.value for m in app.metric if m.label == "Iteration"] == ["0"]
    specs = [json.loads(c.proto.spec) for c in app.get("plotly_chart")]
    titles = [s["layout"]["title"]["text"] for s in specs]
    assert any("loss" in t.lower() for t in titles) and any("Hidden state" in t for t in titles)


def test_step_moves_the_iteration_by_exactly_one(app):
    for expected in (1, 2, 3):
        app.button(key="btn_step").click().run()
        assert not app.exception
        assert iteration(app) == expected
    assert [m.value for m in app.metric if m.label == "Iteration"] == ["3"]


def test_start_and_pause_switch_the_running_state(app):
    app.button(key="btn_start").click().run()
    assert app.session_state.app.running is True
    assert "btn_pause" in {b.key for b in app.button}
    app.button(key="btn_pause").click().run()
    assert app.session_state.app.running is False


def test_a_paused_run_leaves_its_trainer_process_and_trains_on_from_the_same_state(app):
    """Pause, Step and a stop by itself park the run: the worker drops its copy at once (an idle
    session holds its run, timeline included, once); Start places it again from that copy."""
    from playground.runs import trainers
    handle = app.session_state.app.trainer
    app.button(key="btn_start").click().run()
    rerun_until(app, lambda at: handle.progress().iteration >= 30, "training to 30")
    assert handle.placed
    app.button(key="btn_pause").click().run()
    paused = app.session_state.app.run
    assert not handle.placed and trainers.get_pool().training == 0
    app.button(key="btn_step").click().run()
    stepped = app.session_state.app.run
    assert not handle.placed and stepped.iteration == paused.iteration + 1
    ref = paused.copy()                     # the same state stepped here, in this process
    ref.step(1)
    for name, value in ref.trainer.model.params.items():
        np.testing.assert_array_equal(stepped.trainer.model.params[name], value)
    app.number_input(key="stop_at").set_value(stepped.iteration + 7).run()
    app.button(key="btn_start").click().run()
    assert handle.placed
    rerun_until(app, lambda at: at.session_state.app.running is False, "the stop by itself")
    assert iteration(app) == stepped.iteration + 7 and not handle.placed


def test_pause_at_iteration_stops_training_exactly_there_and_says_so(app):
    app.number_input(key="stop_at").set_value(5).run()
    app.button(key="btn_start").click().run()
    assert not app.exception
    rerun_until(app, lambda at: at.session_state.app.running is False, "the run to pause itself")
    assert iteration(app) == 5
    assert any("Paused at iteration 5" in s.value for s in app.success)
    assert "btn_start" in {b.key for b in app.button}
    app.button(key="btn_start").click().run()           # past the target: Start trains on
    assert app.session_state.app.running is True
    rerun_until(app, lambda at: at.session_state.app.trainer.progress().iteration > 5, "training past 5")
    app.button(key="btn_pause").click().run()
    assert iteration(app) > 5 and app.session_state.app.running is False


def test_reset_reinitialises_with_a_new_hidden_size_and_says_what_is_lost(app):
    app.button(key="btn_step").click().run()
    app.select_slider(key="cfg_hidden_size").set_value(32).run()
    warning = " ".join(w.value for w in app.warning)
    assert "hidden size 100 → 32" in warning and "the current 1 iteration of training" in warning
    assert app.session_state.app.run.trainer.model.hidden_size == 100   # nothing changes before Reset
    app.button(key="btn_reset").click().run()
    assert not app.exception
    run = app.session_state.app.run
    assert run.trainer.model.hidden_size == 32 and run.iteration == 0
    assert run.trainer.model.params["Whh"].shape == (32, 32)


def test_learning_rate_applies_mid_run_without_a_reset(app):
    app.button(key="btn_step").click().run()
    before = app.session_state.app.run
    app.select_slider(key="cfg_learning_rate").set_value(0.01).run()
    assert not app.exception
    after = app.session_state.app.run                      # the trainer's copy, as it is now
    assert after.uid == before.uid and after.iteration == 1 and after.trainer.learning_rate == 0.01
    app.button(key="btn_step").click().run()           # the next step uses it
    assert app.session_state.app.run.trainer.history.last()["learning_rate"] == 0.01


def test_loss_unit_changes_the_chart_axis(app):
    app.button(key="btn_step").click().run()
    app.session_state["loss_unit"] = "bits"
    app.run()
    spec = next(json.loads(c.proto.spec) for c in app.get("plotly_chart")
                if "loss" in json.loads(c.proto.spec)["layout"]["title"]["text"].lower())
    assert spec["layout"]["yaxis"]["title"]["text"] == "bits per char"


def test_clicking_the_chosen_loss_unit_off_keeps_a_unit(app):
    app.button_group(key="loss_unit").set_value("bits").run()
    app.button_group(key="loss_unit").set_value(None).run()   # the chosen button clicked again
    assert not app.exception
    assert app.session_state["loss_unit"] == "window" and app.button_group(key="loss_unit").value == "window"


def _loss_chart_line(app, name_part):
    """y values (N,) of the loss chart's trace whose legend name contains ``name_part``."""
    spec = next(json.loads(c.proto.spec) for c in app.get("plotly_chart")
                if "loss" in json.loads(c.proto.spec)["layout"]["title"]["text"].lower())
    y = next(t for t in spec["data"] if name_part in t.get("name", ""))["y"]
    if isinstance(y, dict):   # a typed array: {"dtype", "bdata" (base64)}
        return np.frombuffer(base64.b64decode(y["bdata"]), dtype=np.dtype(y["dtype"]))
    return np.asarray(y, dtype=float)


def test_smoothing_control_chooses_the_bold_line(app):
    from playground.views import loss_chart

    for _ in range(6):
        app.button(key="btn_step").click().run()
    hist = app.session_state.app.run.trainer.history.as_arrays()
    np.testing.assert_allclose(_loss_chart_line(app, "min-char-rnn"), hist["smooth_loss"])   # the default
    app.select_slider(key="loss_smoothing").set_value(0.9).run()
    line = _loss_chart_line(app, "0.9, debiased")
    np.testing.assert_allclose(line, loss_chart.debiased_ema(hist["iteration"], hist["loss"], 0.9))
    assert line[0] == pytest.approx(hist["loss"][0])                    # follows the loss from the start
    app.switch_page("app_pages/data.py").run()
    app.switch_page("app_pages/train.py").run()                             # the choice survives a page visit
    assert app.select_slider(key="loss_smoothing").value == 0.9
    app.select_slider(key="loss_smoothing").set_value(0.0).run()
    np.testing.assert_allclose(_loss_chart_line(app, "no smoothing"), hist["loss"])


def test_a_diverging_step_pauses_with_a_message_and_keeps_the_model(app):
    run = copy.deepcopy(app.session_state.app.run)
    run.trainer.model.params["by"][0] = np.inf   # every next loss is non-finite
    app.session_state.app.run = run                  # the session's run now (its trainer takes it)
    app.run()
    app.button(key="btn_step").click().run()
    assert not app.exception
    assert iteration(app) == 0
    assert any("Nothing was lost" in e.value for e in app.error)


def _shown(at) -> list[str]:
    return [e.value for kind in (at.error, at.warning, at.info, at.success) for e in kind]


def test_a_diverging_learning_rate_says_so_once(app):
    from playground.runs.run import Run, RunConfig

    config = RunConfig(corpus="hello", hidden_size=16, seq_length=10, learning_rate=10.0, optimizer="sgd",
                       clip=100.0)
    app.session_state.app.run = Run(config, "hello\n" * 500, "hello")     # the loss explodes within a few steps
    app.run()
    said = []
    for steps in range(1, 21):
        app.button(key="btn_step").click().run()
        assert not app.exception
        said = [m for m in _shown(app) if "the loss rose to" in m]
        if said:
            break
    assert len(said) == 1 and "Try a lower learning rate than 10" in said[0]
    assert app.session_state.app.run.iteration < steps                    # rolled back to the good state
    # On the next run of the page the standing notice is still there, once.
    app.run()
    assert len([m for m in _shown(app) if "the loss rose to" in m]) == 1


def test_samples_show_invisible_and_reordering_characters_by_name(app):
    run = copy.deepcopy(app.session_state.app.run)
    run.samples.append((7, "abc\u202edef\u200bghi"))      # a right-to-left override, a zero-width space
    app.session_state.app.run = run
    app.run()
    shown = [c.value for c in app.code if "abc" in c.value]
    assert shown and "\u202e" not in shown[0] and "\u200b" not in shown[0]
    assert "⟨RLO⟩" in shown[0] and "⟨ZWSP⟩" in shown[0]


@pytest.mark.parametrize("control", ["btn_step", "btn_start"])
def test_a_training_process_that_cannot_be_reached_is_one_sentence_and_the_run_is_kept(app, monkeypatch, control):
    from playground.runs import trainers
    handle = app.session_state.app.trainer
    app.button(key="btn_step").click().run()
    def unreachable(*args, **kwargs):
        raise trainers.WorkerDied("worker 0 exited")
    monkeypatch.setattr(handle, "step", unreachable)
    monkeypatch.setattr(handle, "start", unreachable)
    app.button(key=control).click().run()
    assert not app.exception and app.session_state.app.running is False
    assert iteration(app) == 1
    (error,) = [e.value for e in app.error]
    assert error.startswith("The training process could not be reached.") and "worker 0" not in error
