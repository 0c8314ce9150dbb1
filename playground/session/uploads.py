"""Files in and out of the app, as pure functions: user text for training, checkpoint names, CSV.

No streamlit here, so the Data and Save & load pages' logic is tested without a server. Every
rejection is a ValueError whose message is shown to the user as it is.
"""
from __future__ import annotations

import io
import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from playground.runs.run import Run
from playground.views.textviews import count
from rnn_core.corpora import corpus_summary, text_from_bytes, train_val_split, validate_corpus
from rnn_core.trainer import bits_per_char

MAX_LABEL_CHARS = 40
PASTED_LABEL = "pasted text"
PREVIEW_CHARS = 500


@dataclass(frozen=True)
class AcceptedText:
    """A user text that passed every check for the draft settings, ready to become a run."""

    text: str
    label: str
    summary: dict     # corpus_summary(text): length, vocab_size, chars, preview, unigram_bits_per_char


def sentence(exc: Exception) -> str:
    """An error message as a sentence: first letter upper-case, ending with a full stop."""
    text = str(exc).strip() or type(exc).__name__
    text = text[0].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def safe_label(name: str, fallback: str = "your text") -> str:
    """A short display label from a file name: the stem, only letters, digits, space and ._-.

    Labels are shown inside Markdown (sidebar, messages), so nothing else may pass through.
    """
    stem = re.sub(r"\.txt$", "", str(name or ""), flags=re.IGNORECASE)
    cleaned = re.sub(r"[^A-Za-z0-9 ._-]+", " ", stem)
    cleaned = re.sub(r"\s+", " ", cleaned).strip(" .")[:MAX_LABEL_CHARS].strip()
    return cleaned or fallback


def check_trainable(text: str, *, seq_length: int, batch_size: int, val_fraction: float) -> None:
    """Raise ValueError unless a run with these settings can train on ``text``.

    validate_corpus checks the whole text; the run trains on the part left after the last
    ``val_fraction`` is set aside for validation, so that part must hold batch_size streams of
    seq_length + 1 characters too.
    """
    validate_corpus(text, seq_length=seq_length, batch_size=batch_size)
    needed = batch_size * (seq_length + 1)
    n_train = train_val_split(len(text), val_fraction)
    if n_train < needed:
        total = needed
        while train_val_split(total, val_fraction) < needed:
            total += 1
        raise ValueError(
            f"The text has {count(len(text), 'character')}. With sequence length {seq_length} and batch size "
            f"{batch_size}, training needs {needed:,} characters after {val_fraction:.0%} is set aside "
            f"for validation, so at least {total:,} in all. Use a longer text or smaller settings on "
            f"the Train page.")


def accept_text(text: str, label: str, *, seq_length: int, batch_size: int,
                val_fraction: float) -> AcceptedText:
    """Pasted text -> AcceptedText (newlines normalised), or ValueError with the reason."""
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    check_trainable(text, seq_length=seq_length, batch_size=batch_size, val_fraction=val_fraction)
    return AcceptedText(text, label, corpus_summary(text, preview_chars=PREVIEW_CHARS))


def accept_file(data: bytes, file_name: str, *, seq_length: int, batch_size: int,
                val_fraction: float) -> AcceptedText:
    """Uploaded bytes -> AcceptedText; empty, binary, non-UTF-8, oversized or unusable -> ValueError."""
    text = text_from_bytes(data)
    return accept_text(text, safe_label(file_name), seq_length=seq_length, batch_size=batch_size,
                       val_fraction=val_fraction)


def run_corpus_facts(run: Run, preview_chars: int = PREVIEW_CHARS) -> dict:
    """What the Data page shows about the current run's text, without decoding all of it.

    Returns train_chars, val_chars, vocab_size, chars (the vocabulary as one str), preview (the
    first ``preview_chars`` training characters) and unigram_bits_per_char (entropy of the
    character frequencies over train + validation text).
    """
    tr = run.trainer
    counts = np.bincount(np.asarray(tr.data, dtype=np.int64), minlength=run.vocab.size)
    n_val = 0 if tr.val_ids is None else len(tr.val_ids)
    if n_val:
        counts = counts + np.bincount(np.asarray(tr.val_ids, dtype=np.int64), minlength=run.vocab.size)
    p = counts[counts > 0] / counts.sum()
    return {
        "train_chars": int(len(tr.data)),
        "val_chars": int(n_val),
        "vocab_size": run.vocab.size,
        "chars": "".join(run.vocab.chars),
        "preview": run.vocab.decode(tr.data[:preview_chars]),
        "unigram_bits_per_char": float(-(p * np.log2(p)).sum()),
    }


def checkpoint_file_name(run: Run) -> str:
    """rnn-<corpus>-it<iteration>.npz, e.g. rnn-shakespeare-it1200.npz."""
    name = run.config.corpus if run.config.corpus != "custom" else safe_label(run.corpus_label, "text")
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-") or "text"
    return f"rnn-{slug[:30]}-it{run.iteration}.npz"


def history_frames(run: Run) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(training history, validation history) as DataFrames.

    Training: iteration, loss and smooth_loss (nats per window of seq_length characters),
    bits_per_char (of the smoothed loss, as the app shows it), clip_fraction, learning_rate and
    grad_norm_<param> columns, then loss_min and loss_max (the extremes of the raw loss in each row:
    once a long run's rows are buckets of several iterations, loss is the bucket's mean).
    Validation: iteration, val_bits_per_char.
    """
    hist = run.trainer.history.as_arrays()
    train = pd.DataFrame(hist)
    train["iteration"] = train["iteration"].astype(np.int64)
    bits = bits_per_char(train["smooth_loss"], run.trainer.seq_length)
    train.insert(train.columns.get_loc("smooth_loss") + 1, "bits_per_char", bits)
    val = pd.DataFrame(run.trainer.val_history.as_arrays())
    val["iteration"] = val["iteration"].astype(np.int64)
    return train, val


def csv_bytes(frame: pd.DataFrame) -> bytes:
    buffer = io.StringIO()
    frame.to_csv(buffer, index=False, float_format="%.6g")
    return buffer.getvalue().encode("utf-8")


def run_from_checkpoint(data: bytes) -> Run:
    """Checkpoint bytes -> Run; anything that is not a valid checkpoint -> ValueError."""
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise ValueError(f"data must be bytes, got {type(data).__name__}")
    try:
        return Run.from_bytes(bytes(data))
    except ValueError:
        raise
    except Exception as exc:   # a malformed field the loader did not anticipate: still just a bad file
        raise ValueError(f"not a valid checkpoint: it could not be read ({type(exc).__name__})") from exc
