"""Hidden states: the network reads a text from h = 0; see every unit, one unit at a time, and what it
predicts (the "visualizing RNNs" view). Numbers come from playground.views.analysis."""
import math
import random
import zlib

import streamlit as st

from playground.escape import markdown_text
from playground.session import state
from playground.views import analysis, hidden_figures, prediction_figures, textviews

MAX_CHARS = 2000          # characters read per text (forward pass + per-character HTML stay quick)
HEATMAP_WINDOW = 120      # characters per heatmap view: more and the tick labels run together
TOPK_WINDOW = 40          # positions per top-k view: each cell needs room for its frame
TRAIL_WINDOW = 80         # points per state-space view: more and the character labels pile up
FINDER_ROWS = 15
EXCERPT_CHARS = 400

ss = st.session_state
run = state.get_run()
model, vocab = run.trainer.model, run.vocab
H = model.hidden_size


# ---------------------------------------------------------------- choosing the text
def _training_excerpt(start: int = 0) -> str:
    data = run.trainer.data
    # Decode only a slice: the whole training text is about a million characters.
    return analysis.excerpt(vocab.decode(data[start:start + 2 * EXCERPT_CHARS]), 1 if start else 0,
                            EXCERPT_CHARS)


def _use_training_excerpt() -> None:
    ss.hs_text = _training_excerpt()


def _use_random_excerpt() -> None:
    n = len(run.trainer.data)
    ss.hs_text = _training_excerpt(random.randrange(max(1, n - 2 * EXCERPT_CHARS)))


def _use_heldout_excerpt() -> None:
    ss.hs_text = analysis.excerpt(vocab.decode(run.trainer.val_ids[:2 * EXCERPT_CHARS]), 0, EXCERPT_CHARS)


if "hs_text" not in ss:
    _use_training_excerpt()
elif ss.get("hs_text_run") != run.uid and analysis.unknown_chars_message(ss.hs_text, vocab.chars):
    # A new run with another corpus: the old text would only produce an error.
    _use_training_excerpt()
ss.hs_text_run = run.uid

st.title("Hidden states")
st.caption("The network reads your text one character at a time, starting from h = 0, exactly as in "
           r"training: $h_t = \tanh(W_{xh} x_t + W_{hh} h_{t-1} + b_h)$. Each of the "
           f"{H} hidden units is one number per character — some learn to track quotes, line length or "
           "word boundaries. Train a while first: an untrained network's units mean nothing yet.")

text_col, pick_col = st.columns([4, 1], vertical_alignment="bottom")
with pick_col:
    st.button("Training excerpt", on_click=_use_training_excerpt, width="stretch", key="hs_pick_train",
              help="The start of the text the model trains on.")
    st.button("Random excerpt", on_click=_use_random_excerpt, width="stretch", key="hs_pick_random",
              help="Another place in the training text.")
    st.button("Held-out excerpt", on_click=_use_heldout_excerpt, width="stretch", key="hs_pick_heldout",
              disabled=run.trainer.val_ids is None,
              help="From the validation text, which the model never trains on.")
with text_col:
    st.text_area("Text for the network to read (edit freely)", key="hs_text", height=150,
                 persist_state="session", help=f"Up to {MAX_CHARS:,} characters are read.")


def _unit_finder(reading: analysis.TextReading, text: str) -> None:
    """Right column of the 'one unit' tab: ranked units; choosing a row shows that unit."""
    st.markdown("**Find interesting units**")
    mode = st.segmented_control("Rank units by", ["text feature", "most active", "most variable"],
                                key="hs_finder_mode", persist_state="session", default="text feature",
                                help="Text feature: correlation of h with a property of the text at each "
                                     "character. Most active: mean |h|. Most variable: standard deviation of h.")
    mode = mode or "text feature"
    if mode == "text feature":
        feature_names = list(analysis.FEATURE_DESCRIPTIONS)
        feature = st.selectbox("Feature", ["any (best per unit)"] + feature_names, key="hs_finder_feature",
                               persist_state="session",
                               help="\n".join(f"- **{k}**: {v}" for k, v in analysis.FEATURE_DESCRIPTIONS.items()))
        chosen = None if feature.startswith("any") else feature
        matches = analysis.rank_units(reading.hs, analysis.text_features(text), chosen, top=FINDER_ROWS)
        rows = [{"unit": m.unit, "feature": m.feature, "correlation": round(m.correlation, 3)} for m in matches]
        if not rows:
            st.caption("No unit varies together with these features on this text.")
        caption = ("Pearson correlation on this text only, −1…1: +1 means the unit is high exactly where the "
                   "feature is; −1 the opposite. Try a text that has the feature (quotes, brackets, long lines).")
    else:
        finder = analysis.most_active_units if mode == "most active" else analysis.most_variable_units
        units, scores = finder(reading.hs, FINDER_ROWS)
        label = "mean |h|" if mode == "most active" else "std of h"
        rows = [{"unit": int(u), label: round(float(s), 3)} for u, s in zip(units, scores)]
        caption = ("Most active: units far from 0 on average (often saturated near ±1). Most variable: units "
                   "that change the most along the text — usually the interesting ones.")
    units_shown = tuple(r["unit"] for r in rows)
    # The key changes with the table's content, so a stale selection never points at a new row.
    table_key = f"hs_finder_{zlib.crc32(repr((mode, units_shown)).encode()):08x}"
    event = st.dataframe(rows, key=table_key, on_select="rerun", selection_mode="single-row",
                         hide_index=True, width="stretch", height=36 * (len(rows) + 1) + 2)
    st.caption(caption + " Click a row to show that unit.")
    selected = event.selection.rows if event is not None else []
    if selected and ss.get("hs_finder_applied") != (table_key, selected[0]):
        ss.hs_finder_applied = (table_key, selected[0])
        ss.hs_unit = units_shown[selected[0]]


def _shift_unit(delta: int) -> None:
    ss.hs_unit = (int(ss.hs_unit) + delta) % H


def _one_unit(reading: analysis.TextReading, text: str) -> None:
    left, right = st.columns([3, 2], gap="large")
    with right:   # drawn first: a table click must set the unit before its input is drawn
        _unit_finder(reading, text)
    with left:
        prev_col, input_col, next_col = st.columns([1, 2, 1], vertical_alignment="bottom")
        prev_col.button("Previous", key="hs_prev", on_click=_shift_unit, args=(-1,), width="stretch",
                        icon=":material/chevron_left:")
        input_col.number_input(f"Hidden unit (0–{H - 1})", 0, H - 1, step=1, key="hs_unit",
                               persist_state="session")
        next_col.button("Next", key="hs_next", on_click=_shift_unit, args=(1,), width="stretch",
                        icon=":material/chevron_right:")
        unit = int(ss.hs_unit)
        values = reading.hs[:, unit]
        correlations = analysis.rank_units(reading.hs[:, [unit]], analysis.text_features(text), top=1)
        best = (f" · follows **{correlations[0].feature}** most (r = {correlations[0].correlation:+.2f})"
                if correlations else "")
        st.markdown(f"**Unit {unit}** · mean {values.mean():+.2f} · range {values.min():+.2f} … "
                    f"{values.max():+.2f}{best}")
        st.html(textviews.legend_html(-1, 1, label=f"h[{unit}] after reading the character"))
        st.html(textviews.colored_text_html(text, values, value_label=f"h[{unit}]"))
        st.caption("Each character's background is this unit's value right after the network read it: orange = "
                   "positive, blue = negative, white = near 0 (tanh keeps it in −1…1). Hover a character for "
                   "the number. ⏎ marks a newline.")


def _heatmap(reading: analysis.TextReading, text: str) -> None:
    T = len(text)
    start = 0
    if T > HEATMAP_WINDOW:
        start = st.slider(f"First character shown ({HEATMAP_WINDOW} at a time)", 0, T - HEATMAP_WINDOW,
                          key="hs_heat_start", step=1)
    end = min(T, start + HEATMAP_WINDOW)
    fig = hidden_figures.hidden_heatmap(reading.hs[start:end], text[start:end],
                                 title=f"h_t for characters {start}–{end - 1} (all {H} units)")
    fig.update_xaxes(tickfont=dict(size=10, family="monospace"))
    st.plotly_chart(fig, key="hs_heatmap", width="stretch")
    st.caption("One column per character (x axis), one row per hidden unit (y axis). Orange = positive, blue = "
               "negative, white = 0. A row that changes colour together with something in the text (a "
               "quote, a line break) is a unit worth opening in **One unit at a time**. Hover for values.")


TRAIL_DIRECTIONS = {"1 & 2": (1, 2), "2 & 3": (2, 3), "3 & 4": (3, 4)}


def _trail(reading: analysis.TextReading, text: str) -> None:
    T = len(text)
    if T < 3:
        st.info("Type at least three characters: the path needs a few steps to have a shape.")
        return
    trail = analysis.state_trail(reading.hs, n_components=4)   # over the whole text: sliding moves no point
    window_col, directions_col = st.columns([3, 1], vertical_alignment="bottom")
    with directions_col:
        choice = st.segmented_control("Directions", list(TRAIL_DIRECTIONS), default="1 & 2", key="hs_trail_dirs",
                                      persist_state="session",
                                      help="Which principal components to look along: 1 is the direction in which "
                                           "h varies most over this text, 2 the next (at right angles), and so on.")
    a, b = TRAIL_DIRECTIONS[choice or "1 & 2"]
    start = 0
    with window_col:
        if T > TRAIL_WINDOW:
            start = st.slider(f"First character shown ({TRAIL_WINDOW} at a time)", 0, T - TRAIL_WINDOW,
                              key="hs_trail_start", step=1)
    end = min(T, start + TRAIL_WINDOW)
    fig = hidden_figures.state_trail_figure(trail.coords[start:end, [a - 1, b - 1]], text[start:end],
                                     trail.explained[[a - 1, b - 1]], groups=analysis.char_classes(text[start:end]),
                                     first_t=start, directions=(a, b),
                                     title=f"h_t for characters {start}–{end - 1}, seen along directions {a} and {b}")
    st.plotly_chart(fig, key="hs_trail", width="stretch")
    st.caption(f"Each point is the whole {H}-number hidden state right after reading the character written on "
               "it, flattened onto two of the directions along which h varies most over this text (principal "
               "components; the axis titles say how much of the variation each one carries). Lines join the "
               "points in reading order; the colour is the kind of character just read (click the legend to "
               "hide one). Points of one colour gathering together mean the state remembers what was just "
               "read; a path that hops between a few corners on every character is an oscillation of the "
               "recurrence — then try directions 2 & 3 or 3 & 4. Hover for t.")


def _predictions(reading: analysis.TextReading, text: str) -> None:
    T = len(text)
    if T < 2:
        st.info("Type at least two characters: predictions are judged against the character that follows.")
        return
    last = T - 1                       # positions 0..T-2 have a "next character" to compare with
    start = 0
    if last > TOPK_WINDOW:
        start = st.slider(f"First position shown ({TOPK_WINDOW} at a time)", 0, last - TOPK_WINDOW,
                          key="hs_topk_start", step=1)
    end = min(last, start + TOPK_WINDOW)
    fig = prediction_figures.topk_figure(text[start:end], reading.ps[start:end], vocab.chars,
                              actual_next=reading.ids[start + 1:end + 1], k=5)
    st.plotly_chart(fig, key="hs_topk", width="stretch")
    st.caption("Above each input character (x axis): the model's 5 best guesses for the character that comes next, "
               "most likely on top. Darker = more probable. A black frame marks the character that actually "
               "came next (no frame: it was not in the top 5).")

    st.markdown(f"**Surprise** — {reading.bits_per_char:.2f} bits per character on this text "
                f"(a uniform guess would be {math.log2(vocab.size):.2f})")
    st.html(textviews.legend_html(0, 6, diverging=False, label="surprise −log₂ p (bits)"))
    st.html(textviews.surprise_text_html(text, reading.surprise))
    st.caption("Each character is coloured by how unexpected it was given everything before it: white = the "
               "model was sure (0 bits, p ≈ 1), orange → red = surprised (6 bits is as bad as a uniform guess "
               "over 64 characters). Word beginnings are usually red, word endings white. "
               "The first character is uncoloured: nothing came before it. Hover for −log₂ p and p.")


def main() -> None:
    text = ss.hs_text or ""
    if not text:
        st.info("Type a text above, or pick an excerpt.")
        return
    if len(text) > MAX_CHARS:
        st.warning(f"The text has {len(text):,} characters; the network reads the first {MAX_CHARS:,}.")
        text = text[:MAX_CHARS]
    problem = analysis.unknown_chars_message(text, vocab.chars)
    if problem:
        st.error(markdown_text(problem), icon=":material/error:")
        return
    reading = analysis.read_text(model, vocab.encode(text))
    if not 0 <= ss.get("hs_unit", -1) < H:
        first = analysis.rank_units(reading.hs, analysis.text_features(text), top=1)
        ss.hs_unit = first[0].unit if first else 0

    m = st.columns(4)
    m[0].metric("Characters read", f"{len(text):,}",
                help="n = the characters of the text above, read one by one from h = 0: "
                     "hₜ = tanh(Wxh·xₜ + Whh·hₜ₋₁ + bh) after character t.")
    m[1].metric("Bits per char", f"{reading.bits_per_char:.2f}" if len(text) > 1 else "—",
                help="Mean surprise of each character after the first, on this text: "
                     "1/(n−1) · Σₜ −log₂ pₜ[xₜ₊₁], where pₜ = softmax(Why·hₜ + by).")
    m[2].metric("Next char = top guess", f"{analysis.top_k_accuracy(reading.ps, reading.ids, 1):.0%}"
                if len(text) > 1 else "—",
                help="Share of positions t where the most likely next character, argmax pₜ, is the actual xₜ₊₁.")
    m[3].metric("Next char in top 5", f"{analysis.top_k_accuracy(reading.ps, reading.ids, 5):.0%}"
                if len(text) > 1 else "—",
                help="Share of positions t where the actual xₜ₊₁ is among the five most likely characters of pₜ.")
    st.caption(f"Model as of iteration {run.iteration:,}. While training runs, any click here re-reads the "
               "text with the newest weights.")

    heat_tab, unit_tab, trail_tab, pred_tab = st.tabs(
        ["All units (heatmap)", "One unit at a time", "Path in state space", "Predictions & surprise"])
    with heat_tab:
        _heatmap(reading, text)
    with unit_tab:
        _one_unit(reading, text)
    with trail_tab:
        _trail(reading, text)
    with pred_tab:
        _predictions(reading, text)


main()
