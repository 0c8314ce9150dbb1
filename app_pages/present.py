"""Presenter mode: one screen for a projector at the back of a hall. The loss chart, the latest
sample in large monospace type (optionally coloured by one hidden unit), iteration and bits/char in
large type, the controls as big buttons, and *Class link*: the run's watch link as a QR code the
back row can scan. The sidebar (and its live tick) is still drawn, but hidden: its shortcuts keep
working."""
import streamlit as st

from playground.escape import html_text
from playground.session import app_state, persist, state
from playground.views import analysis, loss_chart, qr, style, textviews

ss = st.session_state
app = app_state.app()

PRESENT_TEXT_PX = 24      # the smallest text size readable from the back row of a hall

# Static CSS (no user text): hide the sidebar and its toggle, and size the big numbers and buttons.
st.html("""<style>
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"], [data-testid="stExpandSidebarButton"] {
  display: none !important; }
[data-testid="stMainBlockContainer"] { padding-top: 2rem; padding-bottom: 1rem; }
.present-number { font-size: 56px; font-weight: 700; line-height: 1.1; }
.present-label { font-size: 24px; color: #555; }
.present-link { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 24px; overflow-wrap: anywhere; }
.present-sample { font-family: ui-monospace, Menlo, Consolas, monospace; font-size: 24px; line-height: 1.3;
  white-space: pre-wrap; overflow-wrap: anywhere; word-break: break-all; background: #f6f6f6;
  border-radius: 8px; padding: 10px 14px; height: 300px; overflow: hidden; }
.present-sample .rnn-textview { line-height: 1.35 !important; }
.st-key-present_unit [role="combobox"], .st-key-present_unit input { font-size: 24px; }
.st-key-present_controls button p { font-size: 28px; }
.st-key-present_controls button { min-height: 64px; }
</style>""")


def number(label: str, value: str) -> str:
    return f'<div class="present-label">{html_text(label)}</div><div class="present-number">{html_text(value)}</div>'


def controls() -> None:
    if state.watching():
        return
    with st.container(key="present_controls", horizontal=True):
        if app.running:
            st.button("Pause", key="present_pause", on_click=state.pause, icon=":material/pause:", width="stretch")
        else:
            st.button("Start", key="present_start", on_click=state.start, type="primary",
                      icon=":material/play_arrow:", width="stretch")
        st.button("Step", key="present_step", on_click=state.step_once, icon=":material/skip_next:", width="stretch")
        st.button("Reset", key="present_reset", on_click=state.new_run_from_widgets, icon=":material/restart_alt:",
                  width="stretch")
        with st.popover("Class link", icon=":material/qr_code_2:", width="stretch",
                        help="The watch link as a QR code: the class follows this run live on their laptops."):
            class_link()
        state.presenter_button(width="stretch")


def class_link() -> None:
    """The watch link, big enough to scan from the back of the hall, and short enough to type."""
    url = persist.watch_link(state.app_base_url())
    if url is None:
        st.html('<div class="present-label">Press Step or Start once: the run is saved, and its watch link '
                'appears here.</div>')
        return
    st.image(qr.png(url, scale=10), width=380)
    st.html(f'<div class="present-link">{html_text(url)}</div>')


def sample_html(text: str) -> str:
    """The sample as HTML, its line breaks kept (html_text makes one line of each)."""
    return "<br>".join(html_text(line) for line in text.split("\n"))


@st.fragment(run_every=state.TICK_SECONDS if app.running else None)
def numbers() -> None:
    run = state.get_run()
    left, middle, right = st.columns(3)
    left.html(number("iteration", f"{run.iteration:,}"))
    middle.html(number("bits per character", f"{run.bits_per_char:.3f}"))
    right.html(number("training" if app.running else "paused", f"{run.iterations_per_second:,.0f} it/s"
                      if app.running else "—"))


def unit_coloured_html(run, text: str, unit: int) -> str | None:
    """``text`` read by the run's current weights from h = 0, each character on the colour of
    h_t[unit] right after it; None when the text holds a character the vocabulary lacks."""
    if not text or analysis.unknown_chars_message(text, run.vocab.chars):
        return None
    reading = analysis.read_text(run.trainer.model, run.vocab.encode(text))
    return textviews.colored_text_html(text, reading.hs[:, unit], value_label=f"h[{unit}]",
                                       font_size=f"{PRESENT_TEXT_PX}px")


@st.fragment(run_every=state.TICK_SECONDS if app.running else None)
def sample() -> None:
    run = state.get_run()
    H = run.trainer.model.hidden_size
    latest = run.samples[-1] if run.samples else None
    label, choice = st.columns([1, 1], vertical_alignment="center")   # the picker's 24 px text fits
    if ss.get("present_unit") is not None and ss.present_unit >= H:
        ss.present_unit = None      # the run was reset to fewer hidden units
    unit = choice.selectbox("Colour by hidden unit", [None, *range(H)], key="present_unit",
                            label_visibility="collapsed",
                            format_func=lambda u: "no colouring" if u is None else f"colour: unit {u}",
                            help="Each character of the sample on the colour of this unit's activation hₜ "
                                 "right after the current weights read it (blue −1, white 0, orange +1).")
    coloured = unit_coloured_html(run, latest[1], unit) if latest and unit is not None else None
    with label:
        st.html(f'<div class="present-label">sample at iteration {latest[0]:,}</div>' if latest else
                '<div class="present-label">a sample appears here once the run trains</div>')
        if coloured is not None:
            st.html(textviews.legend_html(-1, 1, label=f"h[{unit}] after reading the character", width_px=300))
    body = coloured if coloured is not None else (sample_html(latest[1]) if latest else "")
    st.html(f'<div class="present-sample">{body}</div>')


@st.fragment(run_every=state.live_interval())
def chart() -> None:
    run = state.get_run()
    tr = run.trainer
    hist = tr.history.as_arrays("iteration", "loss", "smooth_loss", "loss_min", "loss_max")
    val = tr.val_history.as_arrays()
    smoothing = app_state.smoothing(loss_chart.CLASSIC_SMOOTHING)
    smooth, label = loss_chart.smoothed_series(hist["iteration"], hist["loss"], hist["smooth_loss"], smoothing)
    fig = loss_chart.loss_figure(hist["iteration"], hist["loss"], smooth, seq_length=tr.seq_length,
                              vocab_size=run.vocab.size, unit="bits", val_iterations=val["iteration"],
                              val_bits_per_char=val["val_bits_per_char"], max_points=600, smooth_label=label,
                              loss_min=hist["loss_min"], loss_max=hist["loss_max"])
    st.plotly_chart(style.for_projector(fig, height=370), key="present_loss", config={"displayModeBar": False})


controls()
numbers()
text_column, chart_column = st.columns([1, 1.3])
with text_column:
    sample()
with chart_column:
    chart()
