"""One training run as the app sees it: settings, corpus, trainer, samples and the divergence guard.

Pure Python over rnn_core (no streamlit), so every behaviour here is tested without a server. A
worker process (or a Ray actor) holds each session's Run and trains it in short ticks; the session
holds snapshots of it (Run.copy) for its pages.
"""
from __future__ import annotations

import copy
import math
import time
import uuid
from collections import deque
from dataclasses import asdict, dataclass, fields, replace

import numpy as np

from playground.runs import timeline as tl
from rnn_core import DivergenceError, Trainer, VanillaRNN, Vocab, checkpoint_bytes, load_checkpoint_bytes
from rnn_core.corpora import BUILTIN_CORPORA, load_builtin, train_val_split, validate_corpus
from rnn_core.limits import (
    MAX_BATCH_SIZE,
    MAX_CLIP,
    MAX_HIDDEN_SIZE,
    MAX_LEARNING_RATE,
    MAX_SEQ_LENGTH,
    MIN_LEARNING_RATE,
    check_float,
    check_int,
)
from rnn_core.optim import OPTIMIZERS
from rnn_core.run_metadata import MAX_SAMPLES_KEPT, read_run_metadata, write_run_metadata
from rnn_core.trainer import bits_per_char, untrained_loss

# A loss this many times the untrained loss (uniform guess) counts as exploding: the short running
# average of the losses (weight EXPLODE_WEIGHT on the newest chunk's), not one window's loss, which
# on an unusual stretch of text can exceed it once without anything going wrong.
EXPLODE_FACTOR = 3.0
EXPLODE_WEIGHT = 0.3
BUILTIN_LABELS = {"hello": "Hello (toy)", "shakespeare": "Shakespeare", "python": "Python source"}
SAMPLE_LENGTH = 200          # characters per periodic sample, as in min-char-rnn
SNAPSHOT_SECONDS = 2.0       # how often the guard keeps a known-good copy while training
CHUNK_SECONDS = 0.01         # steps per chunk: about this much training between clock readings
VALIDATE_SECONDS = 4.0       # validation loss at most this often while training (it costs many steps: bench.costs)
SAMPLE_SECONDS = 0.5         # periodic samples at most this often: at 2,000 it/s "every 100" would
                             # spend 6% of the time sampling text nobody can read that fast


@dataclass(frozen=True)
class RunConfig:
    """Everything that defines a run. ``LIVE_FIELDS`` may change mid-run; the rest needs a reset."""

    corpus: str = "shakespeare"      # a built-in key, or "custom" for uploaded/pasted text
    hidden_size: int = 100
    seq_length: int = 25
    learning_rate: float = 0.1
    batch_size: int = 1
    optimizer: str = "adagrad"
    clip: float = 5.0
    seed: int = 0
    val_fraction: float = 0.1
    sample_every: int = 100

    LIVE_FIELDS = ("learning_rate", "optimizer", "clip", "sample_every")

    def validate(self) -> "RunConfig":
        if self.corpus != "custom" and self.corpus not in BUILTIN_CORPORA:
            raise ValueError(f"corpus must be one of {', '.join(BUILTIN_CORPORA)} or 'custom', got {self.corpus!r}")
        check_int("hidden_size", self.hidden_size, 1, MAX_HIDDEN_SIZE)
        check_int("seq_length", self.seq_length, 1, MAX_SEQ_LENGTH)
        check_float("learning_rate", self.learning_rate, MIN_LEARNING_RATE, MAX_LEARNING_RATE)
        check_int("batch_size", self.batch_size, 1, MAX_BATCH_SIZE)
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"optimizer must be one of {', '.join(OPTIMIZERS)}, got {self.optimizer!r}")
        check_float("clip", self.clip, 0.0, MAX_CLIP, lo_inclusive=False)
        check_int("seed", self.seed, 0, 2**32 - 1)
        check_float("val_fraction", self.val_fraction, 0.0, 0.5, hi_inclusive=False)
        check_int("sample_every", self.sample_every, 1, 1_000_000)
        return self

    def reset_changes(self, other: "RunConfig") -> list[tuple[str, object, object]]:
        """Fields that differ from ``other`` and can only take effect with a reset."""
        return [(f.name, getattr(self, f.name), getattr(other, f.name)) for f in fields(self)
                if f.name not in self.LIVE_FIELDS and getattr(self, f.name) != getattr(other, f.name)]

    @classmethod
    def from_dict(cls, d: dict) -> "RunConfig":
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in d.items() if k in known}).validate()


# Starting points offered in the app. "fast" reaches the classic setting's loss in a fraction of the
# time by reading 16 streams per step (see bench/time_to_quality.py).
PRESETS = {
    "classic": RunConfig(),
    "fast": RunConfig(batch_size=16, optimizer="adam", learning_rate=0.005),
}


@dataclass
class TickReport:
    iterations: int = 0
    seconds: float = 0.0
    alert: str | None = None      # set when the guard paused training
    reached: int | None = None    # the stop_at iteration, when this tick reached it


class Run:
    """A trainer plus what the app shows around it."""

    def __init__(self, config: RunConfig, text: str, corpus_label: str):
        config.validate()
        validate_corpus(text, seq_length=config.seq_length, batch_size=config.batch_size)
        self.config, self.corpus_label = config, corpus_label
        # Which run this is, kept by every copy (the snapshots a session gets from its trainer
        # process): new for a new model, a loaded file, a fork and a continued snapshot.
        self.uid = uuid.uuid4().hex
        # Counts every change of what the views compute on (weights, optimizer state, position,
        # settings): +1 per training chunk, rollback and live setting. With uid, it names the model
        # a result was computed on (model_key), in every copy of the run in any process.
        self.generation = 0
        self.vocab = Vocab.from_text(text)
        ids = self.vocab.encode(text)
        split = train_val_split(len(ids), config.val_fraction)
        val = ids[split:] if len(ids) - split >= 2 else None
        model = VanillaRNN(self.vocab.size, config.hidden_size, seed=config.seed)
        self.trainer = Trainer(model, ids[:split], seq_length=config.seq_length,
                               learning_rate=config.learning_rate, batch_size=config.batch_size,
                               clip=config.clip, optimizer=config.optimizer, val_ids=val, seed=config.seed)
        # Snapshots of the whole training state over the run (playground.runs.timeline), the untrained
        # model first. Not runtime state: it goes wherever the run goes, saves included.
        self.timeline = tl.Timeline.for_trainer(self.trainer)
        self.timeline.add(tl.take(self.trainer))
        self._init_runtime()

    def _init_runtime(self) -> None:
        self.samples: deque[tuple[int, str]] = deque(maxlen=MAX_SAMPLES_KEPT)
        self.alert: str | None = None
        self._last_good = self.trainer.clone()
        self._last_good_at = 0.0
        self._loss_average = self.trainer.smooth_loss   # starts at the untrained loss, as smooth_loss does
        self._last_val = -math.inf
        self._last_sample = -math.inf
        self._progress: deque[tuple[float, int]] = deque(maxlen=30)   # (wall time, iteration) per tick

    @property
    def model_key(self) -> tuple[str, int]:
        """(uid, generation): equal keys, the same model (a result computed on one still holds)."""
        return self.uid, self.generation

    @classmethod
    def from_builtin(cls, config: RunConfig) -> "Run":
        return cls(config, load_builtin(config.corpus), BUILTIN_LABELS.get(config.corpus, config.corpus))

    # ------------------------------------------------------------------ facts for the views
    @property
    def iteration(self) -> int:
        return self.trainer.iteration

    @property
    def untrained_loss(self) -> float:
        """Per-window loss of the uniform guess, -ln(1/V) * T (the classic starting smooth loss)."""
        return untrained_loss(self.vocab.size, self.trainer.seq_length)

    @property
    def bits_per_char(self) -> float:
        return bits_per_char(self.trainer.smooth_loss, self.trainer.seq_length)

    @property
    def iterations_per_second(self) -> float:
        """Wall-clock rate over the last ticks: what the user sees, pauses between ticks included."""
        if len(self._progress) < 2:
            return 0.0
        (t0, i0), (t1, i1) = self._progress[0], self._progress[-1]
        return (i1 - i0) / (t1 - t0) if t1 > t0 else 0.0

    def whole_text(self) -> str:
        """The run's whole text, training part then validation part (what a reset would re-split)."""
        tr = self.trainer
        val = "" if tr.val_ids is None else self.vocab.decode(tr.val_ids)
        return self.vocab.decode(tr.data) + val

    # ------------------------------------------------------------------ live settings
    def apply_live(self, config: RunConfig) -> None:
        """Take the mid-run settings of ``config`` (learning rate, optimizer, clip, sample interval)."""
        config.validate()
        self.trainer.learning_rate = config.learning_rate
        self.trainer.clip = config.clip
        self.trainer.set_optimizer(config.optimizer)
        self.config = replace(self.config, **{k: getattr(config, k) for k in RunConfig.LIVE_FIELDS})
        self.generation += 1

    # ------------------------------------------------------------------ training
    def step(self, n: int = 1) -> TickReport:
        """Exactly ``n`` iterations (the Step button), under the same guard as ticks."""
        return self._advance(lambda done: done >= n, chunk=n)

    def tick(self, seconds: float, clock=time.perf_counter, stop_at: int | None = None) -> TickReport:
        """Train for about ``seconds`` of wall time in chunks of ~10 ms, then return. A chunk never
        runs longer than the time left, so a tick ends within about one step of its deadline (or one
        validation, which takes its own turn); with no step timed yet the chunk is one step. With
        ``stop_at`` above the current iteration, stop exactly there (report.reached says so)."""
        deadline = clock() + seconds
        if stop_at is not None and stop_at <= self.iteration:
            stop_at = None                 # already past it: nothing to stop at
        report = self._advance(lambda done: clock() >= deadline, chunk=None, clock=clock, stop_at=stop_at,
                               deadline=deadline)
        if stop_at is not None and self.iteration == stop_at and report.alert is None:
            report.reached = stop_at
        return report

    def _advance(self, finished, chunk=None, clock=time.perf_counter, stop_at: int | None = None,
                 deadline: float | None = None) -> TickReport:
        report = TickReport()
        t0 = clock()
        tr = self.trainer
        while not finished(report.iterations) and (stop_at is None or tr.iteration < stop_at):
            if self._validation_due(clock()):
                # A turn of its own, like a chunk: at the largest settings a validation takes about
                # as long as a step, and after a step it would stretch the tick by that much again.
                tr.validate()
                self._last_val = clock()
                continue
            n = (chunk - report.iterations) if chunk else self._chunk_size(
                None if deadline is None else deadline - clock())
            if stop_at is not None:
                n = min(n, stop_at - tr.iteration)
            n = min(n, self.timeline.steps_to_next(tr.iteration))   # a chunk ends at the next snapshot
            start_iter = tr.iteration
            self.generation += 1       # before the step: a step that fails part-way changed the model too
            try:
                tr.step(n)
            except DivergenceError as exc:
                report.iterations += tr.iteration - start_iter
                report.alert = self._pause_with(
                    f"Training paused: {exc} Nothing was lost: the model is as it was at iteration "
                    f"{tr.iteration}.")
                break
            report.iterations += n
            loss = tr.last_stats["loss"]
            self._loss_average += EXPLODE_WEIGHT * (loss - self._loss_average)
            if self._loss_average > EXPLODE_FACTOR * self.untrained_loss:
                report.alert = self._roll_back(loss)
                break
            if self.timeline.due(tr.iteration):
                self.timeline.add(tl.take(tr))
            self._periodic(clock)
        report.seconds = clock() - t0
        now = time.monotonic()
        if self._progress and now - self._progress[-1][0] > 2.0:
            self._progress.clear()     # a pause in between: start measuring afresh
        self._progress.append((now, self.trainer.iteration))
        return report

    def _chunk_size(self, time_left: float | None = None) -> int:
        """Steps for the next chunk: ~CHUNK_SECONDS of them at the last step's time, no more than fit
        in ``time_left`` (at least 1). One step when none has been timed (a new or loaded run): step
        times differ by orders of magnitude between the smallest and the largest settings, so any
        guess is far off at one end."""
        stats = self.trainer.last_stats
        if not stats:
            return 1
        step_time = max(stats["step_time"], 1e-6)
        n = min(500, max(1, int(CHUNK_SECONDS / step_time)))
        if time_left is not None:
            n = min(n, max(1, int(time_left / step_time)))
        return n

    def _validation_due(self, now: float) -> bool:
        """The untrained model's validation loss first (the curve starts where training starts: the
        first Adagrad steps overshoot, and a first point taken among them misleads), then one every
        VALIDATE_SECONDS of training, never twice at one iteration."""
        tr = self.trainer
        if tr.val_ids is None:
            return False
        last = tr.val_history.last()
        if last is not None and last["iteration"] == tr.iteration:
            return False
        # Timed from the last attempt, recorded or not (a model that overflows records nothing).
        return now - self._last_val >= VALIDATE_SECONDS

    def _periodic(self, clock) -> None:
        tr = self.trainer
        every = self.config.sample_every
        now = clock()
        if not self.samples or (tr.iteration // every > self.samples[-1][0] // every
                                and now - self._last_sample >= SAMPLE_SECONDS):
            self.add_sample()
            self._last_sample = now
        if now - self._last_good_at >= SNAPSHOT_SECONDS:
            # Weights, optimizer state, position, hidden state, RNG and histories: what a rollback
            # restores. The clone has no scratch buffers (most of a large trainer's memory).
            self._last_good, self._last_good_at = tr.clone(), now

    def add_sample(self, length: int = SAMPLE_LENGTH) -> str:
        """A sample as min-char-rnn prints it: from the current hidden state and input character."""
        text = self.vocab.decode(self.trainer.sample_from_window(length))
        self.samples.append((self.trainer.iteration, text))
        return text

    def _pause_with(self, message: str) -> str:
        self.alert = message
        return message

    def _roll_back(self, loss: float) -> str:
        bad_iter = self.trainer.iteration
        self.trainer = self._last_good.clone()
        self.generation += 1
        self.timeline.truncate(self.trainer.iteration)   # the moments after it are gone
        self._loss_average = self.trainer.smooth_loss
        lr = self.trainer.learning_rate
        return self._pause_with(
            f"Training paused at iteration {bad_iter}: the loss rose to {loss:.1f} per window, its recent "
            f"average to more than {EXPLODE_FACTOR:g}x the untrained loss ({self.untrained_loss:.1f}). The run was rolled back to "
            f"the last good state (iteration {self.trainer.iteration}). Try a lower learning rate than "
            f"{lr:g}, e.g. {max(lr / 10, MIN_LEARNING_RATE):g}.")

    def copy(self) -> "Run":
        """An independent copy whose training and to_bytes() are unaffected by further training of
        this one: a shallow copy with a cloned trainer and copied samples (config, vocab and label
        are immutable). Same uid and runtime state: the same run, at this moment."""
        other = copy.copy(self)
        other.trainer = self.trainer.clone()
        other.samples = deque(self.samples, maxlen=self.samples.maxlen)
        other.timeline = self.timeline.copy()
        return other

    def continue_from(self, index: int) -> "Run":
        """A new run (new uid) continuing from timeline snapshot ``index``: the training state as it
        was then (bit-for-bit), the settings it trained with then, the samples, curves and snapshots
        up to then. This run is not changed."""
        check_int("index", index, 0, len(self.timeline) - 1)
        snap = self.timeline.snapshots[index]
        other = copy.copy(self)
        other.uid, other.generation = uuid.uuid4().hex, 0
        other.trainer = tl.restore(self.trainer, snap)
        other.config = replace(self.config, learning_rate=snap.learning_rate, optimizer=snap.optimizer,
                               clip=snap.clip)
        other.timeline = self.timeline.copy()
        other.timeline.truncate(snap.iteration)
        other._init_runtime()
        other.samples.extend(s for s in self.samples if s[0] <= snap.iteration)
        return other

    # ------------------------------------------------------------------ persistence
    def to_bytes(self) -> bytes:
        """The run as an rnn_core checkpoint (.npz), with the app's fields in its metadata."""
        facts, values = self.timeline.to_saved()
        write_run_metadata(self.trainer, asdict(self.config), self.corpus_label, self.samples, timeline=facts)
        return checkpoint_bytes(self.trainer, self.vocab, values)

    @classmethod
    def from_bytes(cls, data: bytes) -> "Run":
        """Any rnn_core checkpoint: the app's own saves or one written by the command line.

        The engine has checked every entry and that every string in the file is valid text; the
        app's own fields are bounded here. A field of the wrong type is ignored (a foreign or
        hand-edited file); a value out of range refuses the file (ValueError "not a valid
        checkpoint: ..."), so nothing a page shows can be larger than the app itself would write.
        """
        trainer, vocab, timeline_values = load_checkpoint_bytes(data, with_app_state=True)
        meta = read_run_metadata(trainer.metadata)
        tr_settings = dict(hidden_size=trainer.model.hidden_size, seq_length=trainer.seq_length,
                           learning_rate=trainer.learning_rate, batch_size=trainer.batch_size,
                           optimizer=trainer.optimizer_name, clip=trainer.clip)
        try:
            config = RunConfig.from_dict({"corpus": "custom", **meta.config, **tr_settings})
        except (TypeError, ValueError):
            config = RunConfig.from_dict({"corpus": "custom", **tr_settings})
        label = meta.corpus_label or "checkpoint"
        kept = meta.samples
        timeline = tl.Timeline.from_saved(meta.extra.get("timeline"), timeline_values, trainer)
        if not len(timeline):     # a file without a timeline (the command line's): it starts here
            timeline.add(tl.take(trainer))
        run = cls.__new__(cls)
        run.uid, run.generation = uuid.uuid4().hex, 0
        run.config, run.vocab, run.trainer = config, vocab, trainer
        run.corpus_label = label
        run.timeline = timeline
        run._init_runtime()
        run.samples.extend(kept)
        return run


def window_chars(run: Run) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """The window the next step will train on: (inputs, targets, h0, input characters)."""
    inputs, targets, h0 = run.trainer.current_window()
    return inputs, targets, h0, run.vocab.decode(inputs)


# ---------------------------------------------------------------- built-in corpora that cannot be read
# Tried in this order when a built-in corpus is missing or broken: Python's own sources come with
# every Python, and Hello is generated, so one of them is always there.
FALLBACK_CORPORA = ("python", "hello")


def builtin_problem(key: str) -> str | None:
    """None when built-in corpus ``key`` can be read; otherwise a sentence saying why not.

    Loading is cached (rnn_core.corpora.load_builtin), so asking again costs nothing once a corpus
    has been read. A failure is never cached: installing the missing package helps at once.
    """
    try:
        load_builtin(key)
    except ValueError as exc:   # rnn_core.corpora's own sentences: they name the corpus and the cause
        reason = str(exc).strip().rstrip(".")
    except Exception as exc:    # a broken installation (unreadable file, bad data): still only "not available"
        reason = f"the {BUILTIN_LABELS.get(key, key)} corpus could not be read ({type(exc).__name__})"
    else:
        return None
    return f"{reason[:1].upper()}{reason[1:]}."


def builtin_run_or_fallback(config: RunConfig) -> tuple[Run, str | None]:
    """A run on ``config``'s built-in corpus and None, or, when that corpus cannot be read, a run with
    the same settings on the first FALLBACK_CORPORA text that can, and a sentence saying so.

    Settings that are not allowed raise ValueError as Run does (no fallback for those).
    """
    config.validate()
    if config.corpus not in BUILTIN_CORPORA:
        raise ValueError(f"corpus must be one of {', '.join(BUILTIN_CORPORA)}, got {config.corpus!r}")
    problem = builtin_problem(config.corpus)
    if problem is None:
        return Run.from_builtin(config), None
    for key in FALLBACK_CORPORA:
        if key != config.corpus and builtin_problem(key) is None:
            run = Run.from_builtin(replace(config, corpus=key))
            return run, f"{problem} This run trains on {run.corpus_label} instead."
    raise ValueError(problem)
