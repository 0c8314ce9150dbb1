"""The run's own fields in a checkpoint's metadata, ``{"app": {"config", "corpus_label", "samples", ...}}``:
one writer and one reader for the dashboard and the command line, so a run trained by either opens
in the other.

Read as hostile input (the engine has already checked that the metadata is bounded JSON of valid
text): a field of the wrong type is ignored — a foreign or hand-edited file still opens — while a
value out of range refuses the file with "not a valid checkpoint: ...", so nothing shown can be
larger than the app itself would write.
"""
from __future__ import annotations

import unicodedata
from dataclasses import dataclass, field

from .limits import MAX_ITERATION, MAX_LABEL_LENGTH, MAX_SAMPLE_LENGTH

APP_KEY = "app"
# Periodic samples a run keeps (the oldest dropped): what the dashboard lists, and what a file may hold.
MAX_SAMPLES_KEPT = 40


@dataclass(frozen=True)
class RunMetadata:
    config: dict = field(default_factory=dict)   # the settings the run was made with (by name)
    corpus_label: str | None = None              # None: the file names none
    samples: tuple[tuple[int, str], ...] = ()    # (iteration, text), oldest first
    extra: dict = field(default_factory=dict)    # the application's other fields, unread here


def write_run_metadata(trainer, config: dict, corpus_label: str, samples, **extra) -> None:
    """Put the run's fields in ``trainer.metadata`` (other top-level keys are kept) for the next
    save; ``samples``: (iteration, text) pairs, the newest MAX_SAMPLES_KEPT are written."""
    kept = [[int(i), str(text)] for i, text in list(samples)[-MAX_SAMPLES_KEPT:]]
    base = trainer.metadata if isinstance(trainer.metadata, dict) else {}
    trainer.metadata = {**base, APP_KEY: {"config": dict(config), "corpus_label": corpus_label,
                                          "samples": kept, **extra}}


def read_run_metadata(metadata) -> RunMetadata:
    """The run's fields from a loaded checkpoint's ``trainer.metadata``; ValueError for a value out
    of range (see the module's docstring)."""
    app = metadata.get(APP_KEY) if isinstance(metadata, dict) else None
    app = app if isinstance(app, dict) else {}
    config = app.get("config") if isinstance(app.get("config"), dict) else {}
    label = app.get("corpus_label")
    if not isinstance(label, str) or not label.strip():
        label = None
    elif len(label) > MAX_LABEL_LENGTH:
        raise ValueError(f"not a valid checkpoint: its corpus label has {len(label)} characters; "
                         f"at most {MAX_LABEL_LENGTH} are allowed")
    elif any(unicodedata.category(c) == "Cc" for c in label):
        raise ValueError("not a valid checkpoint: its corpus label must be one line of text "
                         "without control characters")
    samples = app.get("samples") if isinstance(app.get("samples"), list) else []
    if len(samples) > MAX_SAMPLES_KEPT:
        raise ValueError(f"not a valid checkpoint: it holds {len(samples)} samples; "
                         f"at most {MAX_SAMPLES_KEPT} are kept")
    kept = []
    for item in samples:
        if not (isinstance(item, list) and len(item) == 2 and type(item[0]) is int and isinstance(item[1], str)):
            continue
        if not 0 <= item[0] <= MAX_ITERATION or len(item[1]) > MAX_SAMPLE_LENGTH:
            raise ValueError(f"not a valid checkpoint: a sample must have an iteration between 0 and "
                             f"{MAX_ITERATION} and at most {MAX_SAMPLE_LENGTH} characters")
        kept.append((item[0], item[1]))
    extra = {k: v for k, v in app.items() if k not in ("config", "corpus_label", "samples")}
    return RunMetadata(config, label, tuple(kept), extra)
