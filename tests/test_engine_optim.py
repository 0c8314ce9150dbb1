"""rnn_core.optim: each optimizer against its update rule written out here, the caller's gradient
left alone unless it is handed over as scratch, and the trainer's reused buffers never leaking
into results a caller keeps."""

import numpy as np
import pytest

from rnn_core import OPTIMIZERS
from rnn_core.optim import make_optimizer

SHAPES = {"W": (3, 4), "b": (4,)}
N = 16


def reference_steps(name, theta, grads, lr):
    """The textbook update rules, one step per gradient; returns theta after all of them."""
    theta = theta.copy()
    s1 = np.zeros_like(theta)
    s2 = np.zeros_like(theta)
    for t, g in enumerate(grads, start=1):
        if name == "adagrad":
            s1 += g * g
            theta += -lr * g / np.sqrt(s1 + 1e-8)
        elif name == "sgd":
            theta += -lr * g
        elif name == "momentum":
            s1 = 0.9 * s1 - lr * g
            theta += s1
        elif name == "rmsprop":
            s1 = 0.9 * s1 + 0.1 * g * g
            theta += -lr * g / (np.sqrt(s1) + 1e-8)
        elif name == "adam":
            s1 = 0.9 * s1 + 0.1 * g
            s2 = 0.999 * s2 + 0.001 * g * g
            theta += -lr * (s1 / (1 - 0.9 ** t)) / (np.sqrt(s2 / (1 - 0.999 ** t)) + 1e-8)
    return theta


@pytest.mark.parametrize("name", OPTIMIZERS)
@pytest.mark.parametrize("consume", [False, True])
def test_update_follows_the_rule_and_keeps_the_gradient_unless_consumed(name, consume):
    rng = np.random.default_rng(3)
    theta0 = rng.standard_normal(N)
    grads = [rng.standard_normal(N) for _ in range(4)]
    opt = make_optimizer(name, SHAPES)
    theta = theta0.copy()
    for g in grads:
        g_in, g_sq = g.copy(), g * g
        opt.update(theta, g_in, 0.05, g_sq, consume=consume)
        if not consume:
            np.testing.assert_array_equal(g_in, g)        # the caller's arrays are untouched
            np.testing.assert_array_equal(g_sq, g * g)
    np.testing.assert_allclose(theta, reference_steps(name, theta0, grads, 0.05), rtol=1e-12, atol=1e-14)
    assert opt.t == len(grads)


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_consuming_and_copying_updates_give_identical_numbers(name):
    rng = np.random.default_rng(4)
    grads = [rng.standard_normal(N) for _ in range(3)]
    thetas = []
    for consume, pass_sq in ((False, False), (True, True), (True, False)):
        opt, theta = make_optimizer(name, SHAPES), np.ones(N)
        for g in grads:
            opt.update(theta, g.copy(), 0.1, g * g if pass_sq else None, consume=consume)
        thetas.append(theta)
    np.testing.assert_array_equal(thetas[0], thetas[1])
    np.testing.assert_array_equal(thetas[0], thetas[2])


def test_stats_of_an_earlier_step_survive_later_steps(make_trainer):
    """The trainer reuses one workspace every step; what it hands out must not change afterwards."""
    trainer, _ = make_trainer(seq_length=12)
    trainer.step()
    stats = trainer.last_stats
    before = {"loss": stats["loss"], "grad_norms": dict(stats["grad_norms"])}
    trainer.step(3)
    dh_norms = stats["dh_norms"]   # computed lazily, after three more steps
    replay, _ = make_trainer(seq_length=12)
    replay.step()
    np.testing.assert_array_equal(dh_norms, replay.last_stats["dh_norms"])
    assert stats["loss"] == before["loss"] and stats["grad_norms"] == before["grad_norms"]


def test_loss_and_grads_results_are_not_overwritten_by_training(make_trainer):
    trainer, _ = make_trainer(seq_length=12)
    x, y, h0 = trainer.current_window()
    loss, grads, h_last = trainer.model.loss_and_grads(x, y, h0)
    kept = {k: v.copy() for k, v in grads.items()}, h_last.copy()
    trainer.step(2)
    for k, v in kept[0].items():
        np.testing.assert_array_equal(grads[k], v)
    np.testing.assert_array_equal(h_last, kept[1])


@pytest.mark.parametrize("name", OPTIMIZERS)
def test_a_pickled_optimizer_keeps_its_state_views_on_the_flat_state(name):
    """The app sends trainers between processes by pickle: after the trip, ``state`` (what
    checkpoints save) must still read what the updates write into ``flat``."""
    import pickle
    rng = np.random.default_rng(1)
    opt = make_optimizer(name, SHAPES)
    theta = rng.standard_normal(N)
    opt.update(theta, rng.standard_normal(N), 0.1)
    copy = pickle.loads(pickle.dumps(opt))
    copy.update(theta, rng.standard_normal(N), 0.1)       # written into copy.flat
    for slot, flat in copy.flat.items():
        joined = np.concatenate([v.ravel() for v in copy.state[slot].values()])
        np.testing.assert_array_equal(joined, flat)
        assert all(np.shares_memory(v, flat) for v in copy.state[slot].values())
    assert copy.t == 2
