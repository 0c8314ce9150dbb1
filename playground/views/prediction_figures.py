"""Figures of what the model predicts next: the top-k next characters at each position of a
window, with the true next character outlined (``topk_figure``, Hidden states page), and one
softmax distribution as bars, most likely first (``sample_probability_figure``, Sample page).
Pure: NumPy arrays in, a plotly figure out, no streamlit import, tested without a server.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go

from playground.views.style import (
    MAIN_COLOUR,
    PROBABILITY_COLORSCALE,
    SMALL_HEIGHT,
    apply_style,
    as_1d,
    char_ticks,
    check_positive_int,
    empty_note,
    hover_safe,
)
from playground.views.textviews import visible_char, visible_chars

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
    k = check_positive_int(k, "k")
    k = min(k, V) if V else k
    labels = char_ticks(input_chars, T, "input_chars")
    fig = go.Figure()
    apply_style(fig, title=f"Top-{k} predictions for the next character", height=SMALL_HEIGHT,
           x_title="time step t (input character)", y_title="rank")
    if T == 0 or V == 0:
        return empty_note(fig, "No predictions to show")

    order = np.argsort(-probs, axis=1, kind="stable")[:, :k]  # (T, k) vocab ids, best first
    top_p = np.take_along_axis(probs, order, axis=1)  # (T, k)
    visible_vocab = visible_chars(vocab)
    cell_text = np.array([[visible_vocab[order[t, r]] for t in range(T)] for r in range(k)], dtype=object)
    hover_input = np.array([hover_safe(c) for c in labels], dtype=object)
    custom = np.empty((k, T, 2), dtype=object)
    custom[:, :, 0] = np.tile(hover_input, (k, 1))
    custom[:, :, 1] = np.vectorize(hover_safe, otypes=[object])(cell_text)
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
    p = as_1d(probs, "probs")
    vocab = list(vocab_chars)
    if len(vocab) != p.shape[0]:
        raise ValueError(f"vocab_chars must have {p.shape[0]} characters (len(probs)), got {len(vocab)}")
    title = "Next-character distribution" + (f" at temperature {temperature:g}" if temperature is not None else "")
    fig = go.Figure()
    apply_style(fig, title=title, height=SMALL_HEIGHT, x_title="character", y_title="probability")
    if p.shape[0] == 0:
        return empty_note(fig, "No distribution to show")
    order = np.argsort(-p, kind="stable")
    if top is not None:
        order = order[: check_positive_int(top, "top")]
    labels = [visible_char(vocab[i]) for i in order]
    fig.add_trace(
        go.Bar(
            x=np.arange(order.size),
            y=p[order],
            customdata=[hover_safe(c) for c in labels],
            marker=dict(color=MAIN_COLOUR),
            hovertemplate="'%{customdata}': p = %{y:.4f}<extra></extra>",
        )
    )
    fig.update_xaxes(tickmode="array", tickvals=list(range(order.size)), ticktext=labels, tickangle=0,
                     tickfont=dict(family="monospace"))
    fig.update_yaxes(rangemode="tozero")
    fig.update_layout(showlegend=False)
    return fig
