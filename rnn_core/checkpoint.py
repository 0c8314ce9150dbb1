"""Checkpoints: one compressed .npz holding the whole training state, loaded without pickle.

Everything needed to resume bit-for-bit is inside: weights, optimizer state and step count,
vocabulary, hyperparameters, iteration, data position, hidden states, smoothed loss, the sampling
RNG's state, the training text (as ids), the histories and the app's metadata. The loader checks
every entry (names, shapes, dtypes, finiteness, ranges) before building anything; nothing in the
file is ever executed.
"""
from __future__ import annotations

import io
import json
import math

import numpy as np

from .history import BoundedHistory
from .limits import MAX_CORPUS_CHARS
from .model import PARAM_NAMES, VanillaRNN
from .trainer import HISTORY_COLUMNS, VAL_COLUMNS, Trainer
from .vocab import Vocab

FORMAT = "rnn-playground-checkpoint"
FORMAT_VERSION = 1
# Decompressed size cap: a small file must not expand into gigabytes (zip bomb).
MAX_UNPACKED_BYTES = 400 * 2**20

_OPT_SLOTS = {"adagrad": ("mem",), "sgd": (), "momentum": ("velocity",), "rmsprop": ("cache",), "adam": ("m", "v")}


def _json_seed(seed):
    """Seeds may be NumPy integers; JSON needs plain ints (None stays None)."""
    return None if seed is None else int(seed)


def _meta(trainer: Trainer) -> dict:
    m = trainer.model
    return {
        "format": FORMAT, "format_version": FORMAT_VERSION,
        "vocab_size": m.vocab_size, "hidden_size": m.hidden_size, "dtype": m.dtype.name, "model_seed": _json_seed(m.seed),
        "seq_length": trainer.seq_length, "batch_size": trainer.batch_size,
        "learning_rate": trainer.learning_rate, "clip": trainer.clip, "optimizer": trainer.optimizer_name,
        "optimizer_steps": trainer.optimizer.t, "seed": _json_seed(trainer.seed),
        "iteration": trainer.iteration, "position": trainer.position, "chars_seen": trainer.chars_seen,
        "smooth_loss": trainer.smooth_loss, "rng_state": trainer.rng.bit_generator.state,
        "metadata": trainer.metadata,
    }


def save_checkpoint(file, trainer: Trainer, vocab: Vocab) -> None:
    """Write the whole training state to ``file`` (a path or a binary file object)."""
    if vocab.size != trainer.model.vocab_size:
        raise ValueError(f"vocab has {vocab.size} characters but the model expects {trainer.model.vocab_size}")
    arrays = {
        "meta": np.array(json.dumps(_meta(trainer))),
        "vocab": np.array(vocab.chars),
        "data_ids": np.asarray(trainer.data),
        "hprev": trainer.hprev,
        "history": trainer.history.to_matrix(),
        "val_history": trainer.val_history.to_matrix(),
    }
    if trainer.val_ids is not None:
        arrays["val_ids"] = np.asarray(trainer.val_ids)
    for k in PARAM_NAMES:
        arrays[f"param_{k}"] = trainer.model.params[k]
        for slot in _OPT_SLOTS[trainer.optimizer_name]:
            arrays[f"opt_{slot}_{k}"] = trainer.optimizer.state[slot][k]
    np.savez_compressed(file, **arrays)


def checkpoint_bytes(trainer: Trainer, vocab: Vocab) -> bytes:
    buf = io.BytesIO()
    save_checkpoint(buf, trainer, vocab)
    return buf.getvalue()


class _Reader:
    """Typed access to the entries of an opened npz, with one clear error per problem."""

    def __init__(self, npz):
        self.npz = npz

    def get(self, key, shape=None, kinds="f", dtype=None):
        try:
            arr = self.npz[key]
        except ValueError as exc:
            if "pickle" not in str(exc):
                raise ValueError(f"not a valid checkpoint: entry {key!r} is unreadable ({exc})") from exc
            # Object arrays need pickle, which is refused.
            raise ValueError(f"not a valid checkpoint: entry {key!r} holds Python objects, which are never loaded") from exc
        except Exception as exc:
            raise ValueError(f"not a valid checkpoint: entry {key!r} is unreadable ({exc})") from exc
        if arr.dtype.kind not in kinds:
            raise ValueError(f"not a valid checkpoint: entry {key!r} has dtype {arr.dtype}, expected kind {kinds!r}")
        if dtype is not None and arr.dtype != dtype:
            raise ValueError(f"not a valid checkpoint: entry {key!r} has dtype {arr.dtype}, expected {dtype}")
        if shape is not None and arr.shape != tuple(shape):
            raise ValueError(f"not a valid checkpoint: entry {key!r} has shape {arr.shape}, expected {tuple(shape)}")
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ValueError(f"not a valid checkpoint: entry {key!r} contains NaN or infinite values")
        return arr


def _field(meta: dict, key: str, types):
    if key not in meta or isinstance(meta[key], bool) or not isinstance(meta[key], types):
        raise ValueError(f"not a valid checkpoint: field {key!r} is missing or has the wrong type")
    return meta[key]


def _seed(meta: dict, key: str):
    """A seed field: absent (0), null (fresh entropy) or a non-negative int, as np.random.default_rng takes."""
    seed = meta.get(key, 0)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or seed < 0):
        raise ValueError(f"not a valid checkpoint: field {key!r} must be a non-negative integer, got {seed!r}")
    return seed


def load_checkpoint(file):
    """-> (trainer, vocab). Raises ValueError with a clear message for anything that is not a
    complete, consistent checkpoint of this format."""
    try:
        npz = np.load(file, allow_pickle=False)
    except FileNotFoundError as exc:
        raise ValueError(f"no checkpoint file at {file}") from exc
    except Exception as exc:
        raise ValueError(f"not a valid checkpoint: the file is not a readable .npz archive ({type(exc).__name__})") from exc
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError("not a valid checkpoint: the file holds a single array, not an .npz archive")
    with npz:
        unpacked = sum(info.file_size for info in npz.zip.infolist())
        if unpacked > MAX_UNPACKED_BYTES:
            raise ValueError(f"not a valid checkpoint: it would unpack to {unpacked / 2**20:.0f} MB, "
                             f"more than the {MAX_UNPACKED_BYTES // 2**20} MB allowed")
        return _build(npz)


def _build(npz):
    r = _Reader(npz)
    try:
        meta = json.loads(str(r.get("meta", (), kinds="U")))
    except json.JSONDecodeError as exc:
        raise ValueError("not a valid checkpoint: its 'meta' entry is not valid JSON") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError("not a valid checkpoint: it was not written by RNN Playground (no format marker)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"unsupported checkpoint format version {meta.get('format_version')!r}; "
                         f"this version reads version {FORMAT_VERSION}")
    V = _field(meta, "vocab_size", int)
    H = _field(meta, "hidden_size", int)
    opt = _field(meta, "optimizer", str)
    if opt not in _OPT_SLOTS:
        raise ValueError(f"not a valid checkpoint: unknown optimizer {opt!r}")
    dtype_name = _field(meta, "dtype", str)
    if dtype_name not in ("float64", "float32"):
        raise ValueError(f"not a valid checkpoint: unsupported dtype {dtype_name!r}")
    B = _field(meta, "batch_size", int)

    expected = {"meta", "vocab", "data_ids", "hprev", "history", "val_history"}
    expected |= {f"param_{k}" for k in PARAM_NAMES}
    expected |= {f"opt_{s}_{k}" for s in _OPT_SLOTS[opt] for k in PARAM_NAMES}
    present = set(npz.files)
    optional = {"val_ids"}
    if expected - present:
        raise ValueError(f"not a valid checkpoint: missing entries {sorted(expected - present)}")
    if present - expected - optional:
        raise ValueError(f"not a valid checkpoint: unexpected entries {sorted(present - expected - optional)}")

    chars = str(r.get("vocab", (), kinds="U"))
    vocab = Vocab(chars)
    if vocab.size != V:
        raise ValueError(f"not a valid checkpoint: vocabulary has {vocab.size} characters, meta says {V}")

    model = VanillaRNN(V, H, seed=_seed(meta, "model_seed"), dtype=np.dtype(dtype_name))
    shapes = {"Wxh": (H, V), "Whh": (H, H), "Why": (V, H), "bh": (H,), "by": (V,)}
    for k in PARAM_NAMES:
        model.params[k][...] = r.get(f"param_{k}", shapes[k], dtype=model.dtype)

    data = r.get("data_ids", kinds="iu")
    if data.ndim != 1 or data.size > MAX_CORPUS_CHARS:
        raise ValueError(f"not a valid checkpoint: training data must be 1-D with at most {MAX_CORPUS_CHARS} ids")
    val = r.get("val_ids", kinds="iu") if "val_ids" in present else None
    trainer = Trainer(model, data, seq_length=_field(meta, "seq_length", int),
                      learning_rate=_field(meta, "learning_rate", (int, float)), batch_size=B,
                      clip=_field(meta, "clip", (int, float)), optimizer=opt, val_ids=val,
                      seed=_seed(meta, "seed"))
    for s in _OPT_SLOTS[opt]:
        for k in PARAM_NAMES:
            state = r.get(f"opt_{s}_{k}", shapes[k], dtype=model.dtype)
            if s in ("mem", "cache", "v") and (state < 0).any():
                raise ValueError(f"not a valid checkpoint: optimizer state {s} of {k} has negative entries")
            trainer.optimizer.state[s][k][...] = state
    trainer.optimizer.t = _field(meta, "optimizer_steps", int)
    if trainer.optimizer.t < 0:
        raise ValueError("not a valid checkpoint: optimizer_steps must be >= 0")
    trainer.hprev[...] = r.get("hprev", (B, H), dtype=model.dtype)
    if np.abs(trainer.hprev).max(initial=0) > 1:
        raise ValueError("not a valid checkpoint: hidden states lie outside [-1, 1]")
    trainer.iteration = _field(meta, "iteration", int)
    trainer.position = _field(meta, "position", int)
    trainer.chars_seen = _field(meta, "chars_seen", int)
    smooth = _field(meta, "smooth_loss", (int, float))
    if trainer.iteration < 0 or trainer.chars_seen < 0 or not 0 <= trainer.position < trainer.segment_length:
        raise ValueError("not a valid checkpoint: iteration, position or characters seen out of range")
    if not math.isfinite(smooth):
        raise ValueError("not a valid checkpoint: smoothed loss is not finite")
    trainer.smooth_loss = float(smooth)
    try:
        trainer.rng.bit_generator.state = _field(meta, "rng_state", dict)
    except (TypeError, ValueError, KeyError) as exc:
        raise ValueError("not a valid checkpoint: the random generator state is malformed") from exc
    try:
        trainer.history = BoundedHistory.from_matrix(HISTORY_COLUMNS, r.get("history"))
        trainer.val_history = BoundedHistory.from_matrix(VAL_COLUMNS, r.get("val_history"), capacity=4_000)
    except ValueError as exc:
        raise ValueError(f"not a valid checkpoint: {exc}") from exc
    metadata = meta.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ValueError("not a valid checkpoint: metadata must be a mapping")
    trainer.metadata = metadata
    return trainer, vocab


def load_checkpoint_bytes(data: bytes):
    if not data:
        raise ValueError("not a valid checkpoint: the file is empty")
    return load_checkpoint(io.BytesIO(data))



