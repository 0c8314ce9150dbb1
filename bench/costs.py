"""What the small design choices in the code cost, as multiples of one training step measured in the
same run (the figures behind comments that would go stale in the code; see bench/README.md).

Run from the repository root:   .venv/bin/python -m bench.costs [--repeats 30]

Baseline: one training iteration at the classic setting on Shakespeare (hidden 100, T 25, batch 1,
Adagrad). Then, each the median of ``--repeats``:
* a snapshot of the run for a page or a save (Run.copy: the trainer cloned);
* one validation pass (Run's VALIDATE_SECONDS spaces them out while training);
* min-char-rnn-style debiased smoothing of 20,000 loss rows (loss_chart.debiased_ema, a Python loop);
* a styled Plotly figure with and without assigning a named template (style.apply_style assigns none);
* writing the run's checkpoint at deflate level 1 (rnn_core.checkpoint.COMPRESS_LEVEL) and at
  np.savez_compressed's level 6: time and size.
"""
from __future__ import annotations

import argparse
import platform
import statistics
import time
from unittest import mock

import numpy as np
import plotly.graph_objects as go

from playground.runs.run import PRESETS, Run
from playground.views import loss_chart, style
from rnn_core import checkpoint


def median_seconds(call, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        call()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()

    run = Run.from_builtin(PRESETS["classic"])
    run.step(500)                                  # past the first iterations' one-off costs
    tr = run.trainer
    step = median_seconds(lambda: tr.step(1), max(args.repeats * 10, 200))
    rows = {}
    rows["Run.copy (a snapshot for a page or a save)"] = median_seconds(run.copy, args.repeats)
    rows["one validation pass"] = median_seconds(tr.validate, args.repeats)
    it = np.arange(20_000, dtype=float)
    loss = 50 + np.random.default_rng(0).normal(size=it.size)
    rows["debiased smoothing of 20,000 rows"] = median_seconds(lambda: loss_chart.debiased_ema(it, loss, 0.99),
                                                               args.repeats)

    def figure(template: bool):
        fig = go.Figure(go.Scatter(x=it[:1000], y=loss[:1000]))
        style.apply_style(fig, title="t", height=300, x_title="x", y_title="y")
        if template:
            fig.update_layout(template="plotly_white")
        return fig
    rows["styled figure, no template (as the app does)"] = median_seconds(lambda: figure(False), args.repeats)
    rows["styled figure with a named template"] = median_seconds(lambda: figure(True), args.repeats)

    level1 = checkpoint.checkpoint_bytes(tr, run.vocab)
    rows["checkpoint at deflate level 1 (the app's)"] = median_seconds(
        lambda: checkpoint.checkpoint_bytes(tr, run.vocab), args.repeats)
    with mock.patch.object(checkpoint, "COMPRESS_LEVEL", 6):
        level6 = checkpoint.checkpoint_bytes(tr, run.vocab)
        rows["checkpoint at deflate level 6"] = median_seconds(lambda: checkpoint.checkpoint_bytes(tr, run.vocab),
                                                               args.repeats)

    print(f"# bench.costs on {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print(f"baseline: one classic training step = {step * 1e3:.3f} ms\n")
    print(f"{'what':<48} {'ms':>9} {'× a step':>9}")
    for name, seconds in rows.items():
        print(f"{name:<48} {seconds * 1e3:9.2f} {seconds / step:9.1f}")
    no_template, template = list(rows.values())[3:5]
    at_1, at_6 = list(rows.values())[5:7]
    print(f"\ntemplate / no template: {template / no_template:.2f}×")
    print(f"level 6 / level 1: time {at_6 / at_1:.2f}×, size {len(level6) / len(level1):.3f}× "
          f"({len(level1) / 1e6:.2f} MB at level 1)")


if __name__ == "__main__":
    main()
