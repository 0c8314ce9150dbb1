"""Memory per idle session: the server process plus its trainer processes, on the Shakespeare corpus.

Run from the repository root:

    .venv/bin/python -m bench.memory_per_session [--sessions 1,2,4,8,16]

No browser. A session is made the way the app makes one: a Run.from_builtin(classic) in this process
(the session's own copy, session_state.run), placed in a TrainerPool (default workers: one per core)
through pool.handle(run). Three kinds of idle session, each measured in a fresh process:
  fresh     opened, never trained (the session's run is the handle's latest snapshot);
  trained   then trained for --train seconds and paused: the session keeps the snapshot pause()
            returns (the run it made is dropped, as the app replaces session_state.run), the worker
            keeps the run, its guard copy and its scratch buffers;
  released  trained, paused, then handle.release(), as the app does for an idle tab after a grace
            period: only the session's snapshot is left.
Memory: the sum of Pss (proportional set size, from /proc/<pid>/smaps_rollup: shared pages split
between the processes sharing them) of this process and every worker (pool.pids()), after N sessions
for each N; MB per additional session = slope between the smallest and the largest N.
Then a breakdown of one session's arrays (NumPy nbytes, each buffer counted once), on each side.
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
from playground.run import PRESETS, Run
from playground.trainers import TrainerPool, _Worker, pack, unpack

MB = 1024 * 1024
KINDS = ("fresh", "trained", "released")


def pss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/smaps_rollup") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("Pss:")) / 1024


def total_pss(pool: TrainerPool) -> float:
    gc.collect()
    time.sleep(0.3)   # let the workers finish what the last command left them
    return pss_mb(os.getpid()) + sum(pss_mb(pid) for pid in pool.pids() if pid is not None)


def one_kind(kind: str, counts: list[int], train_seconds: float) -> None:
    """Measure one kind of session in this process; print 'N MB' lines."""
    pool = TrainerPool()
    sessions = []      # what the app keeps per session: (session_state.run, session_state.trainer)
    try:
        for index in range(pool.size):
            pool.client(index).call("ping")
        for n in range(1, max(counts) + 1):
            run = Run.from_builtin(PRESETS["classic"])
            handle = pool.handle(run)
            if kind != "fresh":
                handle.start()
                time.sleep(train_seconds)
                run = handle.pause()
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


def breakdown(run: Run) -> dict[str, int]:
    """nbytes per part of a run; the guard's copy only where it does not share with the trainer."""
    out: dict[str, int] = defaultdict(int)
    seen: set = set()
    tr = run.trainer
    parts = [("text ids: trainer.data (uint8)", tr.data), ("validation ids: trainer.val_ids", tr.val_ids),
             ("weights: trainer.model", tr.model), ("optimizer state", tr.optimizer),
             ("history + val_history", (tr.history, tr.val_history)),
             ("scratch: Workspace, gradients", (tr._work, tr._grad_flat, tr._grads, tr._grad_sq)),
             ("rest of the trainer (hprev, stats, views)", tr), ("vocab table", run.vocab),
             ("guard copy run._good (beyond shared)", run._good)]
    for name, obj in parts:
        arrays(obj, name, seen, out)
    out["samples (str, not arrays)"] = sum(len(text) for _, text in run.samples)
    return out


def print_breakdown(train_seconds: float) -> None:
    run = _Worker._placed(unpack(pack(Run.from_builtin(PRESETS["classic"]))))   # as a worker receives it
    run.tick(train_seconds)                           # what a worker holds after training
    worker_side = breakdown(run)
    server_side = breakdown(unpack(pack(run)))        # the snapshot the session keeps
    print(f"\none session's arrays after {train_seconds:g} s of training (iteration {run.iteration:,}), kB:")
    print(f"  {'part':45} {'server snapshot':>15} {'worker':>8}")
    for name in worker_side:
        print(f"  {name:45} {server_side.get(name, 0) / 1024:>15,.0f} {worker_side[name] / 1024:>8,.0f}")
    print(f"  {'total':45} {sum(server_side.values()) / 1024:>15,.0f} {sum(worker_side.values()) / 1024:>8,.0f}")
    print(f"  a snapshot in transit (pack): {len(pack(run)) / 1024:,.0f} kB; the history at its bound "
          f"({run.trainer.history.capacity:,} rows x {len(run.trainer.history.columns)} columns): "
          f"{run.trainer.history.capacity * len(run.trainer.history.columns) * 8 / 1024:,.0f} kB per copy")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sessions", default="1,2,4,8,16", help="comma-separated N values")
    ap.add_argument("--train", type=float, default=1.0, help="seconds each trained session trains")
    ap.add_argument("--only", choices=KINDS, help=argparse.SUPPRESS)   # one kind, in a child process
    args = ap.parse_args()
    counts = sorted({int(s) for s in args.sessions.split(",")})
    if args.only:
        one_kind(args.only, counts, args.train)
        return

    print(f"cores {len(os.sched_getaffinity(0))}; total Pss (MB) of this process + workers after N idle sessions")
    table = {}
    for kind in KINDS:
        out = subprocess.run([sys.executable, "-m", "bench.memory_per_session", "--only", kind,
                              "--sessions", args.sessions, "--train", str(args.train)],
                             check=True, capture_output=True, text=True).stdout
        table[kind] = dict(line.split() for line in out.splitlines())
    print(f"{'kind':9} " + " ".join(f"{'N=' + str(n):>7}" for n in counts) + f" {'MB per session':>15}")
    for kind, by_n in table.items():
        lo, hi = counts[0], counts[-1]
        slope = (float(by_n[str(hi)]) - float(by_n[str(lo)])) / (hi - lo)
        print(f"{kind:9} " + " ".join(f"{float(by_n[str(n)]):>7.1f}" for n in counts) + f" {slope:>15.2f}")
    print_breakdown(args.train)


if __name__ == "__main__":
    main()
