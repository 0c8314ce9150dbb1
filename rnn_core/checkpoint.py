"""Checkpoints: one compressed .npz holding the whole training state, loaded without pickle.

Everything needed to resume bit-for-bit is inside: weights, optimizer state and step count,
vocabulary, hyperparameters, iteration, data position, hidden states, smoothed loss, the sampling
RNG's state, the training text (as ids), the histories and the app's metadata. The loader counts
the archive's entries from its zip directory before NumPy reads that directory (a checkpoint has at
most MOST_ENTRIES; more than MAX_ENTRIES is refused), then checks every entry (names, shapes, dtypes, finiteness, ranges) before building anything, sizes from each
entry's .npy header before the entry is read, so a small file cannot make it allocate more than the
limits in rnn_core.limits allow; every string must be valid Unicode text and every number lie in its
range. Nothing in the file is ever executed, and every refusal is a ValueError "not a valid
checkpoint: ..." (or "unsupported checkpoint format version ...").
"""
from __future__ import annotations

import io
import json
import math
import os
import struct
import zipfile

import numpy as np

from .history import BoundedHistory
from .limits import (MAX_BATCH_SIZE, MAX_CHARS_SEEN, MAX_CORPUS_CHARS, MAX_HIDDEN_SIZE, MAX_ITERATION,
                     MAX_METADATA_CHARS, MAX_METADATA_STRING, MAX_SEED, MAX_SEQ_LENGTH, MAX_VOCAB_SIZE,
                     check_float, check_int)
from .model import PARAM_NAMES, VanillaRNN
from .optim import OPTIMIZER_SLOTS
from .trainer import HISTORY_COLUMNS, VAL_COLUMNS, Trainer
from .vocab import Vocab

FORMAT = "rnn-playground-checkpoint"
FORMAT_VERSION = 1
# Decompressed size cap: a small file must not expand into gigabytes (zip bomb).
MAX_UNPACKED_BYTES = 400 * 2**20

_OPT_SLOTS = OPTIMIZER_SLOTS
# The entries of a checkpoint: these, "val_ids" when there is a validation text, and per parameter
# "param_<name>" plus one "opt_<slot>_<name>" per slot of the optimizer.
_ENTRIES = ("meta", "vocab", "data_ids", "hprev", "history", "val_history")
_OPTIONAL_ENTRIES = ("val_ids", "app_state")
# "app_state": an application's own 1-D array of the model's float dtype, saved and checked (finite,
# its length at most MAX_APP_STATE_VALUES) but not interpreted here; the app checks what it means
# (RNN Playground: the run's timeline of snapshots). Stored without compression: trained float64
# weights and optimizer state deflate by a few percent only, at a cost of milliseconds per megabyte.
APP_STATE = "app_state"
MAX_APP_STATE_VALUES = 4 * 2**20
MOST_ENTRIES = (len(_ENTRIES) + len(_OPTIONAL_ENTRIES)
                + len(PARAM_NAMES) * (1 + max(len(slots) for slots in _OPT_SLOTS.values())))   # 23 (Adam)
# An archive with more entries is refused before NumPy reads its directory: zipfile keeps an object
# per entry, so 200,000 empty members in a 10 MB upload would cost about 100 MB. Room to spare.
MAX_ENTRIES = 64


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


def save_checkpoint(file, trainer: Trainer, vocab: Vocab, app_state: np.ndarray | None = None) -> None:
    """Write the whole training state to ``file`` (a path or a binary file object), and
    ``app_state`` (n,) of the model's dtype, finite, n <= MAX_APP_STATE_VALUES, if given."""
    if vocab.size != trainer.model.vocab_size:
        raise ValueError(f"vocab has {vocab.size} characters but the model expects {trainer.model.vocab_size}")
    text = json.dumps(_meta(trainer), ensure_ascii=False)
    # Only what load_checkpoint accepts is written: a saved run must always open again.
    if len(text) > MAX_METADATA_CHARS:
        raise ValueError(f"metadata takes {len(text)} characters as JSON; at most {MAX_METADATA_CHARS} can be saved")
    _check_json(json.loads(text))
    arrays = {
        "meta": np.array(text),
        "vocab": np.array(vocab.chars),
        "data_ids": np.asarray(trainer.data),
        "hprev": trainer.hprev,
        "history": trainer.history.to_matrix(),
        "val_history": trainer.val_history.to_matrix(),
    }
    if trainer.val_ids is not None:
        arrays["val_ids"] = np.asarray(trainer.val_ids)
    if app_state is not None:
        arrays[APP_STATE] = _checked_app_state(app_state, trainer.model.dtype)
    for k in PARAM_NAMES:
        arrays[f"param_{k}"] = trainer.model.params[k]
        for slot in _OPT_SLOTS[trainer.optimizer_name]:
            arrays[f"opt_{slot}_{k}"] = trainer.optimizer.state[slot][k]
    _write_npz(file, arrays)


# Deflate at level 1, not np.savez_compressed's 6: much faster for a slightly larger file (the app
# saves a training run every few seconds; bench.costs measures both). Any .npz reader opens it.
COMPRESS_LEVEL = 1


def _checked_app_state(values, dtype) -> np.ndarray:
    arr = np.asarray(values)
    if arr.ndim != 1 or arr.dtype != dtype:
        raise ValueError(f"app_state must be 1-D of the model's dtype {dtype}, got shape {arr.shape} dtype {arr.dtype}")
    if arr.shape[0] > MAX_APP_STATE_VALUES:
        raise ValueError(f"app_state holds {arr.shape[0]} values; at most {MAX_APP_STATE_VALUES} can be saved")
    if not np.isfinite(arr).all():
        raise ValueError("app_state must hold finite numbers only")
    return arr


def _write_npz(file, arrays: dict) -> None:
    """The .npz layout np.savez writes (one name.npy member per array), deflated at COMPRESS_LEVEL
    (the app's state stored as it is: see APP_STATE)."""
    with zipfile.ZipFile(file, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=COMPRESS_LEVEL,
                         allowZip64=True) as archive:
        for name, value in arrays.items():
            kind = zipfile.ZIP_STORED if name == APP_STATE else zipfile.ZIP_DEFLATED
            with archive.open(zipfile.ZipInfo(f"{name}.npy") if kind == zipfile.ZIP_STORED else f"{name}.npy",
                              "w", force_zip64=True) as member:
                np.lib.format.write_array(member, np.asanyarray(value), allow_pickle=False)


def checkpoint_bytes(trainer: Trainer, vocab: Vocab, app_state: np.ndarray | None = None) -> bytes:
    buf = io.BytesIO()
    save_checkpoint(buf, trainer, vocab, app_state)
    return buf.getvalue()


class _Refused(ValueError):
    """A problem found while parsing 'meta', reported as 'its 'meta' entry <message>'."""


def _brief(value, limit: int = 60) -> str:
    """repr() of a value from the file, cut short: error messages must not repeat a hostile file."""
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _bad_code_point(codes: np.ndarray):
    """The first code point that is no Unicode scalar value (a surrogate or above U+10FFFF), or None."""
    bad = (codes > 0x10FFFF) | ((codes >= 0xD800) & (codes <= 0xDFFF))
    return int(codes[np.argmax(bad)]) if bad.any() else None


class _Reader:
    """Typed access to the entries of an opened npz, with one clear error per problem. Every entry's
    shape, dtype and size are checked from its .npy header before the array is read, so no entry
    can make the loader allocate more than the limits allow."""

    def __init__(self, npz):
        self.npz = npz

    def _unreadable(self, key, exc):
        reason = str(exc)   # NumPy's message may quote the file's header: keep it short
        return ValueError(f"not a valid checkpoint: entry {key!r} is unreadable "
                          f"({reason if len(reason) <= 120 else reason[:117] + '...'})")

    def header(self, key):
        """(shape, dtype, bytes after the header) of entry ``key``, from its .npy header alone."""
        fmt = np.lib.format
        try:
            info = self.npz.zip.getinfo(f"{key}.npy")
            with self.npz.zip.open(info) as f:
                version = fmt.read_magic(f)
                if version == (1, 0):
                    shape, _, dtype = fmt.read_array_header_1_0(f)
                elif version == (2, 0):
                    shape, _, dtype = fmt.read_array_header_2_0(f)
                else:
                    raise ValueError(f"unsupported .npy format version {version}")
                available = info.file_size - f.tell()
        except KeyError as exc:
            raise self._unreadable(key, "it is not in the archive") from exc
        except Exception as exc:
            raise self._unreadable(key, exc) from exc
        if dtype.hasobject:
            # Object arrays need pickle, which is refused.
            raise ValueError(f"not a valid checkpoint: entry {key!r} holds Python objects, which are never loaded")
        if not all(isinstance(n, int) and n >= 0 for n in shape):
            raise self._unreadable(key, f"its header has the shape {_brief(shape)}")
        return shape, dtype, available

    def check(self, key, shape=None, kinds="f", dtype=None, max_len=None, max_chars=None, columns=None,
              max_rows=None):
        """Validate entry ``key`` from its header; returns its shape. ``max_len``: a 1-D entry's
        longest length; ``max_chars``: a string's; ``columns``/``max_rows``: a 2-D table's most."""
        found, dt, available = self.header(key)
        if dt.kind not in kinds:
            raise ValueError(f"not a valid checkpoint: entry {key!r} has dtype {dt}, expected kind {kinds!r}")
        if dtype is not None and dt != dtype:
            raise ValueError(f"not a valid checkpoint: entry {key!r} has dtype {dt}, expected {dtype}")
        if shape is not None and found != tuple(shape):
            raise ValueError(f"not a valid checkpoint: entry {key!r} has shape {found}, expected {tuple(shape)}")
        if max_len is not None:
            if len(found) != 1:
                raise ValueError(f"not a valid checkpoint: entry {key!r} has shape {found}, expected 1-D")
            if found[0] > max_len:
                what = "ids" if "i" in kinds or "u" in kinds else "values"
                raise ValueError(f"not a valid checkpoint: entry {key!r} holds {found[0]} {what}, "
                                 f"more than the {max_len} allowed")
        if max_chars is not None and dt.itemsize // 4 > max_chars:
            raise ValueError(f"not a valid checkpoint: entry {key!r} holds {dt.itemsize // 4} characters, "
                             f"more than the {max_chars} allowed")
        # A table may lack trailing columns (a history written before they existed): from_matrix decides.
        if columns is not None and (len(found) != 2 or not 1 <= found[1] <= columns):
            raise ValueError(f"not a valid checkpoint: {key} must have shape (n, {columns}), got {found}")
        if max_rows is not None and found[0] > max_rows:
            raise ValueError(f"not a valid checkpoint: {key} has {found[0]} rows, more than its capacity {max_rows}")
        # Whatever the header claims, NumPy allocates it before reading: it must be in the archive.
        needed = math.prod(found) * dt.itemsize
        if needed > available:
            raise ValueError(f"not a valid checkpoint: entry {key!r} is truncated: its header promises "
                             f"{needed} bytes, the archive holds {available}")
        return found

    def get(self, key, shape=None, kinds="f", dtype=None, **limits):
        """The array of entry ``key`` after ``check``; floats finite, strings valid Unicode."""
        self.check(key, shape, kinds, dtype, **limits)
        try:
            arr = self.npz[key]
        except ValueError as exc:
            if "pickle" not in str(exc):
                raise self._unreadable(key, exc) from exc
            raise ValueError(f"not a valid checkpoint: entry {key!r} holds Python objects, which are never loaded") from exc
        except Exception as exc:
            raise self._unreadable(key, exc) from exc
        if arr.dtype.kind == "f" and not np.isfinite(arr).all():
            raise ValueError(f"not a valid checkpoint: entry {key!r} contains NaN or infinite values")
        if arr.dtype.kind == "U" and arr.size:
            # NumPy turns any 32-bit value into a str, even one Python cannot represent: check first.
            order = arr.dtype.byteorder if arr.dtype.byteorder in "<>" else "="
            bad = _bad_code_point(np.ascontiguousarray(arr).reshape(-1).view(f"{order}u4"))
            if bad is not None:
                raise ValueError(f"not a valid checkpoint: entry {key!r} is not valid text "
                                 f"(it holds the code point {bad:#x}, which is no Unicode character)")
        return arr


def _field(meta: dict, key: str, types):
    if key not in meta or isinstance(meta[key], bool) or not isinstance(meta[key], types):
        raise ValueError(f"not a valid checkpoint: field {key!r} is missing or has the wrong type")
    return meta[key]


def _int_field(meta: dict, key: str, lo: int, hi: int) -> int:
    """A required integer field in [lo, hi]; the message names the field, the range and the value."""
    return check_int(key, _field(meta, key, int), lo, hi)


def _seed(meta: dict, key: str):
    """A seed field: absent (0), null (fresh entropy) or an integer in [0, MAX_SEED], as
    np.random.default_rng takes."""
    seed = meta.get(key, 0)
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed <= MAX_SEED):
        raise ValueError(f"not a valid checkpoint: field {key!r} must be a non-negative integer "
                         f"up to {MAX_SEED}, got {_brief(seed)}")
    return seed


# ---------------------------------------------------------------- the 'meta' JSON
# An integer in the meta needs at most 39 digits (the generator's 128-bit state); Python would
# spend quadratic time on, and json refuses with an internal message, anything much longer.
_MAX_INT_DIGITS = 40
_MAX_DEPTH = 32
# The smoothed loss per window: at most ~745 nats per character (-ln of float64's smallest
# probability) times MAX_SEQ_LENGTH characters; a bound with room to spare.
_MAX_SMOOTH_LOSS = 1e6


def _json_int(text: str) -> int:
    digits = len(text) - text.startswith("-")
    if digits > _MAX_INT_DIGITS:
        raise _Refused(f"holds an integer of {digits} digits; at most {_MAX_INT_DIGITS} are allowed")
    return int(text)


def _json_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise _Refused(f"holds the number {text[:20]}{'...' if len(text) > 20 else ''}, which is too large")
    return value


def _json_constant(text: str):
    raise _Refused(f"holds {text}, which is not a finite number")


def _parse_meta(text: str) -> object:
    try:
        return json.loads(text, parse_int=_json_int, parse_float=_json_float, parse_constant=_json_constant)
    except _Refused as exc:
        raise ValueError(f"not a valid checkpoint: its 'meta' entry {exc}") from exc
    except RecursionError as exc:
        raise ValueError("not a valid checkpoint: its 'meta' entry is nested too deeply") from exc
    except ValueError as exc:   # JSONDecodeError
        raise ValueError("not a valid checkpoint: its 'meta' entry is not valid JSON") from exc


def _check_text(text: str, where: str) -> None:
    if len(text) > MAX_METADATA_STRING:
        raise ValueError(f"{where} has {len(text)} characters; at most {MAX_METADATA_STRING} are allowed")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(f"{where} is not valid text (it holds an unpaired surrogate "
                         f"U+{ord(text[exc.start]):04X})") from None


def _check_json(value, path: str = "meta", depth: int = 0) -> None:
    """Every string valid Unicode text of at most MAX_METADATA_STRING characters, every number
    finite and short, nesting at most _MAX_DEPTH deep: what every page can show and every save
    can write. ``value`` is parsed JSON; ``path`` names it in messages (meta.metadata.app...)."""
    where = f"field {_brief(path, 80)}"
    if depth > _MAX_DEPTH:
        raise ValueError(f"{where} is nested more than {_MAX_DEPTH} levels deep")
    if isinstance(value, str):
        _check_text(value, where)
    elif isinstance(value, dict):
        for key, item in value.items():
            _check_text(key, f"a key of {where}")
            _check_json(item, f"{path}.{key}", depth + 1)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_json(item, f"{path}[{i}]", depth + 1)
    elif isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{where} is {value}, not a finite number")
    elif isinstance(value, int) and abs(value) >= 10**_MAX_INT_DIGITS:
        raise ValueError(f"{where} has more than {_MAX_INT_DIGITS} digits")


def _rng_state(meta: dict) -> dict:
    """The sampling generator's state: NumPy's PCG64 state dict, every field in its range."""
    return check_rng_state(_field(meta, "rng_state", dict))


def check_rng_state(state) -> dict:
    """``state`` if it is NumPy's PCG64 state dict with every field in its range (parsed JSON from
    a file: an app's own saved generator states use this too); otherwise ValueError."""
    inner = state.get("state") if isinstance(state, dict) else None
    ok = (set(state) == {"bit_generator", "state", "has_uint32", "uinteger"}
          and state["bit_generator"] == "PCG64" and isinstance(inner, dict) and set(inner) == {"state", "inc"}
          and all(type(inner[k]) is int and 0 <= inner[k] < 2**128 for k in ("state", "inc"))
          and state["has_uint32"] in (0, 1) and type(state["has_uint32"]) is int
          and type(state["uinteger"]) is int and 0 <= state["uinteger"] < 2**32) if inner is not None else False
    if not ok:
        raise ValueError("not a valid checkpoint: the random generator state is malformed "
                         "(expected NumPy's PCG64 state)")
    return state


# Messages that already say what is wrong with the file; anything else gets this prefix.
_OWN_MESSAGES = ("not a valid checkpoint", "unsupported checkpoint format version")


# ---------------------------------------------------------------- counting a zip's entries
# The records zipfile reads to find its central directory (APPNOTE.TXT 4.3.12-4.3.16).
_END = struct.Struct("<4s4H2LH")            # end of central directory record, 22 bytes
_END_SIGNATURE = b"PK\x05\x06"
_ZIP64_LOCATOR = struct.Struct("<4sLQL")     # ZIP64 end of central directory locator, 20 bytes
_ZIP64_END = struct.Struct("<4sQ2H2L4Q")     # ZIP64 end of central directory record, 56 bytes
_CENTRAL_HEADER = 46                         # fixed part of a central directory file header
_CENTRAL_SIGNATURE = b"PK\x01\x02"
_MAX_COMMENT = 0xFFFF


def _count_entries(f) -> int | None:
    """The number of entries zipfile would read from the zip archive in the seekable binary file
    ``f``, or None when ``f`` holds no end of central directory record (no zip: np.load says what it
    is). Found as zipfile finds them (the end record is the last 22 bytes, or is searched for in the
    last 64 KiB + 22 when the archive has a comment; a ZIP64 locator right before it points to the
    ZIP64 end record), then counted by walking the directory's headers one at a time, since zipfile
    reads every header in the directory's size whatever count the end record claims. Nothing but one
    header is held in memory at a time."""
    size = f.seek(0, io.SEEK_END)
    if size < _END.size:
        return None
    tail_start = max(0, size - _END.size - _MAX_COMMENT)
    f.seek(tail_start)
    tail = f.read()
    if tail[-_END.size:-_END.size + 4] == _END_SIGNATURE and tail[-2:] == b"\0\0":
        at = len(tail) - _END.size
    else:
        at = tail.rfind(_END_SIGNATURE)
        if at < 0 or at + _END.size > len(tail):
            return None
    location = tail_start + at
    directory_size = _END.unpack_from(tail, at)[5]
    start = location - directory_size
    if location >= _ZIP64_LOCATOR.size + _ZIP64_END.size:
        f.seek(location - _ZIP64_LOCATOR.size)
        signature, disk, _, disks = _ZIP64_LOCATOR.unpack(f.read(_ZIP64_LOCATOR.size))
        if signature == b"PK\x06\x07":
            if disk != 0 or disks > 1:
                return None                    # a multi-disk archive: zipfile refuses it
            f.seek(location - _ZIP64_LOCATOR.size - _ZIP64_END.size)
            record = _ZIP64_END.unpack(f.read(_ZIP64_END.size))
            if record[0] == b"PK\x06\x06":
                directory_size = record[8]
                start = location - _ZIP64_LOCATOR.size - _ZIP64_END.size - directory_size
    if start < 0:
        return None
    count = walked = 0
    f.seek(start)
    while walked < directory_size:
        header = f.read(_CENTRAL_HEADER)
        if len(header) != _CENTRAL_HEADER or header[:4] != _CENTRAL_SIGNATURE:
            break                              # zipfile refuses the directory here
        count += 1
        rest = sum(struct.unpack_from("<3H", header, 28))   # name, extra field and comment lengths
        walked += _CENTRAL_HEADER + rest
        f.seek(rest, io.SEEK_CUR)
    return count


def _entries_of(file) -> int | None:
    """``_count_entries`` of a path or a file object (whose position is left where it was); None
    when the file cannot be read this way (np.load then reports why)."""
    try:
        if isinstance(file, (str, bytes, os.PathLike)):
            with open(file, "rb") as f:
                return _count_entries(f)
        position = file.tell()
        try:
            return _count_entries(file)
        finally:
            file.seek(position)
    except (OSError, AttributeError, TypeError, ValueError):
        return None


def load_checkpoint(file, with_app_state: bool = False):
    """-> (trainer, vocab), or (trainer, vocab, app_state (n,) or None) with ``with_app_state``.
    Raises ValueError with a clear message for anything that is not a complete, consistent
    checkpoint of this format (every message starts "not a valid checkpoint: ...", except for a
    file of an unsupported format version)."""
    n = _entries_of(file)
    if n is not None and n > MAX_ENTRIES:
        raise ValueError(f"not a valid checkpoint: it holds {n} entries, at most {MAX_ENTRIES} are allowed")
    try:
        npz = np.load(file, allow_pickle=False)
    except FileNotFoundError as exc:
        raise ValueError(f"no checkpoint file at {file}") from exc
    except Exception as exc:
        raise ValueError(f"not a valid checkpoint: the file is not a readable .npz archive ({type(exc).__name__})") from exc
    if not isinstance(npz, np.lib.npyio.NpzFile):
        raise ValueError("not a valid checkpoint: the file holds a single array, not an .npz archive")
    with npz:
        try:
            unpacked = sum(info.file_size for info in npz.zip.infolist())
            if unpacked > MAX_UNPACKED_BYTES:
                raise ValueError(f"not a valid checkpoint: it would unpack to {unpacked / 2**20:.0f} MB, "
                                 f"more than the {MAX_UNPACKED_BYTES // 2**20} MB allowed")
            trainer, vocab, app_state = _build(npz)
            return (trainer, vocab, app_state) if with_app_state else (trainer, vocab)
        except ValueError as exc:
            if str(exc).startswith(_OWN_MESSAGES):
                raise
            # A refusal of the model's or trainer's constructor: the file's value is out of range.
            raise ValueError(f"not a valid checkpoint: {exc}") from exc
        except Exception as exc:   # a malformed field no check anticipated: still just a bad file
            raise ValueError(f"not a valid checkpoint: it could not be read ({type(exc).__name__})") from exc


def _build(npz):
    r = _Reader(npz)
    meta = _parse_meta(str(r.get("meta", (), kinds="U", max_chars=MAX_METADATA_CHARS)))
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise ValueError("not a valid checkpoint: it was not written by RNN Playground (no format marker)")
    if meta.get("format_version") != FORMAT_VERSION:
        raise ValueError(f"unsupported checkpoint format version {_brief(meta.get('format_version'))}; "
                         f"this version reads version {FORMAT_VERSION}")
    _check_json(meta)
    V = _int_field(meta, "vocab_size", 1, MAX_VOCAB_SIZE)
    H = _int_field(meta, "hidden_size", 1, MAX_HIDDEN_SIZE)
    opt = _field(meta, "optimizer", str)
    if opt not in _OPT_SLOTS:
        raise ValueError(f"not a valid checkpoint: unknown optimizer {_brief(opt)}")
    dtype_name = _field(meta, "dtype", str)
    if dtype_name not in ("float64", "float32"):
        raise ValueError(f"not a valid checkpoint: unsupported dtype {_brief(dtype_name)}")
    B = _int_field(meta, "batch_size", 1, MAX_BATCH_SIZE)
    T = _int_field(meta, "seq_length", 1, MAX_SEQ_LENGTH)

    expected = set(_ENTRIES)
    expected |= {f"param_{k}" for k in PARAM_NAMES}
    expected |= {f"opt_{s}_{k}" for s in _OPT_SLOTS[opt] for k in PARAM_NAMES}
    present = set(npz.files)
    optional = set(_OPTIONAL_ENTRIES)
    if expected - present:
        raise ValueError(f"not a valid checkpoint: missing entries {sorted(expected - present)}")
    if present - expected - optional:
        unexpected = sorted(present - expected - optional)
        shown = ", ".join(_brief(k, 40) for k in unexpected[:5]) + (" ..." if len(unexpected) > 5 else "")
        raise ValueError(f"not a valid checkpoint: unexpected entries [{shown}]")

    chars = str(r.get("vocab", (), kinds="U", max_chars=MAX_VOCAB_SIZE))
    vocab = Vocab(chars)
    if vocab.size != V:
        raise ValueError(f"not a valid checkpoint: vocabulary has {vocab.size} characters, meta says {V}")

    # The text: both parts' sizes from their headers before either is read.
    n_data = r.check("data_ids", kinds="iu", max_len=MAX_CORPUS_CHARS)[0]
    n_val = r.check("val_ids", kinds="iu", max_len=MAX_CORPUS_CHARS)[0] if "val_ids" in present else 0
    if n_data + n_val > MAX_CORPUS_CHARS:
        raise ValueError(f"not a valid checkpoint: entries 'data_ids' and 'val_ids' hold {n_data + n_val} ids "
                         f"together, more than the {MAX_CORPUS_CHARS} characters a text may have")

    model = VanillaRNN(V, H, seed=_seed(meta, "model_seed"), dtype=np.dtype(dtype_name))
    shapes = {"Wxh": (H, V), "Whh": (H, H), "Why": (V, H), "bh": (H,), "by": (V,)}
    for k in PARAM_NAMES:
        model.params[k][...] = r.get(f"param_{k}", shapes[k], dtype=model.dtype)

    data = r.get("data_ids", kinds="iu")
    val = r.get("val_ids", kinds="iu") if "val_ids" in present else None
    trainer = Trainer(model, data, seq_length=T,
                      learning_rate=_field(meta, "learning_rate", (int, float)), batch_size=B,
                      clip=_field(meta, "clip", (int, float)), optimizer=opt, val_ids=val,
                      seed=_seed(meta, "seed"))
    for s in _OPT_SLOTS[opt]:
        for k in PARAM_NAMES:
            state = r.get(f"opt_{s}_{k}", shapes[k], dtype=model.dtype)
            if s in ("mem", "cache", "v") and (state < 0).any():
                raise ValueError(f"not a valid checkpoint: optimizer state {s} of {k} has negative entries")
            trainer.optimizer.state[s][k][...] = state
    trainer.optimizer.t = _int_field(meta, "optimizer_steps", 0, MAX_ITERATION)
    trainer.hprev[...] = r.get("hprev", (B, H), dtype=model.dtype)
    if np.abs(trainer.hprev).max(initial=0) > 1:
        raise ValueError("not a valid checkpoint: hidden states lie outside [-1, 1]")
    trainer.iteration = _int_field(meta, "iteration", 0, MAX_ITERATION)
    trainer.position = _int_field(meta, "position", 0, trainer.segment_length - 1)
    trainer.chars_seen = _int_field(meta, "chars_seen", 0, MAX_CHARS_SEEN)
    trainer.smooth_loss = check_float("smooth_loss", _field(meta, "smooth_loss", (int, float)), 0.0, _MAX_SMOOTH_LOSS)
    try:
        trainer.rng.bit_generator.state = _rng_state(meta)
    except (TypeError, ValueError, KeyError, OverflowError) as exc:
        if str(exc).startswith(_OWN_MESSAGES):
            raise
        raise ValueError("not a valid checkpoint: the random generator state is malformed") from exc
    tables = {}
    for key, columns, history in (("history", HISTORY_COLUMNS, trainer.history),
                                  ("val_history", VAL_COLUMNS, trainer.val_history)):
        matrix = r.get(key, columns=len(columns), max_rows=history.capacity)
        its = matrix[:, 0]
        if its.size and (its.min() < 0 or its.max() > MAX_ITERATION):
            raise ValueError(f"not a valid checkpoint: {key} has iterations outside 0..{MAX_ITERATION}")
        tables[key] = BoundedHistory.from_matrix(columns, matrix, capacity=history.capacity)
    trainer.history, trainer.val_history = tables["history"], tables["val_history"]
    metadata = meta.get("metadata", {})
    if not isinstance(metadata, dict):
        raise ValueError("not a valid checkpoint: metadata must be a mapping")
    trainer.metadata = metadata
    app_state = None
    if APP_STATE in present:
        app_state = r.get(APP_STATE, dtype=model.dtype, max_len=MAX_APP_STATE_VALUES)
    return trainer, vocab, app_state


def load_checkpoint_bytes(data: bytes, with_app_state: bool = False):
    if not data:
        raise ValueError("not a valid checkpoint: the file is empty")
    return load_checkpoint(io.BytesIO(data), with_app_state=with_app_state)



