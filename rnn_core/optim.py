"""Optimizers over a dict of parameter arrays.

Each optimizer first computes the step and its new state into fresh arrays (``propose``), so the
trainer can check them for NaN/inf before anything is written (``commit``): a diverging step never
touches the weights or the optimizer state.
"""
from __future__ import annotations

import numpy as np

EPS = 1e-8
OPTIMIZERS = ("adagrad", "sgd", "momentum", "rmsprop", "adam")


class Optimizer:
    name = ""
    slots: tuple[str, ...] = ()   # per-parameter state arrays, e.g. ("mem",)

    def __init__(self, params: dict):
        self.state = {slot: {k: np.zeros_like(v) for k, v in params.items()} for slot in self.slots}
        self.t = 0   # number of committed steps (Adam's bias correction)

    def propose(self, grads: dict, lr: float):
        """-> (deltas, new_state): param += delta; nothing is modified."""
        raise NotImplementedError

    def commit(self, params: dict, deltas: dict, new_state: dict) -> None:
        for k, d in deltas.items():
            params[k] += d
        for slot, arrays in new_state.items():
            for k, a in arrays.items():
                self.state[slot][k][...] = a
        self.t += 1


class Adagrad(Optimizer):
    """mem += g^2; theta -= lr g / sqrt(mem + 1e-8) (min-char-rnn)."""
    name, slots = "adagrad", ("mem",)

    def propose(self, grads, lr):
        mem = {k: self.state["mem"][k] + g * g for k, g in grads.items()}
        return {k: -lr * g / np.sqrt(mem[k] + EPS) for k, g in grads.items()}, {"mem": mem}


class SGD(Optimizer):
    name = "sgd"

    def propose(self, grads, lr):
        return {k: -lr * g for k, g in grads.items()}, {}


class Momentum(Optimizer):
    """v = mu v - lr g; theta += v."""
    name, slots, mu = "momentum", ("velocity",), 0.9

    def propose(self, grads, lr):
        v = {k: self.mu * self.state["velocity"][k] - lr * g for k, g in grads.items()}
        return v, {"velocity": v}


class RMSProp(Optimizer):
    """cache = rho cache + (1 - rho) g^2; theta -= lr g / (sqrt(cache) + 1e-8)."""
    name, slots, rho = "rmsprop", ("cache",), 0.9

    def propose(self, grads, lr):
        cache = {k: self.rho * self.state["cache"][k] + (1 - self.rho) * g * g for k, g in grads.items()}
        return {k: -lr * g / (np.sqrt(cache[k]) + EPS) for k, g in grads.items()}, {"cache": cache}


class Adam(Optimizer):
    """Adam with bias correction (beta1 0.9, beta2 0.999, eps 1e-8)."""
    name, slots, beta1, beta2 = "adam", ("m", "v"), 0.9, 0.999

    def propose(self, grads, lr):
        t = self.t + 1
        m = {k: self.beta1 * self.state["m"][k] + (1 - self.beta1) * g for k, g in grads.items()}
        v = {k: self.beta2 * self.state["v"][k] + (1 - self.beta2) * g * g for k, g in grads.items()}
        c1, c2 = 1 - self.beta1 ** t, 1 - self.beta2 ** t
        deltas = {k: -lr * (m[k] / c1) / (np.sqrt(v[k] / c2) + EPS) for k in grads}
        return deltas, {"m": m, "v": v}


_CLASSES = {cls.name: cls for cls in (Adagrad, SGD, Momentum, RMSProp, Adam)}


def make_optimizer(name: str, params: dict) -> Optimizer:
    if name not in _CLASSES:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {name!r}")
    return _CLASSES[name](params)
