"""What the run's timeline (playground.runs.timeline, issue 15) costs: training time and memory.

Run from the repository root:   .venv/bin/python -m bench.timeline [--seconds 5] [--rounds 5]

* Training: fresh classic runs (Shakespeare, hidden 100, T 25, batch 1, Adagrad) tick for
  ``--seconds`` each from iteration 0, so every round covers the schedule's densest stretch (0,
  100, 200, 500, 1k, 2k, 5k, 10k). Rounds alternate a run with its timeline and the same run with
  snapshot-taking switched off (the baseline, measured in this same process), and the medians of
  iterations/s are compared. The time spent inside timeline.take is also summed per round and
  printed as a share of that round's training time: the direct cost, which a shared machine's noise
  in iterations/s would hide.
* The share over longer runs, from the measured time per snapshot and per step: snapshots taken by
  iteration N (the schedule) times the time of one, over N steps.
* Memory: a full timeline's bytes for the classic and the Fast settings (capacity snapshots); a saved
  run's size and save time with and without it; the pickled run the trainer process sends to a page
  (every few seconds while training) with and without it; restoring one snapshot; the page's
  timeline sample and hidden states of one snapshot.
"""
from __future__ import annotations

import argparse
import dataclasses
import io
import pickle
import platform
import statistics
import time

import numpy as np

from playground.runs import timeline as tl
from playground.runs.run import PRESETS, Run
from playground.views import timeline_view as tv

BUDGET_MB = tl.BUDGET_BYTES / 1e6


class TimedTake:
    """timeline.take wrapped to sum the seconds spent in it (the Run calls it through the module)."""

    def __init__(self):
        self.seconds, self.calls, self._take = 0.0, 0, tl.take

    def __call__(self, trainer):
        t0 = time.perf_counter()
        snap = self._take(trainer)
        self.seconds += time.perf_counter() - t0
        self.calls += 1
        return snap


def without_timeline(run: Run) -> Run:
    """``run`` that never takes a snapshot and never ends a chunk for one: the baseline."""
    run.timeline.due = lambda iteration: False
    run.timeline.steps_to_next = lambda iteration: 10**12
    return run


def train(run: Run, seconds: float) -> tuple[float, float]:
    """Tick ``run`` for ``seconds`` of wall time; (iterations/s, seconds trained)."""
    run.step(1)                         # one timed step, as a started run has, so ticks use chunks
    t0, i0 = time.perf_counter(), run.iteration
    while time.perf_counter() - t0 < seconds:
        run.tick(0.1)
    elapsed = time.perf_counter() - t0
    return (run.iteration - i0) / elapsed, elapsed


def median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


LONG_RUN = 2_000_000


def full_timeline(run: Run) -> tl.Timeline:
    """``run``'s timeline filled to capacity as by a run to LONG_RUN iterations: copies of its newest
    snapshot (each with a state array of its own, as real ones have) at the scheduled moments."""
    snap = run.timeline.snapshots[-1]
    timeline = tl.Timeline.for_trainer(run.trainer)
    for i in (i for i in range(0, LONG_RUN + 1, 100) if tl.on_schedule(i)):
        state = snap.state.copy()
        state.flags.writeable = False
        timeline.add(dataclasses.replace(snap, iteration=i, state=state))
    return timeline


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="training seconds per round (default 5)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each variant (default 5)")
    args = parser.parse_args()
    print(f"python {platform.python_version()}, numpy {np.__version__}, {platform.machine()}")
    print(f"load average before: {' '.join(f'{x:.2f}' for x in __import__('os').getloadavg())}")

    # ------------------------------------------------------------ training time
    timed = TimedTake()
    tl.take = timed
    rates = {"with timeline": [], "baseline (no snapshots)": []}
    shares = []
    for r in range(args.rounds):
        for name in (rates if r % 2 == 0 else list(rates)[::-1]):
            run = Run.from_builtin(PRESETS["classic"])
            if name.startswith("baseline"):
                without_timeline(run)
            before_s, before_n = timed.seconds, timed.calls
            rate, elapsed = train(run, args.seconds)
            rates[name].append(rate)
            if not name.startswith("baseline"):
                shares.append(((timed.seconds - before_s) / elapsed, timed.calls - before_n, run.iteration))
    tl.take = timed._take
    with_rate = statistics.median(rates["with timeline"])
    base_rate = statistics.median(rates["baseline (no snapshots)"])
    print(f"\nTraining (classic, {args.rounds} rounds of {args.seconds:g} s from iteration 0, median it/s)")
    for name, values in rates.items():
        print(f"  {name:26s} {statistics.median(values):8,.0f} it/s   rounds: "
              + ", ".join(f"{v:,.0f}" for v in values))
    print(f"  ratio with / baseline      {with_rate / base_rate:8.3f}")
    share, calls, reached = max(shares)
    print(f"  time inside take(), worst round: {share:.4%} of training ({calls} snapshots to iteration {reached:,})")

    # ------------------------------------------------------------ per snapshot, projected
    run = Run.from_builtin(PRESETS["classic"])
    run.step(300)
    one_take = median_time(lambda: tl.take(run.trainer), 200)
    step = median_time(lambda: run.trainer.step(1), 300)
    print(f"\nOne snapshot: {one_take * 1e3:.3f} ms = {one_take / step:.3f} training steps "
          f"(one step {step * 1e3:.3f} ms)")
    for n in (200, 1_000, 10_000, 100_000, 1_000_000):
        taken = sum(1 for i in range(0, n + 1, 100) if tl.on_schedule(i))
        print(f"  to iteration {n:>9,}: {taken:3d} snapshots taken, {taken * one_take / (n * step):.4%} of training")

    # ------------------------------------------------------------ memory and saving
    print(f"\nMemory (budget {BUDGET_MB:g} MB per run, at most {tl.MAX_SNAPSHOTS} snapshots)")
    for preset in ("classic", "fast"):
        r = Run.from_builtin(PRESETS[preset])
        r.step(20)
        full = full_timeline(r)
        c = r.config
        print(f"  {preset:8s} H{c.hidden_size} V{r.vocab.size} B{c.batch_size} {c.optimizer:8s}: "
              f"{full.snapshots[0].nbytes / 1e3:6.0f} kB each, {full.capacity:2d} kept, {full.nbytes / 1e6:.2f} MB")

    r = Run.from_builtin(PRESETS["classic"])
    r.step(20)
    empty = r.copy()
    empty.timeline = tl.Timeline.for_trainer(r.trainer)
    r.timeline = full_timeline(r)
    r.trainer.iteration = empty.trainer.iteration = LONG_RUN    # where such a timeline would be
    print("\nA classic run at a full timeline against the same run without one (median of 7):")
    for label, fn in (("save (to_bytes)", lambda x: x.to_bytes()),
                      ("pickle for a page", lambda x: pickle.dumps(x, protocol=pickle.HIGHEST_PROTOCOL))):
        sizes = [len(fn(x)) for x in (r, empty)]
        times = [median_time(lambda x=x: fn(x), 7) for x in (r, empty)]
        print(f"  {label:18s} {sizes[0] / 1e6:6.2f} MB in {times[0] * 1e3:6.1f} ms   without: "
              f"{sizes[1] / 1e6:6.2f} MB in {times[1] * 1e3:6.1f} ms")
    data = r.to_bytes()
    load = [median_time(lambda d=d: Run.from_bytes(d), 7) for d in (data, empty.to_bytes())]
    print(f"  {'load (from_bytes)':18s} {load[0] * 1e3:6.1f} ms   without: {load[1] * 1e3:6.1f} ms")
    snap = run.timeline.snapshots[-1]
    print(f"\nRestoring one snapshot: {median_time(lambda: tl.restore(run.trainer, snap), 50) * 1e3:.2f} ms; "
          f"the page's sample of one: {median_time(lambda: tv.sample_text(run, snap), 20) * 1e3:.1f} ms; "
          f"its passage heatmap: {median_time(lambda: tv.passage_heatmap(run, snap), 20) * 1e3:.1f} ms")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in __import__('os').getloadavg())}")


if __name__ == "__main__":
    main()
