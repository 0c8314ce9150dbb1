"""Curves kept to compare runs: the loss history of a run, frozen, drawn dashed on the loss chart
while another run trains (e.g. the same seed with another learning rate). Pure helpers; the Train
page keeps the list in session state."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from playground.runs.run import Run
from playground.views.loss_chart import ComparedCurve, smoothed_series

MAX_KEPT = 5


@dataclass(frozen=True)
class KeptCurve:
    label: str
    iterations: np.ndarray    # (N,)
    loss: np.ndarray          # (N,) nats per window, each step
    smooth_loss: np.ndarray   # (N,) min-char-rnn's smoothed loss
    seq_length: int


def describe(run: Run) -> str:
    """A short name for a run's curve: the settings that tell runs apart, and how far it went."""
    c, tr = run.config, run.trainer
    return (f"{tr.optimizer_name} lr {tr.learning_rate:g} · H{c.hidden_size} T{c.seq_length} B{c.batch_size} · "
            f"seed {c.seed} · {run.corpus_label[:24]} · to {tr.iteration:,}")


def keep(kept: list[KeptCurve], run: Run) -> list[KeptCurve]:
    """``kept`` plus the run's curve as it is now (the oldest dropped beyond MAX_KEPT). A run with no
    history adds nothing."""
    hist = run.trainer.history.as_arrays("iteration", "loss", "smooth_loss")
    if not len(hist["iteration"]):
        return list(kept)
    curve = KeptCurve(describe(run), hist["iteration"], hist["loss"], hist["smooth_loss"], run.config.seq_length)
    return (list(kept) + [curve])[-MAX_KEPT:]


def for_chart(kept: list[KeptCurve], smoothing) -> list[ComparedCurve]:
    """The kept curves smoothed the way the chart's own line is (see loss_chart.smoothed_series)."""
    return [ComparedCurve(k.label, k.iterations, smoothed_series(k.iterations, k.loss, k.smooth_loss, smoothing)[0],
                          k.seq_length) for k in kept]
