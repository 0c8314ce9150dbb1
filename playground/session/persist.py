"""Nothing lost: the session's run survives a reload and a server restart (playground.runs.saver
does the writing).

The URL carries the session's unguessable run id (``?run=<id>``); the run is stored as checkpoint
bytes in the run store under that id. A new session whose URL names a stored run continues it.

When runs are saved:
* ``save_now`` — on pause, on reset and when a checkpoint is loaded (called by state.py's callbacks);
* ``autosave_if_due`` — from the training tick, at least every AUTOSAVE_SECONDS while training;
* ``after_init`` — on every script run, if the paused run changed since its last save (Step,
  a divergence stop, a live setting), so no path that changes a run needs its own hook;
* by the saver's sweeper thread, when a session whose run changed has run no script for
  IDLE_SECONDS: its tab was closed or reloaded mid-training (training stops with the tab's timer);
* when a new session opens a run that another live session of this process holds (a reload):
  that session's current state is written first, so the reload continues from the moment it happened;
* at interpreter exit (a server stopped with SIGTERM or Ctrl-C exits normally): every live
  session's unsaved run, written synchronously.
So a reload, a closed tab and a graceful stop lose nothing; a crash (SIGKILL, power) loses at most
the last AUTOSAVE_SECONDS of training.

The URL gets the id, and the Save & load page the link, only once a save under that id has been
written, so neither ever promises a run that was never stored. A save failure (disk full, no
permission) never raises: the sidebar says so on every page until a later save succeeds, in the
user's terms (the details, paths included, go to the log). A session whose save went to a new run
id (the run was open in another tab too) follows it there, with a sentence.
"""
from __future__ import annotations

import logging
import time

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

from playground.escape import markdown_text
from playground.runs import saver, trainers, watch
from playground.runs.run import Run
from playground.runs.saver import SessionPersist
from playground.runs.store import RunStore, is_valid_run_id, new_run_id
from playground.session.app_state import adopt_text, app, flash

log = logging.getLogger(__name__)

PAUSE_SAVE_WAIT_SECONDS = 2.0 # Pause waits this long for its save, so the page shows the outcome
RESTORE_WAIT_SECONDS = 10.0   # a reload waits this long at most for its own run's pending save
QUERY_KEY = "run"


def _session_id() -> str | None:
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else None


def _register(sp: SessionPersist, run: Run) -> None:
    """Script thread: record the session's run and trainer for saves made outside its script runs."""
    state = app()
    sp.run, sp.lock, sp.seen_at = run, state.lock, time.monotonic()
    sp.handle = state.trainer
    bind = getattr(sp.handle, "bind", None)
    if bind is not None:      # a Ray actor is named by the run id, so other replicas find it by its link
        bind(sp.run_id)
    sp.training = state.running
    sp.session_id = _session_id()
    sp.store = saver.get_store()
    saver.register(sp)


def _session() -> SessionPersist:
    """The session's persistence state; every hook goes through here, so a save that went to a new
    run id (see saver._write) is followed wherever the session next looks."""
    state = app()
    if state.persist is None:
        state.persist = SessionPersist(new_run_id())
    sp = state.persist
    _follow_move(sp)
    return sp


def _follow_move(sp: SessionPersist) -> None:
    """After a save went to a new run id (the run was open in another tab too), follow it there."""
    moved_to = sp.status.moved_to
    if moved_to and moved_to != sp.run_id:
        sp.run_id = moved_to
        flash("info", "This run is open in another tab too. So that neither tab overwrites the other's "
                       "training, this tab now continues it as a copy with its own link (now in the address "
                       "bar); the other tab keeps the original link.")


def _sync_url(sp: SessionPersist) -> None:
    if sp.linked and st.query_params.get(QUERY_KEY) != sp.run_id:
        st.query_params[QUERY_KEY] = sp.run_id


def watch_id(create: bool = False) -> str | None:
    """The watch id of this session's run (made now if ``create`` and the run has a link)."""
    sp, store = _session(), saver.get_store()
    if store is None or not sp.linked:
        return None
    current = store.watch_id_of(sp.run_id)
    if current is None and create:
        current = store.new_watch_link(sp.run_id)
    return current


def new_watch_id() -> str | None:
    """Close the current watch link of this session's run and make a new one."""
    sp, store = _session(), saver.get_store()
    if store is None or not sp.linked:
        return None
    return store.new_watch_link(sp.run_id)


def begin_own_run() -> None:
    """The session leaves watch mode with a run of its own (a fork): a new run id, no link yet."""
    app().persist = None
    _session()


# ---------------------------------------------------------------- hooks called by playground.session.state
def restore_from_url() -> Run | None:
    """At session start: the run named by ``?run=<id>``, or None (with a message saying why).

    A missing, malformed, unknown or unreadable run never raises: the caller starts a fresh run
    under a new id, and the stored file (if any) is left as it is.
    """
    requested = st.query_params.get(QUERY_KEY)
    if not requested:
        _session()
        return None
    fresh = "started a new one"
    store = saver.get_store()
    if store is None:
        flash("warning", f"Saved runs are not available on this server, so the run in your link could not "
                          f"be opened; {fresh}.")
    elif not is_valid_run_id(requested):
        flash("warning", f"No saved run with that link; {fresh}.")
    else:
        saver.flush_holders(requested)                         # a reload: the tab it replaces, as it is now
        saver.wait_for_saves(requested, RESTORE_WAIT_SECONDS)   # a reload right after Pause gets that save
        try:
            found = store.load_with_version(requested)
            if found is None:
                flash("warning", f"No saved run with that link (runs unused for a week are deleted); {fresh}.")
            else:
                payload, version = found
                run = Run.from_bytes(payload)
                saved, saved_signature = run.iteration, saver.signature(run)
                run, greeting = _live_copy(requested, store, run)   # its live actor's copy, on Ray
                # The stored run's signature: a live actor's newer copy is saved by the next script run.
                sp = SessionPersist(requested, saved_signature=saved_signature)
                sp.status.succeeded(saved, at=store.saved_at(requested),
                                    run_id=requested)
                sp.status.version = version      # what this session continues from
                app().persist = sp
                adopt_text(run)
                if greeting is not None:
                    flash("warning", greeting)
                else:
                    flash("success", f"Welcome back: your run on {markdown_text(run.corpus_label)} continues at "
                                      f"iteration {run.iteration:,}.")
                return run
        except Exception as exc:   # a corrupt, foreign or unreadable file must not stop the app
            log.warning("restoring run %s failed: %r", requested[:6], exc)
            # A checkpoint's own ValueError says what is wrong with the file; anything else (an
            # OSError names a server path) is said in the user's terms.
            reason = str(exc) if isinstance(exc, ValueError) else saver.save_error_sentence(exc).replace(
                "written to", "read")
            flash("warning", f"The saved run in your link could not be read ({markdown_text(reason)}); {fresh}. "
                              "The saved file was left untouched.")
    app().persist = None
    _session()     # a new id, not the requested one: never overwrite a file we could not read
    st.query_params.pop(QUERY_KEY, None)
    return None


def _live_copy(run_id: str, store: RunStore, stored: Run) -> tuple[Run, str | None]:
    """A run being opened by its link, on a Ray cluster: (the run, a sentence or None).

    Its actor lives (trained through another replica, or this one before a restart): the session
    takes a lease on it, and gets the run as the actor has it, training if it trains. The store
    says it had an actor that is gone (its node died): the last save, paused, with the sentence of
    a restarted training process. Otherwise (the local pool, or no actor): the stored run."""
    try:
        handle = trainers.get_pool().attach(run_id)
    except trainers.WorkerDied:     # the cluster is unreachable: the stored run, paused
        return stored, None
    if handle is not None:
        app().trainer = handle
        app().running = handle.running
        return handle.latest, None
    if getattr(trainers.get_pool(), "store_dir", None) is not None and store.actor_marked(run_id):
        store.unmark_actor(run_id)
        return stored, trainers.restarted_sentence(stored.iteration)
    return stored, None


def after_init() -> None:
    """Every script run: save a paused run that changed, keep ?run= in the URL, prune."""
    state = app()
    sp = _session()
    run = state.run
    _register(sp, run)
    if sp.saved_signature is None:
        sp.saved_signature = saver.signature(run)   # a brand-new run: nothing worth storing yet
    elif not state.running and saver.signature(run) != sp.saved_signature:
        # Waits for the write (briefly): the address bar gets ?run= in this same script run, and
        # only once the link restores the run.
        save_now(wait=PAUSE_SAVE_WAIT_SECONDS)
        _follow_move(sp)      # the save may have moved to a new run id: follow it now
    _sync_url(sp)
    store = saver.get_store()
    if store is not None and sp.linked:
        saver.maybe_prune(store, keep=sp.run_id)


def save_problem() -> str | None:
    """The sentence the sidebar shows while the session's latest save has failed, else None."""
    error = _session().status.error
    if not error:
        return None
    return (f"Your run could not be saved: {error}. A reload or a server restart would lose the training "
            "since the last save; download a checkpoint on Save & load to keep it.")


def save_now(wait: float = 0.0) -> None:
    """Queue a save of the current run (pause, reset, checkpoint load). Never raises.

    ``wait``: seconds to wait for the write, so the script run that follows shows its outcome.
    The URL is updated by that script run (after_init) or by the autosave in the tick: writing
    st.query_params from a widget callback disturbs the rerun that follows it.
    """
    sp = _session()
    run = app().run
    sp.run = run
    saver.submit(sp, run, saver.get_store())
    if wait > 0:
        saver.wait_for_saves(sp.run_id, wait)


def touch() -> None:
    """From the training tick: the session's tab is alive and training."""
    sp = _session()
    sp.run, sp.seen_at, sp.training = app().run, time.monotonic(), True
    _sync_url(sp)


def autosave_due() -> bool:
    return _session().throttle.due()


def autosave_if_due() -> None:
    """From the training tick (with a fresh snapshot in AppState.run): save when
    AUTOSAVE_SECONDS have passed since the last save."""
    touch()
    if _session().throttle.due():
        save_now()


# ---------------------------------------------------------------- for the Save & load page
def run_id() -> str:
    return _session().run_id


def status() -> saver.SaveStatus:
    return _session().status


def watch_link(base_url: str) -> str | None:
    """Absolute watch link of this run (made now if it has none): the app's address ``base_url``
    plus ?watch=<id>. None before the run's first save, or without a run store."""
    current = watch_id(create=True)
    return None if current is None else f"{base_url}/?{watch.QUERY_KEY}={current}"


def run_link(base_url: str) -> str | None:
    """Absolute link to this run: the app's address ``base_url`` plus ?run=<id> (None before the
    first save)."""
    sp = _session()
    if not sp.linked:
        return None
    return f"{base_url}/?{QUERY_KEY}={sp.run_id}"
