"""Optimizers over one flat parameter vector, updated in place.

The trainer hands over the flat parameters and the flat gradient after checking the gradient is
finite and clipping it to [-clip, clip]. With bounded, finite gradients none of these updates can
produce NaN or inf, so updating in place keeps the promise that a diverging step changes nothing:
divergence is caught before the update. ``state[slot][name]`` are views of the flat state arrays,
shaped like the parameters, for checkpoints and views.
"""
from __future__ import annotations

import numpy as np

EPS = 1e-8
OPTIMIZERS = ("adagrad", "sgd", "momentum", "rmsprop", "adam")


def param_views(flat: np.ndarray, shapes: dict[str, tuple]) -> dict[str, np.ndarray]:
    """Views of consecutive blocks of ``flat``, one per name, in the order of ``shapes``."""
    views, offset = {}, 0
    for name, shape in shapes.items():
        size = int(np.prod(shape))
        views[name] = flat[offset: offset + size].reshape(shape)
        offset += size
    return views


class Optimizer:
    name = ""
    slots: tuple[str, ...] = ()   # per-parameter state, e.g. ("mem",)

    def __init__(self, shapes: dict[str, tuple], dtype):
        size = sum(int(np.prod(s)) for s in shapes.values())
        self.flat = {slot: np.zeros(size, dtype=dtype) for slot in self.slots}
        self.state = {slot: param_views(a, shapes) for slot, a in self.flat.items()}
        self._scratch = np.empty(size, dtype=dtype), np.empty(size, dtype=dtype)
        self.t = 0   # number of updates made (Adam's bias correction)

    def update(self, theta: np.ndarray, g: np.ndarray, lr: float, g_sq: np.ndarray | None = None) -> None:
        """theta (N,) += step(g (N,)), in place. ``g_sq``: g * g if the caller has it already."""
        s1, s2 = self._scratch
        if g_sq is None and "sq" in self._uses:
            g_sq = np.multiply(g, g, out=s2)
        self._update(theta, g, lr, g_sq, s1, s2)
        self.t += 1

    _uses = ()   # "sq": the update needs g * g

    def _update(self, theta, g, lr, g_sq, s1, s2):
        raise NotImplementedError


class Adagrad(Optimizer):
    """mem += g^2; theta += -lr g / sqrt(mem + 1e-8)  (min-char-rnn, in its order of operations)."""
    name, slots, _uses = "adagrad", ("mem",), ("sq",)

    def _update(self, theta, g, lr, g_sq, s1, s2):
        mem = self.flat["mem"]
        mem += g_sq
        np.multiply(g, -lr, out=s1)
        np.add(mem, EPS, out=s2)
        np.sqrt(s2, out=s2)
        s1 /= s2
        theta += s1


class SGD(Optimizer):
    name = "sgd"

    def _update(self, theta, g, lr, g_sq, s1, s2):
        np.multiply(g, -lr, out=s1)
        theta += s1


class Momentum(Optimizer):
    """v = mu v - lr g; theta += v."""
    name, slots, mu = "momentum", ("velocity",), 0.9

    def _update(self, theta, g, lr, g_sq, s1, s2):
        v = self.flat["velocity"]
        v *= self.mu
        np.multiply(g, lr, out=s1)
        v -= s1
        theta += v


class RMSProp(Optimizer):
    """cache = rho cache + (1 - rho) g^2; theta += -lr g / (sqrt(cache) + 1e-8)."""
    name, slots, rho = "rmsprop", ("cache",), 0.9

    def _update(self, theta, g, lr, g_sq, s1, s2):
        cache = self.flat["cache"]
        cache *= self.rho
        np.multiply(g, g, out=s1)
        s1 *= 1 - self.rho
        cache += s1
        np.sqrt(cache, out=s2)
        s2 += EPS
        np.multiply(g, -lr, out=s1)
        s1 /= s2
        theta += s1


class Adam(Optimizer):
    """Adam with bias correction (beta1 0.9, beta2 0.999, eps 1e-8)."""
    name, slots, beta1, beta2 = "adam", ("m", "v"), 0.9, 0.999

    def _update(self, theta, g, lr, g_sq, s1, s2):
        m, v = self.flat["m"], self.flat["v"]
        t = self.t + 1
        m *= self.beta1
        np.multiply(g, 1 - self.beta1, out=s1)
        m += s1
        v *= self.beta2
        np.multiply(g, g, out=s1)
        s1 *= 1 - self.beta2
        v += s1
        np.divide(v, 1 - self.beta2 ** t, out=s2)
        np.sqrt(s2, out=s2)
        s2 += EPS
        np.divide(m, 1 - self.beta1 ** t, out=s1)
        s1 *= -lr
        s1 /= s2
        theta += s1


_CLASSES = {cls.name: cls for cls in (Adagrad, SGD, Momentum, RMSProp, Adam)}


def make_optimizer(name: str, shapes: dict[str, tuple], dtype=np.float64) -> Optimizer:
    if name not in _CLASSES:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {name!r}")
    return _CLASSES[name](shapes, dtype)
