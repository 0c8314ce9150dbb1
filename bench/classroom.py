"""A classroom: S sessions training at once, through the same trainer handles the app uses.

Run from the repository root:

    .venv/bin/python -m bench.classroom [--seconds 10] [--sessions 1,2,4,8]

No browser. Each simulated session is a thread of this process, as a session is a script thread of
the server: it starts its run (Shakespeare, the classic setting: H 100, T 25, batch 1, Adagrad),
asks its handle for progress every 0.25 s (the sidebar's tick, or faster) and for a snapshot every
2 s (the pages' views). After --warmup seconds, each session's iterations are counted over
--seconds. Also how long each snapshot call waited (a page's view waits as long).

  pool     the app today: a TrainerPool with one worker process per usable core (the default);
  threads  the architecture before it, as the baseline: S threads of this process, each training
           its own Run in Run.tick(0.3) slices (GIL-bound), with no server around them.
  engine   S=1 only: rnn_core's Trainer.step in a thread of this process, nothing of the app
           around it; printed as one pool session / the engine alone.

Both are measured in the same run, round-robin over --rounds rounds (medians; a shared machine's
other load moves from window to window). Per architecture and S: the aggregate iterations/s
(sum over sessions), its ratio to one session alone (S=1 of the same architecture), its ratio to
the target 0.8 x min(S, cores) x one session, the slowest session over the fastest, the snapshot
waits, rounds in which a session failed or went back (left out of the medians), worker restarts
(a worker that answers nothing for 60 s is replaced), the cores kept busy (CPU seconds per second)
in this process and in the workers, and the 1-minute load average (other processes on the machine
take cores from both architectures).
Target (issue 11): ratio to target >= 1 and slowest/fastest >= 0.7, for the pool.

    .venv/bin/python -m bench.classroom --backend ray

  ray      (issue 13) the Ray backend in place of the threads row: every run a named Ray actor on a
           Ray started inside this process (all usable cores, no dashboard), the same sessions.
           Also the cost of one progress poll (the sidebar's tick) as a Ray actor call against the
           local pool's pipe call, measured in the same run on a paused and on a training run, and
           the memory (Pss) of a process holding one paused run: an actor against a local worker.
"""
from __future__ import annotations

import argparse
import math
import os
import statistics
import threading
import time

import playground  # noqa: F401  (one BLAS thread per call, as in the server)
from playground.runs.run import PRESETS, Run
from playground.runs.trainers import TrainerPool, default_workers

PROGRESS_SECONDS = 0.25
SNAPSHOT_SECONDS = 2.0
OLD_TICK_SECONDS = 0.3


def pool_session(pool: TrainerPool, run: Run, stop: threading.Event, log: dict, name: int) -> None:
    """One session of the app: start, then progress every 0.25 s and a snapshot every 2 s. An error
    (a worker replaced, say) is logged and ends the session, as a page would show it."""
    readings, waits, errors = log[name] = ([], [], [])
    try:
        handle = pool.handle(run)
        handle.start()
        next_snapshot = time.monotonic() + SNAPSHOT_SECONDS
        while not stop.is_set():
            readings.append((time.perf_counter(), handle.progress().iteration))
            if time.monotonic() >= next_snapshot:
                t0 = time.perf_counter()
                handle.snapshot()
                waits.append(time.perf_counter() - t0)
                next_snapshot = time.monotonic() + SNAPSHOT_SECONDS
            stop.wait(PROGRESS_SECONDS)
        readings.append((time.perf_counter(), handle.progress().iteration))
        handle.pause()
        handle.release()
    except Exception as exc:
        errors.append(f"{type(exc).__name__}: {exc}")


def in_process_session(advance):
    """A session that trains its own run in this thread by calling ``advance(run)`` repeatedly."""
    def session(pool: None, run: Run, stop: threading.Event, log: dict, name: int) -> None:
        readings, _, _ = log[name] = ([], [], [])
        while not stop.is_set():
            advance(run)
            readings.append((time.perf_counter(), run.iteration))
    return session


# One session before the pool: the script thread trains its own run in 0.3 s ticks.
thread_session = in_process_session(lambda run: run.tick(OLD_TICK_SECONDS))
# The engine alone, nothing of the app around it (S=1 only): what one pool session is compared with.
engine_session = in_process_session(lambda run: run.trainer.step(20))


def cpu_seconds(pool: TrainerPool | None) -> tuple[float, float]:
    """CPU seconds used so far by (this process, the pool's workers)."""
    own = os.times()
    workers = 0.0
    for pid in pool.pids() if pool else ():   # the Ray backend: its handles' actor processes
        try:
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
        except OSError:     # an actor that ended since
            continue
        workers += (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return own.user + own.system, workers


def measure(session, pool, sessions: int, warmup: float, seconds: float) -> dict:
    """Iterations/s of each session over ``seconds`` after ``warmup``, every snapshot's wait in s,
    and the cores busy meanwhile in this process and in the workers.
    A session's rate is taken between its first and last reading inside the window: each reading is
    an (instant, iteration) pair, so a reading delayed by a slow snapshot shortens that session's
    window (or widens it to the readings around it) but does not bias its rate."""
    stop, log = threading.Event(), {}
    threads = [threading.Thread(target=session, args=(pool, Run.from_builtin(PRESETS["classic"]), stop, log, i),
                                daemon=True) for i in range(sessions)]
    for t in threads:
        t.start()
    restarts = pool.restarts if pool else 0
    while len(log) < sessions or not all(r or e for r, _, e in log.values()):   # all training (or failed)
        time.sleep(0.05)
    time.sleep(warmup)
    start, cpu_start = time.perf_counter(), cpu_seconds(pool)
    time.sleep(seconds)
    end, cpu_end = time.perf_counter(), cpu_seconds(pool)
    stop.set()
    for t in threads:
        t.join()
    rates, waits, errors = [], [], []
    for readings, snapshot_waits, session_errors in log.values():
        waits.extend(snapshot_waits)
        errors.extend(session_errors)
        inside = [r for r in readings if start <= r[0] <= end]
        if len(inside) < 2 and readings:   # a snapshot stalled the session all window: the readings around it
            inside = [max((r for r in readings if r[0] < start), default=readings[0]),
                      min((r for r in readings if r[0] > end), default=readings[-1])]
        if len(inside) < 2:   # a session that failed before the window
            rates.append(math.nan)
            continue
        (t0, i0), (t1, i1) = inside[0], inside[-1]
        # nan: no two readings inside, or the run went back (its worker was replaced)
        rates.append((i1 - i0) / (t1 - t0) if t1 > t0 and i1 >= i0 else math.nan)
    busy = [(b - a) / (end - start) for a, b in zip(cpu_start, cpu_end)]
    return dict(rates=rates, waits=waits, busy=busy, load=os.getloadavg()[0], errors=errors,
                restarts=(pool.restarts - restarts) if pool else 0)


def poll_seconds(pool, calls: int, training: bool) -> float:
    """Median seconds of one ``progress()`` call on a run of ``pool``, paused or training."""
    handle = pool.handle(Run.from_builtin(PRESETS["classic"]))
    handle.step(1)      # placed: a paused run in its worker or actor
    if training:
        handle.start()
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        handle.progress()
        times.append(time.perf_counter() - t0)
    handle.pause()
    handle.release()
    return statistics.median(times)


def pss_mb(pid: int) -> float:
    """Proportional set size of process ``pid`` in MB (shared pages split among their users)."""
    for line in open(f"/proc/{pid}/smaps_rollup"):
        if line.startswith("Pss:"):
            return int(line.split()[1]) / 1024
    return math.nan


def process_with_one_run_mb(pool) -> float:
    """Pss of the process that holds one paused run of ``pool`` (a fresh worker, or an actor)."""
    handle = pool.handle(Run.from_builtin(PRESETS["classic"]))
    handle.step(1)
    mb = pss_mb(handle.worker_pid)
    handle.release()
    return mb


def ray_overheads(local: TrainerPool, ray_pool, calls: int = 300) -> None:
    """Per-poll cost and per-run memory of the Ray backend against the local pool, in one run."""
    rows = []
    for training in (False, True):
        base, ray_cost = poll_seconds(local, calls, training), poll_seconds(ray_pool, calls, training)
        rows.append((training, base, ray_cost))
    print(f"\nprogress poll, median of {calls} calls  {'local pool ms':>13} {'ray actor ms':>12} {'ray / local':>11}")
    for training, base, ray_cost in rows:
        print(f"  {'training' if training else 'paused':30} {base * 1e3:>13.3f} {ray_cost * 1e3:>12.3f} "
              f"{ray_cost / base:>11.2f}")
    one_local = TrainerPool(workers=1)
    try:
        worker_mb = process_with_one_run_mb(one_local)
    finally:
        one_local.close()
    actor_mb = process_with_one_run_mb(ray_pool)
    print(f"Pss of a process holding one paused run: local worker {worker_mb:.0f} MB, ray actor {actor_mb:.0f} MB "
          f"(ray / local {actor_mb / worker_mb:.2f})")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=10.0, help="measuring window per S")
    ap.add_argument("--warmup", type=float, default=2.0, help="training before the window opens")
    ap.add_argument("--sessions", default="1,2,4,8", help="comma-separated S values (1 is always added)")
    ap.add_argument("--rounds", type=int, default=3, help="rounds over every (architecture, S); medians")
    ap.add_argument("--backend", choices=("local", "ray"), default="local",
                    help="ray: the Ray backend's row (and its poll cost and memory) in place of the threads row")
    args = ap.parse_args()
    counts = sorted({1, *(int(s) for s in args.sessions.split(","))})
    cores = default_workers()
    pool = TrainerPool()
    other_arch = "threads"
    other_session, other_pool = thread_session, None
    if args.backend == "ray":
        from playground.runs import ray_backend
        other_arch, other_session = "ray", pool_session
        other_pool = ray_backend.RayPool(address="local", store_dir=None, max_training=10_000)
        other_pool.join_cluster()
    results: dict[tuple[str, int], list[dict]] = {(a, s): [] for a in ("pool", other_arch) for s in counts}
    results["engine", 1] = []
    try:
        for index in range(pool.size):   # start the workers before any window opens
            pool.client(index).call("ping")
        print(f"cores {cores}, pool workers {pool.size}, {args.rounds} rounds of a {args.seconds:g} s window "
              f"after {args.warmup:g} s, load average {os.getloadavg()[0]:.2f}")
        for _ in range(args.rounds):     # round-robin, so that other load on the machine hits every row
            for s in counts:
                results["pool", s].append(measure(pool_session, pool, s, args.warmup, args.seconds))
                results[other_arch, s].append(measure(other_session, other_pool, s, args.warmup, args.seconds))
            results["engine", 1].append(measure(engine_session, None, 1, args.warmup, args.seconds))
        if args.backend == "ray":
            ray_overheads(pool, other_pool)
    finally:
        pool.close()   # also on an error: workers ignore SIGTERM, so exiting with them open would hang

    def median(rounds: list[dict], f) -> float:
        """Over the rounds in which every session has a rate (nan when none has)."""
        valid = [f(r) for r in rounds if not any(math.isnan(x) for x in r["rates"])]
        return statistics.median(valid) if valid else math.nan

    print(f"\nmedians over rounds\n{'arch':8} {'S':>2} {'aggregate it/s':>14} {'x S=1':>6} {'x target':>8} "
          f"{'slowest/fastest':>15} {'snapshot s median, max':>22} {'cores busy: this, workers':>25} {'load':>5} "
          f"{'failed rounds':>13} {'worker restarts':>15}")
    for (arch, s), rounds in results.items():
        one = median(results[arch, 1], lambda r: sum(r["rates"]))
        total = median(rounds, lambda r: sum(r["rates"]))
        waits = [w for r in rounds for w in r["waits"]]
        wait = f"{statistics.median(waits):.3f}, {max(waits):.3f}" if waits else "-"
        busy = f"{median(rounds, lambda r: r['busy'][0]):.2f}, {median(rounds, lambda r: r['busy'][1]):.2f}"
        failed = sum(any(math.isnan(x) for x in r["rates"]) for r in rounds)
        print(f"{arch:8} {s:>2} {total:>14,.0f} {total / one:>6.2f} {total / (0.8 * min(s, cores) * one):>8.2f} "
              f"{median(rounds, lambda r: min(r['rates']) / max(r['rates'])):>15.2f} {wait:>22} {busy:>25} "
              f"{median(rounds, lambda r: r['load']):>5.2f} {failed:>13} {sum(r['restarts'] for r in rounds):>15}")
    one_pool, one_other = (median(results[a, 1], lambda r: sum(r["rates"])) for a in ("pool", other_arch))
    print(f"\none session: {other_arch} / pool = {one_other / one_pool:.2f}" if args.backend == "ray" else
          f"\none session: pool / threads = {one_pool / one_other:.2f}")
    print(f"one session: pool / the engine alone = {one_pool / median(results['engine', 1], lambda r: sum(r['rates'])):.2f}")
    for error in sorted({e for rounds in results.values() for r in rounds for e in r["errors"]}):
        print("session error:", error)

if __name__ == "__main__":
    main()
