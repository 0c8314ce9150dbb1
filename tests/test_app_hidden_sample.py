"""The Hidden states and Sample pages in Streamlit's AppTest (no browser): they render, read and
sample with the session's model, and answer bad input with an error instead of a traceback."""

import base64
import json

import numpy as np
import pytest

from playground.runs.run import Run, RunConfig
from playground.views import analysis

HIDDEN = "app_pages/hidden_states.py"
SAMPLE = "app_pages/sample.py"


def _run(at):
    return at.session_state.app.run


def _array(value):
    """A plotly JSON array: a plain list, or a typed array {"dtype", "bdata" (base64), "shape"}."""
    if isinstance(value, dict) and "bdata" in value:
        flat = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        return flat.reshape([int(n) for n in str(shape).split(",")]) if shape else flat
    return np.asarray(value)


def _charts(at):
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


# ---------------------------------------------------------------- hidden states


@pytest.fixture
def hidden(open_page):
    return open_page(HIDDEN)


def test_hidden_states_reads_the_default_excerpt_and_draws_all_views(hidden):
    at = hidden
    run = _run(at)
    text = at.text_area(key="hs_text").value
    assert 100 < len(text) <= 400 and text in run.vocab.decode(run.trainer.data)
    assert not at.error
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Characters read"] == f"{len(text):,}"
    reading = analysis.read_text(run.trainer.model, run.vocab.encode(text))
    assert metrics["Bits per char"] == f"{reading.bits_per_char:.2f}"
    charts = _charts(at)
    assert len(charts) == 3
    heatmap, topk = (next(s for s in charts if s["data"][0]["type"] == "heatmap" and
                          s["data"][0]["colorbar"]["title"]["text"].split(" ")[0] in (name, f"{name}_t")) for name in ("h", "p"))
    z = _array(heatmap["data"][0]["z"])
    assert z.shape == (run.trainer.model.hidden_size, min(len(text), 120))     # units x characters
    np.testing.assert_allclose(z, reading.hs[:120].T)
    assert _array(topk["data"][0]["z"]).shape == (5, 40)
    trail = next(s for s in charts if s["data"][0]["type"] == "scatter")        # the path in state space
    path = trail["data"][0]
    expected = analysis.state_trail(reading.hs).coords[:80, :2]
    np.testing.assert_allclose(np.c_[_array(path["x"]), _array(path["y"])], expected)
    assert {t["name"] for t in trail["data"][1:]} <= set(analysis.CHAR_CLASSES)

    at.segmented_control(key="hs_trail_dirs").set_value("3 & 4").run()    # other principal directions
    trail = next(s for s in _charts(at) if s["data"][0]["type"] == "scatter")
    path = trail["data"][0]
    expected = analysis.state_trail(reading.hs).coords[:80, 2:4]
    np.testing.assert_allclose(np.c_[_array(path["x"]), _array(path["y"])], expected)
    assert trail["layout"]["xaxis"]["title"]["text"].startswith("direction 3")
    assert "of the variation" in trail["layout"]["xaxis"]["title"]["text"]


def test_hidden_states_out_of_vocabulary_text_shows_an_error_not_a_traceback(hidden):
    at = hidden
    at.text_area(key="hs_text").input("To be € or not\x00").run()
    assert not at.exception
    assert len(at.error) == 1
    message = at.error[0].value
    assert "2 characters the model has never seen" in message and "U+20AC" in message and "U+0000" in message
    assert "63 characters" in message
    assert not at.get("plotly_chart")


def test_hidden_states_reads_at_most_2000_characters(hidden):
    at = hidden
    at.text_area(key="hs_text").input("to be or not to be\n" * 150).run()
    assert not at.exception
    assert any("first 2,000" in w.value for w in at.warning)
    assert {m.label: m.value for m in at.metric}["Characters read"] == "2,000"


def test_empty_and_one_character_texts_explain_what_is_missing(hidden):
    at = hidden
    at.text_area(key="hs_text").input("").run()
    assert not at.exception and "Type a text" in at.info[0].value
    at.text_area(key="hs_text").input("A").run()
    assert not at.exception and not at.error
    assert any("at least two characters" in i.value for i in at.info)


def test_a_new_run_on_another_corpus_replaces_a_text_it_cannot_read(hidden):
    at = hidden
    # What the sidebar's Reset does with the corpus set to "hello": a new Run in the session.
    at.session_state.app.run = Run.from_builtin(RunConfig(corpus="hello"))
    at.run()
    assert not at.exception and not at.error
    assert _run(at).vocab.chars == "\nehlo"
    assert set(at.text_area(key="hs_text").value) <= set("\nehlo")


def test_unit_number_and_previous_next_buttons_choose_the_unit_shown(hidden):
    at = hidden
    H = _run(at).trainer.model.hidden_size
    at.number_input(key="hs_unit").set_value(7).run()
    assert any(m.value.startswith("**Unit 7**") for m in at.markdown)
    at.button(key="hs_next").click().run()
    assert at.number_input(key="hs_unit").value == 8
    at.number_input(key="hs_unit").set_value(0).run()
    at.button(key="hs_prev").click().run()
    assert at.number_input(key="hs_unit").value == H - 1        # wraps around
    assert any(m.value.startswith(f"**Unit {H - 1}**") for m in at.markdown)
    assert not at.exception


def test_choosing_a_finder_row_shows_that_unit(hidden):
    at = hidden
    table = at.dataframe[0]
    rows = table.value
    assert list(rows.columns) == ["unit", "feature", "correlation"]
    strengths = rows["correlation"].abs().tolist()
    assert strengths == sorted(strengths, reverse=True)
    target = int(rows.iloc[3]["unit"])
    at.session_state[table.key] = {"selection": {"rows": [3], "columns": [], "cells": []}}
    at.run()
    assert not at.exception
    assert at.number_input(key="hs_unit").value == target
    # The selection is applied once: the buttons still move on from there.
    at.button(key="hs_next").click().run()
    assert at.number_input(key="hs_unit").value == (target + 1) % _run(at).trainer.model.hidden_size


def test_most_variable_ranking_matches_the_analysis(hidden):
    at = hidden
    at.segmented_control(key="hs_finder_mode").set_value("most variable").run()
    assert not at.exception
    run = _run(at)
    text = at.text_area(key="hs_text").value
    units, std = analysis.most_variable_units(analysis.read_text(run.trainer.model, run.vocab.encode(text)).hs, 15)
    rows = at.dataframe[0].value
    assert rows["unit"].tolist() == units.tolist()
    np.testing.assert_allclose(rows["std of h"], np.round(std, 3))


# ---------------------------------------------------------------- sample


@pytest.fixture
def sample(open_page):
    return open_page(SAMPLE)


def test_sample_page_renders_with_the_first_character_distribution(sample):
    at = sample
    assert not at.error and not at.code
    (spec,) = _charts(at)
    assert spec["data"][0]["type"] == "bar"
    run = _run(at)
    probs = analysis.next_char_probs(run.trainer.model, [], 1.0)
    np.testing.assert_allclose(_array(spec["data"][0]["y"]), np.sort(probs)[::-1][:30])


def test_generate_returns_the_requested_samples_reproducibly(sample):
    at = sample
    at.text_area(key="smp_prime").input("ROMEO:\n")
    at.number_input(key="smp_length").set_value(123)
    at.number_input(key="smp_count").set_value(3)
    at.number_input(key="smp_seed").set_value(42)
    at.select_slider(key="smp_temperature").set_value(0.5)
    at.button(key="smp_generate").click().run()
    assert not at.exception
    texts = [c.value for c in at.code]
    assert [len(t) for t in texts] == [123, 123, 123]
    run = _run(at)
    for i, text in enumerate(texts):     # sample i uses seed 42 + i, after reading the prime from h = 0
        ids = run.trainer.model.sample(123, prime=run.vocab.encode("ROMEO:\n"), temperature=0.5, rng=42 + i)
        assert text == run.vocab.decode(ids)
    assert at.session_state.smp_results["texts"] == texts
    # Same seed again: the same samples.
    at.button(key="smp_generate").click().run()
    assert [c.value for c in at.code] == texts


def test_greedy_generates_one_sample_of_argmax_characters(sample):
    at = sample
    at.checkbox(key="smp_greedy").check()
    at.number_input(key="smp_count").set_value(4)
    at.number_input(key="smp_length").set_value(50)
    at.button(key="smp_generate").click().run()
    assert not at.exception
    assert len(at.code) == 1
    run = _run(at)
    assert at.code[0].value == run.vocab.decode(run.trainer.model.sample(50, greedy=True))


def test_bad_prime_shows_an_error_and_generates_nothing(sample):
    at = sample
    at.text_area(key="smp_prime").input("Hello €\x00").run()
    assert not at.exception
    assert len(at.error) == 1
    assert "The prime contains 2 characters the model" in at.error[0].value and "U+20AC" in at.error[0].value
    assert at.button(key="smp_generate").disabled
    assert not at.code and not at.get("plotly_chart")
    assert "smp_results" not in at.session_state


def test_samples_stay_after_visiting_another_page(sample):
    at = sample
    at.number_input(key="smp_length").set_value(80)
    at.button(key="smp_generate").click().run()
    texts = [c.value for c in at.code]
    at.switch_page(HIDDEN).run()
    at.switch_page(SAMPLE).run()
    assert not at.exception
    assert [c.value for c in at.code] == texts
    assert at.number_input(key="smp_length").value == 80
