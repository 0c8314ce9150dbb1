"""Reference implementation of the classic per-timestep character RNN training loop.

This is the slow, straightforward formulation the engine is measured against: column
vectors of shape (H, 1), a one-hot column built for every timestep, and per-timestep
values kept in dicts keyed by the timestep index. It is written from the equations
(not copied) and is deliberately unoptimised: its job is to be the baseline for
bench/speed.py and an independent oracle that tests may compare the engine with.

Math, for one window of T characters (x_t one-hot (V,1), h_{-1} = hprev (H,1)):
    h_t = tanh(Wxh x_t + Whh h_{t-1} + bh)          (H,1)
    y_t = Why h_t + by                               (V,1)
    p_t = softmax(y_t)                               (V,1)
    L   = sum_t -log p_t[target_t]                   nats per window
Backward (through time, t = T-1 .. 0), with dh_next = 0 at t = T-1:
    dy      = p_t - onehot(target_t)
    dWhy   += dy h_t^T ;  dby += dy
    dh      = Why^T dy + dh_next
    dh_raw  = (1 - h_t^2) * dh
    dbh    += dh_raw ;  dWxh += dh_raw x_t^T ;  dWhh += dh_raw h_{t-1}^T
    dh_next = Whh^T dh_raw
Every gradient is clipped element-wise to [-clip, clip]; Adagrad then does
    mem += g^2 ;  param -= lr * g / sqrt(mem + 1e-8).
"""

from __future__ import annotations

import math

import numpy as np

PARAM_NAMES = ("Wxh", "Whh", "Why", "bh", "by")
_ADAGRAD_EPS = 1e-8


def init_params(vocab_size: int, hidden_size: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Classic small-Gaussian initialisation, deterministic in ``seed``.

    Draw order (must match VanillaRNN(seed=...) so equal seeds give equal weights):
        rng = np.random.default_rng(seed)
        Wxh = rng.standard_normal((H, V)) * 0.01
        Whh = rng.standard_normal((H, H)) * 0.01
        Why = rng.standard_normal((V, H)) * 0.01
        bh  = zeros (H,) ; by = zeros (V,)     (no draws)

    Returns a dict in the engine's shapes: "Wxh" (H,V), "Whh" (H,H), "Why" (V,H),
    "bh" (H,), "by" (V,), all float64.
    """
    rng = np.random.default_rng(seed)
    H, V = int(hidden_size), int(vocab_size)
    wxh = rng.standard_normal((H, V)) * 0.01
    whh = rng.standard_normal((H, H)) * 0.01
    why = rng.standard_normal((V, H)) * 0.01
    return {"Wxh": wxh, "Whh": whh, "Why": why, "bh": np.zeros(H), "by": np.zeros(V)}


def _one_hot_column(index: int, size: int) -> np.ndarray:
    """A (size, 1) column with a single 1 at ``index``."""
    column = np.zeros((size, 1))
    column[index, 0] = 1.0
    return column


class ClassicRNN:
    """The classic training loop: one window of ``seq_length`` chars per iteration, batch 1.

    data_ids: 1-D sequence of int character ids in [0, vocab_size).
    Internally biases are columns (H,1)/(V,1); ``params`` exposes engine shapes.
    """

    def __init__(self, data_ids, vocab_size: int, hidden_size: int = 100,
                 seq_length: int = 25, learning_rate: float = 0.1, seed: int = 0,
                 clip: float = 5.0):
        self.data = np.asarray(data_ids, dtype=np.int64).ravel()
        self.vocab_size = int(vocab_size)
        self.hidden_size = int(hidden_size)
        self.seq_length = int(seq_length)
        self.learning_rate = float(learning_rate)
        self.clip = float(clip)
        if self.data.size < self.seq_length + 2:
            raise ValueError(
                f"data_ids must hold at least seq_length + 2 = {self.seq_length + 2} ids, "
                f"got {self.data.size}")
        self.params = init_params(self.vocab_size, self.hidden_size, seed)
        # Adagrad accumulators, same (column) shapes as the internal weights.
        self._memory = {name: np.zeros_like(w) for name, w in self._weights.items()}
        self.pointer = 0
        self.hprev = np.zeros((self.hidden_size, 1))
        self.iteration = 0
        # Loss of a uniform prediction over a whole window, the classic starting value.
        self.smooth_loss = -math.log(1.0 / self.vocab_size) * self.seq_length
        self.last_loss = float("nan")

    # -- parameters in engine shapes ------------------------------------------------
    @property
    def params(self) -> dict[str, np.ndarray]:
        """Copies in engine shapes: Wxh (H,V), Whh (H,H), Why (V,H), bh (H,), by (V,)."""
        w = self._weights
        return {"Wxh": w["Wxh"].copy(), "Whh": w["Whh"].copy(), "Why": w["Why"].copy(),
                "bh": w["bh"].ravel().copy(), "by": w["by"].ravel().copy()}

    @params.setter
    def params(self, values: dict[str, np.ndarray]) -> None:
        H, V = self.hidden_size, self.vocab_size
        expected = {"Wxh": (H, V), "Whh": (H, H), "Why": (V, H), "bh": (H,), "by": (V,)}
        weights = {}
        for name, shape in expected.items():
            array = np.array(values[name], dtype=np.float64)
            if array.shape != shape:
                raise ValueError(f"params[{name!r}] must have shape {shape}, got {array.shape}")
            weights[name] = array
        weights["bh"] = weights["bh"].reshape(H, 1)
        weights["by"] = weights["by"].reshape(V, 1)
        self._weights = weights

    # -- one window ---------------------------------------------------------------
    def loss_and_grads(self, inputs, targets, hprev=None):
        """Forward + backward over one window, exactly as the classic loop does it.

        inputs, targets: length-T int sequences; hprev: (H,) or (H,1) or None (zeros).
        Returns (loss in nats summed over the window, grads in engine shapes
        *before* clipping, h_last (H,)).
        """
        grads_columns, loss, h_last = self._window(inputs, targets, hprev)
        grads = {name: g.copy() for name, g in grads_columns.items()}
        grads["bh"] = grads["bh"].ravel()
        grads["by"] = grads["by"].ravel()
        return loss, grads, h_last.ravel().copy()

    def _window(self, inputs, targets, hprev):
        W = self._weights
        Wxh, Whh, Why, bh, by = W["Wxh"], W["Whh"], W["Why"], W["bh"], W["by"]
        V = self.vocab_size
        xs, hs, ys, ps = {}, {}, {}, {}
        hs[-1] = (np.zeros((self.hidden_size, 1)) if hprev is None
                  else np.array(hprev, dtype=np.float64).reshape(self.hidden_size, 1))
        loss = 0.0
        for t in range(len(inputs)):
            xs[t] = _one_hot_column(inputs[t], V)
            hs[t] = np.tanh(Wxh @ xs[t] + Whh @ hs[t - 1] + bh)
            ys[t] = Why @ hs[t] + by
            # Shift by the max before exponentiating so large logits cannot overflow.
            shifted = np.exp(ys[t] - np.max(ys[t]))
            ps[t] = shifted / np.sum(shifted)
            loss += -math.log(ps[t][targets[t], 0])

        grads = {name: np.zeros_like(w) for name, w in W.items()}
        dh_next = np.zeros((self.hidden_size, 1))
        for t in reversed(range(len(inputs))):
            dy = ps[t].copy()
            dy[targets[t], 0] -= 1.0
            grads["Why"] += dy @ hs[t].T
            grads["by"] += dy
            dh = Why.T @ dy + dh_next
            dh_raw = (1.0 - hs[t] * hs[t]) * dh
            grads["bh"] += dh_raw
            grads["Wxh"] += dh_raw @ xs[t].T
            grads["Whh"] += dh_raw @ hs[t - 1].T
            dh_next = Whh.T @ dh_raw
        return grads, loss, hs[len(inputs) - 1]

    # -- training loop ----------------------------------------------------------------
    def step(self, n: int = 1) -> float:
        """Run ``n`` classic iterations; returns the loss of the last window (nats)."""
        T = self.seq_length
        for _ in range(int(n)):
            # Wrap to the start (and forget the state) when the next window would not fit.
            if self.pointer + T + 1 >= self.data.size or self.iteration == 0:
                self.hprev = np.zeros((self.hidden_size, 1))
                self.pointer = 0
            inputs = self.data[self.pointer:self.pointer + T]
            targets = self.data[self.pointer + 1:self.pointer + T + 1]
            grads, loss, self.hprev = self._window(inputs, targets, self.hprev)
            for g in grads.values():
                np.clip(g, -self.clip, self.clip, out=g)
            self.smooth_loss = self.smooth_loss * 0.999 + loss * 0.001
            self.last_loss = loss
            for name, w in self._weights.items():
                g = grads[name]
                mem = self._memory[name]
                mem += g * g
                w -= self.learning_rate * g / np.sqrt(mem + _ADAGRAD_EPS)
            self.pointer += T
            self.iteration += 1
        return self.last_loss
