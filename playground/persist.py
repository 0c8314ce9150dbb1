"""Nothing lost: the session's run survives a reload and a server restart.

The URL carries the session's unguessable run id (``?run=<id>``); the run is stored as checkpoint
bytes in a RunStore under that id. A new session whose URL names a stored run continues it.

When runs are saved:
* ``save_now`` — on pause, on reset and when a checkpoint is loaded (called by state.py's callbacks);
* ``autosave_if_due`` — from the training tick, at least every AUTOSAVE_SECONDS while training;
* ``after_init`` — on every script run, if the paused run changed since its last save (Step,
  a divergence stop, a live setting), so no path that changes a run needs its own hook.

A save takes a consistent snapshot in the script thread (a trainer clone, ~10 ms) and leaves the
slow part (compressing ~1 MB, writing) to one background thread, so Pause answers at once. The
thread never touches streamlit: it reports through a SaveStatus the script thread reads.

The URL gets the id only once the run has been saved, so a reload never promises a run that was
never stored. A save failure (disk full, no permission) never raises: the user is warned once.

One link open in two tabs is two sessions training copies of one run. Each write records a version
of the run id (in this process); a session that finds its run written by another session since it
read or last wrote it does not overwrite it: its save goes to a new run id, and the tab follows its
run there (new link, a message). Both lines of training are kept.
"""
from __future__ import annotations

import copy
import logging
import secrets
import threading
import time
import weakref
from collections import deque
from dataclasses import dataclass, field

import streamlit as st

from playground.escape import markdown_text
from playground.run import Run
from playground.store import (RunStore, SaveThrottle, default_data_dir, is_valid_run_id,
                              new_run_id)
from playground.uploads import run_text

log = logging.getLogger(__name__)

AUTOSAVE_SECONDS = 30.0
PRUNE_EVERY_SECONDS = 3600.0
RESTORE_WAIT_SECONDS = 10.0   # a reload waits this long at most for its own run's pending save
QUERY_KEY = "run"
SESSION_KEY = "persist"


# ---------------------------------------------------------------- shared by every session of the process
_UNUSABLE_LOGGED: set[str] = set()


@st.cache_resource(show_spinner=False)
def _store_at(path: str) -> RunStore:
    # Cached per directory: holds no user data, only the path and the directory lock.
    return RunStore(path)


def get_store() -> RunStore | None:
    """The RunStore in the data dir ($RNN_PLAYGROUND_DATA_DIR if set), or None if it is unusable."""
    path = str(default_data_dir())
    try:
        return _store_at(path)
    except (OSError, ValueError) as exc:
        if path not in _UNUSABLE_LOGGED:     # tried again on every script run: log it once
            _UNUSABLE_LOGGED.add(path)
            log.warning("run store unavailable: %s", exc)
        return None


class SaveStatus:
    """Outcome of a session's saves, written by the save thread and read by the script thread."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.error: str | None = None          # the last failure, cleared by a later success
        self.saved_iteration: int | None = None
        self.saved_at: float | None = None     # time.time() of the last successful save
        self.version: str | None = None        # version of the run this session last read or wrote
        self.moved_to: str | None = None       # run id its saves went to after a conflict

    def succeeded(self, iteration: int, at: float | None = None) -> None:
        with self._lock:
            self.error, self.saved_iteration = None, iteration
            self.saved_at = time.time() if at is None else at

    def wrote(self, run_id: str, version: str, moved: bool) -> None:
        with self._lock:
            self.version = version
            if moved:
                self.moved_to = run_id

    def failed(self, message: str) -> None:
        with self._lock:
            self.error = message


@dataclass
class _Job:
    store: RunStore
    run_id: str
    snapshot: Run
    status: SaveStatus


class _SaveWorker:
    """One daemon thread per process writing queued snapshots; only the newest per session and
    run id is kept (two sessions saving one run id are both written: see _write)."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._pending: dict[tuple[str, int], _Job] = {}
        self._busy: set[tuple[str, int]] = set()
        self._thread: threading.Thread | None = None

    def submit(self, job: _Job) -> None:
        key = (job.run_id, id(job.status))   # the job holds its status, so the id stays unique
        with self._cond:
            self._pending.pop(key, None)      # re-insert: the oldest-waiting are written first
            self._pending[key] = job
            if self._thread is None or not self._thread.is_alive():
                self._thread = threading.Thread(target=self._loop, name="rnn-playground-saver", daemon=True)
                self._thread.start()
            self._cond.notify_all()

    def wait(self, run_id: str | None = None, timeout: float | None = None) -> bool:
        """Block until the run's queued save (every save if None) is written; False on timeout."""
        def idle() -> bool:
            if run_id is None:
                return not self._pending and not self._busy
            return all(key[0] != run_id for key in (*self._pending, *self._busy))
        with self._cond:
            return self._cond.wait_for(idle, timeout)

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: bool(self._pending))
                key = next(iter(self._pending))
                job = self._pending.pop(key)
                self._busy.add(key)
            try:
                _write(job)
            finally:
                with self._cond:
                    self._busy.discard(key)
                    self._cond.notify_all()


# Version of each run id last written by this process (only the save thread writes it). Sessions
# share one process, so this sees every writer of a run id.
_VERSIONS: dict[str, str] = {}
_VERSIONS_GUARD = threading.Lock()


def current_version(run_id: str) -> str | None:
    with _VERSIONS_GUARD:
        return _VERSIONS.get(run_id)


def _write(job: _Job) -> None:
    status = job.status
    target = status.moved_to or job.run_id
    written = current_version(target)
    moved = written is not None and written != status.version
    if moved:   # another session wrote this run since this one read it: keep both, never overwrite
        target = new_run_id()
        log.info("run %s is open in two sessions; this one continues as %s", job.run_id[:6], target[:6])
    try:
        job.store.save(target, job.snapshot.to_bytes())
    except Exception as exc:   # disk full, permissions, anything: the app must keep running
        log.warning("saving run %s failed: %s", target[:6], exc)
        status.failed(f"{type(exc).__name__}: {exc}")
    else:
        version = secrets.token_hex(8)
        with _VERSIONS_GUARD:
            _VERSIONS[target] = version
        status.wrote(target, version, moved)
        status.succeeded(job.snapshot.iteration)


_WORKER = _SaveWorker()
_PRUNED_AT: dict[str, float] = {}
_PRUNE_GUARD = threading.Lock()


def wait_for_saves(run_id: str | None = None, timeout: float | None = 60.0) -> bool:
    """Block until queued saves are on disk (all, or one run's). For tests and for restores."""
    return _WORKER.wait(run_id, timeout)


def snapshot(run: Run) -> Run:
    """An independent copy of ``run`` whose to_bytes() is unaffected by further training.

    Shallow copy plus a cloned trainer and copied samples: config, vocab and label are immutable.
    """
    snap = copy.copy(run)
    snap.trainer = run.trainer.clone()
    snap.samples = deque(run.samples, maxlen=run.samples.maxlen)
    return snap


def _maybe_prune(store: RunStore, keep: str) -> None:
    """Prune old runs at most once an hour per directory (and once after each process start)."""
    key = str(store.data_dir)
    now = time.monotonic()
    with _PRUNE_GUARD:
        last = _PRUNED_AT.get(key)
        if last is not None and now - last < PRUNE_EVERY_SECONDS:
            return
        _PRUNED_AT[key] = now
    try:
        removed = store.prune(keep=[keep])
        if removed:
            log.info("pruned %d old runs", len(removed))
            with _VERSIONS_GUARD:
                for run_id in removed:
                    _VERSIONS.pop(run_id, None)
    except OSError as exc:
        log.warning("pruning runs failed: %s", exc)


# ---------------------------------------------------------------- one session's persistence state
@dataclass
class SessionPersist:
    run_id: str
    linked: bool = False                      # saved at least once: the URL carries run_id
    saved_signature: tuple | None = None      # what the last save captured (see _signature)
    warned: bool = False                      # the one save-failure warning has been shown
    throttle: SaveThrottle = field(default_factory=lambda: SaveThrottle(AUTOSAVE_SECONDS))
    status: SaveStatus = field(default_factory=SaveStatus)


def _session() -> SessionPersist:
    """The session's persistence state; every hook goes through here, so a save that went to a new
    run id (see _write) is followed wherever the session next looks."""
    ss = st.session_state
    if SESSION_KEY not in ss:
        ss[SESSION_KEY] = SessionPersist(new_run_id())
    sp = ss[SESSION_KEY]
    _follow_move(sp)
    return sp


def _signature(run: Run) -> tuple:
    """Changes whenever the run would save differently: another run, training, or live settings.

    A weakref rather than id(): a replaced run's id may be reused by a later run.
    """
    tr = run.trainer
    return (weakref.ref(run), tr.iteration, tr.learning_rate, tr.optimizer_name, tr.clip, run.config.sample_every)


def _flash(kind: str, message: str) -> None:
    # Same slot and format as state.flash (state imports this module, so not imported from there).
    st.session_state.flash = (kind, message)


def _follow_move(sp: SessionPersist) -> None:
    """After a save went to a new run id (the run was open in another tab too), follow it there."""
    moved_to = sp.status.moved_to
    if moved_to and moved_to != sp.run_id:
        sp.run_id = moved_to
        _flash("info", "This run is open in another tab too. So that neither tab overwrites the other's "
                       "training, this tab now continues it as a copy with its own link (now in the address "
                       "bar); the other tab keeps the original link.")


def _sync_url(sp: SessionPersist) -> None:
    if sp.linked and st.query_params.get(QUERY_KEY) != sp.run_id:
        st.query_params[QUERY_KEY] = sp.run_id


def _adopt_text(run: Run) -> None:
    """A run on custom text brings its text along, so Reset with unchanged settings works."""
    if run.config.corpus == "custom":
        st.session_state.custom_text = run_text(run)
        st.session_state.custom_label = run.corpus_label


# ---------------------------------------------------------------- hooks called by playground.state
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
    store = get_store()
    if store is None:
        _flash("warning", f"Saved runs are not available on this server, so the run in your link could not "
                          f"be opened; {fresh}.")
    elif not is_valid_run_id(requested):
        _flash("warning", f"No saved run with that link; {fresh}.")
    else:
        wait_for_saves(requested, RESTORE_WAIT_SECONDS)   # a reload right after Pause gets that save
        try:
            payload = store.load(requested)
            if payload is None:
                _flash("warning", f"No saved run with that link (runs unused for a week are deleted); {fresh}.")
            else:
                run = Run.from_bytes(payload)
                sp = SessionPersist(requested, linked=True, saved_signature=_signature(run))
                sp.status.succeeded(run.iteration, at=store.path_for(requested).stat().st_mtime)
                sp.status.version = current_version(requested)   # what this session continues from
                st.session_state[SESSION_KEY] = sp
                _adopt_text(run)
                _flash("success", f"Welcome back: your run on {markdown_text(run.corpus_label)} continues at iteration "
                                  f"{run.iteration:,}.")
                return run
        except Exception as exc:   # a corrupt, foreign or unreadable file must not stop the app
            log.warning("restoring run %s failed: %s", requested[:6], exc)
            _flash("warning", f"The saved run in your link could not be read ({markdown_text(exc)}); {fresh}. "
                              "The saved file was left untouched.")
    st.session_state.pop(SESSION_KEY, None)
    _session()     # a new id, not the requested one: never overwrite a file we could not read
    st.query_params.pop(QUERY_KEY, None)
    return None


def after_init() -> None:
    """Every script run: save a paused run that changed, keep ?run= in the URL, prune, warn once."""
    ss = st.session_state
    sp = _session()
    run = ss.run
    if sp.saved_signature is None:
        sp.saved_signature = _signature(run)   # a brand-new run: nothing worth storing yet
    elif not ss.get("running") and _signature(run) != sp.saved_signature:
        save_now()
    _sync_url(sp)
    store = get_store()
    if store is not None and sp.linked:
        _maybe_prune(store, keep=sp.run_id)
    if sp.status.error and not sp.warned and not ss.get("flash"):
        sp.warned = True
        _flash("warning", "Your run could not be saved on the server, so a reload or a server restart would "
                          f"lose it ({sp.status.error}). Download a checkpoint on Save & load to keep it.")


def save_now() -> None:
    """Queue a save of the current run (pause, reset, checkpoint load). Never raises."""
    sp = _session()
    run = st.session_state.run
    sp.saved_signature = _signature(run)
    sp.throttle.mark_saved()
    store = get_store()
    if store is None:
        sp.status.failed(f"the data directory {default_data_dir()} cannot be used")
        return
    try:
        _WORKER.submit(_Job(store, sp.run_id, snapshot(run), sp.status))
    except Exception as exc:   # e.g. no thread could be started
        sp.status.failed(f"{type(exc).__name__}: {exc}")
        return
    # The URL is updated by the script run that follows (after_init) or by the autosave in the
    # tick: writing st.query_params from a widget callback disturbs the rerun that follows it.
    sp.linked = True


def autosave_if_due() -> None:
    """From the training tick: save when AUTOSAVE_SECONDS have passed since the last save."""
    sp = _session()
    if sp.throttle.due():
        save_now()
    _sync_url(sp)


def adopt_run(run: Run) -> None:
    """Make ``run`` the session's run (a loaded checkpoint): paused, its settings in the widgets,
    its text as the custom text when it is not a built-in corpus, and saved."""
    from playground import state   # state imports this module at import time

    ss = st.session_state
    ss.run = run
    ss.running = False
    state.load_config_into_widgets(run.config)
    _adopt_text(run)
    save_now()


# ---------------------------------------------------------------- for the Save & load page
def run_id() -> str:
    return _session().run_id


def is_linked() -> bool:
    return _session().linked


def status() -> SaveStatus:
    return _session().status


def run_link(page_url: str | None) -> str | None:
    """Absolute link to this run: the app's address plus ?run=<id> (None before the first save)."""
    sp = _session()
    if not sp.linked:
        return None
    base = (page_url or "").split("?")[0].rstrip("/")
    for suffix in ("/files",):   # the Save & load page's own path: the link opens the app's start page
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return f"{base}/?{QUERY_KEY}={sp.run_id}"
