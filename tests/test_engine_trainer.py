"""rnn_core.Trainer: equivalence with the classic min-char-rnn loop, batched streams, optimizers,
settings changed mid-run, determinism, statistics, validation and the history it keeps (the
history's own tests are in test_history.py)."""

import math
import warnings

import numpy as np
import pytest

from rnn_core import OPTIMIZERS, PARAM_NAMES
from rnn_core.history import BoundedHistory
from rnn_core.trainer import HISTORY_COLUMNS

# 62 characters: with seq_length 10 the classic loop wraps to the start every 6 iterations.
SHORT_TEXT = "the cat sat on a mat; a dog lay by the door, both fast asleep."


# ---------------------------------------------------------------- the classic loop


def test_batch_one_adagrad_equals_the_classic_loop(make_trainer, reference_rnn):
    seq_length, lr, steps = 10, 0.1, 16
    trainer, vocab = make_trainer(SHORT_TEXT, hidden_size=8, seed=3, seq_length=seq_length, learning_rate=lr)
    data = vocab.encode(SHORT_TEXT)
    params = {k: v.copy() for k, v in trainer.model.params.items()}
    mem = {k: np.zeros_like(v) for k, v in params.items()}
    smooth_loss = -np.log(1.0 / vocab.size) * seq_length
    p, hprev, wraps = 0, None, 0
    for n in range(steps):
        if p + seq_length + 1 >= len(data) or n == 0:
            hprev, p = np.zeros(8), 0
            wraps += 1
        inputs, targets = data[p:p + seq_length], data[p + 1:p + seq_length + 1]
        loss, grads, hprev = reference_rnn(params, inputs, targets, hprev)
        smooth_loss = smooth_loss * 0.999 + loss * 0.001
        for k in PARAM_NAMES:
            np.clip(grads[k], -5, 5, out=grads[k])
            mem[k] += grads[k] * grads[k]
            params[k] += -lr * grads[k] / np.sqrt(mem[k] + 1e-8)
        p += seq_length

        assert trainer.step() == pytest.approx(loss, rel=1e-10)
        assert trainer.iteration == n + 1 and trainer.position == p
        assert trainer.smooth_loss == pytest.approx(smooth_loss, rel=1e-10)
        np.testing.assert_allclose(trainer.hprev[0], hprev, rtol=1e-10, atol=1e-13)
        for k in PARAM_NAMES:
            np.testing.assert_allclose(trainer.model.params[k], params[k], rtol=1e-10, atol=1e-12, err_msg=k)
            np.testing.assert_allclose(trainer.optimizer.state["mem"][k], mem[k], rtol=1e-10, atol=1e-14)
    assert wraps >= 3   # the comparison covered resets at the end of the data, not just iteration 0
    assert trainer.chars_seen == steps * seq_length
    assert trainer.epoch == pytest.approx(steps * seq_length / len(data))


def test_current_window_is_the_next_classic_window(make_trainer):
    trainer, vocab = make_trainer(SHORT_TEXT, seq_length=10)
    data = vocab.encode(SHORT_TEXT)
    for n in range(8):
        p = trainer.position if n and trainer.position + 11 < len(data) else 0
        x, y, h0 = trainer.current_window()
        np.testing.assert_array_equal(x, data[p:p + 10])
        np.testing.assert_array_equal(y, data[p + 1:p + 11])
        expected_h0 = np.zeros(16) if p == 0 else trainer.hprev[0]
        np.testing.assert_array_equal(h0, expected_h0)
        assert x.dtype == np.int64 and y.shape == (10,) and h0.shape == (16,)
        trainer.step()


def test_step_trains_on_the_current_window(make_trainer):
    trainer, _ = make_trainer(SHORT_TEXT, seq_length=10)
    for _ in range(9):
        x, y, h0 = trainer.current_window()
        expected = trainer.model.loss_and_grads(x, y, h0)[0]
        assert trainer.step() == expected


# ---------------------------------------------------------------- batched streams


def test_batch_streams_read_their_own_contiguous_segments(make_trainer):
    text = (SHORT_TEXT + " ") * 4 + "xyz"          # 255 characters, 3 segments of 85
    B, T = 3, 10
    trainer, vocab = make_trainer(text, batch_size=B, seq_length=T)
    data = vocab.encode(text)
    L = len(data) // B
    assert trainer.segment_length == L == 85
    model = trainer.model
    h = np.zeros((B, model.hidden_size))
    for n in range(12):     # several wraps: a segment of 85 holds 7 windows
        x, y, h0 = trainer.current_window()
        before = model.copy()
        loss = trainer.step()
        start = trainer.position - T
        if start == 0:
            h[...] = 0.0
        xs = np.stack([data[b * L + start:b * L + start + T] for b in range(B)])
        ys = np.stack([data[b * L + start + 1:b * L + start + T + 1] for b in range(B)])
        np.testing.assert_array_equal(x, xs[0])
        np.testing.assert_allclose(h0, h[0], rtol=1e-12, atol=1e-15)
        singles = [before.loss_and_grads(xs[b], ys[b], h[b]) for b in range(B)]
        assert loss == pytest.approx(np.mean([s[0] for s in singles]), rel=1e-12)
        h = np.stack([s[2] for s in singles])
        np.testing.assert_allclose(trainer.hprev, h, rtol=1e-12, atol=1e-15)
    assert trainer.chars_seen == 12 * B * T


def test_batch_positions_wrap_within_the_segment(make_trainer):
    text = SHORT_TEXT * 2                          # 124 characters, 2 segments of 62
    trainer, _ = make_trainer(text, batch_size=2, seq_length=10)
    starts = []
    for _ in range(14):
        trainer.step()
        starts.append(trainer.position - 10)
    # The window at 50 still fits (its last target is character 60 of 62); the next one would not.
    assert starts == [0, 10, 20, 30, 40, 50] * 2 + [0, 10]


# ---------------------------------------------------------------- optimizers and settings


@pytest.mark.parametrize("optimizer,lr", [("adagrad", 0.1), ("sgd", 0.05), ("momentum", 0.02),
                                          ("rmsprop", 0.005), ("adam", 0.005)])
def test_every_optimizer_reduces_the_loss(make_trainer, optimizer, lr):
    trainer, vocab = make_trainer(optimizer=optimizer, learning_rate=lr)
    assert trainer.optimizer_name == optimizer
    losses = [trainer.step() for _ in range(200)]
    uniform = math.log(vocab.size) * 10
    assert losses[0] == pytest.approx(uniform, rel=0.01)
    assert np.mean(losses[-10:]) < 0.1 * uniform, (optimizer, losses[:3], losses[-3:])
    assert trainer.smooth_loss < uniform


def test_all_optimizers_are_covered():
    assert set(OPTIMIZERS) == {"adagrad", "sgd", "momentum", "rmsprop", "adam"}


def test_changing_learning_rate_keeps_optimizer_state(make_trainer):
    trainer, _ = make_trainer()
    trainer.step(5)
    optimizer = trainer.optimizer
    mem = {k: a.copy() for k, a in optimizer.state["mem"].items()}
    trainer.learning_rate = 0.03
    assert trainer.learning_rate == 0.03 and trainer.optimizer is optimizer and optimizer.t == 5
    for k in PARAM_NAMES:
        np.testing.assert_array_equal(optimizer.state["mem"][k], mem[k])
    # The next step uses the kept memory and the new rate.
    x, y, h0 = trainer.current_window()
    _, grads, _ = trainer.model.loss_and_grads(x, y, h0)
    before = {k: v.copy() for k, v in trainer.model.params.items()}
    trainer.step()
    for k in PARAM_NAMES:
        g = np.clip(grads[k], -5, 5)
        expected = before[k] - 0.03 * g / np.sqrt(mem[k] + g * g + 1e-8)
        np.testing.assert_allclose(trainer.model.params[k], expected, rtol=1e-12, atol=1e-15)
    assert trainer.history.as_arrays()["learning_rate"].tolist() == [0.1] * 5 + [0.03]


def test_set_optimizer_switches_with_fresh_state(make_trainer):
    trainer, _ = make_trainer()
    trainer.step(4)
    adagrad = trainer.optimizer
    trainer.set_optimizer("adagrad")                   # same name: nothing is reset
    assert trainer.optimizer is adagrad and adagrad.t == 4
    trainer.set_optimizer("adam")
    assert trainer.optimizer_name == "adam" and trainer.optimizer.t == 0
    assert set(trainer.optimizer.state) == {"m", "v"}
    assert all(not a.any() for slot in trainer.optimizer.state.values() for a in slot.values())
    before = trainer.model.params["Why"].copy()
    trainer.step()
    assert trainer.optimizer.t == 1 and not np.array_equal(before, trainer.model.params["Why"])
    assert trainer.iteration == 5      # switching does not restart the run
    trainer.clip = 1.0
    trainer.step()
    assert trainer.clip == 1.0


def test_clipping_is_elementwise_and_reported(make_trainer):
    trainer, _ = make_trainer(optimizer="sgd", learning_rate=1.0, clip=1e-3)
    x, y, h0 = trainer.current_window()
    _, grads, _ = trainer.model.loss_and_grads(x, y, h0)
    before = {k: v.copy() for k, v in trainer.model.params.items()}
    trainer.step()
    for k in PARAM_NAMES:
        np.testing.assert_allclose(trainer.model.params[k] - before[k], -np.clip(grads[k], -1e-3, 1e-3),
                                   rtol=1e-9, atol=1e-15)
    clipped = sum(int((np.abs(g) > 1e-3).sum()) for g in grads.values())
    total = sum(g.size for g in grads.values())
    assert trainer.last_stats["clip_fraction"] == clipped / total > 0
    for k in PARAM_NAMES:
        assert trainer.last_stats["grad_norms"][k] == pytest.approx(np.linalg.norm(grads[k]))


# ---------------------------------------------------------------- determinism


def run(make_trainer, seed, steps=25, **kwargs):
    trainer, _ = make_trainer(SHORT_TEXT, seed=seed, **kwargs)
    losses = [trainer.step() for _ in range(steps)]
    return trainer, losses


def test_same_seed_gives_the_same_trajectory(make_trainer, trainer_state):
    snapshot, assert_same_state = trainer_state
    for kwargs in ({}, {"optimizer": "adam", "learning_rate": 0.01, "batch_size": 2, "seq_length": 8}):
        a, losses_a = run(make_trainer, 4, **kwargs)
        b, losses_b = run(make_trainer, 4, **kwargs)
        assert losses_a == losses_b
        assert_same_state(snapshot(a), snapshot(b))
        assert a.sample(30).tolist() == b.sample(30).tolist()
        c, losses_c = run(make_trainer, 5, **kwargs)
        assert losses_c != losses_a
        assert not np.array_equal(c.model.params["Whh"], a.model.params["Whh"])


def test_clone_is_independent_and_continues_identically(make_trainer, trainer_state):
    snapshot, assert_same_state = trainer_state
    trainer, _ = make_trainer(SHORT_TEXT, optimizer="momentum", learning_rate=0.01, val_text=SHORT_TEXT[:30])
    trainer.step(7)
    trainer.validate()
    twin = trainer.clone()
    assert_same_state(snapshot(trainer), snapshot(twin))
    trainer.step(5)
    trainer.sample(10)
    twin.step(5)
    twin.sample(10)
    assert_same_state(snapshot(trainer), snapshot(twin))
    twin.step()
    assert twin.iteration == trainer.iteration + 1
    assert not np.array_equal(twin.model.params["Why"], trainer.model.params["Why"])


# ---------------------------------------------------------------- statistics, history, validation


def test_last_stats_and_history_record_each_step(make_trainer):
    trainer, _ = make_trainer(seq_length=12)
    assert trainer.last_stats is None and len(trainer.history) == 0
    losses = [trainer.step() for _ in range(6)]
    stats = trainer.last_stats
    assert stats["loss"] == losses[-1]
    assert set(stats["grad_norms"]) == set(PARAM_NAMES)
    assert 0.0 <= stats["clip_fraction"] <= 1.0
    assert stats["dh_norms"].shape == (12,) and (stats["dh_norms"] >= 0).all()
    hist = trainer.history.as_arrays()
    assert hist["iteration"].tolist() == [1, 2, 3, 4, 5, 6]
    assert hist["loss"].tolist() == losses
    assert hist["loss_min"].tolist() == hist["loss_max"].tolist() == losses   # one iteration per row so far
    assert hist["smooth_loss"][-1] == trainer.smooth_loss
    assert trainer.history.last()["iteration"] == 6
    assert math.isnan(trainer.step(0))          # n=0 runs nothing
    assert trainer.iteration == 6


def test_large_steps_keep_the_norms_of_dh_not_a_copy_of_it(make_trainer):
    from rnn_core.trainer import EAGER_DH_NORMS
    T, B, H = 16, 10, 500                          # T*B*H above the bound: summarised at once
    assert T * B * H > EAGER_DH_NORMS
    text = "the quick brown fox jumps over the lazy dog\n" * 40
    big, _ = make_trainer(text=text, hidden_size=H, seq_length=T, batch_size=B)
    twin, _ = make_trainer(text=text, hidden_size=H, seq_length=T, batch_size=B)
    big.step(2)
    twin.step(1)
    _, _, _, _, dh, _ = twin.model._loss_and_grads(*twin._windows(twin._window_start()[0]),
                                                    twin.hprev, keep_ps=False)
    stats = big.last_stats
    assert stats._dh is None and "dh_norms" in stats          # no (T,B,H) array kept
    np.testing.assert_allclose(stats["dh_norms"], np.sqrt((dh ** 2).sum(axis=(1, 2))), rtol=1e-10)


def test_validate_reports_bits_per_char_of_the_validation_text(make_trainer):
    val_text = "hello\nhello\nhel"
    trainer, vocab = make_trainer(val_text=val_text)
    trainer.step(20)
    bits = trainer.validate()
    assert bits == pytest.approx(trainer.model.evaluate(vocab.encode(val_text)) / math.log(2), rel=1e-12)
    assert trainer.val_history.as_arrays()["val_bits_per_char"].tolist() == [bits]
    assert trainer.val_history.as_arrays()["iteration"].tolist() == [20]
    no_val, _ = make_trainer()
    assert no_val.validate() is None


def test_a_model_that_overflows_validates_silently_to_a_value_not_recorded(make_trainer):
    trainer, _ = make_trainer(val_text="hello\nhello\nhel")
    trainer.step(3)
    trainer.validate()
    trainer.model.params["Why"][...] = 1e308       # outputs overflow, as just before a divergence
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not math.isfinite(trainer.validate())
    assert trainer.val_history.as_arrays()["iteration"].tolist() == [3]   # checkpoints store finite numbers


def test_data_is_stored_compactly_and_read_only(make_trainer):
    trainer, vocab = make_trainer()
    assert trainer.data.dtype == np.uint8 and not trainer.data.flags.writeable
    np.testing.assert_array_equal(trainer.data, vocab.encode("hello\n" * 50))


def test_a_long_runs_history_keeps_each_buckets_mean_min_and_max_of_the_loss(make_trainer):
    trainer, _ = make_trainer(seq_length=6)
    trainer.history = BoundedHistory(HISTORY_COLUMNS, capacity=8)   # a long run, in miniature
    losses, smooth = [], []
    for _ in range(40):
        losses.append(trainer.step())
        smooth.append(trainer.smooth_loss)
    hist = trainer.history.as_arrays()
    stride = int(trainer.history.stride)
    assert stride > 1 and hist["iteration"].tolist() == list(range(stride, 41, stride))
    for row, end in enumerate(hist["iteration"].astype(int)):
        bucket = losses[end - stride:end]
        assert hist["loss"][row] == pytest.approx(np.mean(bucket), rel=1e-12)
        assert hist["loss_min"][row] == min(bucket) and hist["loss_max"][row] == max(bucket)
        assert hist["smooth_loss"][row] == smooth[end - 1]        # a state: its value at the bucket's end


def test_the_loss_units_live_in_the_engine_once():
    """Bits per char and the untrained loss: one definition each, used by the app, CLI and charts."""
    from rnn_core.optim import OPTIMIZER_SLOTS, make_optimizer
    from rnn_core.trainer import bits_per_char, untrained_loss
    assert untrained_loss(65, 25) == -math.log(1.0 / 65) * 25          # min-char-rnn's own starting value
    assert bits_per_char(untrained_loss(64, 25), 25) == pytest.approx(6.0)
    np.testing.assert_allclose(bits_per_char(np.array([25 * math.log(2), 0.0]), 25), [1.0, 0.0])
    for name, slots in OPTIMIZER_SLOTS.items():                          # what checkpoints save
        assert tuple(make_optimizer(name, {"w": (2, 3)}).flat) == slots
