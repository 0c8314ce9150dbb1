"""Numerical gradient check: analytic gradients of loss_and_grads against central differences."""
from __future__ import annotations

import numpy as np

from .model import PARAM_NAMES, VanillaRNN


def gradcheck_table(model: VanillaRNN, inputs, targets, h0=None, *, checks_per_param: int = 10,
                    delta: float = 1e-5, seed: int = 0) -> list[dict]:
    """One row per checked entry: param, index, analytic, numerical, rel_error.

    Half of the entries checked are those with the largest analytic gradient (where an error would
    matter), half are drawn at random (seeded). The loss is recomputed in float64 whatever the model's
    dtype, because finite differences in float32 are noise.
    """
    work = model.copy()
    for k in PARAM_NAMES:
        work.params[k] = work.params[k].astype(np.float64)
    work.dtype = np.dtype(np.float64)
    h0_64 = None if h0 is None else np.asarray(h0, dtype=np.float64)
    _, grads, _ = work.loss_and_grads(inputs, targets, h0_64)
    rng = np.random.default_rng(seed)
    rows = []
    for k in PARAM_NAMES:
        p = work.params[k]
        n = min(checks_per_param, p.size)
        largest = np.argsort(-np.abs(grads[k]).ravel(), kind="stable")[: (n + 1) // 2]
        rest = np.setdiff1d(np.arange(p.size), largest)
        chosen = np.concatenate([largest, rng.choice(rest, size=min(n - len(largest), rest.size), replace=False)])
        for flat in chosen:
            idx = np.unravel_index(int(flat), p.shape)
            old = p[idx]
            p[idx] = old + delta
            plus = work.loss_and_grads(inputs, targets, h0_64)[0]
            p[idx] = old - delta
            minus = work.loss_and_grads(inputs, targets, h0_64)[0]
            p[idx] = old
            numerical = (plus - minus) / (2 * delta)
            analytic = float(grads[k][idx])
            denom = abs(analytic) + abs(numerical)
            rel = 0.0 if denom < 1e-12 else abs(analytic - numerical) / denom
            rows.append({"param": k, "index": tuple(int(i) for i in idx), "analytic": analytic,
                         "numerical": float(numerical), "rel_error": float(rel)})
    return rows


def gradcheck(model: VanillaRNN, inputs, targets, h0=None, **kwargs) -> dict[str, float]:
    """Largest relative error per parameter name (|a - n| / (|a| + |n|))."""
    worst = {k: 0.0 for k in PARAM_NAMES}
    for row in gradcheck_table(model, inputs, targets, h0, **kwargs):
        worst[row["param"]] = max(worst[row["param"]], row["rel_error"])
    return worst
