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


def param_views(flat: np.ndarray, shapes: dict[str, tuple]) -> dict[str, np.ndarray]:
    """Views of consecutive blocks of ``flat``, one per name, in the order of ``shapes``."""
    views, offset = {}, 0
    for name, shape in shapes.items():
        size = int(np.prod(shape))
        views[name] = flat[offset: offset + size].reshape(shape)
        offset += size
    return views


class Optimizer:
    """Updates theta (N,) in place from a gradient g (N,).

    Subclasses implement ``_update(theta, g, lr, g_sq)`` and may overwrite ``g`` and ``g_sq`` as
    scratch space: with no scratch arrays of its own the update touches four arrays instead of six,
    and at hidden size 100 whether those fit in the CPU cache decides its speed (~10% of a step).
    """
    name = ""
    slots: tuple[str, ...] = ()   # per-parameter state, e.g. ("mem",)

    def __init__(self, shapes: dict[str, tuple], dtype):
        self.size = sum(int(np.prod(s)) for s in shapes.values())
        self.flat = {slot: np.zeros(self.size, dtype=dtype) for slot in self.slots}
        self.state = {slot: param_views(a, shapes) for slot, a in self.flat.items()}
        self._scratch = None
        self.t = 0   # number of updates made (Adam's bias correction)

    def update(self, theta: np.ndarray, g: np.ndarray, lr: float, g_sq: np.ndarray | None = None,
               consume: bool = False) -> None:
        """theta (N,) += step(g (N,)), in place. ``g_sq``: g * g if the caller has it already.
        ``consume=True``: g and g_sq are the caller's scratch and may be overwritten (the trainer's
        fast path); otherwise they are copied first and left as they were."""
        if not consume:   # work on copies: the caller keeps its arrays
            g = self._copy_into(0, g)
            g_sq = None if g_sq is None else self._copy_into(1, g_sq)
        if g_sq is None:
            g_sq = np.multiply(g, g, out=self._scratch_row(1, g.dtype))
        self._update(theta, g, lr, g_sq)
        self.t += 1

    def _scratch_row(self, row: int, dtype) -> np.ndarray:
        """Row 0 (for g) or 1 (for g²) of two scratch arrays (N,), made on first use: only callers
        that keep their gradient pay for them."""
        if self._scratch is None:
            self._scratch = np.empty((2, self.size), dtype=dtype)
        return self._scratch[row]

    def _copy_into(self, row: int, values: np.ndarray) -> np.ndarray:
        out = self._scratch_row(row, values.dtype)
        np.copyto(out, values)
        return out

    def _update(self, theta, g, lr, g_sq):
        raise NotImplementedError

    # Pickle copies every array on its own, so ``state``'s views would come back detached from
    # ``flat`` (the update writes ``flat``; views read stale values). Send ``flat`` and the shapes,
    # and make the views again; the scratch rows are rebuilt on first use.
    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        views = next(iter(self.state.values()), {})
        state["state"] = {name: v.shape for name, v in views.items()}   # shapes: same for every slot
        state["_scratch"] = None
        return state

    def __setstate__(self, state: dict) -> None:
        shapes = state.pop("state")
        self.__dict__.update(state)
        self.state = {slot: param_views(a, shapes) for slot, a in self.flat.items()}


class Adagrad(Optimizer):
    """mem += g^2; theta += -lr g / sqrt(mem + 1e-8)  (min-char-rnn, in its order of operations)."""
    name, slots = "adagrad", ("mem",)

    def _update(self, theta, g, lr, g_sq):
        mem = self.flat["mem"]
        mem += g_sq
        denom = np.add(mem, EPS, out=g_sq)
        np.sqrt(denom, out=denom)
        g *= -lr
        g /= denom
        theta += g


class SGD(Optimizer):
    name = "sgd"

    def _update(self, theta, g, lr, g_sq):
        g *= -lr
        theta += g


class Momentum(Optimizer):
    """v = mu v - lr g; theta += v."""
    name, slots, mu = "momentum", ("velocity",), 0.9

    def _update(self, theta, g, lr, g_sq):
        v = self.flat["velocity"]
        v *= self.mu
        g *= lr
        v -= g
        theta += v


class RMSProp(Optimizer):
    """cache = rho cache + (1 - rho) g^2; theta += -lr g / (sqrt(cache) + 1e-8)."""
    name, slots, rho = "rmsprop", ("cache",), 0.9

    def _update(self, theta, g, lr, g_sq):
        cache = self.flat["cache"]
        cache *= self.rho
        g_sq *= 1 - self.rho
        cache += g_sq
        denom = np.sqrt(cache, out=g_sq)
        denom += EPS
        g *= -lr
        g /= denom
        theta += g


class Adam(Optimizer):
    """Adam with bias correction (beta1 0.9, beta2 0.999, eps 1e-8)."""
    name, slots, beta1, beta2 = "adam", ("m", "v"), 0.9, 0.999

    def _update(self, theta, g, lr, g_sq):
        m, v = self.flat["m"], self.flat["v"]
        t = self.t + 1
        m *= self.beta1
        g *= 1 - self.beta1
        m += g
        v *= self.beta2
        g_sq *= 1 - self.beta2
        v += g_sq
        denom = np.divide(v, 1 - self.beta2 ** t, out=g_sq)
        np.sqrt(denom, out=denom)
        denom += EPS
        step = np.divide(m, 1 - self.beta1 ** t, out=g)
        step *= -lr
        step /= denom
        theta += step


_CLASSES = {cls.name: cls for cls in (Adagrad, SGD, Momentum, RMSProp, Adam)}
# The optimizers by name, in the order menus list them, and each one's per-parameter state slots
# (what a checkpoint saves beside the weights).
OPTIMIZERS: tuple[str, ...] = tuple(_CLASSES)
OPTIMIZER_SLOTS: dict[str, tuple[str, ...]] = {name: cls.slots for name, cls in _CLASSES.items()}


def make_optimizer(name: str, shapes: dict[str, tuple], dtype=np.float64) -> Optimizer:
    if name not in _CLASSES:
        raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}; got {name!r}")
    return _CLASSES[name](shapes, dtype)
