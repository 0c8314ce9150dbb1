"""Runs on a Ray cluster: each run is a named, detached Ray actor that any UI replica can find.

Selected by ``trainers.get_pool()`` when $RNN_PLAYGROUND_RAY_ADDRESS names a cluster (``auto``: the
cluster this machine belongs to; ``ray://host:10001``: Ray Client; ``local``: a Ray started inside
this process, for a single machine and the tests). Without it this module is never imported, so
the default install needs no Ray.

What runs where:
* ``RunActor`` (a Ray actor process): one run, trained continuously in slices by the very code a
  local worker process runs (``trainers._Worker.train_forever`` and its ``_execute`` commands over
  one ``_Slot``); rnn_core stays NumPy-only and never sees Ray. It is named by the run id in the
  app's namespace, so a UI replica that never held the run finds it by its link, and it is
  *detached*: a UI replica stopping does not stop its runs.
* ``RayHandle`` (a UI process): the TrainerHandle interface over one actor. Placement is lazy: a
  session that never trains costs no actor process. Each handle holds a lease on its actor; the
  actor ends when the last lease is released (a session's tab gone, saved first). A UI process
  that exits gives its leases back without stopping the runs (they train on for whoever opens
  them next); an actor with no call from a handle for ``idle_seconds`` (every UI process holding
  it went away, killed or not) saves itself to the shared store and exits.
* ``RayRunView``: the read side for watchers on another replica (peek, snapshot), no lease.

A marker ``<run_id>.actor`` in the store says the run has a live actor; a run whose marker is
there but whose actor is not (its node died) is restored from its last save with the sentence a
restarted local worker gets (``trainers.restarted_sentence``).
"""
from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import uuid

import ray
from ray import exceptions as ray_errors

from playground.runs import trainers
from playground.runs.run import Run
from playground.runs.store import is_valid_run_id, open_store

log = logging.getLogger(__name__)

NAMESPACE = "rnn-playground"
ENV_ADDRESS = trainers.ENV_RAY_ADDRESS
ENV_IDLE_MINUTES = "RNN_PLAYGROUND_RAY_IDLE_MINUTES"
ENV_CPUS_PER_RUN = "RNN_PLAYGROUND_RAY_CPUS_PER_RUN"
# Longer than saver.RELEASE_SECONDS: a live replica releases its idle sessions' actors itself;
# this only ends actors whose replica went away without doing so.
DEFAULT_IDLE_SECONDS = 10 * 60.0
# Ray schedules by declared resources: a run is paused most of the time in a lecture, so it
# declares a share of a core (the local pool's runs-per-worker cap) and a node holds
# TRAINING_PER_WORKER runs per core before Ray places the next one on another node.
DEFAULT_CPUS_PER_RUN = 1.0 / trainers.TRAINING_PER_WORKER
ACTOR_CONCURRENCY = 8            # threads answering calls: progress never waits for a command
CALL_TIMEOUT_SECONDS = trainers.CALL_TIMEOUT_SECONDS
# A new actor's process starts in about a second; still pending after this, the cluster is full.
CREATE_TIMEOUT_SECONDS = 20.0
FIND_RECHECK_SECONDS = 2.0       # a watcher's replica looks a run's actor up at most this often
SLOT = "run"                     # the one slot of the actor's _Worker
# One BLAS thread per run, as in a local worker (playground/__init__.py sets these before NumPy is
# imported; a Ray worker process imports NumPy before it runs any of the app's code).
ONE_BLAS_THREAD = {name: "1" for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")}

_DIED = (ray_errors.RayActorError,)   # ActorDiedError, ActorUnavailableError are subclasses


class ClusterUnreachable(trainers.ServerFull, trainers.WorkerDied):
    """The Ray cluster cannot be reached. Both a ServerFull (Start says it and the run stays paused)
    and a WorkerDied (the sidebar's tick says training stopped): the UI's sentences fit either."""


def _positive_setting(name: str, default: float, scale: float = 1.0) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value > 0 or value != value or value == float("inf"):
        raise ValueError(f"{name} must be a number above 0, got {raw!r}")
    return value * scale


def connect(address: str | None = None) -> None:
    """Join the Ray cluster named by ``address`` (default $RNN_PLAYGROUND_RAY_ADDRESS) once per
    process; ClusterUnreachable with one sentence naming the variable and the address if it fails."""
    if ray.is_initialized():
        return
    address = (address or os.environ.get(ENV_ADDRESS, "")).strip() or "auto"
    if time.monotonic() - _FAILED_AT.get(address, -float("inf")) < RETRY_CONNECT_SECONDS:
        # Joining takes seconds to fail; a watcher's every tick must not wait that long again.
        raise ClusterUnreachable(f"the Ray cluster named by {ENV_ADDRESS} ({address}) cannot be reached")
    try:
        if address == "local":
            ray.init(address="local", num_cpus=trainers.default_workers(), include_dashboard=False,
                     namespace=NAMESPACE, log_to_driver=False, ignore_reinit_error=True)
        else:
            ray.init(address=address, namespace=NAMESPACE, log_to_driver=False, ignore_reinit_error=True)
    except Exception as exc:   # ConnectionError, a timeout, a missing Ray Client extra: one sentence
        log.error("joining the Ray cluster at %r failed: %r", address, exc)
        _FAILED_AT[address] = time.monotonic()
        raise ClusterUnreachable(f"the Ray cluster named by {ENV_ADDRESS} ({address}) cannot be reached") from None
    # Registered after Ray's own exit hook, so it runs before it (last registered, first run): the
    # sessions' runs are saved from their actors while this process is still connected.
    atexit.register(_leaving)


_FAILED_AT: dict[str, float] = {}
RETRY_CONNECT_SECONDS = 30.0    # an unreachable address is tried again after this long, not per call


def _leaving() -> None:
    """This UI process exits: save its sessions' runs, then give its leases back. The actors train
    on (detached) for whoever opens them next; with nobody, they end by idle time, saved."""
    trainers.run_exit_hooks()
    with trainers._POOL_GUARD:
        pools = [p for p in trainers._POOL if isinstance(p, RayPool)]
    for pool in pools:
        pool.give_back_leases()


# ================================================================ the actor (a process on some node)
class RunActor:
    """One run in a Ray actor process: the local worker's slot, commands and training loop.

    ``payload``: ``trainers.pack(run)``. ``run_id``: the run's id in the store when it has one
    (then the actor saves itself there before an idle exit and keeps the store's marker), else None.
    """

    def __init__(self, payload: bytes, run_id: str | None, store_dir: str | None, idle_seconds: float):
        import playground  # noqa: F401  (caps BLAS threads: one core per run, as in a local worker)
        trainers._fewer_malloc_arenas()
        self.worker = trainers._Worker(None)      # no pipe: this actor's methods are its commands
        self.slot = trainers._Slot(trainers._Worker._placed(trainers.unpack(payload)))
        self.worker.slots[SLOT] = self.slot
        self.run_id, self.idle_seconds = run_id, float(idle_seconds)
        self.store = open_store(store_dir) if (run_id and store_dir) else None
        self.leases: set[str] = set()
        self.lease_lock = threading.Lock()
        self.called_at = time.monotonic()
        self.handed_out = self._mark()             # the run as a handle last took it to save it
        self.ending = False
        if self.store is not None:
            self.store.mark_actor(run_id)
        threading.Thread(target=self.worker.train_forever, daemon=True, name="training").start()
        threading.Thread(target=self._end_when_idle, daemon=True, name="idle-watch").start()

    def _mark(self) -> tuple:
        return self.slot.run.model_key

    # ---------------------------------------------------------------- what handles call
    def ping(self) -> int:
        return os.getpid()

    def join(self, lease: str) -> tuple[bytes, bool, int | None]:
        """A handle (of any replica) takes a lease: (the run now, training?, its stop_at)."""
        self.called_at = time.monotonic()
        with self.lease_lock:
            self.leases.add(lease)
        with self.slot.lock:
            return self.slot.snapshot(), self.slot.running, self.slot.stop_at

    def call(self, lease: str, op: str, payload=None):
        """A command of the local worker's protocol (start, pause, step, live, snapshot, replace,
        stop_at, progress), run exactly as the worker runs it."""
        self.called_at = time.monotonic()
        with self.lease_lock:
            self.leases.add(lease)
        if op == "progress":          # no lock: never queued behind a slice
            return self.slot.take_progress()
        value = self.worker._execute(self.slot, op, payload)
        if op == "pause":
            self.handed_out = self._mark()
        return value

    def peek(self) -> trainers.Progress:
        """Progress for a watcher: takes no news, and is not a call that keeps the actor alive."""
        return self.slot.peek_progress()

    def watch_snapshot(self) -> bytes:
        with self.slot.lock:
            return self.slot.snapshot()

    def leave(self, lease: str) -> bytes | None:
        """A handle gives its lease back. The last one gets the run as it stopped (paused, for its
        session to save) and the actor drops its marker (the caller then ends it); an earlier one
        gets None and the run goes on for the other handles."""
        with self.lease_lock:
            self.leases.discard(lease)
            last = not self.leases
        if not last:
            return None
        self.ending = True
        data = self.worker._execute(self.slot, "pause", None)
        self.handed_out = self._mark()
        self._stop()
        return data

    def abandon(self, lease: str) -> None:
        """A UI process that exits gives its lease back without stopping the run: it trains on
        for whoever opens it next, or ends by idle time."""
        with self.lease_lock:
            self.leases.discard(lease)

    # ---------------------------------------------------------------- ending
    def _stop(self) -> None:
        self.ending = True
        with self.slot.lock:
            self.slot.running = False
        if self.store is not None:
            try:
                self.store.unmark_actor(self.run_id)
            except OSError as exc:
                log.warning("run %s: removing its actor marker failed: %r", self.run_id[:6], exc)

    def _end_when_idle(self) -> None:
        """Every UI process holding this run went away without giving its lease back: save the
        run where its link finds it, then end this actor."""
        check_every = min(5.0, max(0.05, self.idle_seconds / 4))
        while True:
            time.sleep(check_every)   # a timer: how late after the idle limit the actor ends
            if self.ending or time.monotonic() - self.called_at < self.idle_seconds:
                continue
            with self.slot.lock:
                self.slot.running = False
                changed = self._mark() != self.handed_out
                payload = self.slot.run.to_bytes() if (changed and self.store is not None) else None
            if payload is not None:
                try:
                    self.store.save(self.run_id, payload)
                    log.info("run %s: no call for %.0f s; saved at iteration %d and ending", self.run_id[:6],
                             self.idle_seconds, self.slot.run.iteration)
                except OSError as exc:
                    log.error("run %s: saving before an idle exit failed: %r", self.run_id[:6], exc)
            self._stop()
            try:
                ray.kill(ray.get_runtime_context().current_actor, no_restart=True)
            except Exception:
                pass
            os._exit(0)   # if the kill did not end this process first


_REMOTE_ACTOR: list = []


def _actor_class():
    """RunActor as a Ray actor class (made once, after connect: ray.remote needs no cluster, but
    keeping it here keeps the import of this module cheap)."""
    if not _REMOTE_ACTOR:
        _REMOTE_ACTOR.append(ray.remote(max_concurrency=ACTOR_CONCURRENCY, max_restarts=0)(RunActor))
    return _REMOTE_ACTOR[0]


def _get(ref, timeout: float = CALL_TIMEOUT_SECONDS):
    """ray.get with the app's errors: WorkerDied for a dead actor or no answer in time, the actor's
    own exception (a ValueError of a bad setting) as itself, never Ray's wrapped traceback."""
    try:
        return ray.get(ref, timeout=timeout)
    except _DIED as exc:
        raise trainers.WorkerDied("the run's actor exited") from exc
    except ray_errors.GetTimeoutError:
        raise trainers.WorkerDied(f"the run's actor did not answer in {timeout:.0f} s") from None
    except ray_errors.RayTaskError as exc:
        cause = getattr(exc, "cause", None)
        if isinstance(cause, BaseException):
            raise cause from None
        raise trainers.WorkerError(str(exc).splitlines()[0]) from None


NAME_FREE_SECONDS = 10.0


def _wait_until_free(name: str) -> None:
    """After ray.kill: until the actor's name is free (the kill is asynchronous), so the session
    that reopens the run at once (a reload) makes its new actor under that name."""
    deadline = time.monotonic() + NAME_FREE_SECONDS
    while lookup(name) is not None and time.monotonic() < deadline:
        time.sleep(0.02)   # poll interval of a condition with a deadline


def lookup(run_id: str):
    """The live actor of ``run_id`` in the app's namespace, or None."""
    try:
        return ray.get_actor(run_id, namespace=NAMESPACE)
    except ValueError:
        return None


# ================================================================ a UI process's side
class RayPool(trainers.TrainerPool):
    """The TrainerPool interface on a Ray cluster. The cap on runs training at once counts this UI
    replica's sessions ($RNN_PLAYGROUND_MAX_TRAINING, else TRAINING_PER_WORKER per core of the
    cluster); Ray's resources bound the cluster (each run declares ``cpus_per_run``)."""

    def __init__(self, address: str | None = None, store_dir: str | None = None, max_training: int | None = None,
                 idle_seconds: float | None = None, cpus_per_run: float | None = None):
        # The cluster is joined on first use, not here: get_pool() runs in a page's script, and an
        # unreachable address must come back as a sentence from Start, not as an error on every page.
        super().__init__(workers=1, max_training=max_training if max_training is not None else 1)
        self.address = address
        self._explicit_cap = max_training is not None or bool(os.environ.get(trainers.ENV_MAX_TRAINING, "").strip())
        if max_training is None and self._explicit_cap:
            self.max_training = trainers.default_max_training(1)
        self._joined = False
        self.store_dir = str(store_dir) if store_dir is not None else _default_store_dir()
        self.idle_seconds = (_positive_setting(ENV_IDLE_MINUTES, DEFAULT_IDLE_SECONDS, 60.0)
                             if idle_seconds is None else float(idle_seconds))
        self.cpus_per_run = (_positive_setting(ENV_CPUS_PER_RUN, DEFAULT_CPUS_PER_RUN)
                             if cpus_per_run is None else float(cpus_per_run))
        self._views: dict[str, tuple[RayRunView | None, float]] = {}
        self._actor_pids: dict[str, int] = {}     # handle key -> its actor's process id
        self._actors: dict[str, object] = {}      # handle key -> the actor it holds a lease on
        self.create_timeout = CREATE_TIMEOUT_SECONDS

    def join_cluster(self) -> None:
        """Connect (once); without an explicit cap, TRAINING_PER_WORKER runs per core of the cluster."""
        if self._joined:
            return
        connect(self.address)
        if not self._explicit_cap:
            cores = max(1, int(ray.cluster_resources().get("CPU", 1)))
            self.max_training = trainers.default_max_training(cores)
        self._joined = True

    def reserve(self, key: str) -> None:
        self.join_cluster()
        super().reserve(key)

    def handle(self, run: Run) -> "RayHandle":
        return RayHandle(self, run)

    def attach(self, run_id: str) -> "RayHandle | None":
        """A handle on the live actor of ``run_id`` (its state, training or not), or None."""
        if not is_valid_run_id(run_id):
            return None
        self.join_cluster()
        actor = lookup(run_id)
        if actor is None:
            return None
        handle = RayHandle(self, None)
        try:
            handle._join(actor, run_id)
        except trainers.WorkerDied:
            return None
        return handle

    def find(self, run_id: str) -> "RayRunView | None":
        """The read side of ``run_id``'s live actor for a watcher, or None (looked up at most every
        FIND_RECHECK_SECONDS per run, since a watcher asks on every tick)."""
        now = time.monotonic()
        with self._lock:
            view, at = self._views.get(run_id, (None, -float("inf")))
        if view is not None and not view.gone:
            return view
        if now - at < FIND_RECHECK_SECONDS:
            return None
        self.join_cluster()
        actor = lookup(run_id) if is_valid_run_id(run_id) else None
        view = RayRunView(actor) if actor is not None else None
        with self._lock:
            self._views[run_id] = (view, now)
        return view

    def give_back_leases(self, timeout: float = 10.0) -> None:
        """Every lease of this process's handles, given back without stopping their runs."""
        with self._lock:
            held = list(self._actors.items())
        refs = []
        for key, actor in held:
            try:
                refs.append(actor.abandon.remote(key))
            except Exception:     # an actor that is gone already
                pass
        if refs:
            ray.wait(refs, num_returns=len(refs), timeout=timeout)

    def pids(self) -> list[int | None]:
        """Process ids of the actors this UI process's handles hold (on whichever node)."""
        with self._lock:
            return sorted(self._actor_pids.values())

    def close(self) -> None:
        """This UI process stops using the pool. The actors are detached and train on; the exit
        hook (``_leaving``) gives this process's leases back after its sessions are saved."""
        with self._lock:
            self.closed = True


def _default_store_dir() -> str | None:
    from playground.runs.store import store_location
    try:
        return store_location()     # a directory, or an s3:// URL every node opens itself
    except ValueError:
        return None


class RayRunView:
    """A watcher's read-only view of a run's actor: what WatchHandle asks an owner for."""

    def __init__(self, actor):
        self.actor = actor
        self.gone = False
        self.running = False
        self.latest: Run | None = None
        self.latest_at = -float("inf")
        self._lock = threading.Lock()

    def _get(self, ref):
        try:
            return _get(ref)
        except trainers.WorkerDied:
            self.gone = True
            raise

    def peek(self) -> trainers.Progress:
        progress = self._get(self.actor.peek.remote())
        self.running = progress.running
        return progress

    def snapshot(self, max_age: float = 0.0) -> Run:
        with self._lock:
            if self.latest is None or max_age <= 0 or time.monotonic() - self.latest_at >= max_age:
                self.latest, self.latest_at = trainers.unpack(self._get(self.actor.watch_snapshot.remote())), \
                    time.monotonic()
            return self.latest


class RayHandle(trainers.TrainerHandle):
    """A session's run as a Ray actor: the TrainerHandle interface, placed on first use.

    ``run_id`` (set by ``bind``, from the session's persistence) names the actor; a handle not
    bound yet names it by its own key (a run with no link: nobody else can look for it)."""

    def __init__(self, pool: RayPool, run: Run | None):
        self.pool = pool
        self.key = uuid.uuid4().hex
        self.latest = trainers.share_text(run) if run is not None else None
        self.latest_at = time.monotonic()
        self._fresh = True
        self.running = False
        self.run_id: str | None = None
        self._stop_at: int | None = None     # what Start last asked for: kept when the actor's name changes
        self._actor = None
        self._pid: int | None = None
        self._restarted: int | None = None
        self._lock = threading.RLock()

    # ---------------------------------------------------------------- placement
    @property
    def placed(self) -> bool:
        return self._actor is not None

    @property
    def worker_pid(self) -> int | None:
        return self._pid if self.placed else None

    @property
    def actor_name(self) -> str:
        return self.run_id or self.key

    def bind(self, run_id: str) -> None:
        """The session's run id (its link): the actor's name. A placed run whose id changed (its
        saves moved to a new id) continues in an actor of the new name, training if it was."""
        with self._lock:
            if run_id == self.run_id or not is_valid_run_id(run_id):
                return
            if not self.placed:
                self.run_id = run_id
                return
            was_running, stop_at = self.running, self._stop_at
            self.release()
            self.run_id = run_id
            if was_running:
                self.start(stop_at)

    def _place(self, run: Run):
        self.pool.join_cluster()
        name = self.actor_name
        store_dir = self.pool.store_dir if self.run_id else None
        try:
            actor = _actor_class().options(
                name=name, namespace=NAMESPACE, lifetime="detached", num_cpus=self.pool.cpus_per_run,
                runtime_env={"env_vars": ONE_BLAS_THREAD},
            ).remote(trainers.pack(run), self.run_id, store_dir, self.pool.idle_seconds)
        except ValueError:       # the name is taken: another replica's session placed this run first
            actor = lookup(name)
            if actor is None:
                raise trainers.WorkerDied(f"the actor of run {name[:6]} could not be made") from None
            self._join(actor, self.run_id)
            return actor
        except Exception as exc:
            log.error("making the actor of run %s failed: %r", name[:6], exc)
            raise ClusterUnreachable(f"the Ray cluster named by {ENV_ADDRESS} cannot take a new run now") from None
        try:
            self._pid = ray.get(actor.ping.remote(), timeout=self.pool.create_timeout)
        except ray_errors.GetTimeoutError:
            # Still pending: no node has the share of a core a run declares. Not a dead actor:
            # the cluster is full, and Start says so (the run stays paused in the session).
            ray.kill(actor, no_restart=True)
            raise trainers.ServerFull("the cluster is full: no machine has room for another training run "
                                      "now") from None
        except _DIED as exc:
            raise trainers.WorkerDied(f"the actor of run {name[:6]} exited as it started") from exc
        _get(actor.join.remote(self.key))
        self._actor, self._fresh = actor, True
        self._held(self._pid)
        return actor

    def _held(self, pid: int | None) -> None:
        with self.pool._lock:
            if pid is None:
                self.pool._actor_pids.pop(self.key, None)
                self.pool._actors.pop(self.key, None)
            else:
                self.pool._actor_pids[self.key] = pid
                self.pool._actors[self.key] = self._actor

    def _join(self, actor, run_id: str | None) -> None:
        """Take a lease on an existing actor and adopt its state (training or not)."""
        data, running, stop_at = _get(actor.join.remote(self.key))
        self._pid = _get(actor.ping.remote())
        self._actor, self.run_id = actor, run_id
        self._held(self._pid)
        self.latest, self.latest_at = trainers.unpack(data), time.monotonic()
        self._stop_at = stop_at
        self.running, self._fresh = running, not running
        if running:
            try:
                self.pool.reserve(self.key)
            except trainers.ServerFull:   # it trains already: counted, even past this replica's cap
                with self.pool._lock:
                    self.pool._training.add(self.key)

    def _call(self, op: str, payload=None):
        with self._lock:
            for attempt in range(2):
                if self._actor is None:
                    self._place(self.latest)
                try:
                    return _get(self._actor.call.remote(self.key, op, payload))
                except trainers.WorkerDied:
                    if attempt:
                        raise
                    self._lost()
            raise AssertionError("unreachable")

    def _lost(self) -> None:
        super()._lost()
        self._actor = None
        self._held(None)

    def start(self, stop_at: int | None = None) -> None:
        super().start(stop_at)
        self._stop_at = stop_at

    def set_stop_at(self, stop_at: int | None) -> None:
        super().set_stop_at(stop_at)
        self._stop_at = stop_at

    def replace(self, run: Run) -> None:
        with self._lock:
            trainers.share_text(run)
            if self.placed:
                self._call("replace", trainers.pack(run))
            self._stopped()
            self.latest, self.latest_at, self._fresh = run, time.monotonic(), True

    def progress(self) -> trainers.Progress:
        with self._lock:
            if not self.placed:   # never trained, or released: nothing to ask an actor
                p = trainers.progress_of(self.latest, False)
                if self._restarted is not None:
                    p = trainers.Progress(**{**p.__dict__, "restarted": self._restarted})
                    self._restarted = None
                return p
            return super().progress()

    def peek(self) -> trainers.Progress:
        with self._lock:
            if not self.placed:
                return trainers.progress_of(self.latest, False)
            try:
                return _get(self._actor.peek.remote())
            except trainers.WorkerDied:
                self._lost()
                return trainers.progress_of(self.latest, False)

    def park(self) -> None:
        """A paused run keeps its actor: other replicas reach a live run through it (watchers of a
        paused run could read its last save instead; making an actor again costs a Ray scheduling
        round on each Start)."""

    def release(self) -> Run:
        """Give the lease back and return the run as this session leaves it (the caller saves it).
        The last lease stops the run and ends the actor; with other handles still holding it, it
        trains on for them. The handle places the run again from that copy if it is used later."""
        with self._lock:
            if not self.placed:
                return self.latest
            actor = self._actor
            try:
                data = _get(actor.leave.remote(self.key))
                if data is not None:
                    run = self._took(data)
                    ray.kill(actor, no_restart=True)
                    _wait_until_free(self.actor_name)
                else:
                    run = self._took(_get(actor.watch_snapshot.remote()))
            except trainers.WorkerDied:
                run = self.latest
            self._stopped()
            self._fresh = True
            self._actor = self._pid = None
            self._held(None)
            return run
