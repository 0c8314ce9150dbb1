"""Time to quality: how many seconds of training each setting needs to reach the validation loss
that the classic min-char-rnn setting reaches in 60 seconds.

Run from the repository root:   .venv/bin/python -m bench.time_to_quality [--quick]

(a) classic: batch 1, Adagrad, lr 0.1, T 25, hidden 100, trained for --budget seconds (60); its
    validation bits/char at the end is the target.
(b) candidates for the app's "fast" preset (batched Adam / Adagrad / RMSProp, T 25 or 50), each
    trained until it reaches the target (and for at least --goal seconds, so that all are also
    compared at equal time) or until the budget runs out.
Goal: the best candidate reaches the target in <= --goal seconds (12). "Best" = among the settings
the app's sliders can express that reach the target within the goal, the lowest validation loss at
the goal time (the time-to-target differences of the fast ones are within the measurement noise,
and the preset is used for longer runs than that).

Validation: bits/char on a fixed subset (--val-chars, the first 50,000) of the last 10% of the text,
evaluated at checkpoints of the training clock; evaluation time is not on the clock. The clock is the
process's CPU time by default (one BLAS thread, so it equals wall time on an idle machine and is far
less disturbed by other load on a shared one); --clock wall uses wall time. "Seconds to target" is
the first checkpoint (every 0.5 s of training) at which the validation loss is at or below target.
Every setting starts from the same seed. Prints one table and the recommended preset.
"""
from __future__ import annotations

import os

# One core: set before NumPy loads its BLAS (the machine is shared; see DEVELOPERS.md).
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from rnn_core import DivergenceError, Trainer, VanillaRNN, Vocab  # noqa: E402
from rnn_core.corpora import load_builtin, train_val_split  # noqa: E402

HIDDEN = 100
CLIP = 5.0
SEED = 0
VAL_FRACTION = 0.1
SHARED_CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "tinyshakespeare.txt"

# What the app's Train page lets a preset be (app_pages/train.py sliders).
APP_BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128)
APP_LEARNING_RATES = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
APP_SEQ_LENGTHS = range(1, 201)


@dataclass(frozen=True)
class Setting:
    batch_size: int
    optimizer: str
    learning_rate: float
    seq_length: int = 25

    @property
    def label(self) -> str:
        return f"B={self.batch_size:<3d} {self.optimizer:<7s} lr={self.learning_rate:<6g} T={self.seq_length}"

    @property
    def allowed_in_app(self) -> bool:
        return (self.batch_size in APP_BATCH_SIZES and self.learning_rate in APP_LEARNING_RATES
                and self.seq_length in APP_SEQ_LENGTHS)

    def preset(self) -> str:
        """The RunConfig expression for playground.runs.run.PRESETS (defaults left out)."""
        parts = [f"batch_size={self.batch_size}", f'optimizer="{self.optimizer}"',
                 f"learning_rate={self.learning_rate:g}"]
        if self.seq_length != 25:
            parts.append(f"seq_length={self.seq_length}")
        return f"RunConfig({', '.join(parts)})"


CLASSIC = Setting(1, "adagrad", 0.1, 25)
CANDIDATES = (
    Setting(8, "adam", 5e-3),
    Setting(8, "adam", 1e-2),
    Setting(16, "adam", 5e-3),
    Setting(16, "adam", 1e-2),
    Setting(32, "adam", 2e-3),
    Setting(32, "adam", 5e-3),
    Setting(32, "adam", 1e-2),
    Setting(64, "adam", 5e-3),
    Setting(64, "adam", 1e-2),
    Setting(32, "adagrad", 0.1),
    Setting(32, "adagrad", 0.2),
    Setting(32, "rmsprop", 2e-3),
    Setting(32, "adam", 5e-3, 50),
    Setting(16, "adam", 1e-2, 50),
)
QUICK_CANDIDATES = (Setting(32, "adam", 5e-3), Setting(16, "adam", 1e-2))


@dataclass
class Result:
    setting: Setting
    curve: list = field(default_factory=list)   # (training seconds, iteration, val bits/char, checkpoint)
    seconds_to_target: float | None = None
    diverged: str | None = None
    eval_seconds: float = 0.0                    # time spent evaluating (not on the clock)

    @property
    def final(self):
        return self.curve[-1][:3] if self.curve else (0.0, 0, math.nan)

    def val_at(self, seconds: float) -> float | None:
        """Validation bits/char at the last checkpoint no later than ``seconds`` (a checkpoint may be
        overshot by one step)."""
        points = [bits for _, _, bits, mark in self.curve if mark <= seconds + 1e-9]
        return points[-1] if points else None


# ---------------------------------------------------------------------------------------- data
def load_text(path: str | None) -> tuple[str, str]:
    if path:
        return Path(path).read_text(encoding="utf-8"), path
    if SHARED_CORPUS.is_file():
        return SHARED_CORPUS.read_text(encoding="utf-8"), str(SHARED_CORPUS)
    return load_builtin("shakespeare"), 'rnn_core.corpora.load_builtin("shakespeare")'


def split(text: str, val_chars: int):
    """-> (vocab, train ids, validation subset ids): the app's split (last 10% validates)."""
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    k = train_val_split(len(ids), VAL_FRACTION)
    return vocab, ids[:k], ids[k:][:val_chars]


# ---------------------------------------------------------------------------------------- training
def checkpoints(budget: float, every: float) -> list[float]:
    n = int(round(budget / every))
    return [round((i + 1) * every, 6) for i in range(n)] + ([budget] if n * every < budget - 1e-9 else [])


def train(setting: Setting, vocab_size: int, train_ids, val_ids, budget: float, every: float,
          target: float | None, clock, min_seconds: float = 0.0, extra_marks=()) -> Result:
    """Train from scratch on the training clock; evaluate at each checkpoint (off the clock); stop
    at the first one at or below ``target`` once ``min_seconds`` are trained, or when the budget
    is used up. ``seconds_to_target`` is the first checkpoint at or below the target."""
    model = VanillaRNN(vocab_size, HIDDEN, seed=SEED)
    trainer = Trainer(model, train_ids, seq_length=setting.seq_length, learning_rate=setting.learning_rate,
                      batch_size=setting.batch_size, clip=CLIP, optimizer=setting.optimizer, seed=SEED)
    result = Result(setting)
    trained, per_step = 0.0, None
    for mark in sorted(set(checkpoints(budget, every)) | {m for m in extra_marks if 0 < m <= budget}):
        while trained < mark:
            # Chunks of ~20 ms, cut short so the checkpoint is overshot by at most one step.
            left = mark - trained
            n = 1 if per_step is None else max(1, int(min(0.02, left) / per_step))
            start = clock()
            try:
                trainer.step(n)
            except DivergenceError as exc:
                result.diverged = f"diverged at iteration {exc.iteration + 1}"
                return result
            spent = clock() - start
            trained += spent
            per_step = max(spent / n, 1e-7)
        start = time.perf_counter()
        bits = model.evaluate(val_ids) / math.log(2)
        result.eval_seconds += time.perf_counter() - start
        result.curve.append((trained, trainer.iteration, bits, mark))
        if not math.isfinite(bits):
            result.diverged = "validation loss not finite"
            return result
        if target is not None and bits <= target and result.seconds_to_target is None:
            result.seconds_to_target = trained
        if result.seconds_to_target is not None and trained >= min_seconds - 1e-9:
            return result
    return result


# ---------------------------------------------------------------------------------------- report
def _fmt(value, spec, missing="-"):
    return missing if value is None else format(value, spec)


def table(classic: Result, results: list[Result], target: float, goal: float, budget: float) -> str:
    head = (f"{'setting':<34s} {'s to target':>11s} {f'val b/c @{goal:g}s':>13s} {'s trained':>9s} "
            f"{'val b/c @end':>12s} {'iterations':>10s} {'chars/s':>9s} {'speed-up':>8s}  app")
    rows = [head, "-" * len(head)]
    for r in [classic, *results]:
        t, iters, bits = r.final
        chars_per_s = iters * r.setting.batch_size * r.setting.seq_length / t if t > 0 else 0.0
        if r is classic:
            reached = f"{budget:g} (ref)"
        elif r.diverged:
            reached = "diverged"
        else:
            reached = _fmt(r.seconds_to_target, ".1f", f"> {budget:g}")
        speedup = "" if r.seconds_to_target is None or r is classic else f"{budget / r.seconds_to_target:.1f}x"
        rows.append(f"{r.setting.label:<34s} {reached:>11s} {_fmt(r.val_at(goal), '13.3f'):>13s} {t:>9.1f} "
                    f"{bits:>12.3f} {iters:>10,d} {chars_per_s:>9,.0f} {speedup:>8s}  "
                    f"{'yes' if r.setting.allowed_in_app else 'no'}")
    return "\n".join(rows)


def best_of(results: list[Result], goal: float) -> Result | None:
    """Among the settings the app can express: of those reaching the target within ``goal``
    seconds, the lowest validation loss at ``goal``; else the fastest to target; else the lowest
    final loss."""
    usable = [r for r in results if r.setting.allowed_in_app and not r.diverged and r.curve]
    in_goal = [r for r in usable if r.seconds_to_target is not None and r.seconds_to_target <= goal + 1e-9]
    if in_goal:
        return min(in_goal, key=lambda r: (r.val_at(goal), r.seconds_to_target))
    reached = [r for r in usable if r.seconds_to_target is not None]
    if reached:
        return min(reached, key=lambda r: r.seconds_to_target)
    return min(usable, key=lambda r: r.final[2], default=None)


def parse_setting(spec: str) -> Setting:
    """"32:adam:0.005[:25]" -> Setting."""
    parts = spec.split(":")
    if len(parts) not in (3, 4):
        raise argparse.ArgumentTypeError(f"a setting is BATCH:OPTIMIZER:LR[:SEQ_LENGTH], got {spec!r}")
    try:
        return Setting(int(parts[0]), parts[1], float(parts[2]), int(parts[3]) if len(parts) == 4 else 25)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"bad setting {spec!r}: {exc}") from exc


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="smoke run: 6 s budget, 2 candidates, 10k val chars")
    parser.add_argument("--budget", type=float, default=60.0, help="training seconds of the classic run (60)")
    parser.add_argument("--goal", type=float, default=12.0, help="seconds the best preset should need (12)")
    parser.add_argument("--val-chars", type=int, default=50_000, help="validation subset size (50,000)")
    parser.add_argument("--every", type=float, default=0.5, help="training seconds between evaluations (0.5)")
    parser.add_argument("--clock", choices=("cpu", "wall"), default="cpu", help="training clock (cpu)")
    parser.add_argument("--corpus", help="text file instead of tinyshakespeare / the built-in corpus")
    parser.add_argument("--candidates", nargs="+", type=parse_setting, metavar="B:OPT:LR[:T]",
                        help="settings to try instead of the built-in list")
    args = parser.parse_args(argv)
    if args.quick:
        args.budget, args.goal, args.val_chars = min(args.budget, 6.0), min(args.goal, 2.0), min(args.val_chars, 10_000)
    candidates = args.candidates or (QUICK_CANDIDATES if args.quick else CANDIDATES)
    clock = time.process_time if args.clock == "cpu" else time.perf_counter

    text, source = load_text(args.corpus)
    vocab, train_ids, val_ids = split(text, args.val_chars)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"corpus {source}: {len(text):,} chars, vocabulary {vocab.size}; train {len(train_ids):,}, "
          f"validation subset {len(val_ids):,}")
    print(f"python {platform.python_version()}, numpy {np.__version__}, OPENBLAS_NUM_THREADS="
          f"{os.environ.get('OPENBLAS_NUM_THREADS')}, clock {args.clock}, load average {load:.1f}, hidden {HIDDEN}")

    wall0 = time.perf_counter()
    classic = train(CLASSIC, vocab.size, train_ids, val_ids, args.budget, max(args.every, args.budget / 12),
                    None, clock, extra_marks=(args.goal,))
    if classic.diverged:
        raise SystemExit(f"the classic run {classic.diverged}; no target")
    target = classic.final[2]
    print(f"\n(a) classic {CLASSIC.label}: val bits/char by training second")
    digits = 0 if args.budget >= 20 else 1
    print("    " + "  ".join(f"{t:.{digits}f}s:{b:.3f}" for t, _, b, _ in classic.curve))
    print(f"    target = {target:.3f} bits/char after {classic.final[1]:,} iterations\n")

    results = []
    for setting in candidates:
        r = train(setting, vocab.size, train_ids, val_ids, args.budget, args.every, target, clock,
                  min_seconds=args.goal)
        results.append(r)
        status = r.diverged or (f"target at {r.seconds_to_target:.1f} s" if r.seconds_to_target is not None
                                else f"not reached, {r.final[2]:.3f} at {r.final[0]:.0f} s")
        print(f"    {setting.label:<34s} {status}", flush=True)

    print(f"\nTime to the classic {args.budget:g}-s validation loss ({target:.3f} bits/char), "
          f"{args.clock} seconds of training (evaluation excluded):\n")
    print(table(classic, results, target, args.goal, args.budget))
    best = best_of(results, args.goal)
    evals = sum(len(r.curve) for r in [classic, *results])
    print(f"evaluation (off the clock): {evals} x {len(val_ids):,} chars, "
          f"{sum(r.eval_seconds for r in [classic, *results]):.0f} s wall")
    print(f"\nwall time of this benchmark {time.perf_counter() - wall0:.0f} s; load average now "
          f"{os.getloadavg()[0] if hasattr(os, 'getloadavg') else float('nan'):.1f}")
    if best is None:
        print("no usable candidate")
        return
    verdict = ("meets" if best.seconds_to_target is not None and best.seconds_to_target <= args.goal
               else "misses")
    when = "never" if best.seconds_to_target is None else f"{best.seconds_to_target:.1f} s"
    at_goal = best.val_at(args.goal)
    print(f"best: {best.setting.label} -> target in {when} ({verdict} the {args.goal:g}-s goal), "
          f"{_fmt(at_goal, '.3f')} bits/char at {args.goal:g} s vs classic {_fmt(classic.val_at(args.goal), '.3f')}")
    print(f'PRESETS["fast"] = {best.setting.preset()}')


if __name__ == "__main__":
    main()
