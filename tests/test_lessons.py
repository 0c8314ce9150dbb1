"""Lessons: each one's observation read from a real run of its settings, and each set-up in the app."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from playground.runs.run import Run, RunConfig
from playground.session import lessons

DASHBOARD = str(Path(__file__).resolve().parents[1] / "dashboard.py")
TEXT = "the quick brown fox jumps over the lazy dog.\n" * 200


def small(**overrides) -> Run:
    return Run(RunConfig(corpus="custom", **overrides), TEXT, "fox")


def test_a_lesson_asks_for_more_training_before_it_has_something_to_show():
    lesson = lessons.by_key("classic")
    run = small()
    lesson_for_custom = lessons.Lesson("x", "x", "x", run.config, lesson.observe, min_iterations=50)
    assert "Train a little longer" in lesson_for_custom.observation(run)
    run.step(60)
    assert "bits per character" in lesson_for_custom.observation(run)
    assert lesson.observation(run) is None                       # not the classic lesson's run


def test_the_exploding_lesson_reports_the_guard_once_it_fires():
    run = small(learning_rate=5.0, optimizer="sgd", clip=100.0, hidden_size=64)
    for _ in range(200):
        run.step(10)
        if run.alert:
            break
    said = lessons._observe_exploding(run)
    assert ("divergence guard paused" in said) == bool(run.alert)


def test_the_vanishing_lesson_measures_the_gradient_through_the_window():
    run = small(seq_length=200)
    run.step(5)
    said = lessons._observe_vanishing(run)
    assert "orders of magnitude" in said and "200 steps" in said


def test_temperature_samples_are_reproducible_and_differ_by_temperature():
    run = small()
    run.step(100)
    first, again = lessons.temperature_samples(run), lessons.temperature_samples(run)
    assert first == again and [t for t, _ in first] == [0.3, 1.0, 2.0]
    assert "Distinct characters used" in lessons._observe_temperature(run)


def test_the_overfitting_lesson_sees_validation_turn_up_from_the_history():
    run = Run(RunConfig(corpus="custom", hidden_size=16, val_fraction=0.2), TEXT, lessons.SMALL_TEXT_LABEL)
    hist = run.trainer.val_history
    for iteration, bits in [(100, 3.0), (200, 2.0), (300, 2.5), (400, 2.9)]:
        hist.append((iteration, bits))
    said = lessons._observe_overfitting(run)
    assert "lowest at iteration 200" in said and "risen to 2.90" in said


@pytest.mark.parametrize("lesson", lessons.LESSONS, ids=lambda lesson: lesson.key)
def test_each_lesson_sets_up_a_fresh_run_with_its_settings(lesson):
    at = AppTest.from_file(DASHBOARD, default_timeout=60)
    at.run()
    at.switch_page("app_pages/lessons.py").run()
    assert not at.exception
    at.button(key=f"lesson_{lesson.key}").click().run()
    assert not at.exception
    run = at.session_state.app.run
    assert lesson.matches(run) and run.iteration == 0
    assert (run.trainer.learning_rate, run.trainer.optimizer_name, run.trainer.clip) == (
        lesson.config.learning_rate, lesson.config.optimizer, lesson.config.clip)
    if lesson.small_text:
        assert len(run.trainer.data) + len(run.trainer.val_ids) == lessons.SMALL_TEXT_CHARS
    assert any("Train a little longer" in i.value for i in at.info)


def test_a_lesson_speaks_only_of_a_run_with_its_optimizer_learning_rate_and_clip():
    exploding = lessons.by_key("exploding")
    classic_run = Run(RunConfig(corpus="hello", seq_length=5), "hello world, " * 40, "hello")
    same_shape = Run(RunConfig(corpus="hello", seq_length=5, learning_rate=5.0, optimizer="sgd", clip=100.0),
                     "hello world, " * 40, "hello")
    lesson = lessons.Lesson("x", "x", "x", RunConfig(corpus="hello", seq_length=5, **{
        k: getattr(exploding.config, k) for k in ("learning_rate", "optimizer", "clip")}), exploding.observe)
    assert lesson.matches(same_shape) and not lesson.matches(classic_run)
    same_shape.apply_live(RunConfig(corpus="hello", seq_length=5, learning_rate=0.1, optimizer="sgd", clip=100.0))
    assert not lesson.matches(same_shape)    # the live learning rate changed: no longer the lesson's run
