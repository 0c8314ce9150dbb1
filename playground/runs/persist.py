"""Nothing lost: the session's run survives a reload and a server restart.

The URL carries the session's unguessable run id (``?run=<id>``); the run is stored as checkpoint
bytes in a RunStore under that id. A new session whose URL names a stored run continues it.

When runs are saved:
* ``save_now`` — on pause, on reset and when a checkpoint is loaded (called by state.py's callbacks);
* ``autosave_if_due`` — from the training tick, at least every AUTOSAVE_SECONDS while training;
* ``after_init`` — on every script run, if the paused run changed since its last save (Step,
  a divergence stop, a live setting), so no path that changes a run needs its own hook;
* by the sweeper thread, when a session whose run changed has run no script for IDLE_SECONDS:
  its tab was closed or reloaded mid-training (training stops with the tab's timer);
* when a new session opens a run that another live session of this process holds (a reload):
  that session's current state is written first, so the reload continues from the moment it happened;
* at interpreter exit (a server stopped with SIGTERM or Ctrl-C exits normally): every live
  session's unsaved run, written synchronously.
So a reload, a closed tab and a graceful stop lose nothing; a crash (SIGKILL, power) loses at most
the last AUTOSAVE_SECONDS of training.

A save takes a consistent snapshot in the script thread (a trainer clone, ~10 ms) and leaves the
slow part (compressing ~1 MB, writing) to one background thread, so Pause answers at once. The
thread never touches streamlit: it reports through a SaveStatus the script thread reads.

The URL gets the id, and the Save & load page the link, only once a save under that id has been
written, so neither ever promises a run that was never stored. A save failure (disk full, no
permission) never raises: the sidebar says so on every page until a later save succeeds, in the
user's terms (the details, paths included, go to the log).

One link open in two tabs is two sessions training copies of one run. The store keeps a version of
each run (across processes and server replicas); a session that finds its run written by another
session since it read or last wrote it does not overwrite it: its save goes to a new run id, and
the tab follows its run there (new link, a message). Both lines of training are kept.
"""
from __future__ import annotations

import errno
import logging
import threading
import time
from dataclasses import dataclass, field

import streamlit as st
from streamlit.runtime.scriptrunner import get_script_run_ctx

# Its exit hook runs this module's save_all_at_exit before it stops the workers (see the end).
from playground.runs import trainers
from playground.escape import markdown_text
from playground.runs.run import Run
from playground.runs.store import (RunChanged, RunStore, SaveThrottle, is_valid_run_id, new_run_id,
                              open_store, store_location)

log = logging.getLogger(__name__)

# While training: how much a crash can lose, against the cost of a save (a trainer clone in the
# script thread, then compressing the checkpoint in the save thread).
AUTOSAVE_SECONDS = 10.0
SWEEP_SECONDS = 1.0           # how often the sweeper looks at the live sessions
IDLE_SECONDS = 3.0            # no tick for this long: a training tab is throttled, or gone
RELEASE_SECONDS = 120.0       # no script run for this long: the trainer is released (saved first)
FORGET_SECONDS = 600.0        # a saved session idle this long leaves the registry (it re-joins on use)
LOCK_WAIT_SECONDS = 3.0       # sweeper, reload and exit wait this long for a tick to finish
PAUSE_SAVE_WAIT_SECONDS = 2.0 # Pause waits this long for its save, so the page shows the outcome
PRUNE_EVERY_SECONDS = 3600.0
RESTORE_WAIT_SECONDS = 10.0   # a reload waits this long at most for its own run's pending save
QUERY_KEY = "run"
SESSION_KEY = "persist"


# ---------------------------------------------------------------- shared by every session of the process
_UNUSABLE_LOGGED: set[str] = set()


@st.cache_resource(show_spinner=False)
def _store_at(path: str) -> RunStore:
    # Cached per directory: holds no user data, only the path and the directory lock.
    return open_store(path)     # a RunStore, or an ObjectRunStore for an s3:// URL


def get_store() -> RunStore | None:
    """The RunStore in the data dir ($RNN_PLAYGROUND_STORE_URL or $RNN_PLAYGROUND_DATA_DIR if set),
    or None if it is unusable."""
    try:
        path = store_location()
    except ValueError as exc:     # a store URL this build cannot use: said once in the log
        path = f"<{exc}>"
        if path not in _UNUSABLE_LOGGED:
            _UNUSABLE_LOGGED.add(path)
            log.warning("run store unavailable: %s", exc)
        return None
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
        self.saved_id: str | None = None       # run id of the last successful save
        self.version: str | None = None        # version of the run this session last read or wrote
        self.moved_to: str | None = None       # run id its saves went to after a conflict

    def succeeded(self, iteration: int, at: float | None = None, run_id: str | None = None) -> None:
        with self._lock:
            self.error, self.saved_iteration = None, iteration
            self.saved_at = time.time() if at is None else at
            if run_id is not None:
                self.saved_id = run_id

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

    def pending(self, status: SaveStatus) -> bool:
        """True while a save of this status is queued or being written."""
        with self._cond:
            return any(key[1] == id(status) for key in (*self._pending, *self._busy))

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


def _write(job: _Job) -> None:
    status = job.status
    target = status.moved_to or job.run_id
    payload, moved = job.snapshot.to_bytes(), False
    try:
        try:
            version = job.store.save_unless_changed(target, payload, status.version)
        except RunChanged:   # another session wrote this run since this one read it: keep both
            target, moved = new_run_id(), True
            log.info("run %s is open in two sessions; this one continues as %s", job.run_id[:6], target[:6])
            version = job.store.save_unless_changed(target, payload, None)
    except Exception as exc:   # disk full, permissions, anything: the app must keep running
        log.warning("saving run %s failed: %r", target[:6], exc)
        status.failed(save_error_sentence(exc))
    else:
        status.wrote(target, version, moved)
        status.succeeded(job.snapshot.iteration, run_id=target)


def save_error_sentence(exc: BaseException) -> str:
    """What went wrong with a save, in the user's terms: never a path, an errno or a class name."""
    code = getattr(exc, "errno", None)
    if code in (errno.ENOSPC, getattr(errno, "EDQUOT", -1)):
        return "the server's disk is full"
    if code in (errno.EACCES, errno.EPERM, errno.EROFS):
        return "the server is not allowed to write to its data directory"
    if isinstance(exc, OSError):
        return "the server's data directory cannot be written to"
    return "an unexpected error on the server (it is in the server's log)"


_WORKER = _SaveWorker()
_PRUNED_AT: dict[str, float] = {}
_PRUNE_GUARD = threading.Lock()


def wait_for_saves(run_id: str | None = None, timeout: float | None = 60.0) -> bool:
    """Block until queued saves are on disk (all, or one run's). For tests and for restores."""
    return _WORKER.wait(run_id, timeout)


def snapshot(run: Run) -> Run:
    """An independent copy of ``run`` whose to_bytes() is unaffected by further training."""
    return run.copy()


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
    except OSError as exc:
        log.warning("pruning runs failed: %s", exc)


# ---------------------------------------------------------------- one session's persistence state
@dataclass(eq=False)
class SessionPersist:
    run_id: str
    saved_signature: tuple | None = None      # what the last save captured (see _signature)
    throttle: SaveThrottle = field(default_factory=lambda: SaveThrottle(AUTOSAVE_SECONDS))
    status: SaveStatus = field(default_factory=SaveStatus)
    # Mirrors of the session's run, run lock and store, set by the script thread on every script
    # run and tick, so the sweeper and the exit hook can save a session without touching streamlit.
    run: Run | None = None
    handle: trainers.TrainerHandle | None = None
    lock: threading.RLock | None = None
    store: RunStore | None = None
    session_id: str | None = None
    seen_at: float = field(default_factory=time.monotonic)
    training: bool = False                    # it was training at its last script run or tick

    @property
    def linked(self) -> bool:
        """A save under this run id has been written: its link restores the run."""
        return self.status.saved_id == self.run_id


# ---------------------------------------------------------------- live sessions (sweeper, reload, exit)
# Every session that ran a script recently, by id(). Its run trains in a worker process whether or
# not its tab is still open: the sweeper saves and releases the trainers of tabs that are gone, a
# reload flushes the session it replaces, and the exit hook saves them all.
_LIVE: dict[int, SessionPersist] = {}
_LIVE_GUARD = threading.Lock()
_SWEEPER: list[threading.Thread] = []
SWEEP_IN_BACKGROUND = True    # the unit tests call sweep() themselves, with their own clock


def _session_id() -> str | None:
    ctx = get_script_run_ctx()
    return ctx.session_id if ctx is not None else None


def connected(session_id: str | None) -> bool | None:
    """Whether the browser tab of this Streamlit session is still connected; None where the server
    cannot tell (no runtime, as in AppTest). Any thread."""
    if session_id is None:
        return None
    try:
        from streamlit.runtime import Runtime
        if not Runtime.exists():
            return None
        return bool(Runtime.instance().is_active_session(session_id))
    except Exception:   # a later Streamlit without it: fall back to idle time alone
        return None


def _register(sp: SessionPersist, run: Run) -> None:
    """Script thread: record the session's run and trainer for saves made outside its script runs."""
    ss = st.session_state
    sp.run, sp.lock, sp.seen_at = run, ss.get("run_lock"), time.monotonic()
    sp.handle = ss.get("trainer")
    bind = getattr(sp.handle, "bind", None)
    if bind is not None:      # a Ray actor is named by the run id, so other replicas find it by its link
        bind(sp.run_id)
    sp.training = bool(ss.get("running"))
    sp.session_id = _session_id()
    sp.store = get_store()
    with _LIVE_GUARD:
        _LIVE[id(sp)] = sp
        if SWEEP_IN_BACKGROUND and (not _SWEEPER or not _SWEEPER[0].is_alive()):
            _SWEEPER[:] = [threading.Thread(target=_sweep_forever, name="rnn-playground-sweeper", daemon=True)]
            _SWEEPER[0].start()


def _current(sp: SessionPersist) -> Run | None:
    """The session's run as it is now: a snapshot from its worker while it trains."""
    handle = sp.handle
    if handle is None:
        return sp.run
    if handle.running:
        try:
            return handle.snapshot()
        except trainers.WorkerDied:
            pass
    return handle.latest


def _acquire(sp: SessionPersist, timeout: float) -> bool:
    if sp.lock is None:
        return False
    return sp.lock.acquire(timeout=timeout) if timeout > 0 else sp.lock.acquire(blocking=False)


def _save_if_changed(sp: SessionPersist, timeout: float) -> bool:
    """Any thread: queue a save of ``sp``'s run as it is now if it changed since its last save.
    Takes the session's run lock, waiting at most ``timeout`` s; True if queued."""
    if sp.store is None or not _acquire(sp, timeout):
        return False
    try:
        run = _current(sp)
        if run is None or _signature(run) == sp.saved_signature:
            return False
        sp.run = run
        _submit(sp, run, sp.store)
        return True
    finally:
        sp.lock.release()


def _release(sp: SessionPersist) -> None:
    """(Run lock held.) The session's tab is gone: stop its trainer, save the run as it stopped,
    free the worker's copy. The handle brings the run back from that copy if the session returns."""
    run = sp.handle.release()
    sp.run, sp.training = run, False
    if _superseded(sp):
        # A later session opened this run id since this tab was last seen (a reload whose old tab
        # still looked connected): that session continues the run; writing this tab's last
        # seconds over it would split the link in two.
        log.info("run %s: its old tab is gone and a newer tab continues it", sp.run_id[:6])
        return
    if sp.store is not None and _signature(run) != sp.saved_signature:
        _submit(sp, run, sp.store)


def _superseded(sp: SessionPersist) -> bool:
    with _LIVE_GUARD:
        return any(other is not sp and other.run_id == sp.run_id and other.seen_at > sp.seen_at
                   for other in _LIVE.values())


def sweep(now: float | None = None, connected=connected) -> list[SessionPersist]:
    """One look at the live sessions that have run no script for IDLE_SECONDS (a training tab
    ticks several times a second). Returns the sessions it saved or released.

    * the tab is known to be gone (its session disconnected): release its trainer, saved first;
    * idle RELEASE_SECONDS (a paused tab, or where connection is unknown): the same;
    * a connected tab still training but not ticking (a browser throttling a background tab's
      timers): save it every AUTOSAVE_SECONDS, as its ticks would;
    * released, saved and idle FORGET_SECONDS: forgotten (it joins again on its next script run).
    """
    now = time.monotonic() if now is None else now
    with _LIVE_GUARD:
        live = list(_LIVE.values())
    acted = []
    for sp in live:
        idle = now - sp.seen_at
        if idle < IDLE_SECONDS or not _acquire(sp, 0):
            continue
        try:
            handle = sp.handle
            if handle is not None and handle.placed:
                if connected(sp.session_id) is False or idle >= RELEASE_SECONDS:
                    _release(sp)
                    acted.append(sp)
                elif handle.running and sp.store is not None and sp.throttle.due():
                    sp.run = _current(sp)
                    _submit(sp, sp.run, sp.store)
                    acted.append(sp)
            elif idle >= FORGET_SECONDS and not _WORKER.pending(sp.status):
                with _LIVE_GUARD:
                    if _LIVE.get(id(sp)) is sp:
                        del _LIVE[id(sp)]
                        sp.run = sp.handle = None   # the session's own state still holds both
        except trainers.WorkerDied:
            log.warning("a trainer process died while its idle session was being saved")
        finally:
            sp.lock.release()
    return acted


def _sweep_forever() -> None:
    while True:
        time.sleep(SWEEP_SECONDS)   # a timer, not synchronisation: it only bounds how stale a save is
        try:
            sweep()
        except Exception:   # the sweeper must outlive any one session's trouble
            log.exception("saving idle sessions failed")


def owner_handle(run_id: str) -> trainers.TrainerHandle | None:
    """The trainer of the session in this server that last ran a script on ``run_id`` (what its
    watchers follow); else, on a Ray cluster, the read side of the run's actor (its owner may be on
    another replica); None if nobody trains it."""
    with _LIVE_GUARD:
        holders = [sp for sp in _LIVE.values() if sp.run_id == run_id and sp.handle is not None]
    if not holders:
        try:
            return trainers.get_pool().find(run_id)
        except trainers.WorkerDied:     # the cluster is unreachable: the watcher reads the last save
            return None
    return max(holders, key=lambda sp: sp.seen_at).handle


def watch_id(create: bool = False) -> str | None:
    """The watch id of this session's run (made now if ``create`` and the run has a link)."""
    sp, store = _session(), get_store()
    if store is None or not sp.linked:
        return None
    current = store.watch_id_of(sp.run_id)
    if current is None and create:
        current = store.new_watch_link(sp.run_id)
    return current


def new_watch_id() -> str | None:
    """Close the current watch link of this session's run and make a new one."""
    sp, store = _session(), get_store()
    if store is None or not sp.linked:
        return None
    return store.new_watch_link(sp.run_id)


def begin_own_run() -> None:
    """The session leaves watch mode with a run of its own (a fork): a new run id, no link yet."""
    st.session_state.pop(SESSION_KEY, None)
    _session()


def _flush_holders(run_id: str) -> None:
    """Before a new session opens ``run_id``: write the run of live sessions holding it as it is
    now. A holder whose tab is gone (the tab being reloaded) is released too: the new session
    continues from exactly there, and the old trainer stops."""
    with _LIVE_GUARD:
        holders = [sp for sp in _LIVE.values() if sp.run_id == run_id]
    for sp in holders:
        if connected(sp.session_id) is False and sp.handle is not None and sp.handle.placed:
            if _acquire(sp, LOCK_WAIT_SECONDS):
                try:
                    _release(sp)
                finally:
                    sp.lock.release()
        else:
            _save_if_changed(sp, timeout=LOCK_WAIT_SECONDS)


def save_all_at_exit(timeout: float = 30.0) -> bool:
    """Interpreter exit (a graceful server stop): save every live session's changed run, as its
    worker has it now, and wait for the writes. True if everything was written in time."""
    with _LIVE_GUARD:
        live = list(_LIVE.values())
    for sp in live:
        try:
            _save_if_changed(sp, timeout=LOCK_WAIT_SECONDS)
        except Exception:
            log.exception("saving a session at exit failed")
    done = _WORKER.wait(timeout=timeout)
    if live:
        log.info("saved %d live sessions at exit%s", len(live), "" if done else " (some writes timed out)")
    return done


# At exit while the trainers still answer: before the local pool stops its workers, and on Ray
# before Ray's own exit hook disconnects the process (after it, every call would hang).
trainers.at_exit_while_trainers_answer(save_all_at_exit)


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
    (By the run's uid, not the object: the session gets a new copy with every snapshot.)"""
    tr = run.trainer
    return (run.uid, tr.iteration, tr.learning_rate, tr.optimizer_name, tr.clip, run.config.sample_every)


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


def adopt_text(run: Run) -> None:
    """A run on custom text brings its text along, so Reset with unchanged settings works."""
    if run.config.corpus == "custom":
        st.session_state.custom_text = run.whole_text()
        st.session_state.custom_label = run.corpus_label


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
    store = get_store()
    if store is None:
        _flash("warning", f"Saved runs are not available on this server, so the run in your link could not "
                          f"be opened; {fresh}.")
    elif not is_valid_run_id(requested):
        _flash("warning", f"No saved run with that link; {fresh}.")
    else:
        _flush_holders(requested)                         # a reload: the tab it replaces, as it is now
        wait_for_saves(requested, RESTORE_WAIT_SECONDS)   # a reload right after Pause gets that save
        try:
            found = store.load_with_version(requested)
            if found is None:
                _flash("warning", f"No saved run with that link (runs unused for a week are deleted); {fresh}.")
            else:
                payload, version = found
                run = Run.from_bytes(payload)
                saved, saved_signature = run.iteration, _signature(run)
                run, greeting = _live_copy(requested, store, run)   # its live actor's copy, on Ray
                # The stored run's signature: a live actor's newer copy is saved by the next script run.
                sp = SessionPersist(requested, saved_signature=saved_signature)
                sp.status.succeeded(saved, at=store.saved_at(requested),
                                    run_id=requested)
                sp.status.version = version      # what this session continues from
                st.session_state[SESSION_KEY] = sp
                adopt_text(run)
                if greeting is not None:
                    _flash("warning", greeting)
                else:
                    _flash("success", f"Welcome back: your run on {markdown_text(run.corpus_label)} continues at "
                                      f"iteration {run.iteration:,}.")
                return run
        except Exception as exc:   # a corrupt, foreign or unreadable file must not stop the app
            log.warning("restoring run %s failed: %r", requested[:6], exc)
            # A checkpoint's own ValueError says what is wrong with the file; anything else (an
            # OSError names a server path) is said in the user's terms.
            reason = str(exc) if isinstance(exc, ValueError) else save_error_sentence(exc).replace(
                "written to", "read")
            _flash("warning", f"The saved run in your link could not be read ({markdown_text(reason)}); {fresh}. "
                              "The saved file was left untouched.")
    st.session_state.pop(SESSION_KEY, None)
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
        st.session_state.trainer = handle
        st.session_state.running = handle.running
        return handle.latest, None
    if getattr(trainers.get_pool(), "store_dir", None) is not None and store.actor_marked(run_id):
        store.unmark_actor(run_id)
        return stored, trainers.restarted_sentence(stored.iteration)
    return stored, None


def after_init() -> None:
    """Every script run: save a paused run that changed, keep ?run= in the URL, prune."""
    ss = st.session_state
    sp = _session()
    run = ss.run
    _register(sp, run)
    if sp.saved_signature is None:
        sp.saved_signature = _signature(run)   # a brand-new run: nothing worth storing yet
    elif not ss.get("running") and _signature(run) != sp.saved_signature:
        # Waits for the write (briefly): the address bar gets ?run= in this same script run, and
        # only once the link restores the run.
        save_now(wait=PAUSE_SAVE_WAIT_SECONDS)
        _follow_move(sp)      # the save may have moved to a new run id: follow it now
    _sync_url(sp)
    store = get_store()
    if store is not None and sp.linked:
        _maybe_prune(store, keep=sp.run_id)


def save_problem() -> str | None:
    """The sentence the sidebar shows while the session's latest save has failed, else None."""
    error = _session().status.error
    if not error:
        return None
    return (f"Your run could not be saved: {error}. A reload or a server restart would lose the training "
            "since the last save; download a checkpoint on Save & load to keep it.")


def _submit(sp: SessionPersist, run: Run, store: RunStore | None) -> None:
    """Queue a save of ``run`` for session ``sp`` (any thread; the caller holds the run lock)."""
    sp.saved_signature = _signature(run)
    sp.throttle.mark_saved()
    if store is None:
        sp.status.failed("saved runs are not available on this server (its data directory cannot be used)")
        return
    try:
        _WORKER.submit(_Job(store, sp.run_id, snapshot(run), sp.status))
    except Exception as exc:   # e.g. no thread could be started
        log.warning("queueing a save failed: %r", exc)
        sp.status.failed(save_error_sentence(exc))


def save_now(wait: float = 0.0) -> None:
    """Queue a save of the current run (pause, reset, checkpoint load). Never raises.

    ``wait``: seconds to wait for the write, so the script run that follows shows its outcome.
    The URL is updated by that script run (after_init) or by the autosave in the tick: writing
    st.query_params from a widget callback disturbs the rerun that follows it.
    """
    sp = _session()
    run = st.session_state.run
    sp.run = run
    _submit(sp, run, get_store())
    if wait > 0:
        wait_for_saves(sp.run_id, wait)


def touch() -> None:
    """From the training tick: the session's tab is alive and training."""
    sp = _session()
    sp.run, sp.seen_at, sp.training = st.session_state.run, time.monotonic(), True
    _sync_url(sp)


def autosave_due() -> bool:
    return _session().throttle.due()


def autosave_if_due() -> None:
    """From the training tick (with a fresh snapshot in session_state.run): save when
    AUTOSAVE_SECONDS have passed since the last save."""
    touch()
    if _session().throttle.due():
        save_now()


# ---------------------------------------------------------------- for the Save & load page
def run_id() -> str:
    return _session().run_id


def is_linked() -> bool:
    return _session().linked


def status() -> SaveStatus:
    return _session().status


def app_base_url(page_url: str | None) -> str:
    """The app's address from a page's URL (the start page's path: no query, no page name)."""
    base = (page_url or "").split("?")[0].rstrip("/")
    for suffix in ("/files",):   # the Save & load page's own path: the link opens the app's start page
        if base.endswith(suffix):
            base = base[: -len(suffix)]
    return base


def run_link(page_url: str | None) -> str | None:
    """Absolute link to this run: the app's address plus ?run=<id> (None before the first save)."""
    sp = _session()
    if not sp.linked:
        return None
    return f"{app_base_url(page_url)}/?{QUERY_KEY}={sp.run_id}"
