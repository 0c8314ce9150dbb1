"""Save & load: the run's private link and watch link, checkpoint and history downloads, and
resuming a checkpoint. A watch session sees the downloads only."""
import time
from typing import NamedTuple

import streamlit as st

from playground.escape import markdown_text
from playground.runs import saver
from playground.session import app_state, persist, state, uploads
from playground.views import qr
from playground.views.textviews import count

ss = st.session_state
run = state.get_run()


class LoadMessage(NamedTuple):
    """What loading a checkpoint said, shown beside the upload while the model is the one it was
    said about (model_key): gone once the run moves on."""
    kind: str          # "success" or "error"
    text: str
    model_key: tuple


@state.locked
def prepare_downloads() -> None:
    """Snapshot the run as files now (in the script thread, so training can't change it midway)."""
    current = state.get_run()
    train_csv, val_csv = (uploads.csv_bytes(frame) for frame in uploads.history_frames(current))
    ss.files_prepared = {
        "run": current.uid, "iteration": current.iteration,
        "checkpoint": current.to_bytes(), "checkpoint_name": uploads.checkpoint_file_name(current),
        "train_csv": train_csv, "val_csv": val_csv,
        "csv_stem": uploads.checkpoint_file_name(current).removesuffix(".npz"),
    }


@state.owner_only
def new_watch_link() -> None:
    persist.new_watch_id()
    app_state.flash("success", "The old watch link is closed: whoever had it no longer sees this run. "
                           "Share the new one below.")


@state.owner_only
def on_checkpoint_upload() -> None:
    uploaded = ss.get("files_upload")
    ss.files_message = None
    if uploaded is None:
        return
    before = state.get_run().iteration
    try:
        loaded = uploads.run_from_checkpoint(uploaded.getvalue())
    except ValueError as exc:
        current = state.get_run()
        ss.files_message = LoadMessage("error", f"The file {markdown_text(uploaded.name[:80])} was not loaded; the "
                                                f"current run is unchanged. {markdown_text(uploads.sentence(exc))}",
                                       current.model_key)
        return
    state.adopt_run(loaded)
    ss.files_prepared = None
    replaced = f" It replaced the previous run ({count(before, 'iteration')})." if before else ""
    ss.files_message = LoadMessage("success", f"Loaded {markdown_text(uploaded.name[:80])}: "
                                              f"{markdown_text(loaded.corpus_label)}, iteration {loaded.iteration:,}. "
                                              f"Press **Start** to continue exactly where it stopped.{replaced}",
                                   state.get_run().model_key)


def age(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 90:
        return f"{seconds} s ago"
    if seconds < 5400:
        return f"{seconds // 60} min ago"
    return f"{seconds // 3600} h ago"


# ---------------------------------------------------------------- page
st.title("Save & load")
st.caption("Your run is kept on this server and comes back after a reload. Download it to keep it for good, "
           "or to continue it somewhere else.")

def private_link_section() -> None:
    st.subheader("Your run's link")
    with st.container(border=True):
        # A save queued a moment ago (Pause, Step) is written in a moment: show its outcome, not the previous one.
        saver.wait_for_saves(persist.run_id(), timeout=3.0)
        link = persist.run_link(state.app_base_url())    # only once a save under this id has been written
        store = saver.get_store()
        status = persist.status()
        if link:
            st.code(link, language=None)
            days = store.max_age_seconds / 86400 if store else 7
            st.markdown(f"Open this link to continue this run later, in any browser. It is **private but not "
                        f"protected**: it can't be guessed, yet anyone who has it can open, train and overwrite "
                        f"the run, so share it only with people you trust. Runs unused for {days:g} days are deleted.")
        else:
            st.markdown("This run has not been saved yet. It is saved when you pause, step or reset, every "
                        f"{saver.AUTOSAVE_SECONDS:g} s while training, or now:")
            st.button("Save now", key="files_save_now", on_click=state.locked(persist.save_now),
                      icon=":material/save:")
        if status.error:
            st.warning(f"The last save failed ({markdown_text(status.error)}). The run is still here in this tab; "
                       "download a checkpoint below to keep it.", icon=":material/warning:")
        elif status.saved_at is not None:
            st.caption(f"Last saved at iteration {status.saved_iteration:,}, {age(time.time() - status.saved_at)}.")
    watch_link_section(linked=bool(link))


def watch_link_section(linked: bool) -> None:
    st.subheader("Watch link: your class follows this run live")
    with st.container(border=True):
        url = persist.watch_link(state.app_base_url()) if linked else None
        if url is None:
            st.markdown("Once the run is saved, a second link appears here: anyone who opens it sees this run "
                        "train live, on every page, but cannot start, pause, reset or change it.")
            return
        text, code = st.columns([3, 1], vertical_alignment="center")
        with text:
            st.code(url, language=None)
            st.markdown("Put this link (or the QR code) on the projector. Watchers see the loss, samples and "
                        "every view on the current weights; they cannot control the run or see its private "
                        "link, and *Make my own copy* gives each of them a run of their own from that moment.")
            st.button("Close this watch link and make a new one", key="files_new_watch", on_click=new_watch_link,
                      icon=":material/link_off:",
                      help="Everyone watching through the current link is told it was closed.")
        code.image(qr.png(url), caption="Scan to watch", width=200)


def watcher_section() -> None:
    st.subheader("You are watching this run")
    with st.container(border=True):
        st.markdown("This run belongs to whoever shared the watch link: its private link stays with them. "
                    "You can download its files below, or make a copy of your own to train.")
        st.button("Make my own copy", key="files_fork", on_click=state.make_own_copy, icon=":material/fork_right:",
                  type="primary")


if state.watching():
    watcher_section()
else:
    private_link_section()

st.subheader("Download")
prepared = ss.get("files_prepared")
if prepared and prepared["run"] != run.uid:
    prepared = ss.files_prepared = None    # made for a run that has since been replaced
with st.container(border=True):
    top_left, top_right = st.columns([3, 1], vertical_alignment="center")
    if prepared:
        top_left.markdown(f"Files of iteration **{prepared['iteration']:,}**"
                          + (f" (the run is now at {run.iteration:,})." if run.iteration != prepared["iteration"]
                             else "."))
    else:
        top_left.markdown(f"Make files of the run as it is now (iteration **{run.iteration:,}**); the download "
                          "buttons below unlock once they are ready.")
    top_right.button("Prepare again" if prepared else "Prepare files", key="files_prepare",
                     on_click=prepare_downloads, icon=":material/inventory_2:", width="stretch")
    ckpt, history = st.columns(2, gap="large")
    with ckpt:
        st.markdown("**Checkpoint (.npz)**")
        st.caption("Everything needed to continue exactly where training stopped: weights, optimizer state, "
                   "position in the text, hidden state, the text itself and the loss history. "
                   "Loads back here, or in Python with `rnn_core.load_checkpoint`.")
        st.download_button("Download checkpoint", data=prepared["checkpoint"] if prepared else b"",
                           file_name=prepared["checkpoint_name"] if prepared else "checkpoint.npz",
                           mime="application/octet-stream", key="files_download_ckpt", disabled=not prepared,
                           icon=":material/download:", on_click="ignore", type="primary")
    with history:
        st.markdown("**Loss history (.csv)**")
        st.caption("One row per recorded iteration: loss and smoothed loss (nats per window), bits per "
                   "character, clip fraction, learning rate and gradient norms; validation separately.")
        left, right = st.columns(2)
        left.download_button("Training", data=prepared["train_csv"] if prepared else b"",
                             file_name=f"{prepared['csv_stem']}-history.csv" if prepared else "history.csv",
                             mime="text/csv", key="files_download_train", disabled=not prepared,
                             icon=":material/download:", on_click="ignore", width="stretch")
        right.download_button("Validation", data=prepared["val_csv"] if prepared else b"",
                              file_name=f"{prepared['csv_stem']}-validation.csv" if prepared else "validation.csv",
                              mime="text/csv", key="files_download_val", disabled=not prepared,
                              icon=":material/download:", on_click="ignore", width="stretch")

def upload_section() -> None:
    st.subheader("Continue from a checkpoint")
    with st.container(border=True):
        st.file_uploader("A checkpoint saved by RNN Playground (.npz)", type=["npz"], key="files_upload",
                         on_change=on_checkpoint_upload,
                         help="Training continues bit for bit where the checkpoint stopped.")
        st.caption(f"Loading replaces the current run ({count(run.iteration, 'iteration')} on "
                   f"{markdown_text(run.corpus_label)}); download it first to keep it.")
        message = ss.get("files_message")
        if message and message.model_key == run.model_key:
            success = message.kind == "success"
            (st.success if success else st.error)(message.text, icon=":material/check_circle:" if success
                                                  else ":material/error:")


if not state.watching():
    upload_section()
