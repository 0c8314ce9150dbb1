"""Command line for rnn_core: train a character RNN headless, sample from a checkpoint.

    python -m rnn_core train CORPUS [options]      CORPUS: a UTF-8 text file or hello/shakespeare/python
    python -m rnn_core train --resume run.npz      continue a checkpoint (the CLI's or the dashboard's)
    python -m rnn_core sample run.npz [options]    print a sample from a checkpoint

Checkpoints are ordinary rnn_core checkpoints whose metadata carries the dashboard's fields
(``{"app": {"config", "corpus_label", "samples"}}``, written and read by rnn_core.run_metadata, as the
dashboard does), so a run trained here opens in the dashboard
and goes on. Exit codes: 0 done, 1 training diverged or the checkpoint could not be written,
2 bad arguments or input files, 130 interrupted (Ctrl-C; the checkpoint is saved first).
Standard library and NumPy only.
"""
from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import sys
import tempfile
import threading
import time
from collections import deque
from pathlib import Path

from .checkpoint import load_checkpoint, save_checkpoint
from .corpora import BUILTIN_CORPORA, load_builtin, text_from_bytes, train_val_split, validate_corpus
from .limits import (MAX_BATCH_SIZE, MAX_CLIP, MAX_HIDDEN_SIZE, MAX_LEARNING_RATE, MAX_SAMPLE_LENGTH,
                     MAX_SEQ_LENGTH, MAX_UPLOAD_MB, MIN_LEARNING_RATE, check_float, check_int)
from .model import VanillaRNN
from .optim import OPTIMIZERS
from .run_metadata import MAX_SAMPLES_KEPT, read_run_metadata, write_run_metadata
from .trainer import DivergenceError, Trainer, bits_per_char
from .vocab import Vocab

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130

# Defaults of the options that --resume may not change; None in the parser means "not given".
TRAIN_DEFAULTS = {"hidden": 100, "seq_length": 25, "lr": 0.1, "batch_size": 1, "optimizer": "adagrad",
                  "clip": 5.0, "seed": 0, "val_fraction": 0.1, "sample_every": 1000}
SAMPLES_KEPT = MAX_SAMPLES_KEPT   # as many as the dashboard lists
CHUNK_SECONDS = 0.1           # training runs in chunks this long; Ctrl-C is honoured between chunks
TTY_REFRESH_SECONDS = 0.5
LOG_LINE_SECONDS = 5.0        # progress line interval when stderr is a file or a pipe


class UsageError(ValueError):
    """A bad argument or input file: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse with one-line errors ("error: ...") instead of usage + message."""

    def error(self, message):
        self.exit(EXIT_USAGE, f"error: {message} (see {self.prog} --help)\n")


# ---------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="python -m rnn_core",
        description="Train the vanilla character-level RNN of min-char-rnn without the dashboard, "
                    "and sample from its checkpoints.",
        epilog="Examples:\n"
               "  python -m rnn_core train shakespeare --batch-size 32 --optimizer adam --lr 0.005 --iters 5000\n"
               "  python -m rnn_core train notes.txt --out notes.npz          (Ctrl-C saves and stops)\n"
               "  python -m rnn_core train --resume notes.npz --out notes.npz --iters 1000\n"
               "  python -m rnn_core sample notes.npz --length 500 --temperature 0.8 --prime 'The '\n"
               "Checkpoints open in the dashboard and go on training there.",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True, parser_class=_Parser)

    train = commands.add_parser(
        "train", help="train a model on a text file or built-in corpus and save a checkpoint",
        description="Train on CORPUS, printing progress on stderr and samples on stdout. The checkpoint "
                    "is written at the end, every --save-every seconds and on Ctrl-C (exit code 130).")
    train.add_argument("corpus", nargs="?", metavar="CORPUS",
                       help="a UTF-8 text file, or a built-in corpus: " + ", ".join(BUILTIN_CORPORA)
                            + " (a file of that name wins). Leave out with --resume.")
    model = train.add_argument_group("model and training (fixed for a run unless marked live)")
    model.add_argument("--hidden", type=int, metavar="H",
                       help=f"hidden units, 1..{MAX_HIDDEN_SIZE} (default {TRAIN_DEFAULTS['hidden']})")
    model.add_argument("--seq-length", type=int, metavar="T",
                       help=f"characters per training window (truncated backprop length), 1..{MAX_SEQ_LENGTH} "
                            f"(default {TRAIN_DEFAULTS['seq_length']})")
    model.add_argument("--batch-size", type=int, metavar="B",
                       help=f"parallel streams read per step, 1..{MAX_BATCH_SIZE} (default {TRAIN_DEFAULTS['batch_size']})")
    model.add_argument("--lr", type=float, metavar="RATE",
                       help=f"learning rate, {MIN_LEARNING_RATE:g}..{MAX_LEARNING_RATE:g} (default "
                            f"{TRAIN_DEFAULTS['lr']}; live: may change on --resume)")
    model.add_argument("--optimizer", choices=OPTIMIZERS,
                       help=f"update rule (default {TRAIN_DEFAULTS['optimizer']}; live: may change on --resume, "
                            "the new optimizer starts from fresh state)")
    model.add_argument("--clip", type=float, metavar="C",
                       help=f"clip every gradient entry to [-C, C], 0 < C <= {MAX_CLIP:g} (default "
                            f"{TRAIN_DEFAULTS['clip']}; live)")
    model.add_argument("--seed", type=int, metavar="S",
                       help=f"seed of the weight initialisation and the samples (default {TRAIN_DEFAULTS['seed']})")
    model.add_argument("--val-fraction", type=float, metavar="F",
                       help="last fraction of the text held out for validation, 0 <= F < 0.5; 0 = none "
                            f"(default {TRAIN_DEFAULTS['val_fraction']})")
    run = train.add_argument_group("run control and output")
    run.add_argument("--iters", type=int, metavar="N",
                     help="iterations to run in this invocation (default: until Ctrl-C)")
    run.add_argument("--val-every", type=int, default=1000, metavar="N",
                     help="validation loss (bits/char on up to 20,000 held-out characters) every N iterations "
                          "(default 1000)")
    run.add_argument("--sample-every", type=int, metavar="N",
                     help=f"print a sample every N iterations (default {TRAIN_DEFAULTS['sample_every']}; live)")
    run.add_argument("--sample-length", type=int, default=200, metavar="N",
                     help=f"characters per printed sample, 0..{MAX_SAMPLE_LENGTH} (default 200)")
    run.add_argument("--out", default="run.npz", metavar="FILE",
                     help="checkpoint file to write (default run.npz; written exactly under this name)")
    run.add_argument("--save-every", type=float, default=60.0, metavar="SECONDS",
                     help="also save the checkpoint this often while training (default 60)")
    run.add_argument("--resume", metavar="FILE",
                     help="continue training from this checkpoint (its own text, model and optimizer state); "
                          "live options given here take effect, the others must match or be left out")

    sample = commands.add_parser(
        "sample", help="print text generated by a trained checkpoint",
        description="Generate text from a checkpoint and print it on stdout: the prime (if any) "
                    "followed by --length generated characters.")
    sample.add_argument("checkpoint", metavar="CHECKPOINT", help="a checkpoint (.npz) written by train or the dashboard")
    sample.add_argument("--length", type=int, default=300, metavar="N",
                        help=f"characters to generate, 0..{MAX_SAMPLE_LENGTH} (default 300)")
    sample.add_argument("--temperature", type=float, default=1.0, metavar="TAU",
                        help="divide the logits by TAU before the softmax: < 1 safer, > 1 wilder; 0 < TAU <= 100 "
                             "(default 1.0)")
    sample.add_argument("--prime", default="", metavar="TEXT",
                        help="text read into the hidden state first; its characters must occur in the training text")
    sample.add_argument("--greedy", action="store_true",
                        help="always take the most likely character instead of drawing (ignores --temperature)")
    sample.add_argument("--seed", type=int, metavar="S",
                        help="seed of the random draws, for a repeatable sample (default: different every time)")
    return parser


# ---------------------------------------------------------------------------------------- helpers
def _load_corpus(spec: str) -> tuple[str, str]:
    """CORPUS argument -> (text, label). A file path wins over a built-in name."""
    path = Path(spec)
    if path.is_file():
        limit = MAX_UPLOAD_MB * 2**20
        size = path.stat().st_size
        if size > limit:
            raise UsageError(f"corpus file {spec} is {size / 2**20:.1f} MB; the limit is {MAX_UPLOAD_MB} MB")
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise UsageError(f"cannot read corpus file {spec}: {exc.strerror or exc}") from exc
        try:
            return text_from_bytes(data), path.name
        except ValueError as exc:
            raise UsageError(f"corpus file {spec}: {exc}") from exc
    if spec in BUILTIN_CORPORA:
        return load_builtin(spec), spec
    if path.exists():
        raise UsageError(f"corpus {spec} is not a regular file")
    raise UsageError(f"corpus {spec!r} is neither an existing file nor a built-in corpus "
                     f"({', '.join(BUILTIN_CORPORA)})")


def _load_checkpoint_file(spec: str):
    if not Path(spec).is_file():
        raise UsageError(f"checkpoint file {spec} does not exist")
    try:
        return load_checkpoint(spec)
    except ValueError as exc:
        raise UsageError(f"{spec}: {exc}") from exc


def _check_out_path(spec: str) -> Path:
    out = Path(spec)
    if out.is_dir():
        raise UsageError(f"--out {spec} is a directory; give a file name such as {out / 'run.npz'}")
    if not out.parent.is_dir():
        raise UsageError(f"--out {spec}: the directory {out.parent} does not exist")
    return out


def _save_atomically(trainer: Trainer, vocab: Vocab, out: Path) -> None:
    """Write to a temporary file next to ``out`` and rename it: an interrupted save never leaves a
    half-written checkpoint behind, and the old one stays until the new one is complete."""
    fd, tmp = tempfile.mkstemp(prefix=f".{out.name}.", suffix=".tmp", dir=out.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            save_checkpoint(fh, trainer, vocab)
        os.replace(tmp, out)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


@contextlib.contextmanager
def _deferred_interrupt():
    """While active, the first Ctrl-C only sets a flag that the loop checks between chunks, so a
    training step is never cut in half; a second Ctrl-C interrupts at once. Yields the flag check."""
    if threading.current_thread() is not threading.main_thread():
        yield lambda: False
        return
    hits = []

    def on_sigint(signum, frame):
        if hits:
            raise KeyboardInterrupt
        hits.append(signum)

    previous = signal.signal(signal.SIGINT, on_sigint)
    try:
        yield lambda: bool(hits)
    finally:
        signal.signal(signal.SIGINT, previous)


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    return f"{h}:{rest // 60:02d}:{rest % 60:02d}" if h else f"{rest // 60}:{rest % 60:02d}"


# ---------------------------------------------------------------------------------------- train
class _Session:
    """The state of one ``train`` invocation around the trainer: settings, samples, output."""

    def __init__(self, trainer: Trainer, vocab: Vocab, settings: dict, corpus_label: str,
                 samples: list, args):
        self.trainer, self.vocab, self.settings, self.corpus_label = trainer, vocab, settings, corpus_label
        self.samples: deque = deque(samples, maxlen=SAMPLES_KEPT)
        self.args = args
        self.out = Path(args.out)
        self.tty = sys.stderr.isatty()
        self.progress_shown = False
        self.last_val: float | None = None

    # -- output
    def _clear_progress(self) -> None:
        if self.tty and self.progress_shown:
            sys.stderr.write("\r\x1b[K")
            sys.stderr.flush()
            self.progress_shown = False

    def message(self, text: str) -> None:
        self._clear_progress()
        print(text, file=sys.stderr, flush=True)

    def progress(self, rate: float, remaining: int | None) -> None:
        tr = self.trainer
        bits = bits_per_char(tr.smooth_loss, tr.seq_length)
        val = "val -" if self.last_val is None else f"val {self.last_val:.3f} bits/char"
        left = "" if remaining is None or rate <= 0 else f" | {_duration(remaining / rate)} left"
        speed = f"{rate:,.1f}" if rate < 10 else f"{rate:,.0f}"
        line = (f"iter {tr.iteration:,} | smooth loss {tr.smooth_loss:.2f}/window = {bits:.3f} bits/char | "
                f"{val} | {speed} it/s{left}")
        if self.tty:
            sys.stderr.write("\r\x1b[K" + line)
            self.progress_shown = True
        else:
            sys.stderr.write(line + "\n")
        sys.stderr.flush()

    def add_sample(self) -> None:
        """A sample as the dashboard draws it: from the current hidden state and input character."""
        tr = self.trainer
        text = self.vocab.decode(tr.sample_from_window(self.args.sample_length))
        self.samples.append([tr.iteration, text])
        self._clear_progress()
        sys.stdout.write(f"----- sample at iteration {tr.iteration:,} -----\n{text}\n")
        sys.stdout.flush()

    # -- persistence
    def save(self) -> None:
        config = {"corpus": "custom", "hidden_size": self.trainer.model.hidden_size,
                  "seq_length": self.trainer.seq_length, "learning_rate": self.trainer.learning_rate,
                  "batch_size": self.trainer.batch_size, "optimizer": self.trainer.optimizer_name,
                  "clip": self.trainer.clip, "seed": self.settings["seed"],
                  "val_fraction": self.settings["val_fraction"], "sample_every": self.settings["sample_every"]}
        write_run_metadata(self.trainer, config, self.corpus_label, [tuple(s) for s in self.samples])
        _save_atomically(self.trainer, self.vocab, self.out)

    # -- the loop
    def run(self, interrupted) -> None:
        """Train until --iters are done or ``interrupted()``; raises KeyboardInterrupt on the latter."""
        tr, args = self.trainer, self.args
        every, val_every = self.settings["sample_every"], args.val_every
        target = None if args.iters is None else tr.iteration + args.iters
        now = time.monotonic()
        last_save = last_line = now
        line_iteration = tr.iteration
        refresh = TTY_REFRESH_SECONDS if self.tty else LOG_LINE_SECONDS
        chunk = 1
        while target is None or tr.iteration < target:
            # Stop exactly on the next sample / validation / final iteration.
            limit = min(every - tr.iteration % every, val_every - tr.iteration % val_every)
            if target is not None:
                limit = min(limit, target - tr.iteration)
            tr.step(min(chunk, limit))
            step_time = tr.last_stats["step_time"] if tr.last_stats else 0.0
            chunk = int(min(10_000, max(1, CHUNK_SECONDS / max(step_time, 1e-6))))
            if tr.iteration % every == 0 and args.sample_length > 0:
                self.add_sample()
            if tr.iteration % val_every == 0 and tr.val_ids is not None:
                self.last_val = tr.validate()
            now = time.monotonic()
            if now - last_line >= refresh:
                # Wall-clock rate since the last line, samples and validation included: what the ETA needs.
                rate = (tr.iteration - line_iteration) / (now - last_line)
                self.progress(rate, None if target is None else target - tr.iteration)
                last_line, line_iteration = now, tr.iteration
            if now - last_save >= args.save_every:
                self.save()
                last_save = time.monotonic()
            if interrupted():
                raise KeyboardInterrupt


def _validated_new_settings(args) -> dict:
    s = {k: (TRAIN_DEFAULTS[k] if getattr(args, k) is None else getattr(args, k)) for k in TRAIN_DEFAULTS}
    check_int("--hidden", s["hidden"], 1, MAX_HIDDEN_SIZE)
    check_int("--seq-length", s["seq_length"], 1, MAX_SEQ_LENGTH)
    check_int("--batch-size", s["batch_size"], 1, MAX_BATCH_SIZE)
    check_int("--seed", s["seed"], 0, 2**32 - 1)
    check_float("--val-fraction", s["val_fraction"], 0.0, 0.5, hi_inclusive=False)
    return s


def _check_common(args) -> None:
    """Options that are checked the same way for new and resumed runs."""
    if args.lr is not None:
        check_float("--lr", args.lr, MIN_LEARNING_RATE, MAX_LEARNING_RATE)
    if args.clip is not None:
        check_float("--clip", args.clip, 0.0, MAX_CLIP, lo_inclusive=False)
    if args.sample_every is not None:
        check_int("--sample-every", args.sample_every, 1, 1_000_000)
    if args.iters is not None:
        check_int("--iters", args.iters, 1)
    check_int("--val-every", args.val_every, 1)
    check_int("--sample-length", args.sample_length, 0, MAX_SAMPLE_LENGTH)
    check_float("--save-every", args.save_every, 0.0, lo_inclusive=False)


def _new_session(args) -> _Session:
    s = _validated_new_settings(args)
    text, label = _load_corpus(args.corpus)
    validate_corpus(text, seq_length=s["seq_length"], batch_size=s["batch_size"])
    vocab = Vocab.from_text(text)
    ids = vocab.encode(text)
    split = train_val_split(len(ids), s["val_fraction"])   # same split as the dashboard
    val = ids[split:] if len(ids) - split >= 2 else None
    model = VanillaRNN(vocab.size, s["hidden"], seed=s["seed"])
    trainer = Trainer(model, ids[:split], seq_length=s["seq_length"], learning_rate=s["lr"],
                      batch_size=s["batch_size"], clip=s["clip"], optimizer=s["optimizer"], val_ids=val,
                      seed=s["seed"])
    return _Session(trainer, vocab, s, label, [], args)


def _resumed_session(args) -> _Session:
    if args.corpus is not None:
        raise UsageError("CORPUS cannot be given with --resume: training goes on with the checkpoint's own text")
    trainer, vocab = _load_checkpoint_file(args.resume)
    fixed = {"hidden": ("--hidden", trainer.model.hidden_size), "seq_length": ("--seq-length", trainer.seq_length),
             "batch_size": ("--batch-size", trainer.batch_size), "seed": ("--seed", trainer.seed)}
    for key, (option, have) in fixed.items():
        given = getattr(args, key)
        if given is not None and given != have:
            raise UsageError(f"{option} cannot change when resuming: the checkpoint has {have}, got {given}")
    n_val = 0 if trainer.val_ids is None else len(trainer.val_ids)
    val_fraction = round(n_val / (n_val + len(trainer.data)), 6)
    if args.val_fraction is not None and not math.isclose(args.val_fraction, val_fraction, abs_tol=1e-3):
        raise UsageError(f"--val-fraction cannot change when resuming: the checkpoint holds out "
                         f"{val_fraction:g} of its text, got {args.val_fraction:g}")
    try:
        meta = read_run_metadata(trainer.metadata)
    except ValueError as exc:
        raise UsageError(f"{args.resume}: {exc}") from exc
    saved = meta.config
    if args.lr is not None:
        trainer.learning_rate = args.lr
    if args.clip is not None:
        trainer.clip = args.clip
    if args.optimizer is not None:
        trainer.set_optimizer(args.optimizer)
    sample_every = args.sample_every
    if sample_every is None:
        sample_every = saved.get("sample_every", TRAIN_DEFAULTS["sample_every"])
        if isinstance(sample_every, bool) or not isinstance(sample_every, int) or not 1 <= sample_every <= 1_000_000:
            sample_every = TRAIN_DEFAULTS["sample_every"]
    settings = {"seed": trainer.seed, "val_fraction": val_fraction, "sample_every": sample_every}
    label = meta.corpus_label or Path(args.resume).name
    samples = [list(s) for s in meta.samples]
    return _Session(trainer, vocab, settings, label, samples, args)


def _summary(session: _Session) -> str:
    tr = session.trainer
    bits = bits_per_char(tr.smooth_loss, tr.seq_length)
    val = "" if session.last_val is None else f", val {session.last_val:.3f} bits/char"
    return f"iteration {tr.iteration:,}, smooth loss {bits:.3f} bits/char{val}"


def cmd_train(args) -> int:
    _check_common(args)
    _check_out_path(args.out)
    if args.resume is None and args.corpus is None:
        raise UsageError("give a CORPUS (a text file or one of " + ", ".join(BUILTIN_CORPORA)
                         + ") or --resume CHECKPOINT")
    session = _resumed_session(args) if args.resume is not None else _new_session(args)
    tr = session.trainer
    session.message(f"training on {session.corpus_label}: {len(tr.data):,} characters "
                    f"(+{0 if tr.val_ids is None else len(tr.val_ids):,} held out), vocabulary {session.vocab.size}, "
                    f"hidden {tr.model.hidden_size}, T {tr.seq_length}, batch {tr.batch_size}, "
                    f"{tr.optimizer_name} lr {tr.learning_rate:g}, from iteration {tr.iteration:,}")
    try:
        with _deferred_interrupt() as interrupted:
            try:
                session.run(interrupted)
            except DivergenceError as exc:
                session.save()
                session.message(f"error: {exc}")
                session.message(f"the last good state ({_summary(session)}) was saved to {session.out}")
                return EXIT_FAILED
            except KeyboardInterrupt:
                session.save()
                session.message(f"interrupted at {_summary(session)}; checkpoint saved to {session.out}")
                return EXIT_INTERRUPTED
            if tr.val_ids is not None and (session.last_val is None or tr.iteration % args.val_every):
                session.last_val = tr.validate()
            session.save()
    except OSError as exc:
        session.message(f"error: could not write the checkpoint {session.out}: {exc.strerror or exc}")
        return EXIT_FAILED
    session.message(f"done: {_summary(session)}; checkpoint saved to {session.out}")
    return EXIT_OK


# ---------------------------------------------------------------------------------------- sample
def cmd_sample(args) -> int:
    check_int("--length", args.length, 0, MAX_SAMPLE_LENGTH)
    check_float("--temperature", args.temperature, 0.0, 100.0, lo_inclusive=False)
    if args.seed is not None:
        check_int("--seed", args.seed, 0, 2**32 - 1)
    trainer, vocab = _load_checkpoint_file(args.checkpoint)
    try:
        prime = vocab.encode(args.prime)
    except ValueError as exc:
        raise UsageError(f"--prime: {exc}") from exc
    ids = trainer.model.sample(args.length, prime=prime if len(prime) else None,
                               temperature=args.temperature, greedy=args.greedy, rng=args.seed)
    sys.stdout.write(args.prime + vocab.decode(ids) + "\n")
    sys.stdout.flush()
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    """Run the command line on ``argv`` (default sys.argv[1:]); returns the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:   # --help (0) or a parse error (2, already reported)
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    command = cmd_train if args.command == "train" else cmd_sample
    try:
        return command(args)
    except ValueError as exc:   # the engine's and our own argument checks: one line, no traceback
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:   # before training started (e.g. while loading a corpus): nothing to save
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
