"""Training-speed benchmark: rnn_core against the classic loop and (optionally) PyTorch.

Run from the repository root:   .venv/bin/python -m bench.speed [--seconds 5] [--rounds 3]

Contenders (hidden 100, window 25, Adagrad lr 0.1, clip 5):
  (a) classic   bench.classic_rnn.ClassicRNN, per-timestep column vectors, batch 1
  (b) engine    rnn_core Trainer, batch 1              -> ratio (b)/(a) in iterations/s
  (c) engine    rnn_core Trainer, batch 32             -> characters/s
  (d) torch     nn.RNN + nn.Linear + Adagrad, batch 32 -> ratio (c)/(d) in characters/s
All contenders are measured in one process, round-robin (a, b, c, d, a, b, ...), and the
median over rounds is reported, so slow drift of a shared machine hits everyone alike.
PyTorch is optional and imported lazily; it is never a project dependency.
"""

from __future__ import annotations

import argparse
import cProfile
import ctypes
import io
import os
import platform
import pstats
import statistics
import sys
import time
from pathlib import Path

import numpy as np

from bench.classic_rnn import ClassicRNN

HIDDEN = 100
SEQ_LENGTH = 25
LEARNING_RATE = 0.1
CLIP = 5.0
BATCH = 32
REPO_ROOT = Path(__file__).resolve().parents[1]
SHARED_CORPUS = REPO_ROOT.parent / "shared" / "data" / "tinyshakespeare.txt"


# -- corpus ---------------------------------------------------------------------------
def _generated_text(n_chars: int = 200_000, seed: int = 0) -> str:
    """Deterministic pseudo-English (syllable words, punctuation, line breaks)."""
    rng = np.random.default_rng(seed)
    syllables = ["th", "e", "an", "or", "is", "ve", "lo", "ma", "st", "ing", "ou", "re", "wh", "ar"]
    pieces, size = [], 0
    while size < n_chars:
        word = "".join(rng.choice(syllables, size=rng.integers(1, 4)))
        sep = rng.choice([" ", " ", " ", " ", ", ", ".\n", "\n"])
        pieces.append(word + sep)
        size += len(word) + len(sep)
    return "".join(pieces)[:n_chars]


def load_text(path: str | None) -> tuple[str, str]:
    """Returns (text, description of where it came from)."""
    if path:
        return Path(path).read_text(encoding="utf-8"), path
    if SHARED_CORPUS.is_file():
        return SHARED_CORPUS.read_text(encoding="utf-8"), str(SHARED_CORPUS)
    try:
        from rnn_core import corpora
        return corpora.load_builtin("shakespeare"), 'rnn_core.corpora.load_builtin("shakespeare")'
    except Exception as exc:  # the corpus module may not exist yet, or lack its package
        print(f"note: built-in corpus unavailable ({type(exc).__name__}: {exc}); using generated text")
        return _generated_text(), "generated pseudo-English"


def encode(text: str) -> tuple[np.ndarray, int, str]:
    """Character ids via rnn_core.Vocab when importable, else a sorted-charset fallback."""
    try:
        from rnn_core import Vocab
        vocab = Vocab.from_text(text)
        return np.asarray(vocab.encode(text), dtype=np.int64), int(vocab.size), "rnn_core.Vocab"
    except ImportError:
        chars = sorted(set(text))
        index = {c: i for i, c in enumerate(chars)}
        return np.array([index[c] for c in text], dtype=np.int64), len(chars), "sorted charset"


# -- contenders ---------------------------------------------------------------------------
class Contender:
    """Something that trains for a number of iterations; ``chars_per_iteration`` = B * T."""

    tag = "?"          # "(a)", "(b)", ... as in the module docstring
    description = "?"
    chars_per_iteration = SEQ_LENGTH

    @property
    def label(self) -> str:
        return f"{self.tag} {self.description}"

    def prepare(self) -> None:
        """Called right before each timed run (e.g. to set thread counts)."""

    def step(self, n: int) -> None:
        raise NotImplementedError


class NumpyContender(Contender):
    """A NumPy contender; pins NumPy's BLAS to ``blas_threads`` (None: leave as is) before runs."""

    blas_threads: int | None = None

    def prepare(self):
        if self.blas_threads is not None:
            BLAS.set_threads(self.blas_threads)


class ClassicContender(NumpyContender):
    def __init__(self, ids, vocab_size, blas_threads):
        self.blas_threads = blas_threads
        self.tag = "(a)"
        self.description = f"classic per-timestep, B=1, f64{_blas_tag(blas_threads)}"
        self.model = ClassicRNN(ids, vocab_size, HIDDEN, SEQ_LENGTH, LEARNING_RATE, seed=0)

    def step(self, n):
        self.model.step(n)


class EngineContender(NumpyContender):
    def __init__(self, ids, vocab_size, batch_size, dtype, tag, blas_threads):
        from rnn_core import Trainer, VanillaRNN
        self.blas_threads = blas_threads
        self.dtype_name = np.dtype(dtype).name.replace("float", "f")
        self.tag = tag
        self.description = f"rnn_core B={batch_size}, {self.dtype_name}{_blas_tag(blas_threads)}"
        self.chars_per_iteration = batch_size * SEQ_LENGTH
        model = VanillaRNN(vocab_size, HIDDEN, seed=0, dtype=dtype)
        self.trainer = Trainer(model, ids, seq_length=SEQ_LENGTH, learning_rate=LEARNING_RATE,
                               batch_size=batch_size, clip=CLIP, optimizer="adagrad", seed=0)

    def step(self, n):
        self.trainer.step(n)


class TorchContender(Contender):
    """nn.RNN(tanh) + nn.Linear + Adagrad on B parallel streams, state carried and detached.

    Differences from the engine that are inherent to torch: nn.RNN has two hidden biases
    (b_ih + b_hh) and torch's Adagrad divides by (sqrt(sum) + eps) instead of sqrt(sum + eps).
    Neither changes the amount of work.
    """

    def __init__(self, torch, ids, vocab_size, batch_size, dtype, threads):
        self.torch = torch
        self.threads = threads
        self.vocab_size = vocab_size
        self.batch_size = batch_size
        self.chars_per_iteration = batch_size * SEQ_LENGTH
        dtype_name = str(dtype).replace("torch.", "").replace("float", "f")
        self.dtype_name = dtype_name
        self.tag = "(d)"
        self.description = f"torch B={batch_size}, {dtype_name}, {threads} thread(s)"
        torch.manual_seed(0)
        self.dtype = dtype
        self.rnn = torch.nn.RNN(vocab_size, HIDDEN, nonlinearity="tanh", batch_first=True).to(dtype)
        self.head = torch.nn.Linear(HIDDEN, vocab_size).to(dtype)
        self.parameters = list(self.rnn.parameters()) + list(self.head.parameters())
        self.optimizer = torch.optim.Adagrad(self.parameters, lr=LEARNING_RATE,
                                             initial_accumulator_value=0.0, eps=1e-8)
        # B contiguous stripes of the corpus, one per stream: (B, L).
        stripe = len(ids) // batch_size
        self.streams = torch.as_tensor(np.asarray(ids[:stripe * batch_size]).reshape(batch_size, stripe))
        self.pointer = 0
        self.hidden = torch.zeros(1, batch_size, HIDDEN, dtype=dtype)

    def prepare(self):
        self.torch.set_num_threads(self.threads)

    def step(self, n):
        torch, F = self.torch, self.torch.nn.functional
        T, V = SEQ_LENGTH, self.vocab_size
        for _ in range(n):
            if self.pointer + T + 1 > self.streams.shape[1]:
                self.pointer = 0
                self.hidden = torch.zeros_like(self.hidden)
            inputs = self.streams[:, self.pointer:self.pointer + T]
            targets = self.streams[:, self.pointer + 1:self.pointer + T + 1]
            outputs, hidden = self.rnn(F.one_hot(inputs, V).to(self.dtype), self.hidden)
            logits = self.head(outputs)
            # Same scale as the engine: per-window summed nats, averaged over streams.
            loss = F.cross_entropy(logits.reshape(-1, V), targets.reshape(-1),
                                   reduction="sum") / self.batch_size
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_value_(self.parameters, CLIP)
            self.optimizer.step()
            self.hidden = hidden.detach()
            self.pointer += T


# -- timing ---------------------------------------------------------------------------------
def warm_up(contender: Contender, seconds: float) -> int:
    """Runs single iterations for ``seconds``; returns a chunk size worth ~0.1 s."""
    contender.prepare()
    contender.step(2)  # first calls pay for allocation, imports, thread start-up
    count, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        contender.step(1)
        count += 1
    rate = count / (time.perf_counter() - start)
    return max(1, int(rate * 0.1))


def timed_run(contender: Contender, chunk: int, seconds: float) -> tuple[float, float]:
    """(iterations per wall second, iterations per CPU second of this process) over at least
    ``seconds`` of wall time in whole chunks.

    CPU time is what a single-threaded contender would take on an idle machine, so it is the
    fairer number when other processes compete for the cores; for multi-threaded contenders it
    counts every thread's time (work, not latency).
    """
    contender.prepare()
    iterations, start, cpu_start = 0, time.perf_counter(), time.process_time()
    while True:
        contender.step(chunk)
        iterations += chunk
        elapsed = time.perf_counter() - start
        if elapsed >= seconds:
            cpu = max(time.process_time() - cpu_start, 1e-9)
            return iterations / elapsed, iterations / cpu


def profile(contender: Contender, seconds: float, top: int = 14) -> str:
    """cProfile of ``contender`` for about ``seconds``; top entries by own time."""
    profiler = cProfile.Profile()
    contender.prepare()
    start = time.perf_counter()
    profiler.enable()
    while time.perf_counter() - start < seconds:
        contender.step(1)
    profiler.disable()
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).sort_stats("tottime").print_stats(top)
    return out.getvalue()


# -- machine facts ---------------------------------------------------------------------------
class _OpenBlasThreads:
    """Reads/sets the thread count of the OpenBLAS that NumPy loaded (best effort, Linux).

    Multi-threaded BLAS on a busy 2-core machine can stall badly, so the bench measures the
    batched engine at 1 BLAS thread and at the default, as it does for torch.
    """

    def __init__(self):
        self._get = self._set = None
        try:
            with open("/proc/self/maps") as maps:
                libraries = {line.split()[-1] for line in maps if "openblas" in line.lower()}
        except OSError:
            return
        for path in sorted(libraries):
            try:
                library = ctypes.CDLL(path)
            except OSError:
                continue
            for prefix in ("scipy_openblas_", "openblas_"):
                for suffix in ("64_", ""):
                    getter, setter = f"{prefix}get_num_threads{suffix}", f"{prefix}set_num_threads{suffix}"
                    if hasattr(library, getter) and hasattr(library, setter):
                        self._get, self._set = getattr(library, getter), getattr(library, setter)
                        self._set.argtypes = [ctypes.c_int]
                        return

    @property
    def available(self) -> bool:
        return self._get is not None

    def get_threads(self) -> int | None:
        return int(self._get()) if self._get else None

    def set_threads(self, n: int) -> None:
        if self._set:
            self._set(int(n))


BLAS = _OpenBlasThreads()


def _blas_tag(blas_threads: int | None) -> str:
    return "" if blas_threads is None else f", BLAS {blas_threads} thr"


def machine_facts(torch) -> list[str]:
    try:
        blas = np.show_config(mode="dicts")["Build Dependencies"]["blas"]
        blas_name = f"{blas.get('name')} {blas.get('version', '')}".strip()
    except Exception:  # show_config layout differs between NumPy versions
        blas_name = "unknown"
    cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    env = {k: os.environ[k] for k in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
           if k in os.environ}
    facts = [
        f"python {platform.python_version()} on {platform.machine()}, {cpus} usable CPU(s)"
        f" ({platform.processor() or 'cpu model n/a'})",
        f"numpy {np.__version__}, BLAS {blas_name}, BLAS threads {BLAS.get_threads() or 'unknown'}",
        f"thread env vars: {env or 'none set'}",
    ]
    if torch is not None:
        facts.append(f"torch {torch.__version__}, default intra-op threads {torch.get_num_threads()}")
    else:
        facts.append("torch: not importable (contender (d) skipped)")
    return facts


def _import_torch():
    try:
        import torch
        return torch
    except Exception:  # absent or broken install: the bench runs without it
        return None


# -- main -----------------------------------------------------------------------------------
def build_contenders(ids, vocab_size, torch, torch_threads, blas_threads):
    """Ordered dict key -> Contender. blas_threads: NumPy BLAS default (None if not settable)."""
    contenders = {"classic": ClassicContender(ids, vocab_size, blas_threads)}
    notes = []
    try:
        contenders["engine_b1"] = EngineContender(ids, vocab_size, 1, np.float64, "(b)", blas_threads)
    except ImportError as exc:
        notes.append(f"rnn_core Trainer not importable ({exc}); engine contenders skipped")
        return _add_torch(contenders, ids, vocab_size, torch, torch_threads), notes
    blas_variants = sorted({1, blas_threads}) if blas_threads is not None else [None]
    for dtype, tag in ((np.float64, "(c)"), (np.float32, "(c')")):
        for threads in blas_variants:
            try:
                contenders[f"engine_b32_{np.dtype(dtype).name}_blas{threads}"] = EngineContender(
                    ids, vocab_size, BATCH, dtype, tag, threads)
            except (TypeError, ValueError) as exc:
                notes.append(f"rnn_core B={BATCH} {np.dtype(dtype).name} unavailable ({type(exc).__name__}: {exc})")
                break
    return _add_torch(contenders, ids, vocab_size, torch, torch_threads), notes


def _add_torch(contenders, ids, vocab_size, torch, torch_threads):
    if torch is not None:
        for dtype in (torch.float64, torch.float32):
            for threads in sorted({1, torch_threads}):
                key = f"torch_{str(dtype).replace('torch.', '')}_t{threads}"
                contenders[key] = TorchContender(torch, ids, vocab_size, BATCH, dtype, threads)
    return contenders


def print_ratios(contenders, median, all_pairs: bool = True) -> None:
    """(b)/(a), then (c)/(d) per dtype: every engine/torch pair (if all_pairs) and best/best."""
    def chars(key):
        return median[key] * contenders[key].chars_per_iteration

    if "engine_b1" in median:
        print(f"(b)/(a) engine B=1 vs classic, iterations/s: "
              f"{median['engine_b1'] / median['classic']:6.2f}x  (target >= 5)")
    for dtype in ("float64", "float32"):
        engines = [k for k in median if k.startswith(f"engine_b32_{dtype}")]
        torches = [k for k in median if k.startswith(f"torch_{dtype}")]
        if not engines or not torches:
            continue
        for engine_key in engines if all_pairs else []:
            for torch_key in torches:
                print(f"{contenders[engine_key].label:<36} / {contenders[torch_key].description:<26}"
                      f" chars/s: "
                      f"{chars(engine_key) / chars(torch_key):6.2f}x")
        best_engine, best_torch = max(engines, key=chars), max(torches, key=chars)
        print(f"  => {dtype}, best engine / best torch: {chars(best_engine) / chars(best_torch):.2f}x"
              f"  (target >= 1)")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of each timed run")
    parser.add_argument("--rounds", type=int, default=3, help="round-robin rounds (median reported)")
    parser.add_argument("--corpus", help="text file to train on (default: tinyshakespeare if present)")
    parser.add_argument("--profile", action="store_true",
                        help="also print a cProfile of the engine contenders")
    args = parser.parse_args(argv)
    if args.seconds <= 0 or args.rounds < 1:
        parser.error("--seconds must be > 0 and --rounds >= 1")

    torch = _import_torch()
    torch_threads = torch.get_num_threads() if torch is not None else 0
    blas_threads = BLAS.get_threads()
    text, source = load_text(args.corpus)
    ids, vocab_size, vocab_source = encode(text)
    print(f"corpus: {source}: {len(ids):,} chars, vocab {vocab_size} ({vocab_source})")
    needed = BATCH * (SEQ_LENGTH + 1) + 1   # every batch stream must hold one whole window
    if len(ids) < needed:
        parser.error(f"--corpus must hold at least {needed} characters, got {len(ids)}")
    print(f"H={HIDDEN} T={SEQ_LENGTH} adagrad lr={LEARNING_RATE} clip={CLIP}; "
          f"{args.rounds} round(s) x {args.seconds:g} s per contender, round-robin\n")
    for fact in machine_facts(torch):
        print("  " + fact)
    if hasattr(os, "getloadavg"):
        print(f"  load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")

    contenders, notes = build_contenders(ids, vocab_size, torch, torch_threads, blas_threads)
    for note in notes:
        print("note: " + note)
    chunks = {key: warm_up(c, min(1.0, args.seconds / 3)) for key, c in contenders.items()}
    rates = {key: [] for key in contenders}        # wall-clock iterations/s per round
    cpu_rates = {key: [] for key in contenders}    # iterations per CPU-second per round
    for round_index in range(args.rounds):
        for key, contender in contenders.items():
            wall, cpu = timed_run(contender, chunks[key], args.seconds)
            rates[key].append(wall)
            cpu_rates[key].append(cpu)
        print(f"  round {round_index + 1}/{args.rounds} done", file=sys.stderr)
    # Leave the process as it was found (matters when main() is called from Python).
    if torch is not None:
        torch.set_num_threads(torch_threads)
    if blas_threads is not None:
        BLAS.set_threads(blas_threads)

    median = {key: statistics.median(r) for key, r in rates.items()}
    cpu_median = {key: statistics.median(r) for key, r in cpu_rates.items()}
    print(f"\n{'contender':<44} {'iter/s':>9} {'chars/s':>11}  {'wall spread':>15}  "
          f"{'iter/CPU-s':>10}")
    for key, contender in contenders.items():
        cps = median[key] * contender.chars_per_iteration
        print(f"{contender.label:<44} {median[key]:>9.1f} {cps:>11,.0f}  "
              f"{min(rates[key]):>7.1f}..{max(rates[key]):<7.1f} {cpu_median[key]:>10.1f}")
    if hasattr(os, "getloadavg"):
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}"
              " (other processes on the machine widen the spread)")
    print("\nratios from wall-clock medians:")
    print_ratios(contenders, median)
    print("\nratios from CPU-time medians (robust to other load; multi-threaded rows pay for every thread):")
    print_ratios(contenders, cpu_median, all_pairs=False)

    if args.profile:
        for key in ("engine_b1", "engine_b32_float64_blas1"):
            if key in contenders:
                print(f"\n--- cProfile {contenders[key].label} ---")
                print(profile(contenders[key], args.seconds))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
