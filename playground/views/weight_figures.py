"""The Backprop page's figures of the parameters and their gradients: a weight matrix as a
heatmap (``weight_heatmap``) and its entries as a histogram (``weight_histogram``), the gradient
reaching each hidden state of a window (``dh_norm_figure``), the gradient norm per parameter and
the clipped fraction over training (``grad_norms_figure``), and Whh's spectral radius over
training (``spectral_radius_figure``). Pure: NumPy arrays in, a plotly figure out, no streamlit
import, tested without a server.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from playground.views.downsampling import check_max_points, downsample
from playground.views.style import (
    DIVERGING_COLORSCALE,
    EMPTY_TRAINING_MESSAGE,
    GRAD_HEIGHT,
    HEATMAP_HEIGHT,
    MAIN_COLOUR,
    PARAM_COLOURS,
    REFERENCE_COLOUR,
    SMALL_HEIGHT,
    apply_style,
    as_1d,
    char_ticks,
    check_positive_int,
    check_same_length,
    empty_note,
    hover_safe,
)
from playground.views.textviews import visible_chars

# ---------------------------------------------------------------- weights


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
    apply_style(fig, title=f"{name} {rows}×{cols}", height=HEATMAP_HEIGHT, x_title=x_title, y_title=y_title)
    if W.size == 0:
        return empty_note(fig, f"{name} is empty")
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
            hovertemplate=(f"{hover_safe(name)}[%{{y}}, %{{x}}] = %{{z:+.4f}}<br>"
                           + (f"{hover_safe(y_title)} %{{y}} ← {hover_safe(x_title)} %{{x}}" if x_title
                              else f"{hover_safe(y_title)} %{{y}}") + "<extra></extra>"),
        )
    )
    if row_labels is not None:
        if len(row_labels) != rows:
            raise ValueError(f"row_labels must have {rows} entries, got {len(row_labels)}")
        fig.update_yaxes(tickmode="array", tickvals=list(range(rows)),
                         ticktext=[hover_safe(c) for c in visible_chars(row_labels)])
    if col_labels is not None:
        if len(col_labels) != cols:
            raise ValueError(f"col_labels must have {cols} entries, got {len(col_labels)}")
        fig.update_xaxes(tickmode="array", tickvals=list(range(cols)),
                         ticktext=[hover_safe(c) for c in visible_chars(col_labels)])
    fig.update_yaxes(autorange="reversed", showgrid=False)
    fig.update_xaxes(showgrid=False)
    return fig


def weight_histogram(W, name: str, *, bins: int = 60) -> go.Figure:
    """Histogram of all entries of W (any shape); counts are binned in NumPy so
    the figure carries ``bins`` bars, not every weight. Title shows mean, std, max|w|."""
    bins = check_positive_int(bins, "bins")
    values = np.asarray(W, dtype=float).reshape(-1)
    values = values[np.isfinite(values)]
    fig = go.Figure()
    if values.size == 0:
        apply_style(fig, title=f"{name}: distribution", height=SMALL_HEIGHT, x_title="weight value", y_title="count")
        return empty_note(fig, f"{name} has no finite entries")
    counts, edges = np.histogram(values, bins=bins)
    centres = (edges[:-1] + edges[1:]) / 2
    title = (f"{name}: distribution (mean {values.mean():+.3g}, std {values.std():.3g}, "
             f"max |w| {np.abs(values).max():.3g})")
    apply_style(fig, title=title, height=SMALL_HEIGHT, x_title="weight value", y_title="count")
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
    """Tick settings for a log axis over these values. Plotly's default labels every minor tick with
    its first digit only (9 8 7 6 ... below 1, read as nine to six), so: over two decades or more, one
    labelled tick per decade (10⁻³, 10⁻², ...); over less, ticks at 1, 2 and 5 of each decade with
    their whole value (0.2, 0.5, 1, 2); over less than three of those, plotly's own ticks (then
    labelled with whole values)."""
    values = np.concatenate([np.asarray(a, dtype=float).ravel() for a in arrays]) if arrays else np.array([])
    values = values[np.isfinite(values) & (values > 0)]
    if not values.size:
        return {}
    low, high = float(values.min()), float(values.max())
    if high / low >= 100.0:
        return dict(dtick=1, exponentformat="power")
    ticks = [m * 10.0 ** k for k in range(math.floor(math.log10(low)), math.ceil(math.log10(high)) + 1)
             for m in (1, 2, 5) if low <= m * 10.0 ** k <= high]
    if len(ticks) < 3:
        return {}
    return dict(tickvals=ticks, ticktext=[f"{v:g}" for v in ticks])


def dh_norm_figure(dh_norms, chars: str | Sequence[str] | None = None, *, log_y: bool = True) -> go.Figure:
    """‖∂L/∂h_t‖ for each step t of one window, as bars. dh_norms: (T,).

    chars (optional, T characters) label the x axis. A log y axis shows
    vanishing/exploding gradients as straight-ish slopes.
    """
    norms = as_1d(dh_norms, "dh_norms")
    T = norms.shape[0]
    fig = go.Figure()
    apply_style(fig, title="Gradient reaching each hidden state, ‖∂L/∂hₜ‖",
           height=SMALL_HEIGHT, x_title="time step t", y_title="‖∂L/∂hₜ‖")
    if T == 0:
        return empty_note(fig, EMPTY_TRAINING_MESSAGE)
    t = np.arange(T)
    if chars is not None:
        labels = char_ticks(chars, T)
        custom = [hover_safe(c) for c in labels]
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
    max_points = check_max_points(max_points)
    it = as_1d(iterations, "iterations")
    series = {}
    for key, values in norms.items():
        arr = as_1d(values, f"norms[{key!r}]")
        check_same_length(it, "iterations", arr, f"norms[{key!r}]")
        series[key] = arr
    frac = None
    if clip_fraction is not None:
        frac = as_1d(clip_fraction, "clip_fraction")
        check_same_length(it, "iterations", frac, "clip_fraction")

    norm_title = "gradient norm ‖∂L/∂θ‖"
    clip_title = f"% entries clipped to ±{clip:g}"
    if frac is None:
        fig = go.Figure()
        apply_style(fig, title="Gradient norms", height=SMALL_HEIGHT, x_title="iteration", y_title=norm_title)
    else:
        fig = make_subplots(rows=2, cols=1, shared_xaxes=True, row_heights=[0.68, 0.32], vertical_spacing=0.07)
        apply_style(fig, title="Gradient norms and clipping", height=GRAD_HEIGHT, x_title="", y_title="")
        fig.update_yaxes(title_text=norm_title, row=1, col=1)
        fig.update_yaxes(title_text=clip_title, row=2, col=1)
        fig.update_xaxes(title_text="iteration", row=2, col=1)
    row_kw = {} if frac is None else dict(row=1, col=1)

    if it.shape[0] == 0 or (not series and frac is None):
        return empty_note(fig, EMPTY_TRAINING_MESSAGE)
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


# ---------------------------------------------------------------- recurrent matrix


def spectral_radius_figure(iterations, radius, *, max_points: int = 2000) -> go.Figure:
    """Spectral radius of Whh (largest |eigenvalue|) over training; iterations, radius: (N,).

    A dotted line at 1 marks where repeated multiplication by Whh stops shrinking vectors.
    """
    max_points = check_max_points(max_points)
    it = as_1d(iterations, "iterations")
    rho = as_1d(radius, "radius")
    check_same_length(it, "iterations", rho, "radius")
    fig = go.Figure()
    apply_style(fig, title="Spectral radius of Whh", height=SMALL_HEIGHT, x_title="iteration", y_title="ρ(Whh)")
    fig.add_hline(y=1.0, line=dict(color=REFERENCE_COLOUR, dash="dash", width=1.5),
                  annotation_text="ρ = 1", annotation_position="top right",
                  annotation_font=dict(size=11, color="#666"))
    if it.shape[0] == 0:
        return empty_note(fig, EMPTY_TRAINING_MESSAGE)
    x, y = downsample(it, rho, max_points)
    fig.add_trace(go.Scatter(x=x, y=y, mode="lines+markers" if x.size < 60 else "lines",
                             name="ρ(Whh)", line=dict(color=MAIN_COLOUR, width=2),
                             hovertemplate="iteration %{x}<br>ρ = %{y:.4f}<extra></extra>"))
    fig.update_layout(showlegend=False)
    fig.update_yaxes(rangemode="tozero")
    if x.size < 3:   # too few points for sensible automatic ticks (a lone point gets fractional ones)
        fig.update_xaxes(tickvals=x, tickformat=",d")
    return fig
