"""Data for the Backprop page: backprop through time on the next training window, as tables and series.

Pure Python over NumPy and pandas (no streamlit, no plotly), so every number the page shows is
tested without a server. Shapes: T window length, H hidden size, V vocabulary size.

Everything starts from ``window_backprop(run)``: the window the next step trains on (stream 0 when
batch size > 1) and ``model.backprop_trace`` of it, i.e. the exact intermediates the engine computes.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import pandas as pd

from playground.runs.run import Run, window_chars
from playground.views.textviews import visible_char
from rnn_core import PARAM_NAMES, VanillaRNN
from rnn_core.gradcheck import gradcheck_table

# A gradient check row passes when |a − n| / (|a| + |n|) is below this (float64 central differences).
REL_TOL = 1e-5
FD_DELTA = 1e-5                    # the step gradcheck_table uses for central differences
CHECKS_PER_PARAM = 5               # entries checked per parameter on a small model
# Work allowed for one check, in multiply-adds (about T·H·(H+V) per loss evaluation): the classic
# model (H 100, T 25, V ~65) gets the full 5 entries per parameter; big models get fewer.
GRADCHECK_BUDGET = 2e8
WEIGHT_NAMES = ("Wxh", "Whh", "Why")
SPECTRAL_POINTS_KEPT = 500


# ---------------------------------------------------------------- the window and its trace
@dataclass(frozen=True)
class WindowBackprop:
    """One window and every intermediate of BPTT on it.

    inputs, targets: (T,) ids; h0: (H,); chars / target_chars: the T input / target characters;
    trace: ``VanillaRNN.backprop_trace`` output ("hs" (T,H), "h_prev" (T,H), "ps" (T,V), "dy" (T,V),
    "dh" (T,H), "dh_raw" (T,H), "losses" (T,), "loss", "grads" {name: array shaped like the param}).
    """

    inputs: np.ndarray
    targets: np.ndarray
    h0: np.ndarray
    chars: str
    target_chars: str
    trace: dict
    iteration: int

    @property
    def length(self) -> int:
        return int(self.inputs.shape[0])


def window_backprop(run: Run) -> WindowBackprop:
    """BPTT of the current model on the window the next training step will use."""
    inputs, targets, h0, chars = window_chars(run)
    trace = run.trainer.model.backprop_trace(inputs, targets, h0)
    return WindowBackprop(inputs, targets, h0, chars, run.vocab.decode(targets), trace, run.iteration)


def step_label(window: WindowBackprop, t: int) -> str:
    """Slider label for step t: its input and target character, whitespace made visible."""
    return f"t = {t}: '{visible_char(window.chars[t])}' → '{visible_char(window.target_chars[t])}'"


# ---------------------------------------------------------------- one time step
def dh_parts(params: dict, window: WindowBackprop, t: int) -> tuple[np.ndarray, np.ndarray]:
    """The two terms of dh_t = W_hyᵀ dy_t + W_hhᵀ dh_raw_{t+1}: (from the output (H,), from the future (H,)).

    The future term is zero at the last step: nothing later in the window depends on h_{T−1}.
    """
    tr = window.trace
    from_output = params["Why"].T @ tr["dy"][t]
    if t + 1 < window.length:
        from_future = params["Whh"].T @ tr["dh_raw"][t + 1]
    else:
        from_future = np.zeros_like(from_output)
    return from_output, from_future


def step_facts(params: dict, window: WindowBackprop, t: int) -> dict:
    """Scalars of step t: input/target character, p_t[target], loss_t (nats) and the gradient norms."""
    _check_step(window, t)
    tr = window.trace
    target = int(window.targets[t])
    from_output, from_future = dh_parts(params, window, t)
    return {
        "input_char": window.chars[t],
        "target_char": window.target_chars[t],
        "p_target": float(tr["ps"][t, target]),
        "loss": float(tr["losses"][t]),
        "dh_norm": float(np.linalg.norm(tr["dh"][t])),
        "dh_raw_norm": float(np.linalg.norm(tr["dh_raw"][t])),
        "from_output_norm": float(np.linalg.norm(from_output)),
        "from_future_norm": float(np.linalg.norm(from_future)),
    }


def dy_table(window: WindowBackprop, t: int, vocab_chars: str, top: int = 8) -> pd.DataFrame:
    """The ``top`` largest |dy_t| entries (the target always among them), largest first.

    Columns: char (visible), p (= p_t), dy (= p_t − e_target: p for every other character, p − 1 for
    the target), target (bool).
    """
    _check_step(window, t)
    dy, p = window.trace["dy"][t], window.trace["ps"][t]
    target = int(window.targets[t])
    order = [int(i) for i in np.argsort(-np.abs(dy), kind="stable")[:top]]
    if target not in order:
        order[-1] = target
    return pd.DataFrame({
        "char": [visible_char(vocab_chars[i]) for i in order],
        "p": p[order],
        "dy": dy[order],
        "target": [i == target for i in order],
    })


def hidden_table(params: dict, window: WindowBackprop, t: int, first: int = 8) -> pd.DataFrame:
    """The first ``first`` hidden units at step t, one row each.

    Columns: unit, h (h_t), "1 − h²" (tanh'), "from output" (W_hyᵀ dy_t), "from future"
    (W_hhᵀ dh_raw_{t+1}), dh (their sum, dL/dh_t), dh_raw (= (1 − h²) · dh).
    """
    _check_step(window, t)
    tr = window.trace
    n = min(first, tr["hs"].shape[1])
    from_output, from_future = dh_parts(params, window, t)
    h = tr["hs"][t, :n]
    return pd.DataFrame({
        "unit": np.arange(n),
        "h": h,
        "1 − h²": 1.0 - h * h,
        "from output": from_output[:n],
        "from future": from_future[:n],
        "dh": tr["dh"][t, :n],
        "dh_raw": tr["dh_raw"][t, :n],
    })


def _check_step(window: WindowBackprop, t) -> None:
    if isinstance(t, bool) or not isinstance(t, (int, np.integer)) or not 0 <= t < window.length:
        raise ValueError(f"t must be an integer time step in 0..{window.length - 1}, got {t!r}")


# ---------------------------------------------------------------- gradients of the window
def gradient_summary(grads: dict, clip: float) -> pd.DataFrame:
    """One row per parameter: shape, norm, max |entry|, and how many entries clipping to ±clip changes.

    grads: {name: array}, unclipped (as ``loss_and_grads`` returns them). Columns: parameter, shape,
    norm, "max |entry|", clipped (count of |g| > clip), "clipped %".
    """
    rows = []
    for name in PARAM_NAMES:
        g = np.asarray(grads[name])
        over = int(np.count_nonzero(np.abs(g) > clip))
        rows.append({
            "parameter": f"d{name}",
            "shape": "×".join(str(s) for s in g.shape),
            "norm": float(np.linalg.norm(g.ravel())),
            "max |entry|": float(np.max(np.abs(g))) if g.size else 0.0,
            "clipped": over,
            "clipped %": 100.0 * over / g.size if g.size else 0.0,
        })
    return pd.DataFrame(rows)


def clipped_fraction(grads: dict, clip: float) -> float:
    """Fraction of all gradient entries (every parameter together) with |g| > clip, as the trainer counts it."""
    over = sum(int(np.count_nonzero(np.abs(np.asarray(g)) > clip)) for g in grads.values())
    total = sum(np.asarray(g).size for g in grads.values())
    return over / total if total else 0.0


# ---------------------------------------------------------------- through time
def dh_norms(window: WindowBackprop) -> np.ndarray:
    """‖dL/dh_t‖ for t = 0..T−1 (T,): the whole window's loss, including what flows back from later steps."""
    return np.linalg.norm(window.trace["dh"], axis=1)


def last_loss_reach(params: dict, window: WindowBackprop) -> np.ndarray:
    """‖∂L_{T−1}/∂h_t‖ (T,): how much of the last step's loss alone reaches each earlier hidden state.

    Starts from W_hyᵀ dy_{T−1} at t = T−1 and applies one step of the backward recurrence
    g_{t−1} = W_hhᵀ ((1 − h_t²) ⊙ g_t) per step, so its slope shows vanishing or exploding gradients
    without the other steps' losses mixed in.
    """
    tr = window.trace
    T = window.length
    out = np.empty(T)
    g = params["Why"].T @ tr["dy"][T - 1]
    for t in range(T - 1, -1, -1):
        out[t] = np.linalg.norm(g)
        g = params["Whh"].T @ ((1.0 - tr["hs"][t] ** 2) * g)
    return out


# ---------------------------------------------------------------- gradient check
def checks_per_param_for(seq_length: int, hidden_size: int, vocab_size: int,
                         budget: float = GRADCHECK_BUDGET) -> int:
    """Entries to check per parameter (1..CHECKS_PER_PARAM) so that the 2 loss evaluations per entry
    for all 5 parameters stay within ``budget`` multiply-adds."""
    per_eval = seq_length * hidden_size * (hidden_size + vocab_size)
    affordable = int(budget // (2 * len(PARAM_NAMES) * per_eval))
    return max(1, min(CHECKS_PER_PARAM, affordable))


def noise_floor(loss: float, delta: float = FD_DELTA) -> float:
    """Smallest |analytic − numerical| that central differences resolve at this loss.

    Each float64 loss carries rounding error of order eps·|L|; (L₊ − L₋)/(2δ) magnifies it by 1/δ.
    A factor 10 leaves room for the sum over T steps. Below this, a gradient entry is too small
    for its relative error to mean anything.
    """
    return 10.0 * np.finfo(np.float64).eps * max(abs(float(loss)), 1.0) / delta


def gradcheck_frame(model: VanillaRNN, window: WindowBackprop, checks_per_param: int) -> pd.DataFrame:
    """Analytic vs central-difference gradients on the window, one row per checked entry.

    Columns: parameter, index, analytic, numerical, "|a − n|", "relative error" (|a − n| / (|a| + |n|)),
    result ("pass" below REL_TOL; "pass (noise floor)" when |a − n| is below ``noise_floor``: the entry
    is too small to measure relatively; otherwise "FAIL").
    """
    rows = gradcheck_table(model, window.inputs, window.targets, window.h0,
                           checks_per_param=checks_per_param, delta=FD_DELTA)
    floor = noise_floor(window.trace["loss"])
    out = []
    for r in rows:
        out.append({"parameter": r["param"], "index": str(tuple(r["index"])).replace(",)", ")"),
                    "analytic": r["analytic"], "numerical": r["numerical"],
                    "|a − n|": abs(r["analytic"] - r["numerical"]), "relative error": r["rel_error"],
                    "result": check_result(r["analytic"], r["numerical"], floor)})
    return pd.DataFrame(out)


def check_result(analytic: float, numerical: float, floor: float) -> str:
    """"pass" when |a − n| / (|a| + |n|) < REL_TOL (or both are 0); "pass (noise floor)" when only
    |a − n| < floor; else "FAIL"."""
    diff = abs(analytic - numerical)
    scale = abs(analytic) + abs(numerical)
    if diff == 0.0 or (scale > 0 and diff / scale < REL_TOL):
        return "pass"
    if diff < floor:
        return "pass (noise floor)"
    return "FAIL"


# ---------------------------------------------------------------- weights
def weight_axis_labels(name: str, vocab_chars: str) -> dict:
    """Keyword arguments for ``weight_figures.weight_heatmap``: vocabulary characters on the axis that is one
    per character (Wxh columns, Why rows); Whh has hidden units on both axes."""
    if name == "Wxh":
        return {"col_labels": list(vocab_chars)}
    if name == "Why":
        return {"row_labels": list(vocab_chars)}
    if name == "Whh":
        return {}
    raise ValueError(f"name must be one of {', '.join(WEIGHT_NAMES)}, got {name!r}")


@dataclass
class SpectralSeries:
    """ρ(W_hh) by iteration, recorded whenever the page draws; bounded to ``cap`` points.

    The trainer's history has no spectral radius, so the page keeps this one in session state.
    ``owner`` identifies the run it belongs to: another run starts the series afresh.
    """

    cap: int = SPECTRAL_POINTS_KEPT
    owner: object = None
    iterations: list[int] = field(default_factory=list)
    radii: list[float] = field(default_factory=list)

    def record(self, owner: object, iteration: int, radius: Callable[[], float]) -> float:
        """The radius at ``iteration``; computed (by calling ``radius``) only when not yet recorded.

        A new owner clears the series. An iteration at or before the last point (a rollback) drops
        the points after it first. Over ``cap``, every other point of the older half is dropped, so the
        series keeps spanning the whole run at coarser resolution.
        """
        if owner != self.owner:
            self.owner, self.iterations, self.radii = owner, [], []
        if self.iterations and self.iterations[-1] == iteration:
            return self.radii[-1]
        while self.iterations and self.iterations[-1] >= iteration:
            self.iterations.pop()
            self.radii.pop()
        value = float(radius())
        self.iterations.append(int(iteration))
        self.radii.append(value if math.isfinite(value) else float("nan"))
        if len(self.iterations) > self.cap:
            half = len(self.iterations) // 2
            self.iterations = self.iterations[:half:2] + self.iterations[half:]
            self.radii = self.radii[:half:2] + self.radii[half:]
        return value

    def arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """(iterations (N,), radii (N,)) as float arrays, oldest first."""
        return np.asarray(self.iterations, dtype=float), np.asarray(self.radii, dtype=float)


# ---------------------------------------------------------------- equations
def update_latex(optimizer: str, learning_rate: float, clip: float) -> str:
    """LaTeX of the clip and the parameter update the trainer applies to each gradient g."""
    lr = f"{learning_rate:g}"
    updates = {
        "adagrad": (rf"m \leftarrow m + g^2, \quad "
                    rf"\theta \leftarrow \theta - {lr}\, \frac{{g}}{{\sqrt{{m + 10^{{-8}}}}}}"),
        "sgd": rf"\theta \leftarrow \theta - {lr}\, g",
        "momentum": rf"v \leftarrow 0.9\, v - {lr}\, g, \quad \theta \leftarrow \theta + v",
        "rmsprop": (rf"c \leftarrow 0.9\, c + 0.1\, g^2, \quad "
                    rf"\theta \leftarrow \theta - {lr}\, \frac{{g}}{{\sqrt{{c}} + 10^{{-8}}}}"),
        "adam": (rf"m \leftarrow 0.9\, m + 0.1\, g, \quad v \leftarrow 0.999\, v + 0.001\, g^2, \quad "
                 rf"\theta \leftarrow \theta - {lr}\, \frac{{\hat m}}{{\sqrt{{\hat v}} + 10^{{-8}}}}"),
    }
    if optimizer not in updates:
        raise ValueError(f"optimizer must be one of {', '.join(updates)}, got {optimizer!r}")
    return (rf"\begin{{aligned}} g &\leftarrow \operatorname{{clip}}(g, -{clip:g}, {clip:g}) \\ "
            rf"& {updates[optimizer]} \end{{aligned}}")
