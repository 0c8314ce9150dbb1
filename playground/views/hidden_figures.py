"""Figures of the hidden state, for the Hidden states and Train pages and the timeline: the
heatmap of h_t per time step (``hidden_heatmap``: fixed tanh range, the input characters on the
axis) and the state's path through a text along its two main directions (``state_trail_figure``,
one colour per character class). Pure: NumPy arrays in, a plotly figure out, no streamlit import,
tested without a server.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from playground.views.style import (
    DIVERGING_COLORSCALE,
    HEATMAP_HEIGHT,
    MAIN_COLOUR,
    apply_style,
    as_1d,
    char_ticks,
    empty_note,
    hover_safe,
)

# ---------------------------------------------------------------- hidden states


def hidden_heatmap(hs, chars: str | Sequence[str], *, title: str = "Hidden state h_t per time step") -> go.Figure:
    """Heatmap of hidden states: hs (T, H) -> units on y (H rows), time steps on x.

    chars: the T input characters, shown (whitespace made visible) as x tick labels.
    Colour range is fixed at [-1, 1] (tanh range) so charts are comparable over time.
    """
    hs = np.asarray(hs, dtype=float)
    if hs.ndim != 2:
        raise ValueError(f"hs must be 2-D (T, H), got shape {hs.shape}")
    T, H = hs.shape
    labels = char_ticks(chars, T)
    fig = go.Figure()
    apply_style(fig, title=title, height=HEATMAP_HEIGHT, x_title="time step t (input character)", y_title="hidden unit")
    if T == 0 or H == 0:
        return empty_note(fig, "No hidden states to show")
    hover_chars = np.tile(np.array([hover_safe(c) for c in labels], dtype=object), (H, 1))
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
    explained = as_1d(explained, "explained")
    if explained.shape[0] != 2:
        raise ValueError(f"explained must hold 2 fractions, got {explained.shape[0]}")
    T = coords.shape[0]
    labels = [hover_safe(c) for c in char_ticks(chars, T)]
    groups = ["all"] * T if groups is None else list(groups)
    if len(groups) != T:
        raise ValueError(f"groups must have one name per point ({T}), got {len(groups)}")
    fig = go.Figure()
    apply_style(fig, title=title, height=HEATMAP_HEIGHT + 80,
           x_title=f"direction {directions[0]} ({explained[0]:.0%} of the variation)",
           y_title=f"direction {directions[1]} ({explained[1]:.0%} of the variation)")
    if T == 0:
        return empty_note(fig, "No hidden states to show")
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
                          f"<extra>{hover_safe(group)}</extra>",
        ))
    fig.add_annotation(x=coords[0, 0], y=coords[0, 1], text="start", showarrow=True, arrowhead=2, ax=-30,
                       ay=30, font=dict(size=11, color="#444"))
    fig.update_yaxes(scaleanchor="x", scaleratio=1, zeroline=False)
    fig.update_xaxes(zeroline=False)
    return fig
