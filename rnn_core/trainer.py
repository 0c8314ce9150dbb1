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
from .optim import make_optimizer

HISTORY_COLUMNS = ("iteration", "loss", "smooth_loss", "clip_fraction", "learning_rate") + tuple(
    f"grad_norm_{k}" for k in PARAM_NAMES)
VAL_COLUMNS = ("iteration", "val_bits_per_char")


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
        self.optimizer = make_optimizer(optimizer, model.params)
        self.segment_length = n // B
        self._offsets = (np.arange(B) * self.segment_length)[:, None] + np.arange(T)[None, :]   # (B,T)
        self.position = 0
        self.hprev = np.zeros((B, model.hidden_size), dtype=model.dtype)
        self.iteration = 0
        self.chars_seen = 0
        self.smooth_loss = -math.log(1.0 / model.vocab_size) * T
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
            self.optimizer = make_optimizer(name, self.model.params)

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

    def current_window(self):
        """(inputs (T,), targets (T,), h0 (H,)) of stream 0 for the next step, for the views."""
        p, reset = self._window_start()
        idx = self._offsets[0] + p
        h0 = np.zeros(self.model.hidden_size, dtype=self.model.dtype) if reset else self.hprev[0].copy()
        return self.data[idx].astype(np.int64), self.data[idx + 1].astype(np.int64), h0

    def step(self, n: int = 1) -> float:
        """Run ``n`` iterations; returns the last loss. DivergenceError leaves the state as it was
        before the failing iteration."""
        check_int("n", n, 0, 10**9)
        loss = float("nan")
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
        p, reset = self._window_start()
        # A reset starts from zeros without touching self.hprev: a diverging step must leave it as it was.
        h0 = np.zeros_like(self.hprev) if reset else self.hprev
        idx = self._offsets + p
        model = self.model
        with np.errstate(over="ignore", invalid="ignore"):   # a diverging step is reported below
            loss, grads, hs, _, dh, _ = model._loss_and_grads(self.data[idx], self.data[idx + 1], h0)
        if not math.isfinite(loss):
            raise self._diverged("loss", loss)
        if not all(np.isfinite(g.sum()) for g in grads.values()):
            raise self._diverged("gradient", loss)
        clip = self._clip
        norms, clipped, total = {}, 0, 0
        for k, g in grads.items():
            norms[k] = float(np.sqrt(np.dot(g.ravel(), g.ravel())))
            clipped += int(np.count_nonzero(np.abs(g) > clip))
            total += g.size
            np.clip(g, -clip, clip, out=g)
        deltas, new_state = self.optimizer.propose(grads, self._lr)
        if not all(np.isfinite(d.sum()) for d in deltas.values()):
            raise self._diverged("update", loss)
        self.optimizer.commit(model.params, deltas, new_state)
        # Commit the rest of the state only now that the step is known to be finite.
        self.hprev[...] = hs[-1]
        self.position = p + self.seq_length
        self.iteration += 1
        self.chars_seen += self.batch_size * self.seq_length
        self.smooth_loss = self.smooth_loss * 0.999 + loss * 0.001
        clip_fraction = clipped / total
        dh_norms = np.sqrt(np.einsum("tbh,tbh->t", dh, dh))
        self.last_stats = {"loss": loss, "grad_norms": norms, "clip_fraction": clip_fraction,
                           "dh_norms": dh_norms, "step_time": time.perf_counter() - t0}
        self.history.append((self.iteration, loss, self.smooth_loss, clip_fraction, self._lr,
                             *(norms[k] for k in PARAM_NAMES)))
        return loss

    def validate(self, max_chars: int | None = 20_000) -> float | None:
        """Validation loss in bits per character on (the first ``max_chars`` of) val_ids, recorded
        in val_history; None when there is no validation text."""
        if self.val_ids is None:
            return None
        ids = self.val_ids if max_chars is None else self.val_ids[:max_chars]
        bits = self.model.evaluate(ids) / math.log(2)
        self.val_history.append((self.iteration, bits))
        return bits

    def sample(self, n: int, **kwargs) -> np.ndarray:
        """A sample from the current model drawn with the trainer's own RNG (saved in checkpoints)."""
        kwargs.setdefault("rng", self.rng)
        return self.model.sample(n, **kwargs)

    def clone(self) -> "Trainer":
        """An independent copy of the whole training state (the read-only data arrays are shared)."""
        other = Trainer.__new__(Trainer)
        other.__dict__.update(self.__dict__)
        other.model = self.model.copy()
        other.optimizer = make_optimizer(self.optimizer.name, other.model.params)
        other.optimizer.t = self.optimizer.t
        for slot, arrays in self.optimizer.state.items():
            for k, a in arrays.items():
                other.optimizer.state[slot][k][...] = a
        other.hprev = self.hprev.copy()
        other.rng = np.random.default_rng()
        other.rng.bit_generator.state = self.rng.bit_generator.state
        other.history = BoundedHistory.from_matrix(self.history.columns, self.history.to_matrix())
        other.val_history = BoundedHistory.from_matrix(self.val_history.columns, self.val_history.to_matrix(),
                                                       self.val_history.capacity)
        other.metadata = dict(self.metadata)
        other.last_stats = None if self.last_stats is None else dict(self.last_stats)
        return other
