"""rnn_core's refusals: bad arguments (ValueError naming the parameter and the value), bad checkpoint
files (ValueError with a clear message, nothing executed), and divergence (DivergenceError with the
training state left exactly as it was)."""

import io
import json
import math
import re

import numpy as np
import pytest

from rnn_core import (
    DivergenceError,
    Trainer,
    VanillaRNN,
    Vocab,
    checkpoint_bytes,
    load_checkpoint,
    load_checkpoint_bytes,
)
from rnn_core.trainer import HISTORY_COLUMNS

TEXT = "abcd dcba " * 10     # 100 characters, vocabulary of 5


@pytest.fixture
def vocab():
    return Vocab.from_text(TEXT)


@pytest.fixture
def model(vocab):
    return VanillaRNN(vocab.size, 8, seed=0)


@pytest.fixture
def trainer(model, vocab):
    return Trainer(model, vocab.encode(TEXT), seq_length=10)


# ---------------------------------------------------------------- vocabulary and model


def test_empty_text_is_refused():
    with pytest.raises(ValueError, match="text must not be empty"):
        Vocab.from_text("")
    with pytest.raises(ValueError, match="text must be a str, got bytes"):
        Vocab.from_text(b"abc")


def test_unknown_characters_are_named(vocab):
    with pytest.raises(ValueError, match=r"text contains 1 character not in the vocabulary: 'z'; only the "
                                         rf"{vocab.size} characters of the training text are allowed$"):
        vocab.encode("abz")
    with pytest.raises(ValueError, match=r"text contains 2 characters not in the vocabulary: 'x', 'y'; only the "
                                         r"1 character of the training text is allowed$"):
        Vocab("a").encode("xay")
    with pytest.raises(ValueError, match=r"'x', 'é'"):
        vocab.encode("xéa")
    with pytest.raises(ValueError, match=r"ids must be in \[0, 4\], got values in \[0, 7\]"):
        vocab.decode([0, 7])


@pytest.mark.parametrize("kwargs,match", [
    ({"vocab_size": 0, "hidden_size": 8}, "vocab_size must be an integer between 1 and 256, got 0"),
    ({"vocab_size": 5, "hidden_size": 0}, "hidden_size must be an integer between 1 and 512, got 0"),
    ({"vocab_size": 5, "hidden_size": -3}, "hidden_size must be .*got -3"),
    ({"vocab_size": 5, "hidden_size": 8.0}, "hidden_size must be an integer .*got 8.0"),
    ({"vocab_size": 5, "hidden_size": 8, "dtype": np.int32}, "dtype must be float64 or float32, got int32"),
])
def test_model_sizes_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        VanillaRNN(**kwargs)


@pytest.mark.parametrize("inputs,targets,match", [
    ([0, 1, -1], [1, 2, 3], "inputs contains token id -1; allowed ids are 0..4"),
    ([0, 1, 5], [1, 2, 3], "inputs contains token id 5; allowed ids are 0..4"),
    ([0, 1, 2], [1, 2, 9], "targets contains token id 9; allowed ids are 0..4"),
    ([0, 1, 2], [1, 2], r"targets shape \(2,\) must equal inputs shape \(3,\)"),
    ([[0, 1, 2]], [1, 2, 3], r"targets shape \(3,\) must equal inputs shape \(1, 3\)"),
    ([], [], r"inputs must be a non-empty int array .*got shape \(0,\)"),
    ([0.0, 1.0], [1, 2], "inputs must hold integer token ids, got dtype float64"),
    ([[[0]]], [[[1]]], r"inputs must be .*shape \(T,\) or \(B,T\), got shape \(1, 1, 1\)"),
])
def test_token_ids_and_shapes_are_checked(model, inputs, targets, match):
    with pytest.raises(ValueError, match=match):
        model.loss_and_grads(np.array(inputs), np.array(targets))


@pytest.mark.parametrize("inputs,h0,match", [
    ([0, 1, 2], np.zeros((1, 8)), r"h0 must have shape \(8,\) to match the inputs, got \(1, 8\)"),
    ([0, 1, 2], np.zeros(7), r"h0 must have shape \(8,\) .*got \(7,\)"),
    ([[0, 1], [2, 3]], np.zeros(8), r"h0 must have shape \(2, 8\) .*got \(8,\)"),
    ([[0, 1], [2, 3]], np.zeros((3, 8)), r"h0 must have shape \(2, 8\) .*got \(3, 8\)"),
    ([0, 1, 2], np.full(8, np.nan), "h0 must hold finite numbers"),
])
def test_h0_shape_is_checked(model, inputs, h0, match):
    with pytest.raises(ValueError, match=match):
        model.loss_and_grads(np.array(inputs), np.array(inputs), h0)
    with pytest.raises(ValueError, match=match):
        model.forward(np.array(inputs), h0)


@pytest.mark.parametrize("kwargs,match", [
    ({"n": -1}, "n must be an integer between 0 and 5000, got -1"),
    ({"n": 2.5}, "n must be an integer .*got 2.5"),
    ({"n": 5, "temperature": 0}, r"temperature must be a number > 0 and <= 100, got 0"),
    ({"n": 5, "temperature": -1.0}, r"temperature must be .*got -1.0"),
    ({"n": 5, "temperature": float("nan")}, r"temperature must be .*got nan"),
    ({"n": 5, "temperature": float("inf")}, r"temperature must be .*got inf"),
    ({"n": 5, "prime": [0, 7]}, "prime contains token id 7"),
    ({"n": 5, "h0": np.zeros(3)}, r"h0 must have shape \(8,\)"),
])
def test_sampling_arguments_are_checked(model, kwargs, match):
    with pytest.raises(ValueError, match=match):
        model.sample(rng=0, **kwargs)


def test_evaluate_needs_two_characters(model):
    with pytest.raises(ValueError, match="ids must be a 1-D text of at least 2 characters"):
        model.evaluate(np.array([1]))
    with pytest.raises(ValueError, match="ids contains token id 9"):
        model.evaluate(np.array([1, 9, 2]))


# ---------------------------------------------------------------- trainer


@pytest.mark.parametrize("kwargs,match", [
    ({"seq_length": 0}, "seq_length must be an integer between 1 and 200, got 0"),
    ({"seq_length": 201}, "seq_length must be .*got 201"),
    ({"seq_length": 100}, "data has 100 characters; seq_length 100 needs at least 101"),
    ({"batch_size": 0}, "batch_size must be an integer between 1 and 128, got 0"),
    ({"batch_size": 10, "seq_length": 10}, r"batch_size 10 is too large for the data: .*need at least 110 characters, "
                         r"the data has 100; allowed batch_size here is 1..9"),
    ({"learning_rate": 0}, "learning_rate must be a number between 1e-05 and 10, got 0"),
    ({"learning_rate": -0.1}, "learning_rate must be .*got -0.1"),
    ({"learning_rate": float("nan")}, "learning_rate must be .*got nan"),
    ({"learning_rate": float("inf")}, "learning_rate must be .*got inf"),
    ({"clip": 0}, "clip must be a number > 0 and <= 100, got 0"),
    ({"clip": -5.0}, "clip must be .*got -5.0"),
    ({"optimizer": "lbfgs"}, "optimizer must be one of adagrad, sgd, momentum, rmsprop, adam; got 'lbfgs'"),
    ({"val_ids": np.array([1])}, "val_ids must hold at least 2 characters, got 1"),
    ({"val_ids": np.array([1, 5])}, "val_ids contains token id 5; allowed ids are 0..4"),
])
def test_trainer_arguments_are_checked(model, vocab, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Trainer(model, vocab.encode(TEXT), **kwargs)


@pytest.mark.parametrize("data,match", [
    (np.array([0, 1, 2, -1] * 5), "data_ids contains token id -1; allowed ids are 0..4"),
    (np.array([0, 1, 2, 5] * 5), "data_ids contains token id 5"),
    (np.zeros((4, 5), dtype=int), r"data_ids must be a 1-D array of integer token ids, got shape \(4, 5\)"),
    (np.zeros(20), "data_ids must be a 1-D array of integer token ids, got shape .* dtype float64"),
    (np.array([0, 1, 2]), "data has 3 characters; seq_length 10 needs at least 11"),
])
def test_training_data_is_checked(model, data, match):
    with pytest.raises(ValueError, match=match):
        Trainer(model, data, seq_length=10)


def test_trainer_needs_a_model(vocab):
    with pytest.raises(ValueError, match="model must be a VanillaRNN, got dict"):
        Trainer({}, vocab.encode(TEXT))


@pytest.mark.parametrize("value", [0, -1.0, float("nan"), float("inf"), 11.0, "0.1", None])
def test_bad_learning_rate_via_the_setter_keeps_the_old_value(trainer, value):
    trainer.learning_rate = 0.05
    message = f"learning_rate must be a number between 1e-05 and 10, got {value!r}"
    with pytest.raises(ValueError, match=re.escape(message)):
        trainer.learning_rate = value
    assert trainer.learning_rate == 0.05


@pytest.mark.parametrize("value", [0, -2.0, float("nan"), float("inf")])
def test_bad_clip_via_the_setter_keeps_the_old_value(trainer, value):
    with pytest.raises(ValueError, match="clip must be a number > 0 and <= 100, got"):
        trainer.clip = value
    assert trainer.clip == 5.0


def test_unknown_optimizer_via_set_optimizer_keeps_the_old_one(trainer):
    trainer.step(2)
    before = trainer.optimizer
    with pytest.raises(ValueError, match="optimizer must be one of .*got 'Adam'"):
        trainer.set_optimizer("Adam")
    assert trainer.optimizer is before and trainer.optimizer_name == "adagrad"


@pytest.mark.parametrize("n,match", [(-1, "n must be an integer between 0 and 1000000000, got -1"),
                                     (1.5, "n must be an integer .*got 1.5")])
def test_step_count_is_checked(trainer, n, match):
    with pytest.raises(ValueError, match=match):
        trainer.step(n)
    assert trainer.iteration == 0


# ---------------------------------------------------------------- divergence


def assert_divergence_changes_nothing(trainer, trainer_state, what):
    snapshot, assert_same_state = trainer_state
    before = snapshot(trainer)
    stats_before = trainer.last_stats
    with pytest.raises(DivergenceError, match=f"training diverged at iteration {trainer.iteration + 1}: "
                                              f"the {what} became non-finite") as info:
        with np.errstate(all="ignore"):
            trainer.step()
    assert info.value.what == what and info.value.iteration == before["iteration"]
    assert "try a lower learning rate" in str(info.value)
    assert_same_state(before, snapshot(trainer))
    assert len(trainer.history) == len(before["history"])
    assert trainer.last_stats is stats_before


def saturate_then_overflow_logits(model):
    """Finite weights whose logits overflow: bh saturates every h at ~1, so Why[0] . h = inf."""
    model.params["bh"][:] = 20.0
    model.params["Why"][0, :] = 1e308


@pytest.mark.parametrize("steps_before", [0, 3, 9])
def test_non_finite_loss_raises_and_leaves_the_state_as_it_was(trainer, trainer_state, steps_before):
    """Mid-stream (3) and at the wrap to the start of the data (9: 90 + 11 >= 100), where the hidden
    state would be reset, and on the very first step (0)."""
    trainer.step(steps_before)
    trainer.validate()
    saturate_then_overflow_logits(trainer.model)
    assert trainer.current_window()[2].any() == (steps_before == 3)
    assert_divergence_changes_nothing(trainer, trainer_state, "loss")


def test_non_finite_gradient_raises_and_leaves_the_state_as_it_was(trainer, trainer_state):
    """h = 0 exactly (zero input and recurrent weights) keeps the logits finite, but the gradient
    reaching h, dy @ Why, sums terms of ~1e308 of one sign and overflows."""
    trainer.step(4)
    p = trainer.model.params
    p["Wxh"][:] = 0.0
    p["Whh"][:] = 0.0
    p["bh"][:] = 0.0
    p["by"][:] = 0.0
    x, y, _ = trainer.current_window()
    # The output is uniform, so at the last step dy = 1/V - onehot(target); with these signs every
    # term dy_v * Why[v, 0] is positive and their sum exceeds the largest float.
    p["Why"][:, 0] = 1.7e308
    p["Why"][y[-1], 0] = -1.7e308
    with np.errstate(all="ignore"):
        assert math.isfinite(trainer.model.loss_and_grads(x, y)[0])
    assert_divergence_changes_nothing(trainer, trainer_state, "gradient")


def test_training_continues_after_a_refused_step(trainer, trainer_state):
    snapshot, assert_same_state = trainer_state
    twin = trainer.clone()
    trainer.step(3)
    twin.step(3)
    saved = trainer.model.params["Why"].copy()
    saturate_then_overflow_logits(trainer.model)
    with pytest.raises(DivergenceError), np.errstate(all="ignore"):
        trainer.step()
    trainer.model.params["Why"][...] = saved
    trainer.model.params["bh"][...] = twin.model.params["bh"]
    trainer.step(2)
    twin.step(2)
    assert_same_state(snapshot(trainer), snapshot(twin))


# ---------------------------------------------------------------- checkpoint loader


@pytest.fixture
def good_bytes(trainer, vocab):
    trainer.step(3)
    return checkpoint_bytes(trainer, vocab)


def entries(data):
    with np.load(io.BytesIO(data)) as npz:
        return {k: npz[k] for k in npz.files}


def repack(arrays, **savez_kwargs):
    buf = io.BytesIO()
    np.savez(buf, **arrays, **savez_kwargs)
    return buf.getvalue()


def with_meta(data, **changes):
    arrays = entries(data)
    meta = json.loads(str(arrays["meta"]))
    meta.update(changes)
    arrays["meta"] = np.array(json.dumps(meta))
    return repack(arrays)


def refuse(data, match):
    """Both entry points refuse the bytes with a ValueError matching ``match``."""
    with pytest.raises(ValueError, match=match):
        load_checkpoint_bytes(data)
    with pytest.raises(ValueError, match=match):
        load_checkpoint(io.BytesIO(data))


def test_good_bytes_load(good_bytes):
    trainer, vocab = load_checkpoint_bytes(good_bytes)
    assert trainer.iteration == 3 and vocab.size == 5


def test_empty_file_is_refused(tmp_path):
    with pytest.raises(ValueError, match="not a valid checkpoint: the file is empty"):
        load_checkpoint_bytes(b"")
    for source in (io.BytesIO(b""), tmp_path / "empty.npz"):
        (tmp_path / "empty.npz").write_bytes(b"")
        with pytest.raises(ValueError, match="not a valid checkpoint: the file is not a readable .npz archive"):
            load_checkpoint(source)


def test_truncated_file_is_refused(good_bytes, tmp_path):
    half = good_bytes[: len(good_bytes) // 2]
    refuse(half, "not a valid checkpoint: the file is not a readable .npz archive")
    path = tmp_path / "half.npz"
    path.write_bytes(half)
    with pytest.raises(ValueError, match="not a readable .npz archive"):
        load_checkpoint(path)
    with pytest.raises(ValueError, match="not a readable .npz archive"):
        load_checkpoint(str(path))


def test_files_that_are_not_zip_archives_are_refused(tmp_path):
    refuse(np.random.default_rng(0).bytes(4000), "not a valid checkpoint: the file is not a readable .npz archive")
    text_file = tmp_path / "notes.txt"
    text_file.write_text("iteration 500, loss 42\n")
    with pytest.raises(ValueError, match="not a valid checkpoint: the file is not a readable .npz archive"):
        load_checkpoint(text_file)
    with pytest.raises(ValueError, match="no checkpoint file at .*missing.npz"):
        load_checkpoint(tmp_path / "missing.npz")


def test_plain_npy_file_is_refused(tmp_path):
    buf = io.BytesIO()
    np.save(buf, np.zeros((3, 3)))
    refuse(buf.getvalue(), "not a valid checkpoint: the file holds a single array, not an .npz archive")


def test_zip_without_the_checkpoint_entries_is_refused():
    refuse(repack({"weights": np.zeros(3)}), "not a valid checkpoint: entry 'meta' is unreadable")


class WritesMarker:
    """A pickle payload: unpickling it calls open(marker, "w"), creating the marker file."""

    def __init__(self, marker):
        self.marker = str(marker)

    def __reduce__(self):
        return (open, (self.marker, "w"))


@pytest.mark.parametrize("key", ["meta", "param_Whh", "data_ids", "history"])
def test_pickled_objects_are_refused_and_never_executed(good_bytes, tmp_path, key):
    marker = tmp_path / "pickle-ran"
    arrays = entries(good_bytes)
    arrays[key] = np.array([WritesMarker(marker)], dtype=object)
    evil = repack(arrays, allow_pickle=True)
    refuse(evil, f"not a valid checkpoint: entry '{key}' holds Python objects, which are never loaded")
    assert not marker.exists()
    # The payload is live: numpy's own loader with pickle allowed would have run it.
    with np.load(io.BytesIO(evil), allow_pickle=True) as npz:
        npz[key]
    assert marker.exists()


def test_missing_entry_is_refused(good_bytes):
    arrays = entries(good_bytes)
    del arrays["param_Why"]
    refuse(repack(arrays), r"not a valid checkpoint: missing entries \['param_Why'\]")
    arrays = entries(good_bytes)
    del arrays["opt_mem_bh"]
    refuse(repack(arrays), r"missing entries \['opt_mem_bh'\]")
    arrays = entries(good_bytes)
    del arrays["meta"]
    refuse(repack(arrays), "entry 'meta' is unreadable")


def test_unexpected_entry_is_refused(good_bytes):
    arrays = entries(good_bytes)
    arrays["extra"] = np.zeros(2)
    refuse(repack(arrays), r"not a valid checkpoint: unexpected entries \['extra'\]")
    arrays = entries(good_bytes)
    arrays["opt_m_Wxh"] = arrays["opt_mem_Wxh"]   # Adam's state in an Adagrad checkpoint
    refuse(repack(arrays), r"unexpected entries \['opt_m_Wxh'\]")


@pytest.mark.parametrize("key,change,match", [
    ("param_Wxh", lambda a: a.T.copy(), r"entry 'param_Wxh' has shape \(5, 8\), expected \(8, 5\)"),
    ("param_bh", lambda a: a[:-1], r"entry 'param_bh' has shape \(7,\), expected \(8,\)"),
    ("hprev", lambda a: a[0], r"entry 'hprev' has shape \(8,\), expected \(1, 8\)"),
    ("history", lambda a: a[:, :3], rf"history must have shape \(n, {len(HISTORY_COLUMNS)}\), got \(3, 3\)"),
    ("param_Why", lambda a: a.astype(np.float32), "entry 'param_Why' has dtype float32, expected float64"),
    ("param_Why", lambda a: a.astype(np.int64), "entry 'param_Why' has dtype int64, expected kind 'f'"),
    ("opt_mem_Whh", lambda a: a.astype(np.float32), "entry 'opt_mem_Whh' has dtype float32, expected float64"),
    ("data_ids", lambda a: a.astype(np.float64), "entry 'data_ids' has dtype float64, expected kind 'iu'"),
    ("vocab", lambda a: np.array(7), "entry 'vocab' has dtype int64, expected kind 'U'"),
    ("param_Why", lambda a: np.where(a == a.flat[3], np.nan, a),
     "entry 'param_Why' contains NaN or infinite values"),
    ("param_bh", lambda a: a + np.inf, "entry 'param_bh' contains NaN or infinite values"),
    ("opt_mem_by", lambda a: a - 1.0, "optimizer state mem of by has negative entries"),
    ("hprev", lambda a: a + 2.0, r"hidden states lie outside \[-1, 1\]"),
    ("data_ids", lambda a: a + 10, "data_ids contains token id"),
    ("vocab", lambda a: np.array("ba dc"), "vocabulary characters must be distinct and sorted"),
    ("vocab", lambda a: np.array(" abcde"), "vocabulary has 6 characters, meta says 5"),
])
def test_bad_entries_are_refused(good_bytes, key, change, match):
    arrays = entries(good_bytes)
    arrays[key] = change(arrays[key])
    refuse(repack(arrays), match)


@pytest.mark.parametrize("changes,match", [
    ({"format_version": 2}, "unsupported checkpoint format version 2; this version reads version 1"),
    ({"format_version": "1"}, "unsupported checkpoint format version '1'"),
    ({"format": "some-other-tool"}, "not a valid checkpoint: it was not written by RNN Playground"),
    ({"format": None}, "no format marker"),
    ({"hidden_size": 9}, r"entry 'param_Wxh' has shape \(8, 5\), expected \(9, 5\)"),
    ({"hidden_size": "8"}, "field 'hidden_size' is missing or has the wrong type"),
    ({"seq_length": True}, "field 'seq_length' is missing or has the wrong type"),
    ({"optimizer": "lbfgs"}, "unknown optimizer 'lbfgs'"),
    ({"dtype": "float16"}, "unsupported dtype 'float16'"),
    ({"learning_rate": -1.0}, "learning_rate must be a number between 1e-05 and 10, got -1.0"),
    ({"position": 500}, r"not a valid checkpoint: position must be an integer between 0 and \d+, got 500"),
    ({"iteration": -1}, "not a valid checkpoint: iteration must be an integer between 0 and 1000000000000000, got -1"),
    ({"rng_state": {"bit_generator": "PCG64", "state": "x"}}, "random generator state is malformed"),
    ({"metadata": [1, 2]}, "metadata must be a mapping"),
    ({"seed": "abc"}, "field 'seed' must be"),
    ({"model_seed": [1.5]}, "field 'model_seed' must be"),
])
def test_bad_meta_fields_are_refused(good_bytes, changes, match):
    refuse(with_meta(good_bytes, **changes), match)


def test_meta_that_is_not_json_is_refused(good_bytes):
    arrays = entries(good_bytes)
    arrays["meta"] = np.array("{not json")
    refuse(repack(arrays), "its 'meta' entry is not valid JSON")
    arrays["meta"] = np.array("[1, 2]")
    refuse(repack(arrays), "no format marker")
