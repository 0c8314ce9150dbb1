"""Memory per idle session: the server process plus its trainer processes, on the Shakespeare corpus.

Run from the repository root:

    .venv/bin/python -m bench.memory_per_session [--sessions 1,2,4,8,16] [--iterations 2000]

No browser. A session is made the way the app makes one: a Run.from_builtin(classic) in this process
(the session's own copy, session_state.app.run), placed in a TrainerPool (default workers: one per core)
through pool.handle(run). Three kinds of idle session, each measured in a fresh process:
  fresh     opened, never trained (the session's run is the handle's latest snapshot);
  trained   then trained to iteration --iterations, where it pauses by itself (stop_at, as "Pause at
            iteration" does): the session keeps the snapshot it then takes (the run it made is
            dropped, as the app replaces session_state.app.run), the worker keeps the run, its guard
            copy and its scratch buffers;
  released  trained, paused, then handle.release(), as the app does at once when a run pauses
            (playground.session.state._park): only the session's snapshot is left. This is every
            paused session of the app; "trained" is what a training session holds.
Memory: the sum of Pss (proportional set size, from /proc/<pid>/smaps_rollup: shared pages split
between the processes sharing them) of this process and every worker (pool.pids()), after N sessions
for each N; MB per additional session = slope between the smallest and the largest N (and from
the second N: by then every worker has paid for its first run).
Then a breakdown of an additional session's arrays (NumPy nbytes, each buffer counted once, none
shared with another session), on each side.
Target (issue 11): <= 10 MB per additional idle session.
"""
from __future__ import annotations

import argparse
import gc
import os
import subprocess
import sys
import time
from collections import defaultdict, deque

import numpy as np

import playground  # noqa: F401  (one BLAS thread per call, as in the server)
from playground.runs.run import PRESETS, Run
from playground.runs.trainers import TrainerPool, _Worker, pack, unpack

MB = 1024 * 1024
KINDS = ("fresh", "trained", "released")


def pss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Pss:")) / 1024


def total_pss(pool: TrainerPool) -> float:
    gc.collect()
    time.sleep(0.3)   # let the workers finish what the last command left them
    return pss_mb(os.getpid()) + sum(pss_mb(pid) for pid in pool.pids() if pid is not None)


def one_kind(kind: str, counts: list[int], iterations: int) -> None:
    """Measure one kind of session in this process; print 'N MB' lines."""
    pool = TrainerPool()
    sessions = []      # what the app keeps per session: (session_state.app.run, session_state.app.trainer)
    try:
        for index in range(pool.size):
            pool.client(index).call("ping")
        for n in range(1, max(counts) + 1):
            run = Run.from_builtin(PRESETS["classic"])
            handle = pool.handle(run)
            if kind != "fresh":
                handle.start(stop_at=iterations)
                while handle.progress().running:
                    time.sleep(0.1)
                run = handle.snapshot()
                if kind == "released":
                    run = handle.release()
            sessions.append((run, handle))
            if n in counts:
                print(n, f"{total_pss(pool):.1f}", flush=True)
    finally:
        pool.close()   # also on an error: workers ignore SIGTERM, so exiting with them open would hang


# ---------------------------------------------------------------- where one session's bytes are
def arrays(obj, path: str, seen: set, out: dict, depth: int = 0) -> None:
    """Add the nbytes of every NumPy buffer reachable from ``obj`` to out[path] (a buffer once)."""
    if isinstance(obj, np.ndarray):
        base = obj
        while isinstance(base.base, np.ndarray):
            base = base.base
        start = base.__array_interface__["data"][0]   # a strided view of the data starts where it does
        if base.nbytes and start not in seen:
            seen.add(start)
            out[path] += base.nbytes
        return
    if depth > 6 or isinstance(obj, (str, bytes, int, float, type)) or obj is None:
        return
    if isinstance(obj, dict):
        items = obj.items()
    elif isinstance(obj, (list, tuple, deque)):
        items = enumerate(obj)
    elif hasattr(obj, "__dict__"):
        items = vars(obj).items()
    else:
        return
    for key, value in items:
        arrays(value, path, seen, out, depth + 1)


def breakdown(run: Run, other: Run) -> dict[str, int]:
    """nbytes per part of ``run`` that it does not share with ``other`` (another session's run in
    the same process), nor its guard copy with its trainer."""
    out: dict[str, int] = defaultdict(int)
    seen: set = set()
    arrays(other, "other", seen, defaultdict(int))
    tr = run.trainer
    parts = [("text ids: trainer.data (uint8)", tr.data), ("validation ids: trainer.val_ids", tr.val_ids),
             ("weights: trainer.model", tr.model), ("optimizer state", tr.optimizer),
             ("history + val_history", (tr.history, tr.val_history)),
             ("scratch: Workspace, gradients", (tr._work, tr._grad_flat, tr._grads, tr._grad_sq)),
             ("rest of the trainer (hprev, stats, views)", tr), ("vocab table", run.vocab),
             ("guard copy run._good (beyond shared)", run._good)]
    for name, obj in parts:
        out[name] += 0
        arrays(obj, name, seen, out)
    out["samples (str, not arrays)"] = sum(len(text) for _, text in run.samples)
    return out


def print_breakdown(iterations: int) -> None:
    def worker_run() -> Run:
        run = _Worker._placed(unpack(pack(Run.from_builtin(PRESETS["classic"]))))   # as a worker receives it
        while run.iteration < iterations:             # what a worker holds after training, in its slices
            run.tick(0.05, stop_at=iterations)
        return run

    first, second = worker_run(), worker_run()
    worker_side = breakdown(second, first)
    server_side = breakdown(unpack(pack(second)), unpack(pack(first)))    # the snapshots sessions keep
    print(f"\nan additional session's arrays at iteration {second.iteration:,}, "
          f"buffers shared with another session not counted, kB:")
    print(f"  {'part':45} {'server snapshot':>15} {'worker':>8}")
    for name in worker_side:
        print(f"  {name:45} {server_side.get(name, 0) / 1024:>15,.0f} {worker_side[name] / 1024:>8,.0f}")
    print(f"  {'total':45} {sum(server_side.values()) / 1024:>15,.0f} {sum(worker_side.values()) / 1024:>8,.0f}")
    history = second.trainer.history
    print(f"  a snapshot in transit (pack): {len(pack(second)) / 1024:,.0f} kB; the history at its bound "
          f"({history.capacity:,} rows x {len(history.columns)} columns): "
          f"{history.capacity * len(history.columns) * 8 / 1024:,.0f} kB per copy")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", default="1,2,4,8,16", help="comma-separated N values")
    ap.add_argument("--iterations", type=int, default=2000, help="iterations each trained session trains")
    ap.add_argument("--only", choices=KINDS, help=argparse.SUPPRESS)   # one kind, in a child process
    args = ap.parse_args()
    counts = sorted({int(s) for s in args.sessions.split(",")})
    if args.only:
        one_kind(args.only, counts, args.iterations)
        return

    print(f"cores {len(os.sched_getaffinity(0))}; total Pss (MB) of this process + workers after N idle sessions")
    table = {}
    for kind in KINDS:
        out = subprocess.run([sys.executable, "-m", "bench.memory_per_session", "--only", kind,
                              "--sessions", args.sessions, "--iterations", str(args.iterations)],
                             check=True, capture_output=True, text=True).stdout
        table[kind] = dict(line.split() for line in out.splitlines())
    lo, hi = counts[0], counts[-1]
    second = counts[1] if len(counts) > 2 else lo   # from N=2: both workers hold a run already
    print(f"{'kind':9} " + " ".join(f"{'N=' + str(n):>7}" for n in counts)
          + f" {f'MB/session {lo}-{hi}':>16} {f'{second}-{hi}':>6}")
    for kind, by_n in table.items():
        pss = {int(n): float(v) for n, v in by_n.items()}
        print(f"{kind:9} " + " ".join(f"{pss[n]:>7.1f}" for n in counts)
              + f" {(pss[hi] - pss[lo]) / (hi - lo):>16.2f} {(pss[hi] - pss[second]) / (hi - second):>6.2f}")
    print_breakdown(args.iterations)


if __name__ == "__main__":
    main()
