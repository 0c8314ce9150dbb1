"""Shared fixtures for the rnn_core engine tests: small deterministic texts, a trainer factory, an
independent per-timestep reference of the RNN math, and exact snapshots of a trainer's state."""

import pathlib

# Before NumPy: one BLAS thread, as in the app's server and its trainer processes (whose results
# some tests compare with this process's bit for bit; 1 and 2 threads round larger products differently).
import playground  # noqa: F401
import numpy as np
import pytest


@pytest.fixture(autouse=True)
def _private_data_dir(tmp_path_factory, monkeypatch):
    """Saved runs of app tests go to a temporary directory, never the user's cache."""
    monkeypatch.setenv("RNN_PLAYGROUND_DATA_DIR", str(tmp_path_factory.mktemp("runs")))


@pytest.fixture(autouse=True)
def _no_background_sweeper(monkeypatch):
    """App tests' sessions are saved by their own script runs; tests that look at the sweeper call
    saver.sweep() with their own clock. Sessions of one test are forgotten before the next."""
    from playground.runs import saver
    monkeypatch.setattr(saver, "SWEEP_IN_BACKGROUND", False)
    yield
    with saver._LIVE_GUARD:
        saver._LIVE.clear()

from rnn_core import PARAM_NAMES, Trainer, VanillaRNN, Vocab

HELLO_TEXT = "hello\n" * 50


def per_timestep_loss_and_grads(params, inputs, targets, hprev):
    """The textbook loop (column vectors, one-hot inputs, dicts per time step), written
    independently of rnn_core. Returns (loss, grads, h_last (H,)) for one stream."""
    Wxh, Whh, Why = params["Wxh"], params["Whh"], params["Why"]
    bh, by = params["bh"][:, None], params["by"][:, None]
    xs, hs, ps = {}, {-1: np.asarray(hprev, dtype=np.float64).reshape(-1, 1)}, {}
    loss = 0.0
    for t, (i, j) in enumerate(zip(inputs, targets)):
        xs[t] = np.zeros((Wxh.shape[1], 1))
        xs[t][i] = 1.0
        hs[t] = np.tanh(Wxh @ xs[t] + Whh @ hs[t - 1] + bh)
        e = np.exp(Why @ hs[t] + by - np.max(Why @ hs[t] + by))
        ps[t] = e / e.sum()
        loss -= np.log(ps[t][j, 0])
    grads = {k: np.zeros_like(params[k], dtype=np.float64) for k in PARAM_NAMES}
    dh_next = np.zeros_like(hs[-1])
    for t in reversed(range(len(inputs))):
        dy = ps[t].copy()
        dy[targets[t]] -= 1.0
        grads["Why"] += dy @ hs[t].T
        grads["by"] += dy[:, 0]
        dh_raw = (1.0 - hs[t] ** 2) * (Why.T @ dy + dh_next)
        grads["Wxh"] += dh_raw @ xs[t].T
        grads["Whh"] += dh_raw @ hs[t - 1].T
        grads["bh"] += dh_raw[:, 0]
        dh_next = Whh.T @ dh_raw
    return float(loss), grads, hs[len(inputs) - 1][:, 0]


@pytest.fixture
def reference_rnn():
    """The per-timestep reference implementation (see per_timestep_loss_and_grads)."""
    return per_timestep_loss_and_grads


def perturb(model, scale=0.3, seed=123):
    """Add N(0, scale) to every parameter: realistic magnitudes instead of the 0.01 init."""
    rng = np.random.default_rng(seed)
    for k in PARAM_NAMES:
        model.params[k] += rng.normal(0.0, scale, model.params[k].shape).astype(model.dtype)
    return model


@pytest.fixture
def perturbed_model():
    """factory(vocab_size, hidden_size, seed=0, scale=0.3) -> float64 VanillaRNN with perturbed weights."""
    def make(vocab_size, hidden_size, seed=0, scale=0.3):
        return perturb(VanillaRNN(vocab_size, hidden_size, seed=seed), scale, seed + 100)
    return make


@pytest.fixture
def make_trainer():
    """factory(text=HELLO_TEXT, hidden_size=16, seed=0, dtype=float64, val_text=None, **trainer_kwargs)
    -> (trainer, vocab)."""
    def make(text=HELLO_TEXT, hidden_size=16, seed=0, dtype=np.float64, val_text=None, **kwargs):
        vocab = Vocab.from_text(text)
        kwargs.setdefault("seq_length", 10)
        val = None if val_text is None else vocab.encode(val_text)
        model = VanillaRNN(vocab.size, hidden_size, seed=seed, dtype=dtype)
        return Trainer(model, vocab.encode(text), val_ids=val, **kwargs), vocab
    return make


def snapshot(trainer):
    """Copies of everything that makes up a trainer's training state."""
    opt = trainer.optimizer
    return {
        "params": {k: v.copy() for k, v in trainer.model.params.items()},
        "opt_state": {s: {k: a.copy() for k, a in arrs.items()} for s, arrs in opt.state.items()},
        "opt_t": opt.t, "optimizer": opt.name, "learning_rate": trainer.learning_rate, "clip": trainer.clip,
        "iteration": trainer.iteration, "position": trainer.position, "chars_seen": trainer.chars_seen,
        "hprev": trainer.hprev.copy(), "smooth_loss": trainer.smooth_loss,
        "history": trainer.history.to_matrix(), "val_history": trainer.val_history.to_matrix(),
        "rng_state": trainer.rng.bit_generator.state, "metadata": dict(trainer.metadata),
    }


def assert_same_state(a, b):
    """Exact (bit-for-bit) equality of two snapshots, dtypes included."""
    assert a.keys() == b.keys()
    for key in a:
        if key == "params":
            for k in PARAM_NAMES:
                assert a[key][k].dtype == b[key][k].dtype, k
                assert np.array_equal(a[key][k], b[key][k]), f"param {k} differs"
        elif key == "opt_state":
            assert a[key].keys() == b[key].keys()
            for slot in a[key]:
                for k in PARAM_NAMES:
                    assert np.array_equal(a[key][slot][k], b[key][slot][k]), f"optimizer {slot} of {k} differs"
        elif isinstance(a[key], np.ndarray):
            assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), f"{key} differs"
        else:
            assert a[key] == b[key], f"{key} differs: {a[key]!r} != {b[key]!r}"


@pytest.fixture
def trainer_state():
    """(snapshot, assert_same_state): exact copies of a trainer's state and their exact comparison."""
    return snapshot, assert_same_state


DASHBOARD = str(pathlib.Path(__file__).resolve().parents[1] / "dashboard.py")


@pytest.fixture
def open_page():
    """factory(page, timeout=30) -> an AppTest of the app (dashboard.py) switched to ``page``
    (e.g. "app_pages/guess.py") and run once, without an exception."""
    from streamlit.testing.v1 import AppTest

    def open_one(page: str, timeout: float = 30):
        at = AppTest.from_file(DASHBOARD, default_timeout=timeout)
        at.run()
        at.switch_page(page).run()
        assert not at.exception
        return at
    return open_one
