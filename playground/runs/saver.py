"""Saving runs to the run store, for every session of this process: the save thread, the live
sessions' records, the sweeper, the exit hook.

A save takes a consistent snapshot under the session's run lock (a trainer clone) and leaves the
slow part (compressing the checkpoint, writing) to one background thread, so Pause answers at once. That
thread reports through a SaveStatus the session reads. Each session that ran a script recently has a
SessionPersist record here (``register``): its run, handle, lock and store, mirrored from the session
by playground.session.persist, so the sweeper and the exit hook save it without touching the
session. Knows run ids, bytes and the store; never a session's state, widgets or pages (it asks
Streamlit's runtime only whether a session's tab is still connected).

One link open in two tabs is two sessions training copies of one run. The store keeps a version of
each run (across processes and server replicas); a session that finds its run written by another
session since it read or last wrote it does not overwrite it: its save goes to a new run id (the
SaveStatus says where; the session follows). Both lines of training are kept.
"""
from __future__ import annotations

import errno
import functools
import logging
import threading
import time
from dataclasses import dataclass, field

# Its exit hook runs this module's save_all_at_exit before it stops the workers (see the end).
from playground.runs import trainers
from playground.runs.run import Run
from playground.runs.store import RunChanged, RunStore, SaveThrottle, new_run_id, open_store, store_location

log = logging.getLogger(__name__)

# While training: how much a crash can lose, against the cost of a save (a trainer clone in the
# script thread, then compressing the checkpoint in the save thread).
AUTOSAVE_SECONDS = 10.0
SWEEP_SECONDS = 1.0           # how often the sweeper looks at the live sessions
IDLE_SECONDS = 3.0            # no tick for this long: a training tab is throttled, or gone
RELEASE_SECONDS = 120.0       # no script run for this long: the trainer is released (saved first)
FORGET_SECONDS = 600.0        # a saved session idle this long leaves the registry (it re-joins on use)
LOCK_WAIT_SECONDS = 3.0       # sweeper, reload and exit wait this long for a tick to finish
PRUNE_EVERY_SECONDS = 3600.0


# ---------------------------------------------------------------- shared by every session of the process
_UNUSABLE_LOGGED: set[str] = set()
@functools.lru_cache(maxsize=None)
def _store_at(location: str) -> RunStore:
    # One per location and process: holds no user data, only the location and the directory lock.
    return open_store(location)     # a RunStore, or an ObjectRunStore for an s3:// URL


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


def maybe_prune(store: RunStore, keep: str) -> None:
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


def signature(run: Run) -> tuple:
    """Changes whenever the run would save differently: another run, training, or live settings
    (its model_key; not the object: the session gets a new copy with every snapshot)."""
    return run.model_key


# ---------------------------------------------------------------- one session's persistence state
@dataclass(eq=False)
class SessionPersist:
    run_id: str
    saved_signature: tuple | None = None      # what the last save captured (see signature)
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


def register(sp: SessionPersist) -> None:
    """Script thread: ``sp`` (its mirrors just set) is live; the sweeper runs."""
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


def submit(sp: SessionPersist, run: Run, store: RunStore | None) -> None:
    """Queue a save of ``run`` for session ``sp`` (any thread; the caller holds the run lock)."""
    sp.saved_signature = signature(run)
    sp.throttle.mark_saved()
    if store is None:
        sp.status.failed("saved runs are not available on this server (its data directory cannot be used)")
        return
    try:
        _WORKER.submit(_Job(store, sp.run_id, snapshot(run), sp.status))
    except Exception as exc:   # e.g. no thread could be started
        log.warning("queueing a save failed: %r", exc)
        sp.status.failed(save_error_sentence(exc))


def _save_if_changed(sp: SessionPersist, timeout: float) -> bool:
    """Any thread: queue a save of ``sp``'s run as it is now if it changed since its last save.
    Takes the session's run lock, waiting at most ``timeout`` s; True if queued."""
    if sp.store is None or not _acquire(sp, timeout):
        return False
    try:
        run = _current(sp)
        if run is None or signature(run) == sp.saved_signature:
            return False
        sp.run = run
        submit(sp, run, sp.store)
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
    if sp.store is not None and signature(run) != sp.saved_signature:
        submit(sp, run, sp.store)


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
                    submit(sp, sp.run, sp.store)
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


def flush_holders(run_id: str) -> None:
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
