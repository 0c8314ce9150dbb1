"""Loss units and their conversion: the unit keys and labels of the Units control (``UNITS``) and
of hover text (``HOVER_UNITS``), ``convert_loss`` from nats per window (the engine's unit) to
each, its inverse for bits per char, and the untrained (uniform-guess) loss. Draws no figure; used
by the loss chart, the timeline and the pages' unit selectors. Pure: no streamlit import, tested
without a server.
"""

from __future__ import annotations

import math

import numpy as np

from playground.views.style import check_positive_int
from rnn_core.trainer import bits_per_char
from rnn_core.trainer import untrained_loss as engine_untrained_loss

# Unit key -> label shown in selectors and on the loss axis.
UNITS: dict[str, str] = {
    "window": "nats per window (classic)",
    "nats": "nats per char",
    "bits": "bits per char",
    "perplexity": "perplexity",
}

# Unit key -> what a loss value is, after the number in hover labels ("2.134 bits/char").
HOVER_UNITS: dict[str, str] = {
    "window": "nats per window of T chars",
    "nats": "nats/char",
    "bits": "bits/char",
    "perplexity": "perplexity (e^(nats/char))",
}


def check_unit(unit: str) -> str:
    if unit not in UNITS:
        allowed = ", ".join(repr(u) for u in UNITS)
        raise ValueError(f"unit must be one of {allowed}, got {unit!r}")
    return unit


# ---------------------------------------------------------------- units


def convert_loss(per_window, unit: str, seq_length: int):
    """Convert loss given in nats per window (sum over T chars) to ``unit``.

    window: unchanged; nats: / T; bits: / T / ln 2; perplexity: exp(/ T).
    Accepts a scalar (returns float) or an array (returns float ndarray, same shape).
    Raises ValueError for an unknown unit or seq_length < 1.
    """
    check_unit(unit)
    seq_length = check_positive_int(seq_length, "seq_length")
    arr = np.asarray(per_window, dtype=float)
    if unit == "window":
        out = arr.copy()
    elif unit == "nats":
        out = arr / seq_length
    elif unit == "bits":
        out = bits_per_char(arr, seq_length)
    else:
        with np.errstate(over="ignore"):  # a diverged loss shows as inf, not a warning
            out = np.exp(arr / seq_length)
    return float(out) if out.ndim == 0 else out


def bits_per_char_to_window(bits, seq_length: int):
    """Bits per char -> nats per window (the inverse direction of ``convert_loss``)."""
    seq_length = check_positive_int(seq_length, "seq_length")
    out = np.asarray(bits, dtype=float) * math.log(2.0) * seq_length
    return float(out) if out.ndim == 0 else out


def untrained_loss(vocab_size: int, seq_length: int, unit: str = "window") -> float:
    """Loss of a uniform guess, -ln(1/V) * T per window, converted to ``unit``."""
    vocab_size = check_positive_int(vocab_size, "vocab_size")
    return convert_loss(engine_untrained_loss(vocab_size, seq_length), unit, seq_length)
