"""Pure figure builders: NumPy arrays in, ``plotly.graph_objects.Figure`` out.

Every figure has a fixed height, axis titles, hover text and the same look
(white background, compact margins). Long training series are reduced to
at most ``max_points`` points per trace, so the browser payload stays bounded no
matter how long training has run. No streamlit import: tested without a server.
"""

from __future__ import annotations

import math
from typing import Mapping, NamedTuple, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from playground.escape import chart_label
from playground.views.textviews import DIVERGING_STOPS, SURPRISE_STOPS, visible_char, visible_chars
from rnn_core.trainer import bits_per_char
from rnn_core.trainer import untrained_loss as engine_untrained_loss

# Unit key -> label shown in selectors and on the loss axis.
UNITS: dict[str, str] = {
    "window": "nats per window (classic)",
    "nats": "nats per char",
    "bits": "bits per char",
    "perplexity": "perplexity",
}

# Unit key -> what a loss value is, after the number in hover labels ("2.134 bits/char").
HOVER_UNITS: dict[str, str] = {
    "window": "nats per window of T chars",
    "nats": "nats/char",
    "bits": "bits/char",
    "perplexity": "perplexity (e^(nats/char))",
}

BACKGROUND = "white"
MARGIN = dict(l=60, r=20, t=50, b=45)
EMPTY_TRAINING_MESSAGE = "Press Start or Step to train"

LOSS_HEIGHT = 380
HEATMAP_HEIGHT = 420
SMALL_HEIGHT = 320
GRAD_HEIGHT = 460

DIVERGING_COLORSCALE = [[pos, f"rgb{rgb}"] for pos, rgb in DIVERGING_STOPS]
PROBABILITY_COLORSCALE = [[pos, f"rgb{rgb}"] for pos, rgb in SURPRISE_STOPS]

# Fixed colours per parameter so every chart names Wxh etc. the same way. Okabe & Ito's palette:
# its colours stay apart for the common colour-vision deficiencies (no red against green).
PARAM_COLOURS = {
    "Wxh": "#0072B2",
    "Whh": "#D55E00",
    "Why": "#009E73",
    "bh": "#CC79A7",
    "by": "#E69F00",
}
MAIN_COLOUR = "#1f4e9c"
RAW_COLOUR = "#7f9cc9"
VAL_COLOUR = "#e4572e"
REFERENCE_COLOUR = "#888888"


# ---------------------------------------------------------------- helpers


def _style(fig: go.Figure, *, title: str, height: int, x_title: str, y_title: str) -> go.Figure:
    fig.update_layout(
        # No plotly template: st.plotly_chart draws with Streamlit's theme anyway, and assigning a
        # named template deep-copies it (~9 ms a figure, a third of a live refresh).
        plot_bgcolor=BACKGROUND,
        height=height,
        margin=MARGIN,
        title=dict(text=title, x=0.01, xanchor="left", font=dict(size=15)),
        legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0),
        hoverlabel=dict(font_family="monospace"),
    )
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title)
    return fig


def _empty_note(fig: go.Figure, message: str) -> go.Figure:
    fig.add_annotation(
        text=message,
        xref="paper",
        yref="paper",
        x=0.5,
        y=0.5,
        showarrow=False,
        font=dict(size=16, color="#666"),
    )
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    fig.update_yaxes(showticklabels=False, showgrid=False, zeroline=False)
    return fig


def _hover_safe(s: str) -> str:
    # Plotly renders a small HTML subset (and $...$ as LaTeX) in legend, hover and tick text.
    return chart_label(s)


def _as_1d(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def _same_length(reference: np.ndarray, ref_name: str, other: np.ndarray, name: str) -> None:
    if other.shape[0] != reference.shape[0]:
        raise ValueError(
            f"{name} must have the same length as {ref_name} ({reference.shape[0]}), got {other.shape[0]}"
        )


def _check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def _check_unit(unit: str) -> str:
    if unit not in UNITS:
        allowed = ", ".join(repr(u) for u in UNITS)
        raise ValueError(f"unit must be one of {allowed}, got {unit!r}")
    return unit


def _check_max_points(max_points) -> int:
    if isinstance(max_points, bool) or not isinstance(max_points, (int, np.integer)) or max_points < 4:
        raise ValueError(f"max_points must be an integer >= 4, got {max_points!r}")
    return int(max_points)


def _char_ticks(chars: str | Sequence[str], n: int, name: str = "chars") -> list[str]:
    labels = visible_chars(chars)
    if len(labels) != n:
        raise ValueError(f"{name} must have one character per time step ({n}), got {len(labels)}")
    return labels


# ---------------------------------------------------------------- units


def convert_loss(per_window, unit: str, seq_length: int):
    """Convert loss given in nats per window (sum over T chars) to ``unit``.

    window: unchanged; nats: / T; bits: / T / ln 2; perplexity: exp(/ T).
    Accepts a scalar (returns float) or an array (returns float ndarray, same shape).
    Raises ValueError for an unknown unit or seq_length < 1.
    """
    _check_unit(unit)
    seq_length = _check_positive_int(seq_length, "seq_length")
    arr = np.asarray(per_window, dtype=float)
    if unit == "window":
        out = arr.copy()
    elif unit == "nats":
        out = arr / seq_length
    elif unit == "bits":
        out = bits_per_char(arr, seq_length)
    else:
        with np.errstate(over="ignore"):  # a diverged loss shows as inf, not a warning
            out = np.exp(arr / seq_length)
    return float(out) if out.ndim == 0 else out


def bits_per_char_to_window(bits, seq_length: int):
    """Bits per char -> nats per window (the inverse direction of ``convert_loss``)."""
    seq_length = _check_positive_int(seq_length, "seq_length")
    out = np.asarray(bits, dtype=float) * math.log(2.0) * seq_length
    return float(out) if out.ndim == 0 else out


def untrained_loss(vocab_size: int, seq_length: int, unit: str = "window") -> float:
    """Loss of a uniform guess, -ln(1/V) * T per window, converted to ``unit``."""
    vocab_size = _check_positive_int(vocab_size, "vocab_size")
    return convert_loss(engine_untrained_loss(vocab_size, seq_length), unit, seq_length)


# ---------------------------------------------------------------- downsampling


def _bucket_matrix(y: np.ndarray, n_buckets: int, fill: float) -> tuple[np.ndarray, int]:
    """y reshaped to (n_buckets, size) with the tail padded by ``fill``; returns (matrix, size)."""
    n = y.shape[0]
    size = -(-n // n_buckets)
    n_buckets = -(-n // size)  # drop buckets that would be pure padding
    padded = np.full(n_buckets * size, fill, dtype=float)
    padded[:n] = y
    return padded.reshape(n_buckets, size), size


def downsample(x, y, max_points: int = 2000) -> tuple[np.ndarray, np.ndarray]:
    """Reduce a series to at most ``max_points`` points, keeping spikes visible.

    x, y: (N,). Short series are returned unchanged (as float arrays). Long ones are
    cut into buckets and the min and the max of each bucket are kept (in x order),
    plus the first and the last point. Returns (x_small, y_small), both (M,), M <= max_points.
    """
    max_points = _check_max_points(max_points)
    x = _as_1d(x, "x")
    y = _as_1d(y, "y")
    _same_length(x, "x", y, "y")
    n = y.shape[0]
    if n <= max_points:
        return x.copy(), y.copy()
    # 2 points per bucket + first + last must fit in max_points.
    n_buckets = (max_points - 2) // 2
    lows, size = _bucket_matrix(y, n_buckets, np.inf)
    highs, _ = _bucket_matrix(y, n_buckets, -np.inf)
    offsets = np.arange(lows.shape[0]) * size
    keep = np.concatenate(
        ([0, n - 1], offsets + np.argmin(lows, axis=1), offsets + np.argmax(highs, axis=1))
    )
    keep = np.unique(keep)  # sorted, so the line is drawn in x order
    return x[keep], y[keep]


def min_max_band(x, y, max_buckets: int = 1000, *, y_max=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per-bucket (x_start, y_min, y_max) for drawing a min/max band.

    x, y: (N,). Returns three (B,) arrays with B <= max_buckets; each bucket is a run of
    consecutive points, x_start is the x of its first point. The last bucket's x is
    moved to x[-1] so the band reaches the end of the series. With ``y_max`` (N,), the
    points are themselves ranges (a thinned history's per-row min ``y`` and max ``y_max``):
    the band's minimum comes from y, its maximum from y_max.
    """
    max_buckets = _check_positive_int(max_buckets, "max_buckets")
    x = _as_1d(x, "x")
    y = _as_1d(y, "y")
    _same_length(x, "x", y, "y")
    upper = y if y_max is None else _as_1d(y_max, "y_max")
    _same_length(x, "x", upper, "y_max")
    if y.shape[0] == 0:
        empty = np.zeros(0)
        return empty, empty.copy(), empty.copy()
    lows, size = _bucket_matrix(y, min(max_buckets, y.shape[0]), np.inf)
    highs, _ = _bucket_matrix(upper, min(max_buckets, y.shape[0]), -np.inf)
    x_start = x[np.arange(lows.shape[0]) * size].copy()
    x_start[-1] = x[-1]
    return x_start, lows.min(axis=1), highs.max(axis=1)


# ---------------------------------------------------------------- loss


def debiased_ema(iterations, values, weight: float) -> np.ndarray:
    """Exponential moving average of values (N,) that follows them from the first point (TensorBoard's
    debiased smoothing), aware of gaps: across a step of d iterations the old average keeps weight**d,
    so a thinned history (rows every 2nd, 4th ... iteration, each the mean over its span) is smoothed
    as if it were whole.

    s_n = (w^d s_{n-1} + (1 - w^d) y_n) / (1 - w^(i_n - i_0 + 1)) with s from 0: the division removes
    the pull towards the zero start. weight in [0, 1): 0 returns the values; 0.999 averages over
    ~1,000 iterations.
    """
    it = _as_1d(iterations, "iterations")
    y = _as_1d(values, "values")
    _same_length(it, "iterations", y, "values")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not 0.0 <= weight < 1.0:
        raise ValueError(f"weight must be a number in [0, 1), got {weight!r}")
    out = np.empty_like(y)
    if y.shape[0] == 0 or weight == 0.0:
        out[:] = y
        return out
    keep = np.power(weight, np.maximum(np.diff(it, prepend=it[0] - 1.0), 1.0))
    # The recurrence itself is sequential: a plain loop over Python floats (~2 ms for 20,000 rows).
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
        return _as_1d(smooth_loss, "smooth_loss"), "smoothed loss (min-char-rnn)"
    if option == 0:
        return _as_1d(loss, "loss"), "loss (no smoothing)"
    return debiased_ema(iterations, loss, option), f"smoothed loss ({option:g}, debiased)"


class ComparedCurve(NamedTuple):
    """A kept curve drawn dashed on the loss chart: (N,) iterations and loss in nats per window of
    its own seq_length (converted to the chart's unit with it)."""

    label: str
    iterations: np.ndarray
    per_window: np.ndarray
    seq_length: int


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
    _check_unit(unit)
    seq_length = _check_positive_int(seq_length, "seq_length")
    reference = untrained_loss(vocab_size, seq_length, unit)
    max_points = _check_max_points(max_points)
    it = _as_1d(iterations, "iterations")
    raw = _as_1d(loss, "loss")
    smooth = _as_1d(smooth_loss, "smooth_loss")
    _same_length(it, "iterations", raw, "loss")
    _same_length(it, "iterations", smooth, "smooth_loss")
    label = UNITS[unit]
    fmt = ".2f" if unit in ("window", "perplexity") else ".3f"
    per = HOVER_UNITS[unit]

    fig = go.Figure()
    _style(fig, title="Training loss", height=LOSS_HEIGHT, x_title="iteration", y_title=label)
    fig.add_hline(
        y=reference,
        line=dict(color=REFERENCE_COLOUR, dash="dash", width=1.5),
        annotation_text=f"untrained (uniform guess): {reference:{fmt}}",
        annotation_position="top right",
        annotation_font=dict(size=11, color="#666"),
    )

    spread = None
    if loss_min is not None and loss_max is not None:
        lo_raw, hi_raw = _as_1d(loss_min, "loss_min"), _as_1d(loss_max, "loss_max")
        _same_length(it, "iterations", lo_raw, "loss_min")
        _same_length(it, "iterations", hi_raw, "loss_max")
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
                hovertemplate=f"iteration %{{x:,}}<br>{_hover_safe(smooth_label)}: %{{y:{fmt}}} {per}<extra></extra>",
            )
        )

    for n, curve in enumerate(compare):
        cit = _as_1d(curve.iterations, "compare iterations")
        cy = _as_1d(curve.per_window, "compare per_window")
        _same_length(cit, "compare iterations", cy, "compare per_window")
        cx, cy = downsample(cit, convert_loss(cy, unit, curve.seq_length), max_points)
        fig.add_trace(go.Scatter(
            x=cx, y=cy, mode="lines", name=chart_label(curve.label),
            line=dict(color=COMPARE_COLOURS[n % len(COMPARE_COLOURS)], width=1.8, dash="dash"),
            hovertemplate=f"iteration %{{x:,}}<br>kept run's loss: %{{y:{fmt}}} {per}<extra>{_hover_safe(curve.label)}</extra>",
        ))

    if val_iterations is not None and val_bits_per_char is not None:
        vit = _as_1d(val_iterations, "val_iterations")
        vbits = _as_1d(val_bits_per_char, "val_bits_per_char")
        _same_length(vit, "val_iterations", vbits, "val_bits_per_char")
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
        _empty_note(fig, EMPTY_TRAINING_MESSAGE)
    return fig


# ---------------------------------------------------------------- hidden states and weights


def hidden_heatmap(hs, chars: str | Sequence[str], *, title: str = "Hidden state h_t per time step") -> go.Figure:
    """Heatmap of hidden states: hs (T, H) -> units on y (H rows), time steps on x.

    chars: the T input characters, shown (whitespace made visible) as x tick labels.
    Colour range is fixed at [-1, 1] (tanh range) so charts are comparable over time.
    """
    hs = np.asarray(hs, dtype=float)
    if hs.ndim != 2:
        raise ValueError(f"hs must be 2-D (T, H), got shape {hs.shape}")
    T, H = hs.shape
    labels = _char_ticks(chars, T)
    fig = go.Figure()
    _style(fig, title=title, height=HEATMAP_HEIGHT, x_title="time step t (input character)", y_title="hidden unit")
    if T == 0 or H == 0:
        return _empty_note(fig, "No hidden states to show")
    hover_chars = np.tile(np.array([_hover_safe(c) for c in labels], dtype=object), (H, 1))
    fig.add_trace(
        go.Heatmap(
            z=hs.T,
            x=np.arange(T),
            y=np.arange(H),
            customdata=hover_chars,
            colorscale=DIVERGING_COLORSCALE,
            zmin=-1.0,
            zmax=1.0,
            zmid=0.0,
            colorbar=dict(title=dict(text="h_t (−1 blue … +1 orange)", side="right"), thickness=12, tickvals=[-1, 0, 1]),
            hovertemplate="hidden unit %{y}, after char '%{customdata}' (t = %{x})<br>"
                          "activation hₜ = %{z:+.3f} (tanh: −1 … +1)<extra></extra>",
        )
    )
    fig.update_xaxes(tickmode="array", tickvals=list(range(T)), ticktext=labels, tickangle=0,
                     tickfont=dict(family="monospace"), showgrid=False)
    fig.update_yaxes(autorange="reversed", showgrid=False)
    return fig


# Colours for analysis.CHAR_CLASSES in the state-space trail (any other group: MAIN_COLOUR).
GROUP_COLOURS = {"space": "#1f77b4", "line break": "#d62728", "lowercase letter": "#2ca02c",
                 "capital letter": "#ff7f0e", "digit": "#8c564b", "punctuation & other": "#9467bd"}


def state_trail_figure(coords, chars: str | Sequence[str], explained, *, groups: Sequence[str] | None = None,
                       first_t: int = 0, directions: tuple[int, int] = (1, 2),
                       title: str = "The path of h_t, seen along its two main directions") -> go.Figure:
    """The hidden state's path through a text: coords (T, 2) from analysis.state_trail, one point per
    input character, labelled with it (whitespace made visible) and joined in reading order.

    explained (2,): variance fractions, for the axis titles. groups: a name per point (e.g. the
    character's class) -> one colour and legend entry each; None -> one colour. first_t: the time
    step of row 0 (a window of a longer text). directions: the principal components' numbers, for
    the axis titles. Equal axis scales, so distances are true.
    """
    coords = np.asarray(coords, dtype=float)
    if coords.ndim != 2 or coords.shape[1] != 2:
        raise ValueError(f"coords must have shape (T, 2), got {coords.shape}")
    explained = _as_1d(explained, "explained")
    if explained.shape[0] != 2:
        raise ValueError(f"explained must hold 2 fractions, got {explained.shape[0]}")
    T = coords.shape[0]
    labels = [_hover_safe(c) for c in _char_ticks(chars, T)]
    groups = ["all"] * T if groups is None else list(groups)
    if len(groups) != T:
        raise ValueError(f"groups must have one name per point ({T}), got {len(groups)}")
    fig = go.Figure()
    _style(fig, title=title, height=HEATMAP_HEIGHT + 80,
           x_title=f"direction {directions[0]} ({explained[0]:.0%} of the variation)",
           y_title=f"direction {directions[1]} ({explained[1]:.0%} of the variation)")
    if T == 0:
        return _empty_note(fig, "No hidden states to show")
    fig.add_trace(go.Scatter(x=coords[:, 0], y=coords[:, 1], mode="lines", name="reading order",
                             line=dict(color="#d0d0d0", width=1), hoverinfo="skip"))
    for group in dict.fromkeys(groups):          # first-seen order
        idx = [i for i, g in enumerate(groups) if g == group]
        colour = GROUP_COLOURS.get(group, MAIN_COLOUR)
        fig.add_trace(go.Scatter(
            x=coords[idx, 0], y=coords[idx, 1], mode="markers+text", name=group,
            text=[labels[i] for i in idx], textposition="top center",
            textfont=dict(family="monospace", size=11, color="#555"),
            customdata=[[first_t + i, labels[i]] for i in idx],
            marker=dict(size=9, color=colour, opacity=0.85, line=dict(width=0.5, color="white")),
            hovertemplate="t = %{customdata[0]}, after '%{customdata[1]}'<br>(%{x:+.3f}, %{y:+.3f})"
                          f"<extra>{_hover_safe(group)}</extra>",
        ))
    fig.add_annotation(x=coords[0, 0], y=coords[0, 1], text="start", showarrow=True, arrowhead=2, ax=-30,
                       ay=30, font=dict(size=11, color="#444"))
    fig.update_yaxes(scaleanchor="x", scaleratio=1, zeroline=False)
    fig.update_xaxes(zeroline=False)
    return fig


def _matrix_axis_titles(name: str) -> tuple[str, str]:
    """(x_title, y_title) for the engine's parameter names; generic otherwise."""
    return {
        "Wxh": ("input character (one-hot index)", "hidden unit"),
        "Whh": ("from hidden unit (t−1)", "to hidden unit (t)"),
        "Why": ("hidden unit", "output character (index)"),
        "bh": ("", "hidden unit"),
        "by": ("", "output character (index)"),
    }.get(name, ("column", "row"))


def weight_heatmap(
    W,
    name: str,
    *,
    row_labels: Sequence[str] | None = None,
    col_labels: Sequence[str] | None = None,
) -> go.Figure:
    """Heatmap of a weight matrix W (R, C) (a bias (R,) is shown as one column).

    Diverging colours with a range symmetric around 0 (±max|W|). Optional row/col
    labels (e.g. the vocabulary characters) replace the index tick labels.
    """
    W = np.asarray(W, dtype=float)
    if W.ndim == 1:
        W = W[:, None]
    if W.ndim != 2:
        raise ValueError(f"W must be 1-D or 2-D, got shape {W.shape}")
    rows, cols = W.shape
    x_title, y_title = _matrix_axis_titles(name)
    fig = go.Figure()
    _style(fig, title=f"{name} {rows}×{cols}", height=HEATMAP_HEIGHT, x_title=x_title, y_title=y_title)
    if W.size == 0:
        return _empty_note(fig, f"{name} is empty")
    finite = W[np.isfinite(W)]
    limit = float(np.max(np.abs(finite))) if finite.size else 0.0
    limit = limit if limit > 0 else 1e-12  # all-zero matrix: keep a valid, symmetric range
    fig.add_trace(
        go.Heatmap(
            z=W,
            colorscale=DIVERGING_COLORSCALE,
            zmin=-limit,
            zmax=limit,
            zmid=0.0,
            colorbar=dict(title=dict(text="w"), thickness=12),
            hovertemplate=(f"{_hover_safe(name)}[%{{y}}, %{{x}}] = %{{z:+.4f}}<br>"
                           + (f"{_hover_safe(y_title)} %{{y}} ← {_hover_safe(x_title)} %{{x}}" if x_title
                              else f"{_hover_safe(y_title)} %{{y}}") + "<extra></extra>"),
        )
    )
    if row_labels is not None:
        if len(row_labels) != rows:
            raise ValueError(f"row_labels must have {rows} entries, got {len(row_labels)}")
        fig.update_yaxes(tickmode="array", tickvals=list(range(rows)),
                         ticktext=[_hover_safe(c) for c in visible_chars(row_labels)])
    if col_labels is not None:
        if len(col_labels) != cols:
            raise ValueError(f"col_labels must have {cols} entries, got {len(col_labels)}")
        fig.update_xaxes(tickmode="array", tickvals=list(range(cols)),
                         ticktext=[_hover_safe(c) for c in visible_chars(col_labels)])
    fig.update_yaxes(autorange="reversed", showgrid=False)
    fig.update_xaxes(showgrid=False)
    return fig


def weight_histogram(W, name: str, *, bins: int = 60) -> go.Figure:
    """Histogram of all entries of W (any shape); counts are binned in NumPy so
    the figure carries ``bins`` bars, not every weight. Title shows mean, std, max|w|."""
    bins = _check_positive_int(bins, "bins")
    values = np.asarray(W, dtype=float).reshape(-1)
    values = values[np.isfinite(values)]
    fig = go.Figure()
    if values.size == 0:
        _style(fig, title=f"{name}: distribution", height=SMALL_HEIGHT, x_title="weight value", y_title="count")
        return _empty_note(fig, f"{name} has no finite entries")
    counts, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    title = (f"{name}: distribution (mean {values.mean():+.3g}, std {values.std():.3g}, "
             f"max |w| {np.abs(values).max():.3g})")
    _style(fig, title=title, height=SMALL_HEIGHT, x_title="weight value", y_title="count")
    fig.add_trace(
        go.Bar(
            x=centres,
            y=counts,
            width=np.diff(edges),
            customdata=np.stack([edges[:-1], edges[1:]], axis=1),
            marker=dict(color=MAIN_COLOUR, line=dict(width=0)),
            name=name,
            hovertemplate="[%{customdata[0]:.3g}, %{customdata[1]:.3g}): %{y} weights<extra></extra>",
        )
    )
    fig.update_layout(bargap=0.02, showlegend=False)
    return fig


# ---------------------------------------------------------------- gradients


def _log_ticks(*arrays) -> dict:
    """Tick settings for a log axis over these values: over two decades or more, one labelled tick per
    decade (10⁻³, 10⁻², ...), since plotly's default labels every minor tick (9 8 7 6 ...); over less,
    plotly's own ticks, which are then readable."""
    values = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays]) if arrays else np.array([])
    values = values[np.isfinite(values) & (values > 0)]
    if values.size and values.max() / values.min() >= 100.0:
        return dict(dtick=1, exponentformat="power")
    return {}


def dh_norm_figure(dh_norms, chars: str | Sequence[str] | None = None, *, log_y: bool = True) -> go.Figure:
    """‖∂L/∂h_t‖ for each step t of one window, as bars. dh_norms: (T,).

    chars (optional, T characters) label the x axis. A log y axis shows
    vanishing/exploding gradients as straight-ish slopes.
    """
    norms = _as_1d(dh_norms, "dh_norms")
    T = norms.shape[0]
    fig = go.Figure()
    _style(fig, title="Gradient reaching each hidden state, ‖∂L/∂hₜ‖",
           height=SMALL_HEIGHT, x_title="time step t", y_title="‖∂L/∂hₜ‖")
    if T == 0:
        return _empty_note(fig, EMPTY_TRAINING_MESSAGE)
    t = np.arange(T)
    if chars is not None:
        labels = _char_ticks(chars, T)
        custom = [_hover_safe(c) for c in labels]
        hover = "t = %{x}, char '%{customdata}'<br>‖∂L/∂h‖ = %{y:.3g}<extra></extra>"
        fig.update_xaxes(tickmode="array", tickvals=list(t), ticktext=labels, tickangle=0,
                         tickfont=dict(family="monospace"), title_text="time step t (input character)")
    else:
        custom = None
        hover = "t = %{x}<br>‖∂L/∂h‖ = %{y:.3g}<extra></extra>"
    fig.add_trace(go.Bar(x=t, y=norms, customdata=custom, marker=dict(color=MAIN_COLOUR),
                         name="‖∂L/∂hₜ‖", hovertemplate=hover))
    if log_y:
        fig.update_yaxes(type="log", **_log_ticks(norms))
    fig.update_layout(showlegend=False)
    return fig


def grad_norms_figure(
    iterations,
    norms: Mapping[str, np.ndarray],
    clip_fraction=None,
    clip: float = 5.0,
    max_points: int = 2000,
) -> go.Figure:
    """Gradient norm per parameter over training (log y), and, when clip_fraction is
    given, the fraction of gradient entries clipped to ±clip in a second panel.

    iterations: (N,); norms: {param name: (N,)}; clip_fraction: (N,) in [0, 1].
    Each trace is downsampled to at most max_points points.
    """
    max_points = _check_max_points(max_points)
    it = _as_1d(iterations, "iterations")
    series = {}
    for key, values in norms.items():
        arr = _as_1d(values, f"norms[{key!r}]")
        _same_length(it, "iterations", arr, f"norms[{key!r}]")
        series[key] = arr
    frac = None
    if clip_fraction is not None:
        frac = _as_1d(clip_fraction, "clip_fraction")
        _same_length(it, "iterations", frac, "clip_fraction")

    norm_title = "gradient norm ‖∂L/∂θ‖"
    clip_title = f"% entries clipped to ±{clip:g}"
    if frac is None:
        fig = go.Figure()
        _style(fig, title="Gradient norms", height=SMALL_HEIGHT, x_title="iteration", y_title=norm_title)
    else:
        fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.68, 0.32], vertical_spacing=0.07)
        _style(fig, title="Gradient norms and clipping", height=GRAD_HEIGHT, x_title="", y_title="")
        fig.update_yaxes(title_text=norm_title, row=1, col=1)
        fig.update_yaxes(title_text=clip_title, row=2, col=1)
        fig.update_xaxes(title_text="iteration", row=2, col=1)
    row_kw = {} if frac is None else dict(row=1, col=1)

    if it.shape[0] == 0 or (not series and frac is None):
        return _empty_note(fig, EMPTY_TRAINING_MESSAGE)
    for key, arr in series.items():
        x, y = downsample(it, arr, max_points)
        fig.add_trace(
            go.Scatter(x=x, y=y, mode="lines", name=key,
                       line=dict(width=1.5, color=PARAM_COLOURS.get(key)),
                       hovertemplate=f"iteration %{{x}}<br>‖∂L/∂{key}‖ = %{{y:.3g}}<extra></extra>"),
            **row_kw,
        )
    fig.update_yaxes(type="log", **_log_ticks(*series.values()), **row_kw)
    # Beside the plot, not above it: five entries above would run into the title.
    fig.update_layout(legend=dict(orientation="v", yanchor="top", y=1.0, xanchor="left", x=1.01))
    if frac is not None:
        x, y = downsample(it, frac * 100.0, max_points)
        fig.add_trace(
            go.Scatter(x=x, y=y, mode="lines", name="clipped", fill="tozeroy",
                       line=dict(width=1, color="#555"),
                       hovertemplate="iteration %{x}<br>%{y:.2f}% of entries clipped<extra></extra>"),
            row=2, col=1,
        )
        fig.update_yaxes(rangemode="tozero", row=2, col=1)
    return fig


# ---------------------------------------------------------------- predictions


def topk_figure(
    input_chars: str | Sequence[str],
    probs,
    vocab_chars: str | Sequence[str],
    actual_next=None,
    *,
    k: int = 5,
) -> go.Figure:
    """Top-k predicted next characters at each position of a window.

    input_chars: the T input characters (x tick labels); probs: (T, V) softmax rows;
    vocab_chars: the V characters, index -> char; actual_next (optional): (T,) int ids
    or a T-character string of the true next characters — cells that match are
    outlined. Positions on x, rank 1..k on y (rank 1 at the top), cell text is the
    predicted character, colour its probability (fixed range 0..1).
    """
    probs = np.asarray(probs, dtype=float)
    if probs.ndim != 2:
        raise ValueError(f"probs must be 2-D (T, V), got shape {probs.shape}")
    T, V = probs.shape
    vocab = list(vocab_chars)
    if len(vocab) != V:
        raise ValueError(f"vocab_chars must have {V} characters (probs has V = {V}), got {len(vocab)}")
    k = _check_positive_int(k, "k")
    k = min(k, V) if V else k
    labels = _char_ticks(input_chars, T, "input_chars")
    fig = go.Figure()
    _style(fig, title=f"Top-{k} predictions for the next character", height=SMALL_HEIGHT,
           x_title="time step t (input character)", y_title="rank")
    if T == 0 or V == 0:
        return _empty_note(fig, "No predictions to show")

    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]  # (T, k) vocab ids, best first
    top_p = np.take_along_axis(probs, order, axis=1)  # (T, k)
    visible_vocab = visible_chars(vocab)
    cell_text = np.array([[visible_vocab[order[t, r]] for t in range(T)] for r in range(k)], dtype=object)
    hover_input = np.array([_hover_safe(c) for c in labels], dtype=object)
    custom = np.empty((k, T, 2), dtype=object)
    custom[:, :, 0] = np.tile(hover_input, (k, 1))
    custom[:, :, 1] = np.vectorize(_hover_safe, otypes=[object])(cell_text)
    ranks = np.arange(1, k + 1)
    fig.add_trace(
        go.Heatmap(
            z=top_p.T,
            x=np.arange(T),
            y=ranks,
            text=cell_text,
            texttemplate="%{text}",
            textfont=dict(family="monospace", size=13),
            customdata=custom,
            colorscale=PROBABILITY_COLORSCALE,
            zmin=0.0,
            zmax=1.0,
            xgap=1,
            ygap=1,
            colorbar=dict(title=dict(text="p"), thickness=12),
            hovertemplate=("t = %{x}, after '%{customdata[0]}'<br>rank %{y}: '%{customdata[1]}'"
                           "<br>p = %{z:.3f}<extra></extra>"),
        )
    )
    title_extra = ""
    if actual_next is not None:
        if isinstance(actual_next, str):
            index = {c: i for i, c in enumerate(vocab)}
            unknown = [c for c in actual_next if c not in index]
            if unknown:
                raise ValueError(f"actual_next contains characters not in vocab_chars: {unknown[:5]!r}")
            target = np.array([index[c] for c in actual_next], dtype=int)
        else:
            target = np.asarray(actual_next, dtype=int).reshape(-1)
        if target.shape[0] != T:
            raise ValueError(f"actual_next must have {T} entries (one per position), got {target.shape[0]}")
        hit_t, hit_rank = np.nonzero(order == target[:, None])
        fig.add_trace(
            go.Scatter(
                x=hit_t,
                y=hit_rank + 1,
                mode="markers",
                name="actual next char",
                marker=dict(symbol="square-open", size=22, color="#111", line=dict(width=2)),
                hovertemplate="t = %{x}: actual next char at rank %{y}<extra></extra>",
            )
        )
        top1 = int(np.sum(order[:, 0] == target))
        title_extra = f" — actual next char ranked 1st at {top1}/{T}, in top-{k} at {hit_t.size}/{T} positions"
        fig.update_layout(title_text=f"Top-{k} predictions for the next character{title_extra}")
    fig.update_xaxes(tickmode="array", tickvals=list(range(T)), ticktext=labels, tickangle=0,
                     tickfont=dict(family="monospace"), showgrid=False)
    fig.update_yaxes(tickmode="array", tickvals=list(ranks), autorange="reversed", showgrid=False)
    return fig


def sample_probability_figure(
    probs,
    vocab_chars: str | Sequence[str],
    *,
    temperature: float | None = None,
    top: int | None = 30,
) -> go.Figure:
    """Bar chart of one softmax distribution probs (V,), most likely characters first.

    Shows the ``top`` most likely characters (all when top is None); the title names
    the temperature when given.
    """
    p = _as_1d(probs, "probs")
    vocab = list(vocab_chars)
    if len(vocab) != p.shape[0]:
        raise ValueError(f"vocab_chars must have {p.shape[0]} characters (len(probs)), got {len(vocab)}")
    title = "Next-character distribution" + (f" at temperature {temperature:g}" if temperature is not None else "")
    fig = go.Figure()
    _style(fig, title=title, height=SMALL_HEIGHT, x_title="character", y_title="probability")
    if p.shape[0] == 0:
        return _empty_note(fig, "No distribution to show")
    order = np.argsort(-p, kind="stable")
    if top is not None:
        order = order[: _check_positive_int(top, "top")]
    labels = [visible_char(vocab[i]) for i in order]
    fig.add_trace(
        go.Bar(
            x=np.arange(order.size),
            y=p[order],
            customdata=[_hover_safe(c) for c in labels],
            marker=dict(color=MAIN_COLOUR),
            hovertemplate="'%{customdata}': p = %{y:.4f}<extra></extra>",
        )
    )
    fig.update_xaxes(tickmode="array", tickvals=list(range(order.size)), ticktext=labels, tickangle=0,
                     tickfont=dict(family="monospace"))
    fig.update_yaxes(rangemode="tozero")
    fig.update_layout(showlegend=False)
    return fig


# ---------------------------------------------------------------- recurrent matrix


def spectral_radius_figure(iterations, radius, *, max_points: int = 2000) -> go.Figure:
    """Spectral radius of Whh (largest |eigenvalue|) over training; iterations, radius: (N,).

    A dotted line at 1 marks where repeated multiplication by Whh stops shrinking vectors.
    """
    max_points = _check_max_points(max_points)
    it = _as_1d(iterations, "iterations")
    rho = _as_1d(radius, "radius")
    _same_length(it, "iterations", rho, "radius")
    fig = go.Figure()
    _style(fig, title="Spectral radius of Whh", height=SMALL_HEIGHT, x_title="iteration", y_title="ρ(Whh)")
    fig.add_hline(y=1.0, line=dict(color=REFERENCE_COLOUR, dash="dash", width=1.5),
                  annotation_text="ρ = 1", annotation_position="top right",
                  annotation_font=dict(size=11, color="#666"))
    if it.shape[0] == 0:
        return _empty_note(fig, EMPTY_TRAINING_MESSAGE)
    x, y = downsample(it, rho, max_points)
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers" if x.size < 60 else "lines",
                             name="ρ(Whh)", line=dict(color=MAIN_COLOUR, width=2),
                             hovertemplate="iteration %{x}<br>ρ = %{y:.4f}<extra></extra>"))
    fig.update_layout(showlegend=False)
    fig.update_yaxes(rangemode="tozero")
    if x.size < 3:   # too few points for sensible automatic ticks (a lone point gets fractional ones)
        fig.update_xaxes(tickvals=x, tickformat=",d")
    return fig


PRESENTER_FONT_PX = 24
PRESENTER_LINE_PX = 4


def for_projector(fig: go.Figure, *, height: int = 520) -> go.Figure:
    """``fig`` restyled for a projector seen from the back row: text at least PRESENTER_FONT_PX,
    every drawn line at least PRESENTER_LINE_PX wide (filled bands keep their edges off)."""
    fig.update_layout(font=dict(size=PRESENTER_FONT_PX), height=height,
                      title=dict(font=dict(size=PRESENTER_FONT_PX + 4)),
                      legend=dict(font=dict(size=PRESENTER_FONT_PX), orientation="h", x=0, xanchor="left",
                                  y=-0.45, yanchor="top"),
                      margin=dict(b=150))
    fig.update_xaxes(title_font=dict(size=PRESENTER_FONT_PX), tickfont=dict(size=PRESENTER_FONT_PX))
    fig.update_yaxes(title_font=dict(size=PRESENTER_FONT_PX), tickfont=dict(size=PRESENTER_FONT_PX))
    for trace in fig.data:
        if getattr(trace, "type", "") != "scatter" or (trace.fill not in (None, "none")):
            continue
        if trace.line.width == 0:          # a band's invisible edge
            continue
        if "lines" in (trace.mode or "lines"):
            trace.line.width = max(trace.line.width or 0, PRESENTER_LINE_PX)
    for annotation in fig.layout.annotations:
        annotation.font.size = max(annotation.font.size or 0, PRESENTER_FONT_PX)
    return fig
