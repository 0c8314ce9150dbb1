"""Shared look of every figure: the colours (the loss chart's lines, the Okabe–Ito
``PARAM_COLOURS`` per parameter), margins and heights, the diverging and probability colour
scales, and the small helpers the figure modules share: ``apply_style`` (the common layout),
``empty_note`` (the message on an empty chart), ``hover_safe``, the argument checks, the
character tick labels and ``for_projector`` (any figure restyled for a projector). Draws no figure
of its own. Pure: no streamlit import, tested without a server; the bottom of the figure modules,
importing none of them.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from playground.escape import chart_label
from playground.views.textviews import DIVERGING_STOPS, SURPRISE_STOPS, visible_chars

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


def apply_style(fig: go.Figure, *, title: str, height: int, x_title: str, y_title: str) -> go.Figure:
    fig.update_layout(
        # No plotly template: st.plotly_chart draws with Streamlit's theme anyway, and assigning a
        # named template deep-copies it, a real share of a live refresh (bench.costs).
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


def empty_note(fig: go.Figure, message: str) -> go.Figure:
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


def hover_safe(s: str) -> str:
    # Plotly renders a small HTML subset (and $...$ as LaTeX) in legend, hover and tick text.
    return chart_label(s)


def as_1d(values, name: str) -> np.ndarray:
    arr = np.asarray(values, dtype=float)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {arr.shape}")
    return arr


def check_same_length(reference: np.ndarray, ref_name: str, other: np.ndarray, name: str) -> None:
    if other.shape[0] != reference.shape[0]:
        raise ValueError(
            f"{name} must have the same length as {ref_name} ({reference.shape[0]}), got {other.shape[0]}"
        )


def check_positive_int(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)


def char_ticks(chars: str | Sequence[str], n: int, name: str = "chars") -> list[str]:
    labels = visible_chars(chars)
    if len(labels) != n:
        raise ValueError(f"{name} must have one character per time step ({n}), got {len(labels)}")
    return labels


# ---------------------------------------------------------------- projector


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
