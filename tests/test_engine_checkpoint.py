"""rnn_core checkpoints: a saved and reloaded run continues bit-for-bit like the original.
(The loader's refusals of bad files are in test_engine_errors.py.)"""

import io

import numpy as np
import pytest

from rnn_core import OPTIMIZERS, Vocab, checkpoint_bytes, load_checkpoint, load_checkpoint_bytes, save_checkpoint

TEXT = "We sail at dawn; the tide turns at six. Ship's log, day 3: calm seas, fair wind.\n" * 3
VAL_TEXT = "the wind turns at dawn; calm seas.\n"
LEARNING_RATES = {"adagrad": 0.1, "sgd": 0.05, "momentum": 0.02, "rmsprop": 0.005, "adam": 0.005}


def train_with_side_activity(trainer, steps):
    """Steps with validation and samples (which advance the trainer's RNG) interleaved."""
    samples = []
    for i in range(steps):
        trainer.step()
        if i % 3 == 1:
            trainer.validate()
            samples.append(trainer.sample(12, temperature=0.8).tolist())
    return samples


@pytest.mark.parametrize("dtype,batch_size", [(np.float64, 1), (np.float32, 3)])
@pytest.mark.parametrize("optimizer", OPTIMIZERS)
def test_checkpoint_resumes_bit_identically(make_trainer, trainer_state, tmp_path, optimizer, dtype, batch_size):
    snapshot, assert_same_state = trainer_state
    original, vocab = make_trainer(TEXT, hidden_size=10, dtype=dtype, val_text=VAL_TEXT, optimizer=optimizer,
                                   learning_rate=LEARNING_RATES[optimizer], batch_size=batch_size, seq_length=8)
    original.metadata = {"run_name": "voyage", "corpus": "custom"}
    train_with_side_activity(original, 7)
    buf = io.BytesIO()
    save_checkpoint(buf, original, vocab)
    buf.seek(0)
    path = tmp_path / "run.npz"
    save_checkpoint(path, original, vocab)

    from_buffer, vocab_b = load_checkpoint(buf)
    from_path, vocab_p = load_checkpoint(path)
    assert vocab_b == vocab and vocab_p == vocab
    for loaded in (from_buffer, from_path):
        assert loaded.model.dtype == np.dtype(dtype) and loaded.optimizer_name == optimizer
        assert (loaded.seq_length, loaded.batch_size) == (8, batch_size)
        assert_same_state(snapshot(original), snapshot(loaded))
        np.testing.assert_array_equal(loaded.data, original.data)

    samples = [train_with_side_activity(t, 8) for t in (original, from_buffer, from_path)]
    assert samples[0] == samples[1] == samples[2]
    for loaded in (from_buffer, from_path):
        assert_same_state(snapshot(original), snapshot(loaded))
        assert loaded.last_stats["loss"] == original.last_stats["loss"]
    draws = [t.rng.random(4).tolist() for t in (original, from_buffer, from_path)]
    assert draws[0] == draws[1] == draws[2]
    assert len(original.history) == 15 and len(original.val_history) == 5


def test_checkpoint_of_a_fresh_trainer_starts_like_the_original(make_trainer, trainer_state):
    snapshot, assert_same_state = trainer_state
    original, vocab = make_trainer(TEXT)
    loaded, _ = load_checkpoint_bytes(checkpoint_bytes(original, vocab))
    assert_same_state(snapshot(original), snapshot(loaded))
    assert original.step(3) == loaded.step(3)
    assert_same_state(snapshot(original), snapshot(loaded))


def test_metadata_round_trips(make_trainer):
    trainer, vocab = make_trainer(TEXT)
    trainer.metadata = {"name": "Überfahrt ⚓", "corpus": {"kind": "upload", "chars": 243},
                        "tags": ["a", "b"], "lr_schedule": [[0, 0.1], [500, 0.05]], "note": None,
                        "checked": True}
    loaded, _ = load_checkpoint_bytes(checkpoint_bytes(trainer, vocab))
    assert loaded.metadata == trainer.metadata
    assert loaded.metadata is not trainer.metadata


def test_settings_and_counters_round_trip(make_trainer):
    trainer, vocab = make_trainer(TEXT, seed=9, learning_rate=0.037, clip=2.5, seq_length=13, optimizer="rmsprop")
    trainer.step(11)
    loaded, _ = load_checkpoint_bytes(checkpoint_bytes(trainer, vocab))
    for attr in ("learning_rate", "clip", "seq_length", "batch_size", "optimizer_name", "iteration",
                 "position", "chars_seen", "smooth_loss", "seed", "epoch"):
        assert getattr(loaded, attr) == getattr(trainer, attr), attr
    assert loaded.model.seed == trainer.model.seed == 9
    assert loaded.current_window()[0].tolist() == trainer.current_window()[0].tolist()


def test_validation_ids_round_trip(make_trainer):
    with_val, vocab = make_trainer(TEXT, val_text=VAL_TEXT)
    loaded, _ = load_checkpoint_bytes(checkpoint_bytes(with_val, vocab))
    np.testing.assert_array_equal(loaded.val_ids, vocab.encode(VAL_TEXT))
    assert loaded.validate() == with_val.validate()
    without_val, vocab = make_trainer(TEXT)
    loaded, _ = load_checkpoint_bytes(checkpoint_bytes(without_val, vocab))
    assert loaded.val_ids is None and loaded.validate() is None


def test_unicode_vocabulary_round_trips(make_trainer):
    text = "naïve café — 東京 🚀 " * 4
    trainer, vocab = make_trainer(text, seq_length=5)
    trainer.step(3)
    loaded, loaded_vocab = load_checkpoint_bytes(checkpoint_bytes(trainer, vocab))
    assert loaded_vocab.chars == vocab.chars
    assert loaded_vocab.decode(loaded.data) == text


def test_checkpoint_bytes_equal_a_saved_file(make_trainer, tmp_path):
    trainer, vocab = make_trainer(TEXT)
    trainer.step(2)
    path = tmp_path / "run.npz"
    save_checkpoint(str(path), trainer, vocab)
    a, _ = load_checkpoint_bytes(path.read_bytes())
    b, _ = load_checkpoint_bytes(checkpoint_bytes(trainer, vocab))
    np.testing.assert_array_equal(a.model.params["Whh"], b.model.params["Whh"])


def test_saving_with_a_vocabulary_of_the_wrong_size_is_refused(make_trainer):
    trainer, vocab = make_trainer(TEXT)
    with pytest.raises(ValueError, match="vocab has 3 characters but the model expects"):
        save_checkpoint(io.BytesIO(), trainer, Vocab("abc"))
