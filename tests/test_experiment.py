"""Experiment links: every parameter parsed and validated as its widget would be (pure functions),
and an app opened on one starts a fresh run with exactly those settings (AppTest)."""
from __future__ import annotations

from dataclasses import asdict
from pathlib import Path
from urllib.parse import parse_qsl

import pytest
from streamlit.testing.v1 import AppTest

from playground.runs.run import RunConfig
from playground.session import experiment
from playground.views.loss_chart import CLASSIC_SMOOTHING

DASHBOARD = str(Path(__file__).resolve().parents[1] / "dashboard.py")


def parse(**params):
    return experiment.parse({"exp": "1", **{k: str(v) for k, v in params.items()}})


def test_a_link_of_every_setting_comes_back_as_the_same_settings():
    config = RunConfig(corpus="python", hidden_size=32, seq_length=40, learning_rate=0.005, batch_size=16,
                       optimizer="adam", clip=2.0, seed=42, sample_every=250)
    query = experiment.query(config, "bits", 0.99)
    parsed, view, problems = experiment.parse(dict(parse_qsl(query)))
    assert problems == [] and parsed == config
    assert view == {"loss_unit": "bits", "loss_smoothing": 0.99}
    _, view, _ = experiment.parse(dict(parse_qsl(experiment.query(config, "nats", CLASSIC_SMOOTHING))))
    assert view["loss_smoothing"] == CLASSIC_SMOOTHING


def test_settings_not_in_the_link_keep_their_defaults():
    config, view, problems = parse(hidden_size=64)
    assert problems == [] and view == {}
    assert asdict(config) == {**asdict(RunConfig()), "hidden_size": 64}


@pytest.mark.parametrize("key, raw, named", [
    ("corpus", "custom", "corpus"), ("corpus", "../etc", "corpus"),
    ("hidden_size", "100000", "hidden size"), ("hidden_size", "7", "hidden size"), ("hidden_size", "1e2", "hidden size"),
    ("seq_length", "0", "sequence length"), ("seq_length", "201", "sequence length"), ("seq_length", "-3", "sequence length"),
    ("batch_size", "3", "batch size"), ("batch_size", "256", "batch size"),
    ("seed", "-1", "seed"), ("seed", str(2**32), "seed"), ("seed", "1.5", "seed"),
    ("learning_rate", "nan", "learning rate"), ("learning_rate", "inf", "learning rate"),
    ("learning_rate", "11", "learning rate"), ("learning_rate", "1e-6", "learning rate"),
    ("optimizer", "lbfgs", "optimizer"), ("clip", "3", "gradient clip"), ("clip", "0", "gradient clip"),
    ("sample_every", "0", "sample every"), ("sample_every", "100001", "sample every"),
    ("loss_unit", "furlongs", "loss unit"), ("smoothing", "0.5", "smoothing"), ("smoothing", "x", "smoothing"),
])
def test_a_bad_value_gets_a_sentence_naming_it_and_the_rest_still_applies(key, raw, named):
    others = {k: v for k, v in {"hidden_size": 16, "learning_rate": 0.2}.items() if k != key}
    config, view, problems = parse(**others, **{key: raw})
    assert len(problems) == 1 and problems[0].startswith(named) and repr(raw)[:20] in problems[0]
    for k, v in others.items():                          # the good settings of the same link apply
        assert getattr(config, k) == v
    default = asdict(RunConfig())
    if key in default:
        assert getattr(config, key) == default[key]       # the bad value is not used


def test_unknown_parameters_are_named_and_long_values_are_cut():
    _, _, problems = parse(bogus="1", seq_length="9" * 5000)
    assert any("'bogus' is not a setting" in p for p in problems)
    long = next(p for p in problems if p.startswith("sequence length"))
    assert len(long) < 200 and "…" in long


def test_nothing_in_a_link_exceeds_the_engines_limits():
    config, _, problems = parse(hidden_size=512, seq_length=200, batch_size=128, learning_rate=10, clip=100)
    assert problems == [] and config.validate() is config


def test_a_custom_text_is_not_put_in_a_link():
    query = dict(parse_qsl(experiment.query(RunConfig(corpus="custom"), "window", CLASSIC_SMOOTHING)))
    assert query["corpus"] == RunConfig().corpus


# ---------------------------------------------------------------- opened in the app
def open_link(params: dict) -> AppTest:
    at = AppTest.from_file(DASHBOARD, default_timeout=60)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception
    return at


def test_an_experiment_link_starts_a_fresh_run_with_its_settings():
    at = open_link({"exp": "1", "corpus": "hello", "hidden_size": "32", "seq_length": "10",
                    "learning_rate": "0.05", "optimizer": "rmsprop", "seed": "7", "loss_unit": "bits",
                    "smoothing": "0.9"})
    run = at.session_state.app.run
    assert (run.config.corpus, run.config.hidden_size, run.config.seq_length, run.config.seed) == ("hello", 32, 10, 7)
    assert (run.trainer.learning_rate, run.trainer.optimizer_name, run.iteration) == (0.05, "rmsprop", 0)
    assert at.session_state.cfg_hidden_size == 32 and at.session_state.cfg_learning_rate == 0.05
    assert at.session_state.loss_unit == "bits" and at.session_state.loss_smoothing == 0.9
    assert not at.warning


def test_a_bad_value_in_a_link_is_said_once_escaped_and_the_rest_applies():
    at = open_link({"exp": "1", "corpus": "hello", "hidden_size": "[x](javascript:alert(1))", "seq_length": "12"})
    run = at.session_state.app.run
    assert run.config.hidden_size == RunConfig().hidden_size and run.config.seq_length == 12
    message = " ".join(w.value for w in at.warning)
    assert "hidden size" in message and "not used" in message
    assert "](javascript" not in message                 # escaped: no live Markdown link


def test_the_train_page_offers_a_link_to_its_settings():
    at = open_link({"exp": "1", "corpus": "hello", "hidden_size": "16"})
    codes = [c.value for c in at.code if "exp=1" in c.value]
    assert codes and "hidden_size=16" in codes[0] and "corpus=hello" in codes[0]


# ---------------------------------------------------------------- presenter mode (issue 14)
def test_presenter_mode_is_one_screen_with_big_controls_and_no_navigation():
    at = open_link({"present": "1"})
    keys = {b.key for b in at.button if b.key}
    assert {"present_start", "present_step", "present_reset", "btn_present"} <= keys
    assert "iteration" in " ".join(str(h.proto) for h in at.get("html"))
    at.button(key="present_step").click().run()
    assert not at.exception and at.session_state.app.run.iteration == 1
    at.button(key="btn_present").click().run()                 # leave: the pages and their navigation
    assert not at.exception and "present" not in at.query_params
    assert "present_start" not in {b.key for b in at.button if b.key}


def test_presenter_mode_colours_the_sample_by_a_chosen_hidden_unit_of_the_current_weights():
    import re

    from playground.views import analysis
    at = open_link({"present": "1"})
    at.button(key="present_step").click().run()
    run = at.session_state.app.run
    (iteration, text), = run.samples
    assert at.selectbox(key="present_unit").value is None          # off until the presenter picks a unit
    plain = next(str(h.proto.body) for h in at.get("html") if "present-sample" in str(h.proto.body))
    assert "rnn-textview" not in plain
    at.selectbox(key="present_unit").set_value(3).run()
    assert not at.exception
    body = next(str(h.proto.body) for h in at.get("html") if "present-sample" in str(h.proto.body))
    assert "font-size:24px" in body
    shown = re.findall(r"h&#91;3&#93; = ([+-][0-9.]+)", body)
    hs = analysis.read_text(run.trainer.model, run.vocab.encode(text)).hs
    assert shown == [f"{v:+.3f}" for v in hs[:, 3]]                 # one span per character, h_t[3] after it
    assert any("rnn-legend" in str(h.proto.body) for h in at.get("html"))


def test_the_projector_style_makes_text_and_lines_big_enough_for_the_back_row():
    import numpy as np

    from playground.views import loss_chart, style
    it = np.arange(1, 200)
    loss = 100 - np.log(it)
    fig = style.for_projector(loss_chart.loss_figure(it, loss, loss, seq_length=25, vocab_size=65,
                                                    loss_min=loss - 1, loss_max=loss + 1))
    assert fig.layout.font.size >= 24 and fig.layout.xaxis.tickfont.size >= 24
    lines = [t for t in fig.data if t.type == "scatter" and t.fill in (None, "none") and t.line.width != 0
             and "lines" in (t.mode or "lines")]
    assert lines and all(t.line.width >= 3 for t in lines)


def test_presenter_mode_shows_the_runs_watch_link_as_a_qr_code_once_it_is_saved():
    import html

    from playground.runs import saver, watch

    at = open_link({"present": "1"})
    assert not at.get("image") and any("Press Step or Start once" in str(h.proto.body) for h in at.get("html"))
    at.button(key="present_step").click().run()          # saved: the run has a link, and so a watch link
    saver.wait_for_saves(timeout=30)
    at.run()
    assert not at.exception
    watch_id = saver.get_store().watch_id_of(at.session_state.app.persist.run_id)
    link = html.unescape(next(str(h.proto.body) for h in at.get("html") if "present-link" in str(h.proto.body)))
    assert f"/?{watch.QUERY_KEY}={watch_id}" in link and at.session_state.app.persist.run_id not in link
    assert at.get("image")                               # the QR code
