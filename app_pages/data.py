"""Data: what the network reads. The current run's text, the built-in texts, and your own text.

A new text never touches the current run: it becomes the draft corpus, and Reset (or "Train on
this text now") starts a fresh model on it.
"""
import streamlit as st

from playground.escape import markdown_text
from playground.runs.run import builtin_problem
from playground.session import app_state, state, uploads
from playground.views.textviews import count, reveal_invisible, visible_chars
from rnn_core.corpora import BUILTIN_CORPORA, MAX_UPLOAD_BYTES, corpus_summary, load_builtin
from rnn_core.limits import MAX_CORPUS_CHARS, MAX_UPLOAD_MB

ss = st.session_state
app = app_state.app()
run = state.get_run()


@st.cache_data(show_spinner="Reading the built-in text…", max_entries=len(BUILTIN_CORPORA))
def builtin_summary(key: str) -> dict:
    # Same text for every user (no user data), so one copy per process.
    return corpus_summary(load_builtin(key), preview_chars=uploads.PREVIEW_CHARS)


def draft(name: str):
    """A draft setting (cfg_<name>, set on the Train page), or the current run's when absent."""
    return app_state.draft(name, getattr(state.get_run().config, name))


def draft_settings() -> dict:
    return {name: draft(name) for name in ("seq_length", "batch_size", "val_fraction")}


def corpus_name(key: str) -> str:
    """Display name, Markdown-safe (a label may come from a file name or a checkpoint)."""
    return markdown_text(app.custom_label or "your text") if key == "custom" else key.capitalize()


def custom_summary() -> dict:
    """corpus_summary of the custom text, computed once per text (it counts up to 2M characters)."""
    key = app.custom_text_version
    cached = ss.get("data_custom_summary")
    if not cached or cached[0] != key:
        ss.data_custom_summary = cached = (key, corpus_summary(app.custom_text, preview_chars=uploads.PREVIEW_CHARS))
    return cached[1]


def use_as_draft_text(accepted: uploads.AcceptedText) -> None:
    app_state.set_custom_text(accepted.text, accepted.label)
    app_state.set_draft("corpus", "custom")
    ss.data_error = None
    # The "ready" notice lasts until this run is replaced.
    ss.data_taken_for = state.get_run().uid


@state.owner_only
def on_upload() -> None:
    uploaded = ss.get("data_upload")
    ss.data_error = None
    if uploaded is None:
        return
    try:
        use_as_draft_text(uploads.accept_file(uploaded.getvalue(), uploaded.name, **draft_settings()))
    except ValueError as exc:
        ss.data_error = ("upload", f"The file {markdown_text(uploaded.name[:80])} was not used. {markdown_text(uploads.sentence(exc))}")


@state.owner_only
def on_paste() -> None:
    try:
        use_as_draft_text(uploads.accept_text(ss.get("data_paste") or "", uploads.PASTED_LABEL, **draft_settings()))
    except ValueError as exc:
        ss.data_error = ("paste", f"The pasted text was not used. {markdown_text(uploads.sentence(exc))}")


@state.owner_only
def choose_builtin(key: str) -> None:
    app_state.set_draft("corpus", key)
    ss.data_error = None


@state.owner_only
def train_now() -> None:
    # Drafts the Train page's widgets no longer hold fall back to the current run's settings.
    app_state.default_drafts(state.get_run().config)
    try:
        state.reset_to_drafts()
    except ValueError as exc:    # said next to the button rather than at the top
        ss.data_error = ("train", f"The run was not reset: {markdown_text(exc)}")


def show_error(where: str) -> None:
    error = ss.get("data_error")
    if error and error[0] == where:
        st.error(error[1], icon=":material/error:")


def char_strip(chars: str, limit: int = 120) -> str:
    """The vocabulary as Markdown-safe text, whitespace made visible."""
    shown = markdown_text(" ".join(visible_chars(chars[:limit])))
    return shown + (f" … (+{len(chars) - limit})" if len(chars) > limit else "")


def show_metrics(length: int, vocab_size: int, bits: float, val_chars: int) -> None:
    cols = st.columns(4)
    cols[0].metric("Characters", f"{length:,}", help="N = the length of the text in characters: "
                   "the training part plus the validation part.")
    cols[1].metric("Vocabulary", f"{vocab_size}", help="V = the number of distinct characters: the width of the one-hot input xₜ and of "
                   "the output pₜ.")
    cols[2].metric("Unigram entropy", f"{bits:.2f} bits/char",
                   help="H = −Σ_c f(c) · log₂ f(c) over the frequency f(c) of each character c: the loss of a "
                        "model that only knows character frequencies. "
                        "A trained RNN should get well below it by using context.")
    cols[3].metric("Validation part", f"{val_chars:,}",
                   help="N − training characters: the end of the text, held out from training. The "
                        "validation loss is measured on it.")


# ---------------------------------------------------------------- page
st.title("Data")
st.caption("The network reads one text, character by character, and learns to predict the next one. "
           "The last part of the text is kept aside to measure validation loss.")

next_corpus = draft("corpus")
taken_for = ss.get("data_taken_for")
custom_ready = next_corpus == "custom" and app.custom_text and taken_for == run.uid
# Always drawn, empty or not: an element appearing above the tabs below would reset them to the
# first tab (e.g. right after "Use this text" on the Paste text tab).
next_text_notice = st.container()
if not state.watching() and (
        custom_ready or (next_corpus != run.config.corpus and (next_corpus != "custom" or app.custom_text))):
    with next_text_notice.container(border=True):
        discards = (f" That discards the current run's {count(run.iteration, 'iteration')} (download a checkpoint "
                    "on Save & load first to keep them)." if run.iteration else "")
        st.markdown(f"**Next run's text: {corpus_name(next_corpus)}.** Press **Reset** in the sidebar to start a new "
                    f"model on it, with the settings on the Train page.{discards}")
        st.button("Train on this text now", key="data_train_now", on_click=train_now, type="primary",
                  icon=":material/play_circle:")
        show_error("train")

st.subheader("The current run's text")
facts = uploads.run_corpus_facts(run)
show_metrics(facts["train_chars"] + facts["val_chars"], facts["vocab_size"], facts["unigram_bits_per_char"],
             facts["val_chars"])
st.caption(f"**{markdown_text(run.corpus_label)}** · the model trains on the first {count(facts['train_chars'], 'character')}. "
           f"Vocabulary: {char_strip(facts['chars'])}")
with st.expander("Preview of the training text"):
    st.code(reveal_invisible(facts["preview"]), language=None, wrap_lines=True)

if state.watching():
    st.info("You are watching someone else's run, so its text is theirs to choose. *Make my own copy* in the "
            "sidebar gives you a run of your own; then choose any text here.", icon=":material/visibility:")
    st.stop()

st.subheader("Choose a text")
builtin_tab, upload_tab, paste_tab = st.tabs(["Built-in texts", "Upload a file", "Paste text"])

with builtin_tab:
    for key, description in BUILTIN_CORPORA.items():
        # A built-in text that cannot be read (a package missing or broken) is described, not raised.
        problem = builtin_problem(key)
        with st.container(border=True):
            head, button = st.columns([4, 1], vertical_alignment="center")
            head.markdown(f"**{key.capitalize()}** — {description}")
            in_use = run.config.corpus == key
            chosen = next_corpus == key
            button.button("Current run" if in_use and chosen else "Chosen" if chosen else
                          "Not available" if problem else "Use this",
                          key=f"data_use_{key}", on_click=choose_builtin, args=(key,),
                          disabled=chosen or problem is not None, width="stretch")
            if problem:
                head.warning(markdown_text(problem), icon=":material/warning:")
                continue
            summary = builtin_summary(key)
            head.caption(f"{count(summary['length'], 'character')} · {summary['vocab_size']} distinct · "
                         f"unigram entropy {summary['unigram_bits_per_char']:.2f} bits/char")
            with st.expander("Preview"):
                st.code(reveal_invisible(summary["preview"]), language=None, wrap_lines=True)

with upload_tab:
    st.file_uploader("A plain text file (.txt, UTF-8)", type=["txt"], key="data_upload", on_change=on_upload,
                     help=f"Up to {MAX_UPLOAD_MB} MB ({MAX_UPLOAD_BYTES:,} bytes) and {MAX_CORPUS_CHARS:,} characters. "
                          "Karpathy's tinyshakespeare works well.")
    show_error("upload")

with paste_tab:
    st.text_area("Your text", key="data_paste", height=200, max_chars=MAX_CORPUS_CHARS,
                 placeholder="Paste a few thousand characters or more: a poem collection, code, lyrics…")
    st.button("Use this text", key="data_paste_use", on_click=on_paste, icon=":material/check:")
    show_error("paste")

if app.custom_text:
    summary = custom_summary()
    with st.container(border=True):
        st.markdown(f"**Your text: {corpus_name('custom')}**")
        st.caption(f"{count(summary['length'], 'character')} · {summary['vocab_size']} distinct · unigram entropy "
                   f"{summary['unigram_bits_per_char']:.2f} bits/char")
        with st.expander("Preview"):
            st.code(reveal_invisible(summary["preview"]), language=None, wrap_lines=True)
        if next_corpus != "custom":
            st.button("Use this text", key="data_custom_use", on_click=choose_builtin, args=("custom",))
