"""Product limits of RNN Playground and the validators that enforce them.

The engine and the app both read these constants, so a limit is changed in one
place. Every limit exists to keep one shared server responsive: the app trains
in the browser session's own process, and several people may use it at once.

The validators raise ``ValueError`` with a message that names the parameter,
the allowed range and the offending value, e.g.
"hidden_size must be an integer between 1 and 512, got 0".
"""

from __future__ import annotations

import math
import numbers

__all__ = [
    "MAX_HIDDEN_SIZE",
    "MAX_SEQ_LENGTH",
    "MAX_BATCH_SIZE",
    "MAX_CORPUS_CHARS",
    "MAX_UPLOAD_MB",
    "MAX_SAMPLE_LENGTH",
    "MAX_VOCAB_SIZE",
    "MIN_LEARNING_RATE",
    "MAX_LEARNING_RATE",
    "MAX_CLIP",
    "MAX_ITERATION",
    "MAX_CHARS_SEEN",
    "MAX_SEED",
    "MAX_LABEL_LENGTH",
    "MAX_METADATA_CHARS",
    "MAX_METADATA_STRING",
    "check_int",
    "check_float",
]

# Whh is H x H and each step costs O(H^2) per character; beyond 512 a single
# step takes long enough that the live charts stop feeling live.
MAX_HIDDEN_SIZE = 512

# Truncated backprop keeps T hidden states per stream; 200 is already far past
# where a vanilla RNN's gradients vanish, so longer windows teach nothing new.
MAX_SEQ_LENGTH = 200

# Batch rows are trained in one matrix product; 128 streams is plenty to show
# the effect of batching while bounding memory (B x T x H activations).
MAX_BATCH_SIZE = 128

# Encoded corpora stay in session memory (and inside checkpoints); two million
# characters is about twice tinyshakespeare, enough for every built-in corpus.
MAX_CORPUS_CHARS = 2_000_000

# Must equal server.maxUploadSize in .streamlit/config.toml so that Streamlit's
# own upload limit and our message about it agree.
MAX_UPLOAD_MB = 10

# Sampling is one step per character and is rendered as text in the page.
MAX_SAMPLE_LENGTH = 5000

# The input and output layers are V wide; a text with more distinct characters
# than this is almost certainly not the kind of text a char-RNN demo is about.
MAX_VOCAB_SIZE = 256

# Adagrad/SGD/Adam step sizes outside this range either do nothing visible or
# diverge on the first step.
MIN_LEARNING_RATE = 1e-5
MAX_LEARNING_RATE = 10.0

# Gradient clipping threshold (elementwise, as in min-char-rnn); above this it
# never triggers in practice, so larger values only hide divergence.
MAX_CLIP = 100.0

# Training counters (iteration, optimizer steps) read back from a checkpoint. At 10^5 iterations
# per second a run would need 300 years to get here; the bound keeps every count exact in the
# float64 history and short enough to print.
MAX_ITERATION = 10**15
# Characters read: batch_size x seq_length per iteration.
MAX_CHARS_SEEN = MAX_ITERATION * MAX_BATCH_SIZE * MAX_SEQ_LENGTH

# Random seeds, as NumPy's generators take them (the app and the command line use < 2**32).
MAX_SEED = 2**64 - 1

# A corpus label: a built-in name or a file name, which file systems cap at 255 characters.
MAX_LABEL_LENGTH = 255

# A checkpoint's metadata (its JSON text) and every string in it. The app's metadata is a few
# settings, a label and at most 40 samples of at most MAX_SAMPLE_LENGTH characters.
MAX_METADATA_CHARS = 2_000_000
MAX_METADATA_STRING = MAX_SAMPLE_LENGTH


def _describe(value: object) -> str:
    """Render a rejected value for an error message (plain numbers, repr otherwise)."""
    if isinstance(value, bool):
        return repr(value)
    if isinstance(value, numbers.Integral):
        return str(int(value))
    if isinstance(value, numbers.Real):
        return repr(float(value))
    return repr(value)


def _format_bound(bound: float) -> str:
    """Render a range bound compactly: 512, 1e-05, 0.5."""
    if isinstance(bound, numbers.Integral):
        return str(int(bound))
    return format(float(bound), "g")


def check_int(name: str, value: object, lo: int, hi: int | None = None) -> int:
    """Return ``value`` as an int if it is an integer with lo <= value <= hi.

    ``hi=None`` means no upper bound. Booleans are rejected even though Python
    treats them as integers: ``hidden_size=True`` is always a mistake. Floats
    are rejected too, even integral ones, so a typo like 1e3 is noticed.
    """
    if hi is None:
        allowed = f"an integer >= {lo}"
    else:
        allowed = f"an integer between {lo} and {hi}"
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Integral)
        or value < lo
        or (hi is not None and value > hi)
    ):
        raise ValueError(f"{name} must be {allowed}, got {_describe(value)}")
    return int(value)


def check_float(
    name: str,
    value: object,
    lo: float,
    hi: float | None = None,
    *,
    lo_inclusive: bool = True,
    hi_inclusive: bool = True,
) -> float:
    """Return ``value`` as a float if it is a finite real number in the range.

    The range is [lo, hi] by default; ``lo_inclusive=False`` makes it (lo, hi]
    (e.g. a learning rate that must be > 0), ``hi_inclusive=False`` makes the
    top open (e.g. a fraction that must be < 0.5), ``hi=None`` removes the top.
    Booleans, NaN, infinities, strings and other non-numbers are rejected.
    """
    low = f"{'>=' if lo_inclusive else '>'} {_format_bound(lo)}"
    if hi is None:
        allowed = f"a number {low}"
    elif lo_inclusive and hi_inclusive:
        allowed = f"a number between {_format_bound(lo)} and {_format_bound(hi)}"
    else:
        high = f"{'<=' if hi_inclusive else '<'} {_format_bound(hi)}"
        allowed = f"a number {low} and {high}"

    message = f"{name} must be {allowed}, got {_describe(value)}"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(message)
    number = float(value)
    if not math.isfinite(number):
        raise ValueError(message)
    if number < lo or (number == lo and not lo_inclusive):
        raise ValueError(message)
    if hi is not None and (number > hi or (number == hi and not hi_inclusive)):
        raise ValueError(message)
    return number
