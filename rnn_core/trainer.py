"""The min-char-rnn training loop, generalised to B parallel streams and several optimizers.

At batch_size 1 with Adagrad this is the classic loop step for step: consecutive windows of
seq_length characters; position and hidden state reset to 0 on the first iteration and whenever
position + seq_length + 1 >= len(data); the hidden state carried otherwise; gradients clipped
element-wise; smooth_loss = 0.999 smooth_loss + 0.001 loss, starting at -ln(1/V) * seq_length.

At batch_size B the data is cut into B equal contiguous segments, one stream each, read in lockstep
with their own carried hidden states (char-rnn's batching); loss and gradients are batch means.
"""
from __future__ import annotations

import math
import time

import numpy as np

from .history import BoundedHistory
from .limits import (MAX_BATCH_SIZE, MAX_CLIP, MAX_LEARNING_RATE, MAX_SEQ_LENGTH, MIN_LEARNING_RATE,
                     check_float, check_int)
from .model import PARAM_NAMES, VanillaRNN
from .optim import make_optimizer, param_views

# One row per iteration until the history fills, then per bucket of iterations (see BoundedHistory):
# loss is then the bucket's mean, loss_min / loss_max its extremes, the other columns its last values.
# loss_min and loss_max come last, so a history saved before they existed reads as a prefix.
HISTORY_COLUMNS = ("iteration", "loss", "smooth_loss", "clip_fraction", "learning_rate") + tuple(
    f"grad_norm_{k}" for k in PARAM_NAMES) + ("loss_min", "loss_max")
VAL_COLUMNS = ("iteration", "val_bits_per_char")


def untrained_loss(vocab_size: int, seq_length: int) -> float:
    """Loss per window of the uniform guess over V characters, −ln(1/V)·T: where the smoothed loss
    starts (min-char-rnn's own expression, kept bit for bit)."""
    return -math.log(1.0 / vocab_size) * seq_length


def bits_per_char(window_loss, seq_length: int):
    """A loss in nats per window of ``seq_length`` characters as bits per character, L / T / ln 2.
    Scalar in, float out; an array (any shape) in, an array out."""
    return window_loss / seq_length / math.log(2)


# Above this many entries in dh (T*B*H), a step's stats summarise dh at once instead of copying it.
EAGER_DH_NORMS = 1 << 16


class StepStats(dict):
    """Statistics of the last step: loss, grad_norms, clip_fraction, step_time, and dh_norms (T,)
    (the norm of dL/dh_t per time step), computed only when asked for: most steps nobody looks."""

    def __init__(self, dh: np.ndarray, **stats):
        super().__init__(**stats)
        self._dh = dh   # (T,B,H)

    def __missing__(self, key):
        if key != "dh_norms":
            raise KeyError(key)
        self["dh_norms"] = np.sqrt(np.einsum("tbh,tbh->t", self._dh, self._dh))
        self._dh = None   # (T,B,H), a big trainer's largest array after its Workspace: not kept once summarised
        return self["dh_norms"]

    def __reduce__(self):
        """Pickled summarised: dh_norms (T,) instead of the (T,B,H) dh it comes from."""
        self["dh_norms"]
        return (_stats_from_dict, (dict(self),))


def _stats_from_dict(stats: dict) -> "StepStats":
    out = StepStats(None, **stats)
    return out


class DivergenceError(RuntimeError):
    """A training step produced a non-finite loss, gradient or update. Nothing was changed."""

    def __init__(self, message: str, iteration: int, what: str):
        super().__init__(message)
        self.iteration, self.what = iteration, what


def _check_data(name: str, ids, vocab_size: int) -> np.ndarray:
    arr = np.asarray(ids)
    if arr.ndim != 1 or not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-D array of integer token ids, got shape {arr.shape} dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() >= vocab_size):
        bad = int(arr.min()) if arr.min() < 0 else int(arr.max())
        raise ValueError(f"{name} contains token id {bad}; allowed ids are 0..{vocab_size - 1}")
    # uint8 keeps a 1 MB corpus at 1 MB per session (vocabularies are capped at 256 characters).
    out = arr.astype(np.uint8 if vocab_size <= 256 else np.int32)
    out.flags.writeable = False
    return out


class Trainer:
    def __init__(self, model: VanillaRNN, data_ids, seq_length: int = 25, learning_rate: float = 0.1,
                 batch_size: int = 1, clip: float = 5.0, optimizer: str = "adagrad", val_ids=None,
                 seed: int = 0):
        if not isinstance(model, VanillaRNN):
            raise ValueError(f"model must be a VanillaRNN, got {type(model).__name__}")
        self.model = model
        check_int("seq_length", seq_length, 1, MAX_SEQ_LENGTH)
        check_int("batch_size", batch_size, 1, MAX_BATCH_SIZE)
        self.seq_length, self.batch_size = int(seq_length), int(batch_size)
        self.data = _check_data("data_ids", data_ids, model.vocab_size)
        T, B, n = self.seq_length, self.batch_size, len(self.data)
        if n < T + 1:
            raise ValueError(f"data has {n} characters; seq_length {T} needs at least {T + 1} (seq_length + 1)")
        if n // B < T + 1:
            raise ValueError(
                f"batch_size {B} is too large for the data: {B} streams of seq_length + 1 = {T + 1} characters "
                f"need at least {B * (T + 1)} characters, the data has {n}; allowed batch_size here is "
                f"1..{n // (T + 1)}")
        self.val_ids = None if val_ids is None or len(val_ids) == 0 else _check_data("val_ids", val_ids, model.vocab_size)
        if self.val_ids is not None and len(self.val_ids) < 2:
            raise ValueError(f"val_ids must hold at least 2 characters, got {len(self.val_ids)}")
        self.learning_rate = learning_rate
        self.clip = clip
        self.optimizer = make_optimizer(optimizer, model.shapes, model.dtype)
        # Scratch, made by the first step (_init_buffers).
        self._work = self._grad_flat = self._grads = self._grad_sq = self._block_starts = None
        self.segment_length = n // B
        step = self.data.strides[0]
        self._streams = np.lib.stride_tricks.as_strided(   # (B, L): row b = data[b*L:(b+1)*L]
            self.data, shape=(B, self.segment_length), strides=(self.segment_length * step, step),
            writeable=False)
        self.position = 0
        self.hprev = np.zeros((B, model.hidden_size), dtype=model.dtype)
        self.iteration = 0
        self.chars_seen = 0
        self.smooth_loss = untrained_loss(model.vocab_size, T)
        self.seed = seed
        self.rng = np.random.default_rng(seed)   # for samples drawn during training
        self.history = BoundedHistory(HISTORY_COLUMNS)
        self.val_history = BoundedHistory(VAL_COLUMNS, capacity=4_000)
        self.last_stats: dict | None = None
        self.metadata: dict = {}

    # ------------------------------------------------------------------ settings that may change mid-run
    @property
    def learning_rate(self) -> float:
        return self._lr

    @learning_rate.setter
    def learning_rate(self, value: float) -> None:
        check_float("learning_rate", value, MIN_LEARNING_RATE, MAX_LEARNING_RATE)
        self._lr = float(value)

    @property
    def clip(self) -> float:
        return self._clip

    @clip.setter
    def clip(self, value: float) -> None:
        check_float("clip", value, 0.0, MAX_CLIP, lo_inclusive=False)
        self._clip = float(value)

    @property
    def optimizer_name(self) -> str:
        return self.optimizer.name

    def set_optimizer(self, name: str) -> None:
        """Switch optimizer; the new one starts from fresh state (Adagrad memory, momentum ...)."""
        if name != self.optimizer.name:
            self.optimizer = make_optimizer(name, self.model.shapes, self.model.dtype)

    def _init_buffers(self) -> None:
        """Per-trainer scratch, made at the first step: the flat gradient (N,) with per-parameter
        views, its square, block offsets and the model's Workspace for (B,T) windows. The Workspace
        grows with B*T*H and is most of a trainer's memory at large settings, so a trainer that
        never steps (a clone kept for a rollback, a loaded run) never makes it."""
        shapes = self.model.shapes
        self._grad_flat = np.empty(sum(int(np.prod(s)) for s in shapes.values()), dtype=self.model.dtype)
        self._grads = param_views(self._grad_flat, shapes)
        self._grad_sq = np.empty_like(self._grad_flat)
        self._block_starts = np.cumsum([0] + [int(np.prod(s)) for s in shapes.values()])[:-1]
        self._work = self.model.workspace(self.batch_size, self.seq_length)

    @property
    def epoch(self) -> float:
        """Passes over the training data (characters read / characters in the data)."""
        return self.chars_seen / len(self.data)

    # ------------------------------------------------------------------ training
    def _window_start(self) -> tuple[int, bool]:
        """Position of the next window and whether the hidden state resets there."""
        if self.iteration == 0 or self.position + self.seq_length + 1 >= self.segment_length:
            return 0, True
        return self.position, False

    def _windows(self, p: int):
        """Inputs and targets (B,T) at position p of every stream: slices of a zero-copy (B, L) view
        of the data (row b is stream b's segment), cheaper than gathering by index."""
        T = self.seq_length
        return self._streams[:, p:p + T], self._streams[:, p + 1:p + T + 1]

    def current_window(self):
        """(inputs (T,), targets (T,), h0 (H,)) of stream 0 for the next step, for the views."""
        p, reset = self._window_start()
        x, y = self._windows(p)
        h0 = np.zeros(self.model.hidden_size, dtype=self.model.dtype) if reset else self.hprev[0].copy()
        return x[0].astype(np.int64), y[0].astype(np.int64), h0

    def step(self, n: int = 1) -> float:
        """Run ``n`` iterations; returns the last loss. DivergenceError leaves the state as it was
        before the failing iteration."""
        check_int("n", n, 0, 10**9)
        loss = float("nan")
        # A diverging step overflows or takes log(0); it is reported as DivergenceError, not warnings.
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            for _ in range(int(n)):
                loss = self._step_once()
        return loss

    def _diverged(self, what: str, loss: float):
        return DivergenceError(
            f"training diverged at iteration {self.iteration + 1}: the {what} became non-finite "
            f"(loss {loss:.4g}) with learning rate {self._lr:g} and optimizer {self.optimizer.name}. "
            f"The weights, optimizer state and iteration count are unchanged; try a lower learning rate.",
            self.iteration, what)

    def _step_once(self) -> float:
        t0 = time.perf_counter()
        if self._work is None:
            self._init_buffers()
        p, reset = self._window_start()
        # A reset starts from zeros without touching self.hprev: a diverging step must leave it as it was.
        h0 = np.zeros_like(self.hprev) if reset else self.hprev
        x, y = self._windows(p)
        model = self.model
        loss, _, hs, _, dh, _ = model._loss_and_grads(x, y, h0, out=self._grads, keep_ps=False, work=self._work)
        if not math.isfinite(loss):
            raise self._diverged("loss", loss)
        g, g_sq = self._grad_flat, self._grad_sq
        # Norms per parameter (before clipping) from sums of squares over each block; a NaN or inf
        # anywhere in the gradient shows up in their total.
        np.multiply(g, g, out=g_sq)
        block_sq = np.add.reduceat(g_sq, self._block_starts).tolist()
        if not math.isfinite(sum(block_sq)):
            raise self._diverged("gradient", loss)
        norms = dict(zip(PARAM_NAMES, map(math.sqrt, block_sq)))
        clip = self._clip
        clipped = int(np.count_nonzero(g_sq > clip * clip)) if g_sq.max() > clip * clip else 0
        if clipped:
            np.clip(g, -clip, clip, out=g)
            np.minimum(g_sq, clip * clip, out=g_sq)   # stays the square of the clipped gradient
        # Finite, clipped gradients make a finite update: nothing can diverge past this point.
        self.optimizer.update(model.flat_params(), g, self._lr, g_sq, consume=True)   # g, g_sq are scratch now
        # Commit the rest of the state only now that the step is known to be finite.
        self.hprev[...] = hs[-1]
        self.position = p + self.seq_length
        self.iteration += 1
        self.chars_seen += self.batch_size * self.seq_length
        self.smooth_loss = self.smooth_loss * 0.999 + loss * 0.001
        clip_fraction = clipped / g.size
        # dh lives in the reused workspace: the stats keep a copy (a few microseconds), or at large
        # settings its per-step norms at once (a copy there would be the size of the workspace's dh).
        stats = StepStats(dh.copy() if dh.size <= EAGER_DH_NORMS else dh, loss=loss, grad_norms=norms,
                          clip_fraction=clip_fraction, step_time=time.perf_counter() - t0)
        if dh.size > EAGER_DH_NORMS:
            stats["dh_norms"]
        self.last_stats = stats
        self.history.append((self.iteration, loss, self.smooth_loss, clip_fraction, self._lr,
                             *(norms[k] for k in PARAM_NAMES), loss, loss))
        return loss

    def validate(self, max_chars: int | None = 20_000) -> float | None:
        """Validation loss in bits per character on (the first ``max_chars`` of) val_ids, recorded
        in val_history; None when there is no validation text. A model whose outputs overflow (the
        step before a divergence) gets a non-finite value, returned but not recorded: the history
        holds numbers a chart can draw and a checkpoint can store."""
        if self.val_ids is None:
            return None
        ids = self.val_ids if max_chars is None else self.val_ids[:max_chars]
        with np.errstate(over="ignore", invalid="ignore", divide="ignore"):
            bits = self.model.evaluate(ids) / math.log(2)
        if math.isfinite(bits):
            self.val_history.append((self.iteration, bits))
        return bits

    def sample(self, n: int, **kwargs) -> np.ndarray:
        """A sample from the current model drawn with the trainer's own RNG (saved in checkpoints)."""
        kwargs.setdefault("rng", self.rng)
        return self.model.sample(n, **kwargs)

    def sample_from_window(self, n: int) -> np.ndarray:
        """The sample min-char-rnn prints during training: ``n`` ids (n,) continuing from stream 0's
        hidden state and the next window's first input character."""
        inputs, _, h0 = self.current_window()
        return self.sample(n, prime=inputs[:1], h0=h0)

    def clone(self) -> "Trainer":
        """An independent copy of the whole training state (the read-only data arrays are shared):
        weights, optimizer state, position, hidden state, RNG, iteration, smoothed loss, histories.
        Not the scratch buffers: the copy makes its own at its first step, so a copy that is only
        kept (the divergence guard's last good state, a save in progress) costs a fraction of the
        trainer's memory."""
        other = Trainer.__new__(Trainer)
        other.__dict__.update(self.__dict__)
        other.model = self.model.copy()
        other.optimizer = make_optimizer(self.optimizer.name, other.model.shapes, other.model.dtype)
        other.optimizer.t = self.optimizer.t
        for slot, flat in self.optimizer.flat.items():
            other.optimizer.flat[slot][...] = flat
        other._work = other._grad_flat = other._grads = other._grad_sq = other._block_starts = None
        other.hprev = self.hprev.copy()
        other.rng = np.random.default_rng()
        other.rng.bit_generator.state = self.rng.bit_generator.state
        other.history = self.history.copy()
        other.val_history = self.val_history.copy()
        other.metadata = dict(self.metadata)
        if self.last_stats is not None:
            self.last_stats["dh_norms"]   # summarised now, so the shared stats drop their (T,B,H) copy of dh
        other.last_stats = self.last_stats   # read-only once made: sharing it is safe
        return other

    # Pickled (the app sends runs between its processes) without the scratch buffers and without
    # the strided view of the data, which pickle would copy whole: both are rebuilt.
    _DERIVED = ("_work", "_grad_flat", "_grads", "_grad_sq", "_block_starts", "_streams")

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        for name in self._DERIVED:
            state[name] = None
        return state

    def __setstate__(self, state: dict) -> None:
        self.__dict__.update(state)
        self._view_streams()

    def _view_streams(self) -> None:
        step = self.data.strides[0]
        self._streams = np.lib.stride_tricks.as_strided(   # (B, L): row b = data[b*L:(b+1)*L]
            self.data, shape=(self.batch_size, self.segment_length), strides=(self.segment_length * step, step),
            writeable=False)

    def share_text(self, data_ids: np.ndarray, val_ids: np.ndarray | None) -> None:
        """Use these arrays, equal to the trainer's own ids, instead of its copies: runs on one text
        in one process then hold it once."""
        if not np.array_equal(data_ids, self.data) or data_ids.dtype != self.data.dtype:
            raise ValueError("share_text needs ids equal to the trainer's own training ids")
        if (val_ids is None) != (self.val_ids is None) or (
                val_ids is not None and (val_ids.dtype != self.val_ids.dtype or not np.array_equal(val_ids, self.val_ids))):
            raise ValueError("share_text needs ids equal to the trainer's own validation ids")
        self.data, self.val_ids = data_ids, val_ids
        self._view_streams()
