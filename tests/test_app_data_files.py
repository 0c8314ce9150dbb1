"""The Data and Save & load pages: accepting user text and checkpoints (pure functions) and the pages
themselves in Streamlit's AppTest. A bad file never touches the current run."""
import html
import io
import pathlib
import pickle

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from playground.runs import saver
from playground.runs.run import Run, RunConfig
from playground.session import uploads
from rnn_core import PARAM_NAMES
from rnn_core.corpora import MAX_UPLOAD_BYTES, corpus_summary

DASHBOARD = str(pathlib.Path(__file__).resolve().parents[1] / "dashboard.py")
DATA, FILES = "app_pages/data.py", "app_pages/files.py"
POEM = "roses are red, violets are blue,\nsugar is sweet and so are you.\n" * 40
DRAFT = {"seq_length": 25, "batch_size": 1, "val_fraction": 0.1}

BAD_TEXT_FILES = {
    "empty": (b"", "empty"),
    "png": (b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)) * 8, "binary"),
    "nul": (b"hello\x00world\n" * 200, "binary"),
    "latin1": ("café au lait, crème brûlée\n".encode("latin-1") * 100, "UTF-8"),
    "utf16": ("hello\n".encode("utf-16") * 100, "UTF-16"),
    "oversized": (b"a" * (MAX_UPLOAD_BYTES + 1), "larger than the limit of 10 MB"),
}


def small_run(text=POEM, iterations=0, **overrides) -> Run:
    config = RunConfig(corpus="custom", hidden_size=16, seq_length=10, **overrides)
    run = Run(config, text, "poems")
    if iterations:
        run.step(iterations)
    return run


def same_weights(a: Run, b: Run) -> bool:
    return all(np.array_equal(a.trainer.model.params[k], b.trainer.model.params[k]) for k in PARAM_NAMES)


# ---------------------------------------------------------------- user text (pure)
@pytest.mark.parametrize("name", BAD_TEXT_FILES)
def test_bad_text_files_are_refused_with_a_reason(name):
    data, reason = BAD_TEXT_FILES[name]
    with pytest.raises(ValueError, match=reason):
        uploads.accept_file(data, f"{name}.txt", **DRAFT)


def test_a_good_file_is_accepted_with_newlines_normalised_and_a_safe_label():
    data = POEM.replace("\n", "\r\n").encode("utf-8")
    accepted = uploads.accept_file(data, "My **poems** [x](javascript:alert).txt", **DRAFT)
    assert accepted.text == POEM
    assert accepted.label == "My poems x javascript alert"
    assert accepted.summary == corpus_summary(POEM, preview_chars=uploads.PREVIEW_CHARS)


def test_text_long_enough_overall_but_not_after_the_validation_split_is_refused():
    needed = 4 * (25 + 1)                      # batch 4 x (seq_length + 1)
    text = "abcdefghij" * (needed // 10 + 1)   # passes validate_corpus, not the 90% train part
    with pytest.raises(ValueError, match="set aside for validation") as info:
        uploads.accept_text(text, "t", seq_length=25, batch_size=4, val_fraction=0.1)
    minimum = int(str(info.value).split("at least ")[1].split(" in all")[0].replace(",", ""))
    uploads.accept_text("abcdefghij" * (minimum // 10 + 1), "t", seq_length=25, batch_size=4, val_fraction=0.1)


@pytest.mark.parametrize("text, reason", [("", "empty"), ("   \n\n  ", "whitespace"), ("short", "needs at least")])
def test_unusable_pasted_text_is_refused(text, reason):
    with pytest.raises(ValueError, match=reason):
        uploads.accept_text(text, uploads.PASTED_LABEL, **DRAFT)


def test_run_corpus_facts_describe_the_whole_text_of_the_run():
    run = small_run()
    facts = uploads.run_corpus_facts(run)
    whole = corpus_summary(run.whole_text())
    assert run.whole_text() == POEM
    assert facts["train_chars"] + facts["val_chars"] == len(POEM) and facts["val_chars"] > 0
    assert facts["vocab_size"] == whole["vocab_size"] and facts["chars"] == whole["chars"]
    assert facts["unigram_bits_per_char"] == pytest.approx(whole["unigram_bits_per_char"])
    assert POEM.startswith(facts["preview"]) and len(facts["preview"]) == uploads.PREVIEW_CHARS


# ---------------------------------------------------------------- checkpoints and CSV (pure)
def test_checkpoint_round_trip_resumes_exactly():
    run = small_run(iterations=7)
    loaded = uploads.run_from_checkpoint(run.to_bytes())
    assert loaded.iteration == 7 and same_weights(run, loaded)
    run.step(5)
    loaded.step(5)
    assert loaded.iteration == 12 and same_weights(run, loaded)
    assert loaded.trainer.smooth_loss == run.trainer.smooth_loss


def foreign_npz() -> bytes:
    buffer = io.BytesIO()
    np.savez(buffer, weights=np.random.default_rng(0).normal(size=(4, 4)), bias=np.zeros(4))
    return buffer.getvalue()


def pickled_npy() -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([{"evil": "payload"}], dtype=object), allow_pickle=True)
    return buffer.getvalue()


BAD_CHECKPOINTS = {
    "truncated": lambda: small_run(iterations=2).to_bytes()[:-200],
    "pickle": lambda: pickle.dumps({"params": [1, 2, 3]}),
    "pickled_npy": pickled_npy,
    "foreign_npz": foreign_npz,
    "text": lambda: POEM.encode(),
    "empty": lambda: b"",
}


@pytest.mark.parametrize("name", BAD_CHECKPOINTS)
def test_bad_checkpoints_are_refused_with_a_value_error(name):
    with pytest.raises(ValueError, match="checkpoint"):
        uploads.run_from_checkpoint(BAD_CHECKPOINTS[name]())


def test_checkpoint_file_name_names_corpus_and_iteration():
    run = small_run(iterations=3)
    assert uploads.checkpoint_file_name(run) == "rnn-poems-it3.npz"
    hello = Run.from_builtin(RunConfig(corpus="hello", hidden_size=8, seq_length=5))
    assert uploads.checkpoint_file_name(hello) == "rnn-hello-it0.npz"


def test_history_frames_have_one_row_per_recorded_iteration():
    run = small_run(iterations=12)
    train, val = uploads.history_frames(run)
    assert list(train.columns) == ["iteration", "loss", "smooth_loss", "bits_per_char", "clip_fraction",
                                   "learning_rate"] + [f"grad_norm_{k}" for k in PARAM_NAMES] + ["loss_min",
                                                                                              "loss_max"]
    assert (train["loss_min"] == train["loss"]).all() and (train["loss_max"] == train["loss"]).all()  # 1 per row
    assert train["iteration"].tolist() == list(range(1, 13))
    assert train["bits_per_char"].iloc[-1] == pytest.approx(run.bits_per_char)
    recorded = run.trainer.val_history.as_arrays()
    assert list(val.columns) == ["iteration", "val_bits_per_char"] and len(val) >= 1
    assert val["iteration"].tolist() == recorded["iteration"].astype(int).tolist()
    assert val["val_bits_per_char"].tolist() == recorded["val_bits_per_char"].tolist()
    csv_lines = uploads.csv_bytes(train).decode().splitlines()
    assert csv_lines[0].startswith("iteration,loss,smooth_loss,bits_per_char") and len(csv_lines) == 13


# ---------------------------------------------------------------- the pages in AppTest
@pytest.fixture(autouse=True)
def isolated_app(monkeypatch, tmp_path):
    """Runs go to a temporary store, never the user's cache."""
    monkeypatch.setenv("RNN_PLAYGROUND_DATA_DIR", str(tmp_path / "runs"))
    yield tmp_path / "runs"
    saver.wait_for_saves()


def open_page(page, run=None) -> AppTest:
    at = AppTest.from_file(DASHBOARD, default_timeout=60)
    at.run()
    if run is not None:
        at.session_state.app.run = run
    at.switch_page(page).run()
    assert not at.exception
    return at


def texts(elements) -> list[str]:
    return [e.value for e in elements]


def test_data_page_describes_the_current_run_and_the_built_in_texts():
    at = open_page(DATA)
    run = at.session_state.app.run
    metrics = {m.label: m.value for m in at.metric[:4]}    # the current run's facts come first
    facts = uploads.run_corpus_facts(run)
    assert metrics["Characters"] == f"{facts['train_chars'] + facts['val_chars']:,}"
    assert metrics["Vocabulary"] == str(run.vocab.size)
    assert metrics["Unigram entropy"] == f"{facts['unigram_bits_per_char']:.2f} bits/char"
    assert metrics["Validation part"] == f"{facts['val_chars']:,}"
    assert len(at.metric) == 4
    captions = " ".join(c.value for c in at.caption)
    assert "30,000 characters · 5 distinct · unigram entropy 2.25 bits/char" in captions   # hello
    assert {b.key for b in at.button} >= {"data_use_hello", "data_use_shakespeare", "data_use_python"}
    assert not at.error


def test_uploading_a_text_selects_it_for_the_next_run_without_touching_the_current_one():
    at = open_page(DATA, run=small_run(iterations=4))
    run = at.session_state.app.run
    at.file_uploader(key="data_upload").upload("limericks.txt", POEM.encode(), "text/plain").run()
    assert not at.exception and not at.error
    assert at.session_state.app.custom_text == POEM and at.session_state.app.custom_label == "limericks"
    assert at.session_state.cfg_corpus == "custom"
    assert at.session_state.app.run is run and run.iteration == 4
    notice = " ".join(texts(at.markdown))
    assert "Next run's text: limericks" in notice and "current run's 4 iterations" in notice


@pytest.mark.parametrize("name", ["empty", "png", "latin1", "oversized"])
def test_a_bad_upload_shows_an_error_and_leaves_everything_as_it_was(name):
    at = open_page(DATA, run=small_run(iterations=3))
    run = at.session_state.app.run
    data, reason = BAD_TEXT_FILES[name]
    at.file_uploader(key="data_upload").upload(f"{name}.txt", data, "text/plain").run()
    assert not at.exception
    errors = texts(at.error)
    assert len(errors) == 1 and reason in errors[0] and f"{name}.txt was not used" in errors[0]
    assert at.session_state.app.run is run and run.iteration == 3
    assert at.session_state.app.custom_text is None


def test_the_upload_limit_in_the_help_is_the_one_applied():
    at = open_page(DATA, run=small_run())
    uploader = at.file_uploader(key="data_upload")
    assert uploader.help.startswith("Up to 10 MB (10,000,000 bytes) and 2,000,000 characters.")
    # Exactly the limit: past the size check (such a file only fails on its number of characters).
    uploader.upload("exact.txt", b"a" * MAX_UPLOAD_BYTES, "text/plain").run()
    (error,) = texts(at.error)
    assert "larger than the limit" not in error and "The text has 10,000,000 characters" in error
    # One byte more: our own sentence.
    at.file_uploader(key="data_upload").upload("over.txt", b"a" * (MAX_UPLOAD_BYTES + 1), "text/plain").run()
    (error,) = texts(at.error)
    assert html.unescape(error) == ("The file over.txt was not used. The file is 10 MB (10,000,001 bytes), larger than the "
                     "limit of 10 MB (10,000,000 bytes).")


def test_pasted_text_is_accepted_and_train_now_starts_a_run_on_it(isolated_app):
    at = open_page(DATA)
    old = at.session_state.app.run
    at.text_area(key="data_paste").input(POEM)
    at.button(key="data_paste_use").click().run()
    assert not at.error and at.session_state.app.custom_label == uploads.PASTED_LABEL
    at.button(key="data_train_now").click().run()
    assert not at.exception and not at.error
    new = at.session_state.app.run
    assert new is not old and new.config.corpus == "custom" and new.whole_text() == POEM
    assert new.corpus_label == uploads.PASTED_LABEL and new.iteration == 0
    assert "data_train_now" not in {b.key for b in at.button}     # the notice is gone: the run uses it
    saver.wait_for_saves()
    assert [p.name for p in isolated_app.glob("*.npz")] == [f"{at.session_state.app.persist.run_id}.npz"]


def test_too_short_pasted_text_shows_an_error():
    at = open_page(DATA)
    run = at.session_state.app.run
    at.text_area(key="data_paste").input("far too short")
    at.button(key="data_paste_use").click().run()
    assert not at.exception
    assert "pasted text was not used" in texts(at.error)[0] and "needs at least" in texts(at.error)[0]
    assert at.session_state.app.custom_text is None and at.session_state.app.run is run


def test_a_nan_learning_rate_reaching_a_reset_is_refused_and_the_run_kept():
    at = open_page(DATA)
    run = at.session_state.app.run
    at.text_area(key="data_paste").input(POEM)
    at.button(key="data_paste_use").click().run()
    at.session_state.cfg_learning_rate = float("nan")
    at.button(key="data_train_now").click().run()
    assert not at.exception
    errors = texts(at.error)
    assert len(errors) == 1 and "not reset" in errors[0] and "learning_rate" in errors[0] and "nan" in errors[0]
    assert at.session_state.app.run is run and run.iteration == 0


def test_choosing_a_built_in_text_is_a_draft_until_reset():
    at = open_page(DATA, run=small_run(iterations=2))
    run = at.session_state.app.run
    at.button(key="data_use_hello").click().run()
    assert at.session_state.cfg_corpus == "hello" and at.session_state.app.run is run
    assert at.button(key="data_use_hello").disabled
    at.button(key="data_train_now").click().run()
    assert at.session_state.app.run is not run and at.session_state.app.run.config.corpus == "hello"


def test_save_page_prepares_a_checkpoint_that_resumes_exactly_and_the_csv():
    at = open_page(FILES, run=small_run(iterations=9))
    run = at.session_state.app.run
    assert all(b.disabled for b in at.get("download_button"))
    at.button(key="files_prepare").click().run()
    assert not at.exception and not any(b.disabled for b in at.get("download_button"))
    prepared = at.session_state.files_prepared
    assert prepared["checkpoint_name"] == "rnn-poems-it9.npz"
    loaded = Run.from_bytes(prepared["checkpoint"])
    assert loaded.iteration == 9 and same_weights(run, loaded)
    header, *rows = prepared["train_csv"].decode().splitlines()
    assert header.split(",")[:4] == ["iteration", "loss", "smooth_loss", "bits_per_char"] and len(rows) == 9
    assert prepared["val_csv"].decode().splitlines()[0] == "iteration,val_bits_per_char"


def test_loading_a_checkpoint_continues_it_and_takes_its_settings(isolated_app):
    saved = small_run(iterations=6)
    at = open_page(FILES)
    at.file_uploader(key="files_upload").upload("rnn-poems-it6.npz", saved.to_bytes()).run()
    assert not at.exception and not at.error
    run = at.session_state.app.run
    assert run.iteration == 6 and same_weights(run, saved) and not at.session_state.app.running
    assert at.session_state.cfg_hidden_size == 16 and at.session_state.cfg_seq_length == 10
    # Its text is custom: it becomes the custom text, so Reset with unchanged settings works.
    assert at.session_state.cfg_corpus == "custom" and at.session_state.app.custom_text == POEM
    assert "iteration 6" in texts(at.success)[0]
    saver.wait_for_saves()
    assert (isolated_app / f"{at.session_state.app.persist.run_id}.npz").is_file()


@pytest.mark.parametrize("name", BAD_CHECKPOINTS)
def test_a_bad_checkpoint_shows_an_error_and_keeps_the_run(name):
    at = open_page(FILES, run=small_run(iterations=5))
    run = at.session_state.app.run
    at.file_uploader(key="files_upload").upload(f"{name}.npz", BAD_CHECKPOINTS[name]()).run()
    assert not at.exception
    errors = texts(at.error)
    assert len(errors) == 1 and "was not loaded" in errors[0] and "Not a valid checkpoint" in errors[0]
    assert at.session_state.app.run is run and run.iteration == 5
