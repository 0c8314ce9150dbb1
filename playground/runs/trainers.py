"""Trainer processes: runs train in a pool of worker processes; each session holds a TrainerHandle.

Why: a Streamlit server is one process and NumPy's small calls hold the GIL, so sessions training in
their script threads share one core however many the server has. Here the trainers live in worker
processes (``multiprocessing`` with the spawn start method, so a worker never inherits the server's
threads), one per CPU core by default. Each run is pinned to one worker, which trains its running
runs continuously, in turn, in short slices of the same ``Run.tick`` the app always used (stop_at,
live settings, the divergence guard and its rollback, periodic samples and validation).

The server side never touches a trainer. It asks a worker for
* progress: iteration, smoothed loss, speed, and what happened since it last asked (a divergence
  alert, the stop_at iteration reached) — small, several times a second;
* a snapshot: a consistent copy of the whole run (weights, optimizer state, position, hidden state,
  histories, samples), taken under the run's lock between two steps — for the views and for saves.

Protocol: the server sends ``(request id, op, run key, payload)`` over a Pipe and a reader thread
routes each ``(request id, ok, value)`` reply to the caller waiting on it. In the worker, every run
has its own command thread and lock, so a command waits at most for its own run's current slice
(one step, at the largest settings), never for another run's; training runs in the main thread.

Pure Python over the standard library and playground.runs.run (no streamlit): tested without a server.
"""
from __future__ import annotations

import atexit
import contextlib
import copy
import ctypes
import hashlib
import itertools
import logging
import multiprocessing
import multiprocessing.spawn
import os
import pickle
import queue
import signal
import threading
import time
import uuid
import weakref
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass

import numpy as np

from playground.runs.run import Run

log = logging.getLogger(__name__)

ENV_WORKERS = "RNN_PLAYGROUND_WORKERS"
ENV_MAX_TRAINING = "RNN_PLAYGROUND_MAX_TRAINING"
# Names a Ray cluster (auto, ray://host:10001, or local): runs then train as Ray actors
# (playground.runs.ray_backend), which any UI replica finds by run id. Unset: this module's local pool.
ENV_RAY_ADDRESS = "RNN_PLAYGROUND_RAY_ADDRESS"
TRAINING_PER_WORKER = 8     # default cap on runs training at once: this many per worker process
SLICE_SECONDS = 0.05        # a running run trains this long before the next running run's turn
# Added to a worker's scheduling niceness. 0: a browser on the same machine (a teacher's laptop
# serving the class) starved niced workers of the cores (bench/dashboard_overhead.py).
WORKER_NICENESS = 0
M_ARENA_MAX, M_MMAP_THRESHOLD = -8, -3   # glibc mallopt parameters (malloc.h)
CALL_TIMEOUT_SECONDS = 60.0 # a worker that answers nothing for this long counts as dead
START_TIMEOUT_SECONDS = 60.0


class WorkerDied(RuntimeError):
    """The worker process holding a run exited (or stopped answering)."""


class ServerFull(RuntimeError):
    """Start refused: the server trains as many runs at once as it allows."""


class WorkerError(RuntimeError):
    """An error inside the worker that could not be sent back as itself."""


@dataclass(frozen=True)
class Progress:
    """What the sidebar shows while a run trains; events are reported once."""
    iteration: int
    smooth_loss: float
    bits_per_char: float
    running: bool
    iterations_per_second: float
    alert: str | None = None      # the divergence guard paused the run (with this message)
    reached: int | None = None    # the run paused itself at its stop_at iteration
    restarted: int | None = None  # its worker died: the run continues (paused) from this iteration


def restarted_sentence(iteration: int) -> str:
    """What a session is told when its run lost its training process (a local worker that died, a
    Ray actor whose node died) and continues, paused, from its last copy."""
    return (f"The training process restarted; the run continues from iteration {iteration:,}. "
            "Press Start to train on.")


def _whole_number_setting(name: str, high: int) -> int | None:
    """$``name`` as a whole number from 1 to ``high``; None when unset or blank; ValueError naming
    the variable, the range and the value otherwise."""
    raw = os.environ.get(name)
    if raw is None or not raw.strip():
        return None
    try:
        value = int(raw)
    except ValueError:
        value = 0
    if not 1 <= value <= high:
        raise ValueError(f"{name} must be a whole number from 1 to {high}, got {raw!r}")
    return value


def default_workers() -> int:
    """$RNN_PLAYGROUND_WORKERS, else the number of CPU cores this process may use."""
    value = _whole_number_setting(ENV_WORKERS, 1024)
    if value is not None:
        return value
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def default_max_training(workers: int) -> int:
    """$RNN_PLAYGROUND_MAX_TRAINING, else TRAINING_PER_WORKER per worker."""
    value = _whole_number_setting(ENV_MAX_TRAINING, 100_000)
    return TRAINING_PER_WORKER * workers if value is None else value


# ================================================================ the worker process
def pack(run: Run) -> bytes:
    """A run as bytes for the other process (without the guard's last good copy: the receiving
    worker keeps its own, a view needs none). Only ever between this app's own processes: hostile
    files enter through rnn_core's checkpoint loader, never through here."""
    portable = copy.copy(run)
    portable._last_good = None
    return pickle.dumps(portable, protocol=pickle.HIGHEST_PROTOCOL)


def unpack(data: bytes) -> Run:
    """A run from ``pack``, holding its text's ids in the copy this process already has, if any."""
    return share_text(pickle.loads(data))


# Token ids of the texts runs in this process train on, one array per distinct text: thirty
# sessions on Shakespeare hold its ids once per process, not thirty times.
_SHARED_IDS: "weakref.WeakValueDictionary[tuple, np.ndarray]" = weakref.WeakValueDictionary()
_SHARED_GUARD = threading.Lock()


def share_text(run: Run) -> Run:
    """``run`` holding its ids in this process's shared copy of its text (see _shared_ids)."""
    tr = run.trainer
    tr.share_text(_shared_ids(tr.data), None if tr.val_ids is None else _shared_ids(tr.val_ids))
    return run


def _shared_ids(ids: np.ndarray) -> np.ndarray:
    key = (ids.dtype.str, ids.size, hashlib.blake2b(ids.tobytes(), digest_size=16).digest())
    with _SHARED_GUARD:
        kept = _SHARED_IDS.get(key)
        if kept is None:
            _SHARED_IDS[key] = kept = ids
        return kept


def progress_of(run: Run, running: bool) -> Progress:
    tr = run.trainer
    return Progress(iteration=tr.iteration, smooth_loss=float(tr.smooth_loss), bits_per_char=run.bits_per_char,
                    running=running, iterations_per_second=run.iterations_per_second)


class _Slot:
    """One run inside a worker: the run, its lock, its command queue and what the server has not
    been told yet."""

    def __init__(self, run: Run):
        self.run = run
        self.lock = threading.Lock()          # held while training a slice and by every command but progress
        # Commands waiting for ``lock``. A Lock is not fair: the training loop, releasing and taking
        # it again at once, would keep a Pause waiting for many slices. The loop skips a slot while
        # a command waits, so a command waits at most for the slice under way.
        self.waiting = 0
        self.running = False
        self.stop_at: int | None = None
        self.commands: queue.SimpleQueue = queue.SimpleQueue()
        # What progress reads, under its own small lock, so it never waits for a slice (a single
        # step takes over a second at the largest settings).
        self.news = threading.Lock()
        self.alert: str | None = None
        self.reached: int | None = None
        self.published = progress_of(run, False)

    def publish(self, alert: str | None = None, reached: int | None = None) -> None:
        progress = progress_of(self.run, self.running)
        with self.news:
            self.published = progress
            if alert is not None:
                self.alert = alert
            if reached is not None:
                self.reached = reached

    def take_progress(self) -> Progress:
        with self.news:
            alert, reached, self.alert, self.reached = self.alert, self.reached, None, None
            return Progress(**{**self.published.__dict__, "alert": alert, "reached": reached})

    def peek_progress(self) -> Progress:
        with self.news:
            return self.published

    def snapshot(self) -> bytes:
        """Under the lock: the run as it is between two steps."""
        return pack(self.run)


class _Worker:
    """The worker process's state: its runs, the training loop and the command threads."""

    def __init__(self, conn):
        self.conn = conn
        self.send_lock = threading.Lock()
        self.slots: dict[str, _Slot] = {}
        self.cond = threading.Condition()     # guards slots; notified when a run starts

    # ---------------------------------------------------------------- commands
    def serve(self) -> None:
        """Command loop (its own thread): route each request to its run's command thread."""
        while True:
            try:
                req_id, op, key, payload = self.conn.recv()
            except (EOFError, OSError):
                os._exit(0)        # the server is gone: nothing left to train for
            if key is None:
                self.reply(req_id, True, os.getpid() if op == "ping" else None)
                continue
            with self.cond:
                slot = self.slots.get(key)
                if op == "place":
                    if slot is not None:
                        slot.commands.put((req_id, "replace", payload))
                        continue
                    try:
                        slot = self.slots[key] = _Slot(self._placed(unpack(payload)))
                    except Exception as exc:
                        self.reply(req_id, False, exc)
                        continue
                    threading.Thread(target=self._run_commands, args=(key, slot), daemon=True,
                                     name=f"commands-{key[:6]}").start()
                    self.reply(req_id, True, None)
                    continue
            if slot is None:
                self.reply(req_id, False, KeyError(f"no run {key[:6]} in this worker"))
            elif op == "progress":   # answered here: it needs no lock, so it never queues behind a step
                self.reply(req_id, True, slot.take_progress())
            elif op == "peek":       # the same for a watcher: the news stays for the run's owner
                self.reply(req_id, True, slot.peek_progress())
            else:
                slot.commands.put((req_id, op, payload))

    @staticmethod
    def _placed(run: Run) -> Run:
        """A run arriving in this worker: fresh runtime state (guard snapshot, timers), same samples."""
        samples = run.samples
        run._init_runtime()
        run.samples.extend(samples)
        return run

    def reply(self, req_id: int, ok: bool, value) -> None:
        try:
            message = pickle.dumps((req_id, ok, value), protocol=pickle.HIGHEST_PROTOCOL)
        except Exception as exc:   # an unpicklable exception: send its text
            message = pickle.dumps((req_id, False, WorkerError(f"{type(value).__name__}: {value}; {exc}")))
        with self.send_lock:
            self.conn.send_bytes(message)

    def _run_commands(self, key: str, slot: _Slot) -> None:
        while True:
            req_id, op, payload = slot.commands.get()
            try:
                value = self._execute(slot, op, payload)
            except BaseException as exc:   # said to the caller, never fatal for the worker
                self.reply(req_id, False, exc)
            else:
                self.reply(req_id, True, value)
            if op == "release":
                return

    def _execute(self, slot: _Slot, op: str, payload):
        with self.cond:
            slot.waiting += 1
        try:
            with slot.lock:
                with self.cond:
                    slot.waiting -= 1
                return self._execute_locked(slot, op, payload)
        finally:
            with self.cond:           # after the lock is free: the training loop may take the slot again
                self.cond.notify_all()

    def _execute_locked(self, slot: _Slot, op: str, payload):
        """Under the slot's lock: one command on the run."""
        run = slot.run
        if op == "start":
            run.alert = None
            slot.stop_at = payload
            slot.running = True
            slot.publish()              # _execute wakes the training loop once the lock is free
            return None
        if op == "stop_at":
            slot.stop_at = payload
            return None
        if op == "pause":
            slot.running = False
            slot.publish()
            return slot.snapshot()
        if op == "step":
            slot.running = False
            report = run.step(payload)
            slot.publish()
            return slot.snapshot(), report.alert
        if op == "live":
            run.apply_live(payload)
            slot.publish()
            return None
        if op == "snapshot":
            return slot.snapshot()
        if op == "replace":
            slot.run = self._placed(unpack(payload))
            slot.running, slot.stop_at = False, None
            slot.take_progress()      # news of the replaced run is no news of this one
            slot.publish()
            return None
        if op == "release":
            slot.running = False
            with self.cond:
                self.slots.pop(_key_of(self.slots, slot), None)
            return None
        raise ValueError(f"unknown trainer command {op!r}")

    # ---------------------------------------------------------------- training
    def train_forever(self) -> None:
        """Main thread: the running runs in turn, one slice each."""
        while True:
            with self.cond:
                running = [s for s in self.slots.values() if s.running]
                if not running:
                    self.cond.wait()
                    continue
            trained = False
            for slot in running:
                if slot.waiting or not slot.lock.acquire(blocking=False):
                    continue      # a command goes first; its thread wakes this loop when done
                try:
                    if not slot.running:
                        continue
                    report = slot.run.tick(SLICE_SECONDS, stop_at=slot.stop_at)
                    trained = True
                    if report.alert or report.reached is not None:
                        slot.running = False
                    if report.reached is not None:
                        slot.stop_at = None
                    slot.publish(alert=report.alert, reached=report.reached)
                finally:
                    slot.lock.release()
            if not trained:       # every running run is busy with a command
                with self.cond:
                    if all(s.waiting or s.lock.locked() or not s.running for s in running):
                        self.cond.wait(SLICE_SECONDS)


def _key_of(slots: dict[str, _Slot], slot: _Slot) -> str | None:
    return next((k for k, s in slots.items() if s is slot), None)


def worker_main(conn) -> None:
    """Entry point of a worker process."""
    import playground  # noqa: F401  (caps BLAS threads: one core per worker)

    # Ctrl-C in a terminal and a service manager's SIGTERM reach the whole process group; the
    # server saves every run from its worker before it exits, so a worker outlives those signals
    # and ends when the server closes its pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    if WORKER_NICENESS:
        with contextlib.suppress(AttributeError, OSError):
            os.nice(WORKER_NICENESS)
    _fewer_malloc_arenas()
    worker = _Worker(conn)
    threading.Thread(target=worker.serve, daemon=True, name="commands").start()
    worker.train_forever()


def _fewer_malloc_arenas() -> None:
    """glibc gives each thread its own malloc arena (up to 8 per core), and every run's command
    thread pickles megabyte snapshots: each arena kept those buffers after they were freed, a few
    MB per run. Two arenas, and buffers from 128 kB up in their own mappings (returned to the
    system when freed), keep a worker's memory to its runs. Set before the worker's threads start;
    a no-op where the C library is not glibc."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(M_ARENA_MAX, 2)
        libc.mallopt(M_MMAP_THRESHOLD, 128 * 1024)
    except (OSError, AttributeError):
        pass


# ================================================================ the server's side
_SPAWN_GUARD = threading.Lock()


@contextlib.contextmanager
def _without_parent_main():
    """Spawned children re-import the parent's __main__ module; under `streamlit run` that is
    Streamlit's command line, which a worker does not need (it would cost each worker the memory of
    a whole Streamlit import). The worker's entry point lives in this module, so drop it."""
    original = multiprocessing.spawn.get_preparation_data

    def preparation(name):
        data = original(name)
        data.pop("init_main_from_name", None)
        data.pop("init_main_from_path", None)
        return data

    with _SPAWN_GUARD:
        multiprocessing.spawn.get_preparation_data = preparation
        try:
            yield
        finally:
            multiprocessing.spawn.get_preparation_data = original


class _Client:
    """The server's end of one worker process: its pipe, and a reader thread that routes replies."""

    def __init__(self, index: int):
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe()
        self.index = index
        self.process = ctx.Process(target=worker_main, args=(child,), name=f"rnn-playground-trainer-{index}",
                                   daemon=True)
        with _without_parent_main():
            self.process.start()
        child.close()
        self.conn = parent
        self.dead = False
        self._lock = threading.Lock()
        self._ids = itertools.count()
        self._waiting: dict[int, Future] = {}
        threading.Thread(target=self._read, daemon=True, name=f"trainer-{index}-replies").start()

    @property
    def pid(self) -> int | None:
        return self.process.pid

    def _read(self) -> None:
        while True:
            try:
                req_id, ok, value = pickle.loads(self.conn.recv_bytes())
            except (EOFError, OSError, pickle.UnpicklingError):
                break
            with self._lock:
                future = self._waiting.pop(req_id, None)
            if future is not None:
                future.set_result(value) if ok else future.set_exception(value)
        self._die()

    def _die(self) -> None:
        with self._lock:
            self.dead = True
            waiting, self._waiting = self._waiting, {}
        for future in waiting.values():
            future.set_exception(WorkerDied(f"trainer process {self.index} exited"))

    def call(self, op: str, key: str | None = None, payload=None, timeout: float = CALL_TIMEOUT_SECONDS):
        future: Future = Future()
        with self._lock:
            if self.dead:
                raise WorkerDied(f"trainer process {self.index} exited")
            req_id = next(self._ids)
            self._waiting[req_id] = future
            try:
                self.conn.send((req_id, op, key, payload))
            except (OSError, ValueError) as exc:
                self._waiting.pop(req_id, None)
                self.dead = True
                raise WorkerDied(f"trainer process {self.index} is unreachable") from exc
        try:
            return future.result(timeout)
        except FutureTimeout:
            log.error("trainer process %d did not answer %r in %.0f s: replacing it", self.index, op, timeout)
            self.kill()
            raise WorkerDied(f"trainer process {self.index} stopped answering") from None

    def kill(self) -> None:
        if self.process.is_alive():
            self.process.kill()
        self.process.join(5)
        self._die()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.conn.close()
        self.process.join(2)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(2)


class TrainerPool:
    """Worker processes, started on first use and replaced when one dies; handles are placed on
    the worker holding the fewest runs. Safe for many sessions (threads) at once."""

    def __init__(self, workers: int | None = None, max_training: int | None = None):
        self.size = default_workers() if workers is None else int(workers)
        if self.size < 1:
            raise ValueError(f"workers must be at least 1, got {workers}")
        self.max_training = default_max_training(self.size) if max_training is None else int(max_training)
        if self.max_training < 1:
            raise ValueError(f"max_training must be at least 1, got {max_training}")
        self._lock = threading.Lock()
        self._clients: list[_Client | None] = [None] * self.size
        self._placed = [0] * self.size                 # handles placed per worker
        self._training: set[str] = set()               # keys of handles training now
        self.restarts = 0
        self.closed = False

    # ---------------------------------------------------------------- workers
    def client(self, index: int) -> _Client:
        """Worker ``index``, started (or restarted, if it died) as needed."""
        with self._lock:
            if self.closed:
                raise RuntimeError("the trainer pool is closed")
            client = self._clients[index]
            if client is None or client.dead or not client.process.is_alive():
                if client is not None:
                    self.restarts += 1
                    log.warning("trainer process %d (pid %s) died; starting a new one", index, client.pid)
                    client.close()
                client = self._clients[index] = _Client(index)
        return client

    def pids(self) -> list[int | None]:
        with self._lock:
            return [c.pid if c is not None else None for c in self._clients]

    def _assign(self) -> int:
        with self._lock:
            index = min(range(self.size), key=lambda i: (self._placed[i], i))
            self._placed[index] += 1
            return index

    def _unassign(self, index: int) -> None:
        with self._lock:
            self._placed[index] = max(0, self._placed[index] - 1)

    # ---------------------------------------------------------------- the training cap
    def reserve(self, key: str) -> None:
        with self._lock:
            if key in self._training:
                return
            if len(self._training) >= self.max_training:
                raise ServerFull(f"the server is full: {len(self._training)} runs are training now, the most it "
                                 f"allows at once")
            self._training.add(key)

    def unreserve(self, key: str) -> None:
        with self._lock:
            self._training.discard(key)

    @property
    def training(self) -> int:
        with self._lock:
            return len(self._training)

    # ---------------------------------------------------------------- handles
    def handle(self, run: Run) -> "TrainerHandle":
        """Put ``run`` on a worker; the caller (a session) keeps the handle."""
        return TrainerHandle(self, run)

    def attach(self, run_id: str) -> "TrainerHandle | None":
        """A handle on ``run_id`` held by another UI process (a Ray actor), or None. The local
        pool's runs belong to sessions of this process, which the saver finds itself: always None."""
        return None

    def find(self, run_id: str):
        """The read side (running, peek, snapshot) of ``run_id`` trained outside this process, for
        its watchers; the local pool has none: always None."""
        return None

    def close(self) -> None:
        with self._lock:
            self.closed = True
            clients, self._clients = self._clients, [None] * self.size
        for client in clients:
            if client is not None:
                client.close()


class TrainerHandle:
    """A session's run in the pool. ``latest`` is the newest snapshot the session has: the views
    read it, saves write it. Calls from several threads of one session (the script thread, the
    saver's sweeper) are serialised."""

    def __init__(self, pool: TrainerPool, run: Run):
        self.pool = pool
        self.key = uuid.uuid4().hex
        self.latest = share_text(run)
        self.latest_at = time.monotonic()
        self._fresh = True          # latest is the run as the worker has it (paused, nothing since)
        self.running = False
        self._index: int | None = None
        self._pid: int | None = None
        self._restarted: int | None = None
        self._lock = threading.RLock()
        self._place(run)

    # ---------------------------------------------------------------- placement
    def _place(self, run: Run) -> _Client:
        index = self._index if self._index is not None else self.pool._assign()
        self._index = index
        client = self.pool.client(index)
        client.call("place", self.key, pack(run))
        self._pid, self._fresh = client.pid, True
        return client

    @property
    def placed(self) -> bool:
        return self._index is not None

    def bind(self, run_id: str) -> None:
        """The session's run id. A local worker's runs need no name (only this process reaches
        them); a Ray actor is named by it (ray_backend.RayHandle.bind)."""

    @property
    def worker_pid(self) -> int | None:
        return self._pid if self.placed else None

    def _call(self, op: str, payload=None):
        with self._lock:
            for attempt in range(2):
                if self._index is None:
                    client = self._place(self.latest)
                else:
                    client = self.pool.client(self._index)
                    if client.pid != self._pid:    # restarted since: this run is not in it yet
                        self._lost()
                        client = self._place(self.latest)
                try:
                    return client.call(op, self.key, payload)
                except WorkerDied:
                    if attempt:
                        raise
                    self._lost()
            raise AssertionError("unreachable")

    def _lost(self) -> None:
        """Its worker died: the run continues, paused, from the newest snapshot this side has."""
        log.warning("run %s lost its trainer process; continuing from iteration %d", self.key[:6],
                    self.latest.iteration)
        self._restarted = self.latest.iteration
        self._pid = None
        if self.running:
            self.running = False
            self.pool.unreserve(self.key)

    def _took(self, data: bytes) -> Run:
        self.latest, self.latest_at = unpack(data), time.monotonic()
        self._fresh = not self.running
        return self.latest

    # ---------------------------------------------------------------- controls
    def start(self, stop_at: int | None = None) -> None:
        """Train continuously in the worker (until pause, stop_at, or the guard). ServerFull when the
        server trains as many runs as it allows; the run then stays paused and intact."""
        with self._lock:
            self.pool.reserve(self.key)
            try:
                self._call("start", stop_at)
            except BaseException:
                self.pool.unreserve(self.key)
                raise
            self.running, self._fresh = True, False

    def set_stop_at(self, stop_at: int | None) -> None:
        if self.running:
            self._call("stop_at", stop_at)

    def pause(self) -> Run:
        """Stop training; returns (and keeps as ``latest``) the run as it stopped."""
        with self._lock:
            run = self._took(self._call("pause"))
            self._stopped()
            return run

    def step(self, n: int = 1) -> tuple[Run, str | None]:
        """Exactly ``n`` iterations (paused before and after); (the run, the guard's alert or None)."""
        with self._lock:
            data, alert = self._call("step", n)
            self._stopped()
            return self._took(data), alert

    def apply_live(self, config) -> Run:
        """Learning rate, optimizer, clip and sample interval of ``config``, applied to the running
        run; a bad value raises ValueError and changes nothing."""
        with self._lock:
            self._call("live", config)
            self._fresh = False
            return self.snapshot()

    def replace(self, run: Run) -> None:
        """Another run for this session (Reset, a loaded checkpoint), paused."""
        with self._lock:
            share_text(run)
            self._call("replace", pack(run)) if self.placed else self._place(run)
            self._stopped()
            self.latest, self.latest_at, self._fresh = run, time.monotonic(), True

    def progress(self) -> Progress:
        """Small, cheap: for the sidebar's every tick. A run that stopped by itself (the guard,
        stop_at) is paused here too; ``restarted`` is said once after a worker died."""
        with self._lock:
            p = self._call("progress")
            if self._restarted is not None:
                p = Progress(**{**p.__dict__, "restarted": self._restarted})
                self._restarted = None
            if self.running and not p.running:   # stopped by itself: latest is behind
                self._stopped()
                self._fresh = False
            return p

    def peek(self) -> Progress:
        """Progress for someone watching this run: like ``progress`` but it changes nothing (the
        owner still gets its alerts and stops)."""
        with self._lock:
            if not self.placed:
                return progress_of(self.latest, False)
            return self._call("peek")

    def snapshot(self, max_age: float = 0.0) -> Run:
        """A consistent copy of the whole run, at most ``max_age`` seconds old (0: now). While
        paused, ``latest`` is already the run as it is."""
        with self._lock:
            if self._fresh or (max_age > 0 and time.monotonic() - self.latest_at < max_age):
                return self.latest
            return self._took(self._call("snapshot"))

    def park(self) -> None:
        """The session's run has paused (Pause, Step, a stop by itself, a loaded checkpoint): free the
        worker's copy at once (the sweeper would after saver.RELEASE_SECONDS), so an idle session
        holds its run once, the session's copy with its timeline of snapshots; Start or Step places
        it again from that copy."""
        if not self.running:
            self.release()

    def release(self) -> Run:
        """Free the worker's copy (a session whose tab is gone), after a last snapshot; the handle
        places the run again from that snapshot if it is used later."""
        with self._lock:
            if not self.placed:
                return self.latest
            try:
                run = self.latest if self._fresh else self._took(self._call("pause"))
                self._call("release")
            except WorkerDied:
                run = self.latest
            self._stopped()
            self._fresh = True
            self.pool._unassign(self._index)
            self._index = self._pid = None
            return run

    def _stopped(self) -> None:
        if self.running:
            self.running = False
        self.pool.unreserve(self.key)


# ================================================================ the server process's pool
_POOL: list[TrainerPool] = []
_POOL_GUARD = threading.Lock()


def get_pool() -> TrainerPool:
    """The process's pool, created on first use (configured by the environment): the Ray backend
    when $RNN_PLAYGROUND_RAY_ADDRESS is set (only then is Ray imported), else local workers."""
    with _POOL_GUARD:
        if not _POOL or _POOL[0].closed:
            if os.environ.get(ENV_RAY_ADDRESS, "").strip():
                from playground.runs import ray_backend
                _POOL[:] = [ray_backend.RayPool()]
            else:
                _POOL[:] = [TrainerPool()]
        return _POOL[0]


# Exit hooks that need the trainers to answer (the saver saves every live session's run from its
# trainer): run once, before the local pool closes its workers, and on Ray before Ray's own exit
# hook disconnects this process (ray_backend registers that call after joining the cluster).
_WHILE_TRAINERS_ANSWER: list = []


def at_exit_while_trainers_answer(hook) -> None:
    """Call ``hook()`` at interpreter exit while the trainers can still answer."""
    _WHILE_TRAINERS_ANSWER.append(hook)


def run_exit_hooks() -> None:
    """The hooks of at_exit_while_trainers_answer, once (later calls find none)."""
    hooks, _WHILE_TRAINERS_ANSWER[:] = list(_WHILE_TRAINERS_ANSWER), []
    for hook in hooks:
        try:
            hook()
        except Exception:
            log.exception("an exit hook failed")


def _close_pool() -> None:
    run_exit_hooks()
    with _POOL_GUARD:
        pools, _POOL[:] = list(_POOL), []
    for pool in pools:
        pool.close()


atexit.register(_close_pool)
