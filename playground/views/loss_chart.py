"""The loss chart of the Train and Present pages: ``loss_figure`` draws the raw loss (a faint
line, or a min/max band for long or bucketed histories), the smoothed line, the kept curves of
other runs dashed (``ComparedCurve``), validation points and the untrained reference, in any of
the loss units; and the Smoothing control's lines it is drawn with (``CLASSIC_SMOOTHING``,
``debiased_ema``, ``smoothed_series``). Pure: NumPy arrays in, a plotly figure out, no streamlit
import, tested without a server.
"""

from __future__ import annotations

from typing import NamedTuple, Sequence

import numpy as np
import plotly.graph_objects as go

from playground.escape import chart_label
from playground.views.downsampling import check_max_points, downsample, min_max_band
from playground.views.loss_units import (
    HOVER_UNITS,
    UNITS,
    bits_per_char_to_window,
    check_unit,
    convert_loss,
    untrained_loss,
)
from playground.views.style import (
    EMPTY_TRAINING_MESSAGE,
    LOSS_HEIGHT,
    MAIN_COLOUR,
    RAW_COLOUR,
    REFERENCE_COLOUR,
    VAL_COLOUR,
    apply_style,
    as_1d,
    check_positive_int,
    check_same_length,
    empty_note,
    hover_safe,
)

# ---------------------------------------------------------------- smoothing


def debiased_ema(iterations, values, weight: float) -> np.ndarray:
    """Exponential moving average of values (N,) that follows them from the first point (TensorBoard's
    debiased smoothing), aware of gaps: across a step of d iterations the old average keeps weight**d,
    so a thinned history (rows every 2nd, 4th ... iteration, each the mean over its span) is smoothed
    as if it were whole.

    s_n = (w^d s_{n-1} + (1 - w^d) y_n) / (1 - w^(i_n - i_0 + 1)) with s from 0: the division removes
    the pull towards the zero start. weight in [0, 1): 0 returns the values; 0.999 averages over
    ~1,000 iterations.
    """
    it = as_1d(iterations, "iterations")
    y = as_1d(values, "values")
    check_same_length(it, "iterations", y, "values")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 <= weight < 1.0:
        raise ValueError(f"weight must be a number in [0, 1), got {weight!r}")
    out = np.empty_like(y)
    if y.shape[0] == 0 or weight == 0.0:
        out[:] = y
        return out
    keep = np.power(weight, np.maximum(np.diff(it, prepend=it[0] - 1.0), 1.0))
    # The recurrence itself is sequential: a plain loop over Python floats (its cost: bench.costs).
    biased, total = [], 0.0
    for k, step_in in zip(keep.tolist(), ((1.0 - keep) * y).tolist()):
        total = k * total + step_in
        biased.append(total)
    np.divide(biased, 1.0 - np.power(weight, it - it[0] + 1.0), out=out)
    return out


CLASSIC_SMOOTHING = "min-char-rnn"
COMPARE_COLOURS = ("#9467bd", "#17becf", "#e377c2", "#bcbd22", "#7f7f7f")


def smoothed_series(iterations, loss, smooth_loss, option) -> tuple[np.ndarray, str]:
    """The bold line of the loss chart, per the Smoothing control: (values (N,), legend name).

    option: CLASSIC_SMOOTHING (min-char-rnn's own smooth_loss), 0 (the loss itself) or a weight
    in (0, 1) for debiased_ema."""
    if option == CLASSIC_SMOOTHING:
        return as_1d(smooth_loss, "smooth_loss"), "smoothed loss (min-char-rnn)"
    if option == 0:
        return as_1d(loss, "loss"), "loss (no smoothing)"
    return debiased_ema(iterations, loss, option), f"smoothed loss ({option:g}, debiased)"


class ComparedCurve(NamedTuple):
    """A kept curve drawn dashed on the loss chart: (N,) iterations and loss in nats per window of
    its own seq_length (converted to the chart's unit with it)."""

    label: str
    iterations: np.ndarray
    per_window: np.ndarray
    seq_length: int


# ---------------------------------------------------------------- loss


def loss_figure(
    iterations,
    loss,
    smooth_loss,
    *,
    seq_length: int,
    vocab_size: int,
    unit: str = "window",
    val_iterations=None,
    val_bits_per_char=None,
    max_points: int = 2000,
    smooth_label: str = "smoothed loss",
    compare: Sequence[ComparedCurve] = (),
    loss_min=None,
    loss_max=None,
) -> go.Figure:
    """Training loss over iterations.

    iterations, loss, smooth_loss: (N,); loss values are nats per window (sum over T).
    loss_min, loss_max (N,): when the rows are buckets of iterations (a long run's history,
    loss their mean), the raw loss's extremes in each; the band is drawn from them.
    Raw loss is a faint thin line, or a min/max band once N > max_points or rows are buckets; smoothed
    loss is bold (named ``smooth_label``); ``compare`` curves (other runs) are thin dashed lines;
    a dashed line marks the untrained loss ln(V)*T; optional validation
    points come in bits per char (val_iterations, val_bits_per_char: (M,)).
    Everything is converted to ``unit`` (see UNITS). N == 0 gives an empty chart
    that says "Press Start or Step to train".
    """
    check_unit(unit)
    seq_length = check_positive_int(seq_length, "seq_length")
    reference = untrained_loss(vocab_size, seq_length, unit)
    max_points = check_max_points(max_points)
    it = as_1d(iterations, "iterations")
    raw = as_1d(loss, "loss")
    smooth = as_1d(smooth_loss, "smooth_loss")
    check_same_length(it, "iterations", raw, "loss")
    check_same_length(it, "iterations", smooth, "smooth_loss")
    label = UNITS[unit]
    fmt = ".2f" if unit in ("window", "perplexity") else ".3f"
    per = HOVER_UNITS[unit]

    fig = go.Figure()
    apply_style(fig, title="Training loss", height=LOSS_HEIGHT, x_title="iteration", y_title=label)
    fig.add_hline(
        y=reference,
        line=dict(color=REFERENCE_COLOUR, dash="dash", width=1.5),
        annotation_text=f"untrained (uniform guess): {reference:{fmt}}",
        annotation_position="top right",
        annotation_font=dict(size=11, color="#666"),
    )

    spread = None
    if loss_min is not None and loss_max is not None:
        lo_raw, hi_raw = as_1d(loss_min, "loss_min"), as_1d(loss_max, "loss_max")
        check_same_length(it, "iterations", lo_raw, "loss_min")
        check_same_length(it, "iterations", hi_raw, "loss_max")
        spread = (lo_raw, hi_raw)

    if it.shape[0] > 0:
        raw_conv = convert_loss(raw, unit, seq_length)
        bucketed = spread is not None and bool((spread[0] < spread[1]).any())
        if it.shape[0] <= max_points and not bucketed:
            fig.add_trace(
                go.Scatter(
                    x=it,
                    y=raw_conv,
                    mode="lines",
                    name="loss (each step)",
                    line=dict(color=RAW_COLOUR, width=1),
                    opacity=0.35,
                    hovertemplate=f"iteration %{{x:,}}<br>loss on this window: %{{y:{fmt}}} {per}<extra></extra>",
                )
            )
        else:
            if spread is None:
                bx, lo, hi = min_max_band(it, raw_conv, max_buckets=max_points)
            else:   # every unit is an increasing function of the loss: extremes stay extremes
                bx, lo, hi = min_max_band(it, convert_loss(spread[0], unit, seq_length), max_buckets=max_points,
                                          y_max=convert_loss(spread[1], unit, seq_length))
            fig.add_trace(
                go.Scatter(
                    x=bx,
                    y=lo,
                    mode="lines",
                    line=dict(width=0, color=RAW_COLOUR),
                    showlegend=False,
                    name="loss min",
                    hovertemplate=f"iterations from %{{x:,}} (one bucket)<br>lowest window loss: %{{y:{fmt}}} {per}<extra></extra>",
                )
            )
            fig.add_trace(
                go.Scatter(
                    x=bx,
                    y=hi,
                    mode="lines",
                    fill="tonexty",
                    fillcolor="rgba(127,156,201,0.3)",
                    line=dict(width=0, color=RAW_COLOUR),
                    name="loss (min–max per bucket)",
                    hovertemplate=f"iterations from %{{x:,}} (one bucket)<br>highest window loss: %{{y:{fmt}}} {per}<extra></extra>",
                )
            )
        sx, sy = downsample(it, convert_loss(smooth, unit, seq_length), max_points)
        fig.add_trace(
            go.Scatter(
                x=sx,
                y=sy,
                mode="lines",
                name=smooth_label,
                line=dict(color=MAIN_COLOUR, width=2.5),
                hovertemplate=f"iteration %{{x:,}}<br>{hover_safe(smooth_label)}: %{{y:{fmt}}} {per}<extra></extra>",
            )
        )

    for n, curve in enumerate(compare):
        cit = as_1d(curve.iterations, "compare iterations")
        cy = as_1d(curve.per_window, "compare per_window")
        check_same_length(cit, "compare iterations", cy, "compare per_window")
        cx, cy = downsample(cit, convert_loss(cy, unit, curve.seq_length), max_points)
        fig.add_trace(go.Scatter(
            x=cx, y=cy, mode="lines", name=chart_label(curve.label),
            line=dict(color=COMPARE_COLOURS[n % len(COMPARE_COLOURS)], width=1.8, dash="dash"),
            hovertemplate=f"iteration %{{x:,}}<br>kept run's loss: %{{y:{fmt}}} {per}<extra>{hover_safe(curve.label)}</extra>",
        ))

    if val_iterations is not None and val_bits_per_char is not None:
        vit = as_1d(val_iterations, "val_iterations")
        vbits = as_1d(val_bits_per_char, "val_bits_per_char")
        check_same_length(vit, "val_iterations", vbits, "val_bits_per_char")
        if vit.shape[0] > 0:
            vy = convert_loss(bits_per_char_to_window(vbits, seq_length), unit, seq_length)
            vx, vy = downsample(vit, vy, max_points)
            fig.add_trace(
                go.Scatter(
                    x=vx,
                    y=vy,
                    mode="lines+markers",
                    name="validation",
                    line=dict(color=VAL_COLOUR, width=1.5),
                    marker=dict(size=6),
                    hovertemplate=f"iteration %{{x:,}}<br>validation loss (held-out text): %{{y:{fmt}}} {per}<extra></extra>",
                )
            )

    if it.shape[0] == 0 and not len(compare):
        empty_note(fig, EMPTY_TRAINING_MESSAGE)
    return fig
