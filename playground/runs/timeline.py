"""The run's timeline: full snapshots of the training state at moments spread over the whole run.

Pure Python over rnn_core (no streamlit). A ``Run`` owns one ``Timeline`` and takes its snapshots
itself (Run._advance), so the trainer process, or any backend running the same Run, takes them.

* **Schedule** (``on_schedule``): iterations 0, 100, 200, 500, 1k, 2k, 5k, 10k, then every
  ``EVERY`` (20k, 30k, ...): dense early, where learning is fastest. A timeline that is empty (a
  checkpoint written without one) also takes one at once, wherever the run is.
* **Thinning** (``thin_index``): at most ``capacity`` snapshots. When one more arrives, the
  snapshot whose removal leaves the smallest gap, measured in log(1 + iteration), is dropped: never
  the first nor the newest, so the kept moments stay spread over the whole run, denser early.
* **Bounded memory** (``capacity_for``): a snapshot is the whole float state (weights, optimizer
  state, hidden state) in the model's dtype, so its bytes are known in advance. A timeline keeps
  at most ``MAX_SNAPSHOTS`` and at most ``BUDGET_BYTES`` of them (at least ``MIN_SNAPSHOTS``: the
  first and the newest, whatever the size). Restoring is bit-for-bit, so nothing is stored in
  reduced precision: the budget sets the count instead. At the classic setting (H 100, V 63 on
  Shakespeare, Adagrad, batch 1) a snapshot is 45,626 float64 values (365 kB) and 13 are kept.
* **Restoring** (``restore``) builds a Trainer that continues exactly as the original did from that
  iteration (weights, optimizer state and step count, position, hidden state, smoothed loss, RNG,
  learning rate, clip), with the histories cut at that iteration.
* **Saving**: ``to_saved`` gives the JSON-able facts and one flat float array for the checkpoint;
  ``from_saved`` checks both as hostile input ("not a valid checkpoint: ...").
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from rnn_core import Trainer, VanillaRNN
from rnn_core.checkpoint import check_rng_state
from rnn_core.history import BoundedHistory
from rnn_core.limits import MAX_CHARS_SEEN, MAX_CLIP, MAX_ITERATION, MAX_LEARNING_RATE, MIN_LEARNING_RATE
from rnn_core.model import PARAM_NAMES
from rnn_core.optim import OPTIMIZER_SLOTS, OPTIMIZERS, make_optimizer

EARLY = (0, 100, 200, 500, 1_000, 2_000, 5_000, 10_000)
EVERY = 10_000                 # after the early moments: one snapshot every this many iterations
MAX_SNAPSHOTS = 24
MIN_SNAPSHOTS = 2              # the first and the newest, even when one snapshot exceeds the budget
BUDGET_BYTES = 5_000_000       # all snapshots of one run together
SLOTS = OPTIMIZER_SLOTS
NON_NEGATIVE_SLOTS = ("mem", "cache", "v")
MAX_SMOOTH_LOSS = 1e6          # as the checkpoint's own bound on smooth_loss

# The timeline's sample and hidden-state passage: the same for every snapshot, so moving back and
# forth shows how the same model-to-be answered at each moment.
SAMPLE_SEED = 1234
SAMPLE_LENGTH = 200
PASSAGE_LENGTH = 40


# ---------------------------------------------------------------- schedule and thinning (pure)
def on_schedule(iteration: int) -> bool:
    """Whether ``iteration`` is one of the schedule's moments (0, 100, 200, 500, ..., 10k, 20k, ...)."""
    return iteration in EARLY or (iteration > EARLY[-1] and iteration % EVERY == 0)


def next_scheduled(iteration: int) -> int:
    """The first scheduled moment strictly after ``iteration``."""
    for moment in EARLY:
        if moment > iteration:
            return moment
    return (iteration // EVERY + 1) * EVERY


def thin_index(iterations) -> int | None:
    """Which of the kept snapshots to drop (their iterations, increasing) so that the rest stay
    spread evenly in log(1 + iteration): the interior one whose neighbours are closest together
    (the oldest of equals). Never the first nor the last; None with fewer than three."""
    its = [float(i) for i in iterations]
    if len(its) < 3:
        return None
    logs = np.log1p(np.asarray(its))
    spans = logs[2:] - logs[:-2]            # gap left behind if snapshot k (1..n-2) is dropped
    return int(np.argmin(spans)) + 1


def state_size(vocab_size: int, hidden_size: int, batch_size: int, optimizer: str) -> int:
    """Values in one snapshot's float state: the parameters, each optimizer slot, the hidden states."""
    n_params = 2 * vocab_size * hidden_size + hidden_size * hidden_size + hidden_size + vocab_size
    return n_params * (1 + len(SLOTS[optimizer])) + batch_size * hidden_size


def capacity_for(vocab_size: int, hidden_size: int, batch_size: int, optimizer: str, itemsize: int = 8) -> int:
    """How many snapshots a run keeps: as many as fit BUDGET_BYTES, between MIN_SNAPSHOTS and
    MAX_SNAPSHOTS, at the run's own optimizer. (A switch to an optimizer with more state makes
    later snapshots larger: Timeline.add thins by bytes as well as by count.)"""
    one = state_size(vocab_size, hidden_size, batch_size, optimizer) * itemsize
    return max(MIN_SNAPSHOTS, min(MAX_SNAPSHOTS, BUDGET_BYTES // one))


# ---------------------------------------------------------------- one snapshot
@dataclass(frozen=True, eq=False)
class TimelineSnapshot:
    """The whole training state at one iteration. ``state`` (state_size,) is read-only: the flat
    parameters (Wxh, Whh, Why, bh, by), then each optimizer slot's flat state, then hprev (B, H)."""

    iteration: int
    position: int
    chars_seen: int
    smooth_loss: float
    optimizer: str
    optimizer_steps: int
    learning_rate: float
    clip: float
    rng_state: dict
    state: np.ndarray

    @property
    def nbytes(self) -> int:
        return int(self.state.nbytes)

    def facts(self) -> dict:
        """Everything but ``state``, as JSON-able values (for the checkpoint's metadata)."""
        return {"iteration": self.iteration, "position": self.position, "chars_seen": self.chars_seen,
                "smooth_loss": self.smooth_loss, "optimizer": self.optimizer,
                "optimizer_steps": self.optimizer_steps, "learning_rate": self.learning_rate,
                "clip": self.clip, "rng_state": self.rng_state}

    def params(self, vocab_size: int, hidden_size: int) -> dict[str, np.ndarray]:
        """Read-only views of the weights: Wxh (H,V), Whh (H,H), Why (V,H), bh (H,), by (V,)."""
        V, H = vocab_size, hidden_size
        shapes = {"Wxh": (H, V), "Whh": (H, H), "Why": (V, H), "bh": (H,), "by": (V,)}
        out, at = {}, 0
        for k in PARAM_NAMES:
            n = math.prod(shapes[k])
            out[k] = self.state[at:at + n].reshape(shapes[k])
            at += n
        return out


def take(trainer: Trainer) -> TimelineSnapshot:
    """A snapshot of ``trainer`` as it is now (between two steps): one copy of its float state."""
    parts = [trainer.model.flat_params()]
    parts += [trainer.optimizer.flat[s] for s in SLOTS[trainer.optimizer_name]]
    parts.append(trainer.hprev.reshape(-1))
    state = np.concatenate(parts)
    state.flags.writeable = False
    return TimelineSnapshot(
        iteration=int(trainer.iteration), position=int(trainer.position), chars_seen=int(trainer.chars_seen),
        smooth_loss=float(trainer.smooth_loss), optimizer=trainer.optimizer_name,
        optimizer_steps=int(trainer.optimizer.t), learning_rate=float(trainer.learning_rate),
        clip=float(trainer.clip), rng_state=trainer.rng.bit_generator.state, state=state)


def _cut(history: BoundedHistory, iteration: int) -> BoundedHistory:
    """``history`` without its rows after ``iteration`` (a bucket that straddles it is kept whole)."""
    matrix = history.to_matrix()
    if not len(matrix) or matrix[-1, 0] <= iteration:
        return history.copy()
    return BoundedHistory.from_matrix(history.columns, matrix[matrix[:, 0] <= iteration], capacity=history.capacity)


def restore(trainer: Trainer, snap: TimelineSnapshot) -> Trainer:
    """A new Trainer on ``trainer``'s text and settings, in the state ``snap`` holds: it trains on
    exactly as the run did from that iteration. ``trainer`` is not changed. The histories are
    ``trainer``'s, cut at the snapshot's iteration."""
    model = trainer.model
    expected = state_size(model.vocab_size, model.hidden_size, trainer.batch_size, snap.optimizer)
    if snap.state.shape != (expected,) or snap.state.dtype != model.dtype:
        raise ValueError(f"snapshot state has shape {snap.state.shape} and dtype {snap.state.dtype}; this run "
                         f"needs ({expected},) of {model.dtype}")
    other = trainer.clone()
    n = other.model.flat_params().size
    other.model.flat_params()[...] = snap.state[:n]
    other.optimizer = make_optimizer(snap.optimizer, other.model.shapes, other.model.dtype)
    at = n
    for slot in SLOTS[snap.optimizer]:
        other.optimizer.flat[slot][...] = snap.state[at:at + n]
        at += n
    other.optimizer.t = snap.optimizer_steps
    other.hprev[...] = snap.state[at:].reshape(other.hprev.shape)
    other.iteration, other.position, other.chars_seen = snap.iteration, snap.position, snap.chars_seen
    other.smooth_loss = snap.smooth_loss
    other.learning_rate, other.clip = snap.learning_rate, snap.clip
    other.rng = np.random.default_rng()
    other.rng.bit_generator.state = snap.rng_state
    other.history = _cut(trainer.history, snap.iteration)
    other.val_history = _cut(trainer.val_history, snap.iteration)
    other.last_stats = None
    return other


def sample_ids(snap: TimelineSnapshot, vocab_size: int, hidden_size: int, dtype, prime: int,
               length: int = SAMPLE_LENGTH) -> np.ndarray:
    """``length`` ids (length,) sampled from the snapshot's weights with a generator seeded
    SAMPLE_SEED, from a zero hidden state after the character id ``prime``: the same text every time."""
    return snapshot_model(snap, vocab_size, hidden_size, dtype).sample(
        length, prime=np.array([prime]), h0=np.zeros(hidden_size, dtype=dtype),
        rng=np.random.default_rng(SAMPLE_SEED))


def snapshot_model(snap: TimelineSnapshot, vocab_size: int, hidden_size: int, dtype) -> VanillaRNN:
    """A model (V, H) holding the snapshot's weights: for samples and hidden states, never trained."""
    model = VanillaRNN(vocab_size, hidden_size, seed=0, dtype=dtype)
    for k, v in snap.params(vocab_size, hidden_size).items():
        model.params[k][...] = v
    return model


# ---------------------------------------------------------------- the timeline
class Timeline:
    """The snapshots of one run, oldest first, at most ``capacity`` of them."""

    def __init__(self, capacity: int, snapshots=()):
        if not isinstance(capacity, int) or not MIN_SNAPSHOTS <= capacity <= MAX_SNAPSHOTS:
            raise ValueError(f"capacity must be an integer between {MIN_SNAPSHOTS} and {MAX_SNAPSHOTS}, "
                             f"got {capacity!r}")
        self.capacity = capacity
        self.snapshots: list[TimelineSnapshot] = []
        for snap in snapshots:
            self.add(snap)

    @classmethod
    def for_trainer(cls, trainer: Trainer) -> "Timeline":
        m = trainer.model
        return cls(capacity_for(m.vocab_size, m.hidden_size, trainer.batch_size, trainer.optimizer_name,
                                m.dtype.itemsize))

    def __len__(self) -> int:
        return len(self.snapshots)

    @property
    def iterations(self) -> list[int]:
        return [s.iteration for s in self.snapshots]

    @property
    def nbytes(self) -> int:
        return sum(s.nbytes for s in self.snapshots)

    def copy(self) -> "Timeline":
        """An independent list of the same (immutable) snapshots."""
        other = Timeline.__new__(Timeline)
        other.capacity, other.snapshots = self.capacity, list(self.snapshots)
        return other

    def due(self, iteration: int) -> bool:
        """A snapshot should be taken now: the timeline is empty, or ``iteration`` is on the
        schedule and later than the newest snapshot."""
        if not self.snapshots:
            return True
        return iteration > self.snapshots[-1].iteration and on_schedule(iteration)

    def steps_to_next(self, iteration: int) -> int:
        """Steps from ``iteration`` to the next scheduled moment (a chunk of training ends there)."""
        return next_scheduled(iteration) - iteration

    def add(self, snap: TimelineSnapshot) -> None:
        """Append ``snap`` (later than every kept one), then thin to ``capacity``."""
        if self.snapshots and snap.iteration <= self.snapshots[-1].iteration:
            raise ValueError(f"a snapshot at iteration {snap.iteration} must come after the newest one, "
                             f"at {self.snapshots[-1].iteration}")
        self.snapshots.append(snap)
        while len(self.snapshots) > self.capacity or (
                len(self.snapshots) > MIN_SNAPSHOTS and self.nbytes > BUDGET_BYTES):
            del self.snapshots[thin_index(self.iterations)]

    def truncate(self, iteration: int) -> None:
        """Drop the snapshots after ``iteration`` (the run went back there: a rollback, a fork)."""
        self.snapshots = [s for s in self.snapshots if s.iteration <= iteration]

    def nearest(self, iteration: int) -> int:
        """Index of the snapshot closest to ``iteration`` (the earlier of two equally close); the
        timeline must not be empty."""
        its = np.asarray(self.iterations)
        return int(np.argmin(np.abs(its - iteration)))

    # ------------------------------------------------------------ saving
    def to_saved(self) -> tuple[list[dict], np.ndarray | None]:
        """(facts per snapshot for the checkpoint's JSON, all states concatenated (sum of sizes,) or
        None when empty)."""
        if not self.snapshots:
            return [], None
        return [s.facts() for s in self.snapshots], np.concatenate([s.state for s in self.snapshots])

    @classmethod
    def from_saved(cls, facts, values, trainer: Trainer) -> "Timeline":
        """The timeline a checkpoint holds, for the run of ``trainer``: hostile input, every field
        checked (ValueError "not a valid checkpoint: ..."). ``facts`` is the parsed JSON list (None:
        the file has no timeline), ``values`` the flat float array or None."""
        timeline = cls.for_trainer(trainer)
        if facts is None:
            if values is not None:
                raise ValueError("not a valid checkpoint: it holds timeline values but no timeline")
            return timeline
        bad = "not a valid checkpoint: "
        if not isinstance(facts, list):
            raise ValueError(bad + "its timeline must be a list of snapshots")
        # The count the run kept came from the optimizer it started with (it may have switched since):
        # at most MAX_SNAPSHOTS, and their bytes within the budget (checked below). The next snapshot
        # thins them to this run's capacity.
        if len(facts) > MAX_SNAPSHOTS:
            raise ValueError(bad + f"its timeline holds {len(facts)} snapshots; at most {MAX_SNAPSHOTS} "
                                   "are kept")
        m = trainer.model
        B, V, H = trainer.batch_size, m.vocab_size, m.hidden_size
        sizes = []
        for i, f in enumerate(facts):
            if not isinstance(f, dict) or set(f) != {"iteration", "position", "chars_seen", "smooth_loss",
                                                     "optimizer", "optimizer_steps", "learning_rate", "clip",
                                                     "rng_state"}:
                raise ValueError(bad + f"timeline snapshot {i} must have exactly the fields of a snapshot")
            if f["optimizer"] not in OPTIMIZERS:
                raise ValueError(bad + f"timeline snapshot {i} names an unknown optimizer")
            sizes.append(state_size(V, H, B, f["optimizer"]))
        total = sum(sizes)
        if values is None and facts:
            raise ValueError(bad + "its timeline has snapshots but no values")
        if values is not None:
            if values.ndim != 1 or values.dtype != m.dtype:
                raise ValueError(bad + f"its timeline values must be 1-D of {m.dtype}, got shape {values.shape} "
                                       f"and dtype {values.dtype}")
            if values.shape[0] != total:
                raise ValueError(bad + f"its timeline values hold {values.shape[0]} numbers; its "
                                       f"{len(facts)} snapshots need {total}")
        n_params = 2 * V * H + H * H + H + V
        at, previous = 0, -1
        for i, (f, size) in enumerate(zip(facts, sizes)):
            where = f"timeline snapshot {i}"
            it = _whole(f, "iteration", 0, trainer.iteration, where)
            if it <= previous:
                raise ValueError(bad + f"{where} must come after the one before it (iterations increase)")
            previous = it
            position = _whole(f, "position", 0, trainer.segment_length - 1, where)
            chars = _whole(f, "chars_seen", 0, MAX_CHARS_SEEN, where)
            steps = _whole(f, "optimizer_steps", 0, MAX_ITERATION, where)
            smooth = _number(f, "smooth_loss", 0.0, MAX_SMOOTH_LOSS, where)
            lr = _number(f, "learning_rate", MIN_LEARNING_RATE, MAX_LEARNING_RATE, where)
            clip = _number(f, "clip", 0.0, MAX_CLIP, where)
            if clip == 0.0:
                raise ValueError(bad + f"{where} has clip 0; it must be above 0")
            try:
                rng = check_rng_state(f["rng_state"])
            except ValueError:
                raise ValueError(bad + f"{where} has a malformed random generator state (expected NumPy's "
                                       "PCG64 state)") from None
            state = values[at:at + size].copy()
            at += size
            slots = SLOTS[f["optimizer"]]
            for j, slot in enumerate(slots):
                block = state[n_params * (1 + j):n_params * (2 + j)]
                if slot in NON_NEGATIVE_SLOTS and (block < 0).any():
                    raise ValueError(bad + f"{where} has negative entries in its optimizer state {slot}")
            if np.abs(state[n_params * (1 + len(slots)):]).max(initial=0) > 1:
                raise ValueError(bad + f"{where} has hidden states outside [-1, 1]")
            state.flags.writeable = False
            timeline.snapshots.append(TimelineSnapshot(
                iteration=it, position=position, chars_seen=chars, smooth_loss=smooth, optimizer=f["optimizer"],
                optimizer_steps=steps, learning_rate=lr, clip=clip, rng_state=rng, state=state))
        if len(timeline) > MIN_SNAPSHOTS and timeline.nbytes > BUDGET_BYTES:
            raise ValueError(bad + f"its timeline takes {timeline.nbytes} bytes; at most {BUDGET_BYTES} are kept")
        return timeline


def _whole(facts: dict, key: str, lo: int, hi: int, where: str) -> int:
    value = facts[key]
    if type(value) is not int or not lo <= value <= hi:
        raise ValueError(f"not a valid checkpoint: {where} has {key} {_short(value)}; it must be a whole "
                         f"number from {lo} to {hi}")
    return value


def _number(facts: dict, key: str, lo: float, hi: float, where: str) -> float:
    value = facts[key]
    if type(value) not in (int, float) or not math.isfinite(value) or not lo <= value <= hi:
        raise ValueError(f"not a valid checkpoint: {where} has {key} {_short(value)}; it must be a number "
                         f"from {lo:g} to {hi:g}")
    return float(value)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
