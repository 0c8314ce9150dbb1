"""Checkpoints are hostile input in every field (issue 10): an uploaded file or a saved run reopened
by its link. Sizes are checked from the archive's headers before anything is allocated, every string
must be valid Unicode text, every number lies in the engine's ranges, and every refusal says "not a
valid checkpoint: ..." and leaves the app usable."""
import io
import json
import pathlib
import struct
import tracemalloc
import zipfile

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from playground.runs import saver
from playground.runs.run import MAX_SAMPLES_KEPT, Run, RunConfig
from playground.runs.store import RunStore, new_run_id
from playground.session import uploads
from rnn_core import checkpoint_bytes, load_checkpoint, load_checkpoint_bytes
from rnn_core.checkpoint import MAX_ENTRIES, MOST_ENTRIES
from rnn_core.limits import (
    MAX_CORPUS_CHARS,
    MAX_ITERATION,
    MAX_LABEL_LENGTH,
    MAX_METADATA_CHARS,
    MAX_SAMPLE_LENGTH,
    MAX_SEED,
    MAX_VOCAB_SIZE,
)

DASHBOARD = str(pathlib.Path(__file__).resolve().parents[1] / "dashboard.py")
POEM = "roses are red, violets are blue,\nsugar is sweet and so are you.\n" * 40
MEMORY_BOUND = 50 * 2**20     # bytes: far below what any of the crafted files claims


@pytest.fixture(scope="module")
def good():
    """A small app run's checkpoint: 3 iterations, samples, validation text."""
    run = Run(RunConfig(corpus="custom", hidden_size=8, seq_length=10), POEM, "poems")
    run.step(3)
    run.add_sample(20)
    return run.to_bytes()


def entries(data: bytes) -> dict:
    with np.load(io.BytesIO(data)) as npz:
        return {k: npz[k] for k in npz.files}


def repack(arrays: dict, compressed=False) -> bytes:
    buf = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buf, **arrays)
    return buf.getvalue()


def meta_of(data: bytes) -> dict:
    return json.loads(str(entries(data)["meta"]))


def with_meta(data: bytes, edit) -> bytes:
    """``data`` with its meta dict changed in place by ``edit(meta)``."""
    arrays = entries(data)
    meta = json.loads(str(arrays["meta"]))
    edit(meta)
    arrays["meta"] = np.array(json.dumps(meta))
    return repack(arrays)


def with_meta_text(data: bytes, old: str, new: str) -> bytes:
    """``data`` with the meta's JSON text edited: for what json.dumps cannot write (NaN literals,
    5000-digit integers)."""
    arrays = entries(data)
    text = json.dumps(json.loads(str(arrays["meta"])))
    assert text.count(old) == 1
    arrays["meta"] = np.array(text.replace(old, new))
    return repack(arrays)


def set_app(key, value):
    def edit(meta):
        meta["metadata"]["app"][key] = value
    return edit


def npy_header(shape, dtype) -> bytes:
    """A .npy header alone: an entry that claims ``shape`` whatever data follows."""
    buf = io.BytesIO()
    np.lib.format.write_array_header_1_0(
        buf, {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False, "shape": shape})
    return buf.getvalue()


def with_member(data: bytes, name: str, payload: bytes) -> bytes:
    """``data`` with zip member ``name`` (e.g. "val_ids.npy") replaced or added, as raw bytes."""
    src = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as dst:
        for info in src.infolist():
            if info.filename != name:
                dst.writestr(info.filename, src.read(info.filename))
        dst.writestr(name, payload)
    return out.getvalue()


def refusal(data: bytes) -> str:
    """The message of the ValueError both the engine and the app's loader raise for ``data``."""
    with pytest.raises(ValueError) as engine:
        load_checkpoint_bytes(data)
    with pytest.raises(ValueError) as app:
        Run.from_bytes(data)
    assert str(app.value) == str(engine.value)
    assert str(engine.value).startswith("not a valid checkpoint: ")
    return str(engine.value)


def app_refusal(data: bytes) -> str:
    """A file the engine reads but the app refuses (its own fields)."""
    load_checkpoint_bytes(data)
    with pytest.raises(ValueError) as app:
        Run.from_bytes(data)
    assert str(app.value).startswith("not a valid checkpoint: ")
    return str(app.value)


def peak_memory_of_refusal(data: bytes) -> tuple[str, int]:
    tracemalloc.start()
    try:
        with pytest.raises(ValueError) as info:
            load_checkpoint_bytes(data)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return str(info.value), peak


# ---------------------------------------------------------------- sizes, before anything is allocated
def test_the_good_file_loads(good):
    run = Run.from_bytes(good)
    assert run.iteration == 3 and run.corpus_label == "poems" and len(run.samples) == 2


def test_huge_validation_ids_claimed_by_a_small_file_are_refused_without_allocating(good):
    crafted = with_member(good, "val_ids.npy", npy_header((200_000_000,), np.uint8) + bytes(1000))
    assert len(crafted) < 100_000
    message, peak = peak_memory_of_refusal(crafted)
    assert message == (f"not a valid checkpoint: entry 'val_ids' holds 200000000 ids, "
                       f"more than the {MAX_CORPUS_CHARS} allowed")
    assert peak < MEMORY_BOUND


def test_real_validation_ids_over_the_limit_are_refused_without_being_read(good):
    arrays = entries(good)
    arrays["val_ids"] = np.zeros(MAX_CORPUS_CHARS + 500_000, np.uint8)   # compresses to a few KB
    crafted = repack(arrays, compressed=True)
    del arrays
    assert len(crafted) < 100_000
    message, peak = peak_memory_of_refusal(crafted)
    assert message == (f"not a valid checkpoint: entry 'val_ids' holds {MAX_CORPUS_CHARS + 500_000} ids, "
                       f"more than the {MAX_CORPUS_CHARS} allowed")
    assert peak < MEMORY_BOUND


def test_training_and_validation_ids_together_must_fit_one_text(good):
    arrays = entries(good)
    n_data = len(arrays["data_ids"])
    arrays["val_ids"] = np.zeros(MAX_CORPUS_CHARS - n_data + 1, np.uint8)
    message = refusal(repack(arrays, compressed=True))
    assert message == (f"not a valid checkpoint: entries 'data_ids' and 'val_ids' hold {MAX_CORPUS_CHARS + 1} ids "
                       f"together, more than the {MAX_CORPUS_CHARS} characters a text may have")


@pytest.mark.parametrize("member, shape, dtype, expected", [
    ("data_ids.npy", (10**9,), np.uint8, f"entry 'data_ids' holds 1000000000 ids, more than the {MAX_CORPUS_CHARS}"),
    ("data_ids.npy", (1000, 1000), np.uint8, r"entry 'data_ids' has shape (1000, 1000), expected 1-D"),
    ("history.npy", (10**8, 12), np.float64, "history has 100000000 rows, more than its capacity"),
    ("val_history.npy", (10**8, 2), np.float64, "val_history has 100000000 rows, more than its capacity"),
    ("meta.npy", (), f"<U{10**8}", f"entry 'meta' holds 100000000 characters, more than the {MAX_METADATA_CHARS}"),
    ("vocab.npy", (), f"<U{10**8}", f"entry 'vocab' holds 100000000 characters, more than the {MAX_VOCAB_SIZE}"),
    ("param_Whh.npy", (10**5, 10**5), np.float64, "entry 'param_Whh' has shape (100000, 100000), expected (8, 8)"),
    ("hprev.npy", (10**9, 8), np.float64, "entry 'hprev' has shape (1000000000, 8), expected (1, 8)"),
])
def test_every_entry_is_bounded_by_its_header_before_it_is_read(good, member, shape, dtype, expected):
    message, peak = peak_memory_of_refusal(with_member(good, member, npy_header(shape, dtype) + bytes(64)))
    assert expected in message and message.startswith("not a valid checkpoint: ")
    assert peak < MEMORY_BOUND


def test_an_entry_whose_header_promises_more_than_the_archive_holds_is_refused(good):
    message, peak = peak_memory_of_refusal(with_member(good, "val_ids.npy", npy_header((1_500_000,), np.uint8) + bytes(10)))
    assert message == "not a valid checkpoint: entry 'val_ids' is truncated: its header promises 1500000 bytes, " \
                      "the archive holds 10"
    assert peak < MEMORY_BOUND


def test_a_vocabulary_longer_than_the_limit_is_refused(good):
    arrays = entries(good)
    arrays["vocab"] = np.array("".join(chr(0x100 + i) for i in range(MAX_VOCAB_SIZE + 1)))
    assert refusal(repack(arrays)) == (f"not a valid checkpoint: entry 'vocab' holds {MAX_VOCAB_SIZE + 1} "
                                       f"characters, more than the {MAX_VOCAB_SIZE} allowed")


@pytest.mark.parametrize("key", ["data_ids", "val_ids"])
def test_ids_must_be_in_the_vocabulary(good, key):
    arrays = entries(good)
    vocab_size = len(str(arrays["vocab"]))
    arrays[key] = arrays[key].copy()
    arrays[key][-1] = vocab_size
    assert refusal(repack(arrays)) == (f"not a valid checkpoint: {key} contains token id {vocab_size}; "
                                       f"allowed ids are 0..{vocab_size - 1}")


# ---------------------------------------------------------------- the number of entries, from the zip directory
def many_members(n: int, comment: bytes = b"") -> bytes:
    """A zip of ``n`` empty members (a few hundred kB): zipfile keeps an object for each."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as archive:
        for i in range(n):
            archive.writestr(f"e{i}.npy", b"")
        archive.comment = comment
    return buf.getvalue()


END = struct.Struct("<4s4H2LH")     # a zip's end of central directory record (no comment here)


def understating(data: bytes, claimed: int) -> bytes:
    """``data`` with its end record claiming ``claimed`` entries: zipfile reads the whole directory
    anyway."""
    fields = list(END.unpack(data[-END.size:]))
    fields[3] = fields[4] = claimed
    return data[:-END.size] + END.pack(*fields)


def as_zip64(data: bytes) -> bytes:
    """``data`` with a ZIP64 end record and locator before its end record, whose counts, size and
    offset then say "see the ZIP64 record" (as zipfile writes an archive of more than 65,535 entries)."""
    _, _, _, _, n, size, offset, _ = END.unpack(data[-END.size:])
    body = data[:-END.size]
    zip64_end = struct.pack("<4sQ2H2L4Q", b"PK\x06\x06", 44, 45, 45, 0, 0, n, n, size, offset)
    locator = struct.pack("<4sLQL", b"PK\x06\x07", 0, len(body), 1)
    return body + zip64_end + locator + END.pack(b"PK\x05\x06", 0, 0, 0xFFFF, 0xFFFF, 0xFFFFFFFF, 0xFFFFFFFF, 0)


@pytest.mark.parametrize("crafted", [
    pytest.param(lambda: many_members(5000), id="plain"),
    pytest.param(lambda: many_members(5000, comment=b"PK" * 30_000), id="with-a-comment"),
    pytest.param(lambda: understating(many_members(5000), 1), id="end-record-claims-one"),
    pytest.param(lambda: as_zip64(many_members(5000)), id="zip64"),
])
def test_an_archive_of_thousands_of_members_is_refused_before_its_directory_is_read(crafted):
    data = crafted()
    assert len(zipfile.ZipFile(io.BytesIO(data)).infolist()) == 5000     # what zipfile would read
    message, peak = peak_memory_of_refusal(data)
    assert message == "not a valid checkpoint: it holds 5000 entries, at most 64 are allowed"
    assert peak < 256 * 2**10      # NumPy reading the directory first: about 3 MB for these 5000


def test_the_entry_count_is_read_from_a_path_and_from_a_file_object_too(tmp_path):
    data = many_members(65)
    path = tmp_path / "many.npz"
    path.write_bytes(data)
    expected = "not a valid checkpoint: it holds 65 entries, at most 64 are allowed"
    for source in (path, str(path), io.BytesIO(data)):
        with pytest.raises(ValueError) as info:
            load_checkpoint(source)
        assert str(info.value) == expected
    assert uploads.sentence(ValueError(refusal(data))).endswith("at most 64 are allowed.")


def test_the_largest_checkpoint_has_the_most_entries_the_loader_counts_and_still_loads(tmp_path):
    run = Run(RunConfig(corpus="custom", hidden_size=8, seq_length=10, optimizer="adam"), POEM, "poems")
    run.step(2)
    data = run.to_bytes()
    assert len(zipfile.ZipFile(io.BytesIO(data)).infolist()) == MOST_ENTRIES == 23 <= MAX_ENTRIES
    path = tmp_path / "adam.npz"
    path.write_bytes(data)
    with open(path, "rb") as f:
        f.read(10)                      # a file object is read from where it is
        f.seek(0)
        trainer, _ = load_checkpoint(f)
    assert trainer.optimizer_name == "adam" and trainer.iteration == 2
    assert load_checkpoint(path)[0].iteration == 2
    assert Run.from_bytes(data).iteration == 2


# ---------------------------------------------------------------- strings must be valid text
@pytest.mark.parametrize("edit, where", [
    (set_app("corpus_label", "poems \ud800"), "field 'meta.metadata.app.corpus_label'"),
    (set_app("samples", [[1, "ok"], [2, "bad \udfff"]]), "field 'meta.metadata.app.samples[1][1]'"),
    (set_app("config", {"corpus\ud83d": "custom"}), "a key of field 'meta.metadata.app.config'"),
    (lambda m: m.update(optimizer="adam\ud800"), "field 'meta.optimizer'"),
])
def test_a_lone_surrogate_anywhere_in_the_meta_is_refused(good, edit, where):
    message = refusal(with_meta(good, edit))
    assert message.startswith(f"not a valid checkpoint: {where} is not valid text (it holds an unpaired surrogate")
    message.encode("utf-8")     # the message itself can be shown


def raw_string_entry(codes) -> bytes:
    """A .npy string array of the given 32-bit code units, which NumPy loads whatever they are."""
    return npy_header((), f"<U{len(codes)}") + np.array(codes, dtype="<u4").tobytes()


@pytest.mark.parametrize("codes", [[0x61, 0xD800], [0x61, 0x110000], [0x61, 0xFFFFFFFF]])
def test_a_vocabulary_that_is_not_unicode_text_is_refused(good, codes):
    message = refusal(with_member(good, "vocab.npy", raw_string_entry(codes)))
    assert message == (f"not a valid checkpoint: entry 'vocab' is not valid text (it holds the code point "
                       f"{codes[1]:#x}, which is no Unicode character)")


def test_a_meta_entry_that_is_not_unicode_text_is_refused(good):
    text = str(entries(good)["meta"])
    codes = [ord(c) for c in text]
    codes[text.index('"poems"') + 1] = 0x110000
    message = refusal(with_member(good, "meta.npy", raw_string_entry(codes)))
    assert message.startswith("not a valid checkpoint: entry 'meta' is not valid text (it holds the code point 0x110000")


def test_strings_longer_than_a_sample_are_refused(good):
    message = refusal(with_meta(good, set_app("samples", [[1, "x" * (MAX_SAMPLE_LENGTH + 1)]])))
    assert message == (f"not a valid checkpoint: field 'meta.metadata.app.samples[0][1]' has "
                       f"{MAX_SAMPLE_LENGTH + 1} characters; at most {MAX_SAMPLE_LENGTH} are allowed")


def test_nothing_that_would_be_refused_is_ever_saved(make_trainer):
    trainer, vocab = make_trainer()
    for metadata, problem in [({"label": "a\ud800"}, "is not valid text"), ({"loss": float("nan")}, "not a finite"),
                              ({"n": 10**50}, "more than 40 digits"), ({"s": "x" * 6000}, "at most 5000")]:
        trainer.metadata = metadata
        with pytest.raises(ValueError, match=problem):
            checkpoint_bytes(trainer, vocab)


# ---------------------------------------------------------------- numbers in range
@pytest.mark.parametrize("old, new, expected", [
    ('"iteration": 3', '"iteration": ' + "1" * 5000, "its 'meta' entry holds an integer of 5000 digits; at most 40"),
    ('"iteration": 3', '"iteration": ' + str(10**309), "its 'meta' entry holds an integer of 310 digits; at most 40"),
    ('"iteration": 3', '"iteration": 1e999', "its 'meta' entry holds the number 1e999, which is too large"),
    ('"iteration": 3', '"iteration": NaN', "its 'meta' entry holds NaN, which is not a finite number"),
    ('"iteration": 3', '"iteration": -Infinity', "its 'meta' entry holds -Infinity, which is not a finite number"),
    ('"metadata": {', '"deep": ' + "[" * 100_000 + "]" * 100_000 + ', "metadata": {', "its 'meta' entry is nested too deeply"),
    ('"metadata": {', '"deep": ' + "[" * 40 + "]" * 40 + ', "metadata": {', "field 'meta.deep"),
])
def test_numbers_json_cannot_hold_or_python_cannot_convert_are_refused(good, old, new, expected):
    message = refusal(with_meta_text(good, old, new))
    assert message.startswith(f"not a valid checkpoint: {expected}")
    assert "Exceeds the limit" not in message and len(message) < 300


@pytest.mark.parametrize("field, value, expected", [
    ("iteration", 10**16, f"iteration must be an integer between 0 and {MAX_ITERATION}, got 10000000000000000"),
    ("iteration", -1, f"iteration must be an integer between 0 and {MAX_ITERATION}, got -1"),
    ("optimizer_steps", 10**16, f"optimizer_steps must be an integer between 0 and {MAX_ITERATION}"),
    ("chars_seen", 10**30, "chars_seen must be an integer between 0 and"),
    ("position", 10**12, "position must be an integer between 0 and"),
    ("smooth_loss", 1e300, "smooth_loss must be a number between 0 and 1e+06, got 1e+300"),
    ("smooth_loss", -1.0, "smooth_loss must be a number between 0 and 1e+06, got -1.0"),
    ("learning_rate", 1e308, "learning_rate must be a number between 1e-05 and 10, got 1e+308"),
    ("clip", 0, "clip must be a number > 0 and <= 100, got 0"),
    ("seed", 2**64, f"field 'seed' must be a non-negative integer up to {MAX_SEED}, got {2**64}"),
    ("model_seed", -5, f"field 'model_seed' must be a non-negative integer up to {MAX_SEED}, got -5"),
])
def test_every_counter_setting_and_seed_is_range_checked(good, field, value, expected):
    assert refusal(with_meta(good, lambda m: m.update({field: value}))).startswith(f"not a valid checkpoint: {expected}")


@pytest.mark.parametrize("change", [
    {"inc": 2**128}, {"state": -1}, {"has_uint32": 2}, {"uinteger": 2**32}, {"bit_generator": "MT19937"},
    {"extra": 1}, {"has_uint32": True},
])
def test_the_generator_state_is_checked_field_by_field(good, change):
    def edit(meta):
        state = meta["rng_state"]
        for key, value in change.items():
            (state["state"] if key in ("inc", "state") else state)[key] = value
    assert refusal(with_meta(good, edit)).startswith("not a valid checkpoint: the random generator state is malformed")


@pytest.mark.parametrize("changes, expected", [
    ({"hidden_size": 0}, "hidden_size must be an integer between 1 and 512, got 0"),
    ({"hidden_size": 10**6}, "hidden_size must be an integer between 1 and 512, got 1000000"),
    ({"vocab_size": 300}, f"vocab_size must be an integer between 1 and {MAX_VOCAB_SIZE}, got 300"),
    ({"seq_length": 0}, "seq_length must be an integer between 1 and 200, got 0"),
    ({"batch_size": 129}, "batch_size must be an integer between 1 and 128, got 129"),
    ({"batch_size": 20, "seq_length": 200}, "batch_size 20 is too large for the data"),   # the Trainer's own check
])
def test_a_constructor_refusal_says_the_file_is_not_a_valid_checkpoint(good, changes, expected):
    data = with_meta(good, lambda m: m.update(changes))
    assert refusal(data).startswith(f"not a valid checkpoint: {expected}")
    with pytest.raises(ValueError) as info:
        uploads.run_from_checkpoint(data)
    assert uploads.sentence(info.value).startswith(f"Not a valid checkpoint: {expected}")


# ---------------------------------------------------------------- the app's own fields
@pytest.mark.parametrize("edit, expected", [
    (set_app("corpus_label", "x" * (MAX_LABEL_LENGTH + 1)),
     f"its corpus label has {MAX_LABEL_LENGTH + 1} characters; at most {MAX_LABEL_LENGTH} are allowed"),
    (set_app("corpus_label", "poems\n\n# spoof"), "its corpus label must be one line of text"),
    (set_app("corpus_label", "poems\x1b[2J"), "its corpus label must be one line of text"),
    (set_app("samples", [[1, "s"]] * (MAX_SAMPLES_KEPT + 1)),
     f"it holds {MAX_SAMPLES_KEPT + 1} samples; at most {MAX_SAMPLES_KEPT} are kept"),
    (set_app("samples", [[10**20, "s"]]), f"a sample must have an iteration between 0 and {MAX_ITERATION}"),
    (set_app("samples", [[-1, "s"]]), f"a sample must have an iteration between 0 and {MAX_ITERATION}"),
])
def test_the_label_and_the_samples_are_bounded(good, edit, expected):
    assert app_refusal(with_meta(good, edit)).startswith(f"not a valid checkpoint: {expected}")


def test_app_fields_of_the_wrong_type_are_still_ignored(good):
    run = Run.from_bytes(with_meta(good, lambda m: m["metadata"]["app"].update(
        corpus_label=7, samples="none", config=[1])))
    assert run.corpus_label == "checkpoint" and not run.samples and run.iteration == 3


# ---------------------------------------------------------------- the app stays usable
@pytest.fixture
def data_dir(monkeypatch, tmp_path):
    directory = tmp_path / "runs"
    monkeypatch.setenv("RNN_PLAYGROUND_DATA_DIR", str(directory))
    yield directory
    saver.wait_for_saves()


def test_a_saved_run_with_an_invalid_label_never_makes_its_link_an_error_page(data_dir, good):
    payload = with_meta(good, set_app("corpus_label", "poems \ud800"))
    run_id = new_run_id()
    RunStore(data_dir).save(run_id, payload)
    at = AppTest.from_file(DASHBOARD, default_timeout=60)
    at.query_params["run"] = run_id
    at.run()
    assert not at.exception
    warnings = [w.value for w in at.warning if "could not be read" in w.value]
    assert len(warnings) == 1 and "not valid text" in warnings[0] and "started a new one" in warnings[0]
    warnings[0].encode("utf-8")
    assert at.session_state.app.run.iteration == 0 and at.session_state.app.persist.run_id != run_id
    for page in ("app_pages/train.py", "app_pages/data.py", "app_pages/files.py", "app_pages/sample.py"):
        at.switch_page(page).run()
        assert not at.exception, page
    assert RunStore(data_dir).load(run_id) == payload       # the file is left as it was


@pytest.mark.parametrize("payload", [
    lambda good: with_meta_text(good, '"iteration": 3', '"iteration": ' + "9" * 5000),
    lambda good: with_member(good, "val_ids.npy", npy_header((200_000_000,), np.uint8)),
    lambda good: with_meta(good, lambda m: m.update(optimizer="[x](http://evil) :red[spoof]")),
])
def test_an_uploaded_hostile_checkpoint_is_refused_in_a_plain_sentence_and_the_run_kept(data_dir, good, payload):
    at = AppTest.from_file(DASHBOARD, default_timeout=60)
    at.run()
    at.switch_page("app_pages/files.py").run()
    run = at.session_state.app.run
    at.file_uploader(key="files_upload").upload("evil.npz", payload(good)).run()
    assert not at.exception
    errors = [e.value for e in at.error]
    assert len(errors) == 1 and "was not loaded" in errors[0] and "Not a valid checkpoint" in errors[0]
    assert "[x](" not in errors[0] and ":red[" not in errors[0] and "Exceeds" not in errors[0]
    assert len(errors[0]) < 400
    assert at.session_state.app.run is run
    at.switch_page("app_pages/train.py").run()
    assert not at.exception
