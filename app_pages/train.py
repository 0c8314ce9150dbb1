"""Train: the settings, and the run learning live (metrics, loss chart, hidden states, samples)."""
import math

import streamlit as st

from playground.escape import markdown_text
from playground.runs.run import BUILTIN_LABELS, SAMPLE_LENGTH, SAMPLE_SECONDS, window_chars
from playground.session import app_state, experiment, state, timeline_ui
from playground.session.app_state import LOSS_UNIT_KEY, SMOOTHING_KEY, draft_key
from playground.views import compare, hidden_figures, loss_chart, loss_units
from playground.views.textviews import count, reveal_invisible
from rnn_core.corpora import BUILTIN_CORPORA
from rnn_core.optim import OPTIMIZERS

run = state.get_run()
app = app_state.app()

st.title("Train a character-level RNN")
st.caption(r"$h_t = \tanh(W_{xh} x_t + W_{hh} h_{t-1} + b_h)$,  $y_t = W_{hy} h_t + b_y$,  "
           r"$p_t = \mathrm{softmax}(y_t)$: "
           "min-char-rnn's model, trained by backprop through time. "
           + ("You are watching this run: it trains when its owner presses Start." if state.watching()
              else "Press **Start** in the sidebar."))

# The run's standing alert is often the sentence the entry file just showed at the top (why training
# paused): not said twice.
if run.alert and run.alert != state.shown_flash():
    st.warning(run.alert, icon=":material/warning:")

settings, live = st.columns([1.4, 3], gap="large")

def experiment_link() -> None:
    """The settings above (and the chart's unit and smoothing) as a link that starts a fresh run."""
    with st.popover("Copy link to this experiment", icon=":material/share:", width="stretch"):
        draft = app_state.draft_config()
        query = experiment.query(draft, app_state.loss_unit(), app_state.smoothing())
        st.code(f"{state.app_base_url()}/?{query}", language=None, wrap_lines=True)
        st.caption("Whoever opens this link gets a fresh run with exactly these settings (not your trained "
                   "run: that is the private link on Save & load)."
                   + (" Your own text is not in the link: it names Shakespeare instead."
                      if draft.corpus == "custom" else ""))


def watched_settings() -> None:
    """A watcher's settings column: the run's settings, read-only (its owner sets them)."""
    st.subheader("Settings")
    c, tr = run.config, run.trainer
    rows = [("Corpus", run.corpus_label), ("Hidden size", c.hidden_size), ("Sequence length", c.seq_length),
            ("Batch size", c.batch_size), ("Random seed", c.seed), ("Learning rate", f"{tr.learning_rate:g}"),
            ("Optimizer", tr.optimizer_name), ("Gradient clip (±)", f"{tr.clip:g}"),
            ("Sample every N iterations", c.sample_every)]
    st.table({"setting": [r[0] for r in rows], "value": [str(r[1]) for r in rows]}, hide_index=True)
    st.caption("You are watching this run: its owner sets these. *Make my own copy* in the sidebar gives you "
               "a run of your own to change.")


if state.watching():
    with settings:
        watched_settings()
else:
    with settings:
        st.subheader("Settings")
        p1, p2 = st.columns(2)
        p1.button("Classic", on_click=state.apply_preset, args=("classic",), width="stretch",
                  help="min-char-rnn: batch 1, Adagrad, learning rate 0.1")
        p2.button("Fast", on_click=state.apply_preset, args=("fast",), width="stretch",
                  help="16 parallel streams with Adam (lr 0.005): reaches the classic setting’s 60-second loss in a few seconds")
        corpus_options = list(BUILTIN_CORPORA) + (["custom"] if app.custom_text else [])
        if app_state.draft("corpus") not in corpus_options:
            app_state.set_draft("corpus", corpus_options[0])
        st.selectbox("Corpus", corpus_options, key=draft_key("corpus"), persist_state="session",
                     format_func=lambda k, custom=(app.custom_label or "your text"): custom if k == "custom" else BUILTIN_LABELS[k],
                     help="Upload or paste your own text on the Data page.")
        st.select_slider("Hidden size", experiment.HIDDEN_SIZES, key=draft_key("hidden_size"), persist_state="session",
                         help="Number of hidden units H (the size of h_t).")
        st.slider("Sequence length", 1, 200, key=draft_key("seq_length"), persist_state="session",
                  help="Characters per window T: how far back in time each update backpropagates.")
        st.select_slider("Batch size", experiment.BATCH_SIZES, key=draft_key("batch_size"), persist_state="session",
                         help="Parallel streams over equal parts of the text; loss and gradients are batch means.")
        st.number_input("Random seed", 0, 2**32 - 1, step=1, key=draft_key("seed"), persist_state="session",
                        help="Seeds the initial weights: the same seed gives the same starting model.")
        st.divider()
        st.caption("These apply immediately, even while training:")
        drafted_lr = app_state.draft("learning_rate")
        if not isinstance(drafted_lr, (int, float)) or not math.isfinite(drafted_lr):
            st.error(f"The learning rate {drafted_lr!r} is not a finite number; "
                     f"kept the run's {run.trainer.learning_rate:g}.")
            drafted_lr = run.trainer.learning_rate
            app_state.set_draft("learning_rate", drafted_lr)
        # The slider's stops, plus the draft's own value when it is not one of them (a loaded run's).
        lr_stops = sorted(set(experiment.LEARNING_RATES) | {drafted_lr})
        st.select_slider("Learning rate", lr_stops, key=draft_key("learning_rate"), persist_state="session", format_func=lambda v: f"{v:g}",
                         on_change=state.apply_live_settings, help="Step size (log scale).")
        st.selectbox("Optimizer", OPTIMIZERS, key=draft_key("optimizer"), persist_state="session", on_change=state.apply_live_settings,
                     help="Adagrad is min-char-rnn's choice. Switching starts the new optimizer's memory afresh.")
        st.select_slider("Gradient clip (±)", experiment.CLIPS, key=draft_key("clip"), persist_state="session",
                         on_change=state.apply_live_settings,
                         help="Every gradient entry is clipped to [−clip, clip] before the update.")
        st.number_input("Sample every N iterations", 1, 100_000, step=50, key=draft_key("sample_every"), persist_state="session",
                        on_change=state.apply_live_settings,
                        help=f"A {SAMPLE_LENGTH}-character sample from the model as it trains. At most one every "
                             f"{SAMPLE_SECONDS:g} s of training, so at thousands of iterations per second they come "
                             "further apart than N.")

        changes = app_state.draft_config().reset_changes(run.config)
        if changes:
            listed = ", ".join(f"{name.replace('_', ' ')} {old} → {new}" for name, new, old in changes)
            st.warning(f"Press **Reset** to apply: {listed}. This starts a new model and discards the current "
                       f"{count(run.iteration, 'iteration')} of training.", icon=":material/restart_alt:")
        experiment_link()


UNIT_KEYS = list(loss_units.UNITS)
UNIT_BUTTONS = {"window": "per window (classic)", "nats": "nats/char", "bits": "bits/char", "perplexity": "perplexity"}
CLASSIC_SMOOTHING = loss_chart.CLASSIC_SMOOTHING
SMOOTHING_OPTIONS = list(experiment.SMOOTHINGS)


def _compact(n: int) -> str:
    """1,234 / 381.4k / 12.3M: fits a metric column at any count."""
    if n < 100_000:
        return f"{n:,}"
    return f"{n / 1e3:.1f}k" if n < 10_000_000 else f"{n / 1e6:.1f}M"


def _smoothing_label(option) -> str:
    if option == CLASSIC_SMOOTHING:
        return "min-char-rnn"
    return "none" if option == 0.0 else f"{option:g}"


def _keep_curve() -> None:
    app.kept_curves = compare.keep(app.kept_curves, state.get_run())


def _clear_curves() -> None:
    app.kept_curves = ()


def _keep_a_unit() -> None:
    """Clicking the chosen unit again turns a segmented control off: the chart keeps a unit (a
    callback runs before the widget is drawn again, so it may set the widget's value)."""
    if st.session_state.get(LOSS_UNIT_KEY) is None:
        app_state.set_chart_view({LOSS_UNIT_KEY: app_state.DEFAULT_LOSS_UNIT})


@st.fragment(run_every=timeline_ui.refresh_interval(state.live_interval()))
def live_panel() -> None:
    run = state.get_run()
    tr = run.trainer
    # Two rows of three: the numbers fit on a small screen.
    iteration_col, epoch_col, chars_col = st.columns(3)
    speed_col, loss_col, bits_col = st.columns(3)
    T, B = tr.seq_length, tr.batch_size
    iteration_col.metric("Iteration", f"{tr.iteration:,}",
                help=f"One iteration reads one window of T = {T} characters in each of the B = {B} streams: "
                     "forward pass, backprop through time, clip, one optimizer update.")
    epoch_col.metric("Epoch", f"{tr.epoch:.2f}",
                help="Passes over the training text: characters read ÷ characters in the training text "
                     f"= iteration × T × B ÷ {len(tr.data):,}.")
    chars_col.metric("Characters", _compact(tr.chars_seen),
                help=f"Characters read in training so far: iteration × T × B = {tr.chars_seen:,}")
    speed_col.metric("Iterations/s", f"{run.iterations_per_second:,.0f}" if app.running else "—",
                help="Iterations gained ÷ seconds of wall-clock time over the last few seconds of training.")
    loss_col.metric("Smooth loss", f"{tr.smooth_loss:.2f}",
                help="min-char-rnn's smoothed loss, as it prints it: smooth ← 0.999 · smooth + 0.001 · L, where "
                     "L = −Σₜ ln pₜ[target] is the loss of one window of T characters in nats. It starts at the "
                     f"untrained loss −ln(1/V) · T = {run.untrained_loss:.2f}.")
    bits_col.metric("Bits per char", f"{run.bits_per_char:.3f}",
                help="smooth loss ÷ (T · ln 2): the mean surprise per character in bits. A uniform guess over the "
                     f"V = {run.vocab.size} characters scores log₂ V = {math.log2(run.vocab.size):.2f}.")

    hist = tr.history.as_arrays("iteration", "loss", "smooth_loss", "loss_min", "loss_max")
    val = tr.val_history.as_arrays()
    smoothing = app_state.smoothing()
    smooth, smooth_label = loss_chart.smoothed_series(hist["iteration"], hist["loss"], hist["smooth_loss"], smoothing)
    st.plotly_chart(timeline_ui.marked(loss_chart.loss_figure(hist["iteration"], hist["loss"], smooth,
                                        seq_length=tr.seq_length, vocab_size=run.vocab.size,
                                        unit=app_state.loss_unit(), val_iterations=val["iteration"],
                                        val_bits_per_char=val["val_bits_per_char"], max_points=1000,
                                        smooth_label=smooth_label, loss_min=hist["loss_min"],
                                        loss_max=hist["loss_max"],
                                        compare=compare.for_chart(app.kept_curves, smoothing)), run),
                    key="loss_chart", width="stretch")
    timeline_ui.section(run)

    inputs, _, h0, chars = window_chars(run)
    trace = run.trainer.model.forward(inputs, h0)
    st.plotly_chart(hidden_figures.hidden_heatmap(trace.hs, chars, title="Hidden state on the next training window"),
                    key="hidden_chart", width="stretch")

    st.markdown("**Samples** (200 characters each, newest first)")
    if not run.samples:
        st.caption("A sample appears every few iterations once training starts.")
    for iteration, text in list(run.samples)[::-1][:4]:
        st.caption(f"iteration {iteration:,}")
        st.code(reveal_invisible(text), language=None, wrap_lines=True)


with live:
    st.segmented_control("Loss unit", UNIT_KEYS, key=LOSS_UNIT_KEY, format_func=UNIT_BUTTONS.get,
                         persist_state="session", on_change=_keep_a_unit,
                         help="Per window (nats) is min-char-rnn's number: the loss summed over T characters. "
                              "Per char divides by T; bits divide nats by ln 2; perplexity is e^(nats/char).")
    smoothing_col, _ = st.columns([2, 3])
    smoothing_col.select_slider(
        "Smoothing", SMOOTHING_OPTIONS, key=SMOOTHING_KEY, format_func=_smoothing_label, persist_state="session",
        help="The bold line. **min-char-rnn**: its own running average, 0.999 × old + 0.001 × loss from the "
             "untrained loss on, so it lags far behind at the start. **A number w**: an average over about "
             "1/(1−w) iterations that follows the loss from the first iteration (debiased, as TensorBoard "
             "smooths). **none**: the loss itself.")
    live_panel()
    with st.expander(f"Compare runs ({len(app.kept_curves)} kept)" if app.kept_curves else "Compare runs"):
        st.caption("Keep this run's loss curve, change a setting (the same random seed starts from the same "
                   "weights), press **Reset** and train: kept curves stay on the chart as dashed lines, "
                   "smoothed like the run's own. Per-char units compare runs with different sequence lengths. "
                   f"Up to {compare.MAX_KEPT} curves, kept in this browser tab.")
        keep_col, clear_col = st.columns(2)
        keep_col.button("Keep this curve", key="keep_curve", on_click=state.locked(_keep_curve),
                        icon=":material/add_chart:", width="stretch", disabled=run.iteration == 0)
        clear_col.button("Clear kept curves", key="clear_curves", on_click=state.locked(_clear_curves),
                         icon=":material/delete:", width="stretch", disabled=not app.kept_curves)
        for curve in app.kept_curves:
            st.caption(f"- {markdown_text(curve.label)}")
    if len(run.samples) > 4:
        with st.expander(f"All {len(run.samples)} recent samples"):
            for iteration, text in list(run.samples)[::-1]:
                st.caption(f"iteration {iteration:,}")
                st.code(reveal_invisible(text), language=None, wrap_lines=True)
