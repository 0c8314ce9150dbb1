"""What the Train page's timeline shows, as pure functions of a Run and one of its snapshots (no
streamlit): the snapshot's sample, the hidden states of a fixed passage, the mark on the loss chart
and the scrubber's labels. Tested without a server."""
from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

from playground.runs import timeline as tl
from playground.runs.run import Run
from playground.views import hidden_figures, loss_chart, loss_units
from rnn_core.trainer import bits_per_char

MARK_COLOUR = "#d95f02"    # the orange end of the app's blue-orange scale: apart from the blue curves


def passage(run: Run) -> tuple[np.ndarray, str]:
    """The fixed passage the timeline shows hidden states on: the first PASSAGE_LENGTH characters
    of the validation text (of the training text when there is none): ids (T,) and the text."""
    tr = run.trainer
    source = tr.val_ids if tr.val_ids is not None and len(tr.val_ids) >= 2 else tr.data
    ids = np.asarray(source[:tl.PASSAGE_LENGTH], dtype=np.int64)
    return ids, run.vocab.decode(ids)


def sample_text(run: Run, snap: tl.TimelineSnapshot, length: int = tl.SAMPLE_LENGTH) -> str:
    """The sample the model gave at ``snap``: ``length`` characters after the passage's first
    character, drawn with the fixed seed timeline.SAMPLE_SEED (the same text every time)."""
    m = run.trainer.model
    prime = int(passage(run)[0][0])
    return run.vocab.decode(tl.sample_ids(snap, m.vocab_size, m.hidden_size, m.dtype, prime, length))


def passage_states(run: Run, snap: tl.TimelineSnapshot) -> tuple[np.ndarray, str]:
    """Hidden states (T, H) of the snapshot's model reading the passage from h = 0, and the text."""
    m = run.trainer.model
    ids, text = passage(run)
    model = tl.snapshot_model(snap, m.vocab_size, m.hidden_size, m.dtype)
    with np.errstate(over="ignore", invalid="ignore"):
        hs = model.forward(ids, np.zeros(m.hidden_size, dtype=m.dtype)).hs
    return hs, text


def passage_heatmap(run: Run, snap: tl.TimelineSnapshot) -> go.Figure:
    hs, text = passage_states(run, snap)
    return hidden_figures.hidden_heatmap(hs, text, title=f"Hidden state on a fixed passage, at iteration {snap.iteration:,}")


def moment_label(iteration: int) -> str:
    """The scrubber's label of a snapshot: 'start' for the untrained model, else the iteration."""
    return "start (untrained)" if iteration == 0 else f"{iteration:,}"


def chart_value(run: Run, snap: tl.TimelineSnapshot, unit: str, smoothing) -> float:
    """Where the mark sits on the loss chart: the chart's bold line (``smoothing`` as the page's
    Smoothing control) at the snapshot's iteration, in ``unit``. With no history there yet (the
    untrained model) or classic smoothing, the snapshot's own smoothed loss."""
    hist = run.trainer.history.as_arrays("iteration", "loss", "smooth_loss")
    if smoothing == loss_chart.CLASSIC_SMOOTHING or not len(hist["iteration"]):
        per_window = snap.smooth_loss
    else:
        line, _ = loss_chart.smoothed_series(hist["iteration"], hist["loss"], hist["smooth_loss"], smoothing)
        per_window = float(np.interp(snap.iteration, hist["iteration"], line))
    return float(loss_units.convert_loss(np.array([per_window]), unit, run.trainer.seq_length)[0])


def mark_snapshot(fig: go.Figure, iteration: int, value: float, unit: str) -> go.Figure:
    """``fig`` (the loss chart) with the chosen snapshot marked: a dotted vertical line at
    ``iteration`` and a point at ``value`` (already in ``unit``). Returns ``fig``, changed in place."""
    fmt = ".2f" if unit in ("window", "perplexity") else ".3f"
    fig.add_vline(x=iteration, line=dict(color=MARK_COLOUR, width=1.5, dash="dot"))
    fig.add_trace(go.Scatter(
        x=[iteration], y=[value], mode="markers", name="timeline snapshot",
        marker=dict(color=MARK_COLOUR, size=12, symbol="diamond", line=dict(color="white", width=1.5)),
        hovertemplate=f"snapshot at iteration %{{x:,}}<br>%{{y:{fmt}}}<extra></extra>"))
    return fig


def describe(snap: tl.TimelineSnapshot, seq_length: int) -> str:
    """One line about a snapshot: iteration, smoothed loss, the settings it trained with then."""
    bits = bits_per_char(snap.smooth_loss, seq_length)
    return (f"Iteration {snap.iteration:,} · smoothed loss {snap.smooth_loss:.2f} per window ({bits:.3f} bits/char) · "
            f"{snap.optimizer} lr {snap.learning_rate:g} · clip {snap.clip:g}")
