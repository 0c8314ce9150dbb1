"""Experiment links: every setting of the Train page in the URL, as TensorFlow Playground shares
its state. Opening one starts a *fresh* run with exactly those settings (not the sender's trained
run: that is what the private and watch links are for).

Every parameter is checked as its widget would check it: one sentence per bad value, naming it and
what is allowed; the rest still applies. Pure functions (no streamlit), tested on their own.
"""
from __future__ import annotations

import math
from dataclasses import asdict
from typing import Mapping
from urllib.parse import urlencode

from playground.runs.run import RunConfig
from playground.views.loss_chart import CLASSIC_SMOOTHING
from playground.views.loss_units import UNITS
from rnn_core.corpora import BUILTIN_CORPORA
from rnn_core.limits import MAX_LEARNING_RATE, MAX_SEQ_LENGTH, MIN_LEARNING_RATE
from rnn_core.optim import OPTIMIZERS

# The Train page's widgets offer these (a link can ask for nothing a widget could not show).
HIDDEN_SIZES = (8, 16, 32, 64, 100, 128, 192, 256, 384, 512)
BATCH_SIZES = (1, 2, 4, 8, 16, 32, 64, 128)
CLIPS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 100.0)
LEARNING_RATES = (1e-4, 2e-4, 5e-4, 1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 5e-2, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0)
SMOOTHINGS = (CLASSIC_SMOOTHING, 0.0, 0.6, 0.9, 0.95, 0.99, 0.995, 0.999)
MAX_SAMPLE_EVERY = 100_000
MAX_SEED = 2**32 - 1

# URL parameter -> RunConfig field. "exp" marks a link as an experiment link.
MARKER = "exp"
CONFIG_KEYS = ("corpus", "hidden_size", "seq_length", "batch_size", "seed", "learning_rate", "optimizer",
               "clip", "sample_every")
VIEW_KEYS = ("loss_unit", "smoothing")
ALL_KEYS = (MARKER, *CONFIG_KEYS, *VIEW_KEYS)
MAX_VALUE_CHARS = 40    # longer is not a number or a name of ours; never echoed whole


def is_experiment_link(params: Mapping[str, str]) -> bool:
    return MARKER in params


def _shown(raw: str) -> str:
    return repr(raw if len(raw) <= MAX_VALUE_CHARS else raw[:MAX_VALUE_CHARS] + "…")


def _int(raw: str) -> int | None:
    raw = raw.strip()
    if not raw or len(raw) > MAX_VALUE_CHARS or not raw.lstrip("+").isdigit():
        return None
    return int(raw)


def _float(raw: str) -> float | None:
    if len(raw) > MAX_VALUE_CHARS:
        return None
    try:
        value = float(raw)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


# Parameter -> (its name in a sentence, smallest, largest): whole numbers in a range.
WHOLE_NUMBER_RANGES = {"seq_length": ("sequence length", 1, MAX_SEQ_LENGTH), "seed": ("seed", 0, MAX_SEED),
                       "sample_every": ("sample every", 1, MAX_SAMPLE_EVERY)}


def _choice_sentence(name: str, raw: str, allowed) -> str:
    return f"{name} {_shown(raw)} is not one of {', '.join(f'{a:g}' if isinstance(a, float) else str(a) for a in allowed)}"


def _parse_one(key: str, raw: str):
    """(value, None) or (None, sentence) for one parameter."""
    if key == "corpus":
        return (raw, None) if raw in BUILTIN_CORPORA else (
            None, f"corpus {_shown(raw)} is not a built-in text ({', '.join(BUILTIN_CORPORA)})")
    if key in ("hidden_size", "batch_size"):
        allowed = HIDDEN_SIZES if key == "hidden_size" else BATCH_SIZES
        value = _int(raw)
        return (value, None) if value in allowed else (None, _choice_sentence(key.replace("_", " "), raw, allowed))
    if key in WHOLE_NUMBER_RANGES:
        name, lo, hi = WHOLE_NUMBER_RANGES[key]
        value = _int(raw)
        return (value, None) if value is not None and lo <= value <= hi else (
            None, f"{name} {_shown(raw)} must be a whole number from {lo} to {hi:,}")
    if key == "learning_rate":
        value = _float(raw)
        return (value, None) if value is not None and MIN_LEARNING_RATE <= value <= MAX_LEARNING_RATE else (
            None, f"learning rate {_shown(raw)} must be a number from {MIN_LEARNING_RATE:g} to {MAX_LEARNING_RATE:g}")
    if key == "optimizer":
        return (raw, None) if raw in OPTIMIZERS else (None, _choice_sentence("optimizer", raw, OPTIMIZERS))
    if key == "clip":
        value = _float(raw)
        return (value, None) if value in CLIPS else (None, _choice_sentence("gradient clip", raw, CLIPS))
    if key == "loss_unit":
        return (raw, None) if raw in UNITS else (None, _choice_sentence("loss unit", raw, tuple(UNITS)))
    if key == "smoothing":
        if raw == "classic":
            return CLASSIC_SMOOTHING, None
        value = _float(raw)
        allowed = SMOOTHINGS[1:]
        return (value, None) if value in allowed else (
            None, f"smoothing {_shown(raw)} is not one of classic, {', '.join(f'{a:g}' for a in allowed)}")
    raise KeyError(key)


def parse(params: Mapping[str, str]) -> tuple[RunConfig, dict, list[str]]:
    """(the run's config, the view settings {"loss_unit", "loss_smoothing"} given, one sentence per
    bad or unknown parameter). Settings not in the link keep their defaults."""
    config = asdict(RunConfig())
    view: dict = {}
    problems: list[str] = []
    for key, raw in params.items():
        if key == MARKER or key in ("run", "watch"):
            continue
        if key not in ALL_KEYS:
            if len(problems) < 20:
                problems.append(f"{_shown(key)} is not a setting of an experiment link (they are "
                                f"{', '.join(ALL_KEYS[1:])})")
            continue
        value, problem = _parse_one(key, str(raw))
        if problem:
            problems.append(problem)
        elif key in CONFIG_KEYS:
            config[key] = value
        else:
            view["loss_smoothing" if key == "smoothing" else key] = value
    return RunConfig(**config).validate(), view, problems


def query(config: RunConfig, loss_unit: str, smoothing) -> str:
    """The query string (without "?") of an experiment link to these settings. A custom text is not
    in the link (it would not fit): the link names the default corpus instead."""
    values = asdict(config)
    values["corpus"] = config.corpus if config.corpus in BUILTIN_CORPORA else RunConfig().corpus
    parts = {MARKER: "1"}
    for key in CONFIG_KEYS:
        value = values[key]
        parts[key] = f"{value:g}" if isinstance(value, float) else str(value)
    parts["loss_unit"] = loss_unit if loss_unit in UNITS else "window"
    parts["smoothing"] = "classic" if smoothing == CLASSIC_SMOOTHING else f"{float(smoothing):g}"
    return urlencode(parts)


def sentence(problems: list[str]) -> str | None:
    """All problems of a link in one message, or None."""
    if not problems:
        return None
    return ("Some settings in the experiment link were not used: " + "; ".join(problems)
            + ". Everything else in the link was applied.")
