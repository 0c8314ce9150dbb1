"""What the network does with a given text: hidden states, predictions, surprise and a unit finder.

Pure NumPy over an rnn_core model (no streamlit, plotly or pandas), so every number the Hidden
states and Sample pages show is tested without a server. Conventions: T = text length,
H = hidden units, V = vocabulary size, K = number of text features.

Position t always means "after the network has read character t": h_t and p_t (the prediction of
character t+1) are computed from text[0..t], and the text features below describe the same moment.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# An impossible character (p rounded to 0) costs this probability instead of an infinite surprise.
MIN_PROBABILITY = 1e-12

_OPENING, _CLOSING = "([{", ")]}"
_VOWELS = frozenset("aeiouAEIOU")

# Feature name -> what it measures, for tooltips and captions. Order = column order of the features.
FEATURE_DESCRIPTIONS: dict[str, str] = {
    "inside double quotes": '1 from an opening " up to (not including) its closing ", else 0',
    "inside single quotes": "1 between an opening ' and its closing ' on the same line; an apostrophe "
                            "between two letters (don't) is not a quote",
    "inside brackets": "1 inside any ( ), [ ] or { } pair, else 0",
    "bracket depth": "how many brackets are open: 0, 1, 2, ...",
    "position in line": "characters since the last newline (1 for a line's first character)",
    "position in word": "characters since the word began (1 at its first letter, 0 outside words); "
                        "an apostrophe between letters belongs to the word",
    "word start": "1 at the first character of a word (a letter or digit after a non-letter)",
    "whitespace": "1 at a space, tab or newline",
    "vowel": "1 at a, e, i, o, u (either case)",
    "uppercase": "1 at an uppercase letter",
    "punctuation": "1 at a character that is neither a letter/digit nor whitespace",
}


# ---------------------------------------------------------------- text features


def _word_char(c: str) -> bool:
    return c.isalnum() or c == "_"


def _toggle_state(text: str, is_quote: list[bool], reset_at_newline: bool) -> np.ndarray:
    """1.0 while an odd number of quote marks have been read (on this line, if reset)."""
    inside = np.zeros(len(text))
    state = False
    for t, c in enumerate(text):
        if reset_at_newline and c == "\n":
            state = False
        elif is_quote[t]:
            state = not state
        inside[t] = state
    return inside


def _apostrophes(text: str) -> list[bool]:
    """' characters between two letters (don't, o'er): part of a word, not a quote mark."""
    return [c == "'" and 0 < t < len(text) - 1 and text[t - 1].isalpha() and text[t + 1].isalpha()
            for t, c in enumerate(text)]


def _bracket_depth(text: str) -> np.ndarray:
    """Open brackets after reading each character; an unmatched closer never goes below 0."""
    depth = np.zeros(len(text))
    level = 0
    for t, c in enumerate(text):
        if c in _OPENING:
            level += 1
        elif c in _CLOSING:
            level = max(0, level - 1)
        depth[t] = level
    return depth


def _position_in_line(text: str) -> np.ndarray:
    position = np.zeros(len(text))
    count = 0
    for t, c in enumerate(text):
        count = 0 if c == "\n" else count + 1
        position[t] = count
    return position


def _position_in_word(text: str, apostrophes: list[bool]) -> np.ndarray:
    position = np.zeros(len(text))
    count = 0
    for t, c in enumerate(text):
        count = count + 1 if (_word_char(c) or apostrophes[t]) else 0
        position[t] = count
    return position


def text_features(text: str) -> dict[str, np.ndarray]:
    """Simple features of ``text``, one float per character: {name: (T,)}.

    Keys and meanings are those of FEATURE_DESCRIPTIONS, in the same order. Each value describes the
    moment after character t was read (so an opening quote is already "inside").
    """
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    depth = _bracket_depth(text)
    apostrophes = _apostrophes(text)
    in_word = _position_in_word(text, apostrophes)
    chars = list(text)
    single_quotes = [c == "'" and not apostrophes[t] for t, c in enumerate(chars)]
    return {
        "inside double quotes": _toggle_state(text, [c == '"' for c in chars], reset_at_newline=False),
        "inside single quotes": _toggle_state(text, single_quotes, reset_at_newline=True),
        "inside brackets": (depth > 0).astype(float),
        "bracket depth": depth,
        "position in line": _position_in_line(text),
        "position in word": in_word,
        "word start": (in_word == 1).astype(float),
        "whitespace": np.array([c.isspace() for c in chars], dtype=float),
        "vowel": np.array([c in _VOWELS for c in chars], dtype=float),
        "uppercase": np.array([c.isupper() for c in chars], dtype=float),
        "punctuation": np.array([not (_word_char(c) or c.isspace() or apostrophes[t])
                                for t, c in enumerate(chars)], dtype=float),
    }


CHAR_CLASSES = ("space", "line break", "lowercase letter", "capital letter", "digit", "punctuation & other")


def char_classes(text: str) -> list[str]:
    """The CHAR_CLASSES name of each character of ``text``, for colouring points by what was read."""
    def one(c: str) -> str:
        if c == "\n":
            return "line break"
        if c.isspace():
            return "space"
        if c.isdigit():
            return "digit"
        if c.isalpha():
            return "capital letter" if c.isupper() else "lowercase letter"
        return "punctuation & other"
    return [one(c) for c in text]


# ---------------------------------------------------------------- unit finder


@dataclass(frozen=True)
class UnitMatch:
    """One row of the unit finder: hidden ``unit`` follows ``feature`` with Pearson ``correlation``."""

    unit: int
    feature: str
    correlation: float


def _check_hs(hs) -> np.ndarray:
    hs = np.asarray(hs, dtype=float)
    if hs.ndim != 2:
        raise ValueError(f"hs must be 2-D (T, H), got shape {hs.shape}")
    return hs


def feature_correlations(hs, features: dict[str, np.ndarray]) -> np.ndarray:
    """Pearson correlation of every hidden unit with every feature.

    hs: (T, H) hidden states; features: {name: (T,)} (e.g. from text_features).
    Returns (H, K), K = len(features) in their order. A unit or feature that is constant on this
    text (no variation to correlate with) gives NaN.
    """
    hs = _check_hs(hs)
    T = hs.shape[0]
    columns = []
    for name, values in features.items():
        values = np.asarray(values, dtype=float)
        if values.shape != (T,):
            raise ValueError(f"feature {name!r} must have shape ({T},) like hs has rows, got {values.shape}")
        columns.append(values)
    F = np.stack(columns, axis=1) if columns else np.zeros((T, 0))
    hc = hs - hs.mean(axis=0)
    fc = F - F.mean(axis=0)
    h_norm = np.sqrt((hc * hc).sum(axis=0))           # (H,)
    f_norm = np.sqrt((fc * fc).sum(axis=0))           # (K,)
    denom = np.outer(h_norm, f_norm)
    # Relative threshold: a unit that moves by rounding noise only counts as constant.
    h_flat = h_norm <= 1e-9 * max(1.0, float(np.sqrt(T)))
    f_flat = f_norm <= 1e-12
    with np.errstate(invalid="ignore", divide="ignore"):
        corr = (hc.T @ fc) / denom
    corr[h_flat, :] = np.nan
    corr[:, f_flat] = np.nan
    return np.clip(corr, -1.0, 1.0)


# Significant digits kept when scores are compared for ranking: far more than any display shows,
# far fewer than float round-off disturbs.
RANKING_DIGITS = 10


def _rounded(values: np.ndarray) -> np.ndarray:
    """``values`` (finite, >= 0) rounded to RANKING_DIGITS significant digits, for ranking."""
    values = np.asarray(values, dtype=float)
    out = values.copy()
    positive = values > 0
    exponent = np.floor(np.log10(values[positive]))
    scale = 10.0 ** (RANKING_DIGITS - 1 - exponent)
    out[positive] = np.round(values[positive] * scale) / scale
    return out


def rank_units(hs, features: dict[str, np.ndarray], feature: str | None = None,
               top: int = 20) -> list[UnitMatch]:
    """Units that follow a text feature, strongest |correlation| first.

    feature=None: each unit's single best feature, units ranked by it (one row per unit).
    feature=<name>: every unit's correlation with that feature, ranked.
    Units/features without variation are left out. Returns at most ``top`` rows.
    """
    names = list(features)
    if feature is not None and feature not in features:
        raise ValueError(f"feature must be one of {', '.join(names)} or None, got {feature!r}")
    if isinstance(top, bool) or not isinstance(top, (int, np.integer)) or top < 1:
        raise ValueError(f"top must be an integer >= 1, got {top!r}")
    corr = feature_correlations(hs, features)
    if corr.size == 0:
        return []
    # Compare rounded strengths, so two correlations that are equal but for round-off (a unit at +1
    # and one at -1, or two features that coincide on this text) tie; ties go to the feature listed
    # first, then the lower unit index — the same order on every machine and NumPy version.
    strength = np.where(np.isnan(corr), -1.0, _rounded(np.abs(corr)))
    if feature is not None:
        best_col = np.full(corr.shape[0], names.index(feature))
    else:
        best_col = np.argmax(strength, axis=1)         # first maximum: the earliest feature wins ties
    rows = np.arange(corr.shape[0])
    best, best_strength = corr[rows, best_col], strength[rows, best_col]
    units = sorted((u for u in rows if not np.isnan(best[u])),
                   key=lambda u: (-best_strength[u], best_col[u], u))
    return [UnitMatch(int(u), names[best_col[u]], float(best[u])) for u in units[:int(top)]]


def _ranked(score: np.ndarray, top: int) -> np.ndarray:
    """Indices of the ``top`` largest scores, ties (to RANKING_DIGITS digits) by lower index."""
    return np.argsort(-_rounded(score), kind="stable")[:top]


def most_active_units(hs, top: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Units with the largest mean |h_t| on this text: (units (n,), mean |h| (n,)), n <= top."""
    hs = _check_hs(hs)
    score = np.abs(hs).mean(axis=0) if hs.shape[0] else np.zeros(hs.shape[1])
    order = _ranked(score, top)
    return order, score[order]


def most_variable_units(hs, top: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Units whose activation changes most over this text: (units (n,), std of h (n,)), n <= top."""
    hs = _check_hs(hs)
    score = hs.std(axis=0) if hs.shape[0] else np.zeros(hs.shape[1])
    order = _ranked(score, top)
    return order, score[order]


# ---------------------------------------------------------------- predictions


def top_k(ps, k: int = 5) -> tuple[np.ndarray, np.ndarray]:
    """The k most likely next characters at each position.

    ps: (T, V) softmax rows. Returns (ids (T, k), probs (T, k)), most likely first; ties keep the
    lower id first. k is capped at V.
    """
    ps = np.asarray(ps, dtype=float)
    if ps.ndim != 2:
        raise ValueError(f"ps must be 2-D (T, V), got shape {ps.shape}")
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"k must be an integer >= 1, got {k!r}")
    ids = np.argsort(-ps, axis=1, kind="stable")[:, :min(int(k), ps.shape[1])]
    return ids, np.take_along_axis(ps, ids, axis=1)


def surprise_nats(ps, ids) -> np.ndarray:
    """How surprised the model was by each character: (T,) nats, -ln p_{t-1}(ids[t]).

    ps: (T, V), row t = prediction after reading ids[0..t]; ids: (T,). Entry 0 is NaN (nothing was
    read before the first character). Probabilities below MIN_PROBABILITY count as MIN_PROBABILITY.
    """
    ps = np.asarray(ps, dtype=float)
    ids = np.asarray(ids).reshape(-1)
    if ps.ndim != 2 or ps.shape[0] != ids.shape[0]:
        raise ValueError(f"ps must be (T, V) with T = len(ids) = {ids.shape[0]}, got shape {ps.shape}")
    out = np.full(ids.shape[0], np.nan)
    if ids.shape[0] > 1:
        picked = ps[np.arange(ids.shape[0] - 1), ids[1:]]
        out[1:] = -np.log(np.maximum(picked, MIN_PROBABILITY))
    return out


def bits_per_char(surprise) -> float:
    """Mean surprise in bits over the predicted characters (NaN entries skipped); NaN if none."""
    s = np.asarray(surprise, dtype=float)
    s = s[~np.isnan(s)]
    return float(s.mean() / np.log(2.0)) if s.size else float("nan")


def top_k_accuracy(ps, ids, k: int) -> float:
    """Fraction of characters 1..T-1 that were among the k most likely predictions; NaN if T < 2."""
    ids = np.asarray(ids).reshape(-1)
    if ids.shape[0] < 2:
        return float("nan")
    best, _ = top_k(np.asarray(ps, dtype=float)[:-1], k)
    return float(np.mean(np.any(best == ids[1:, None], axis=1)))


@dataclass(frozen=True)
class StateTrail:
    """Hidden states projected on their principal components (the state-space "trail").

    coords (T, K): h_t along the K directions in which h varies most over the text, most first;
    explained (K,): the fraction of the variance of h along each (0 where there is none);
    components (K, H): those directions (unit vectors in hidden space).
    """

    coords: np.ndarray
    explained: np.ndarray
    components: np.ndarray


def state_trail(hs, n_components: int = 4) -> StateTrail:
    """PCA of hs (T, H) over time: centre on the mean state, then the top right singular vectors.

    Each direction's sign is fixed so that its largest loading is positive, so the picture does not
    flip between reruns. Directions that do not exist (fewer steps or units, no variation) are zero.
    """
    hs = _check_hs(hs)
    if isinstance(n_components, bool) or not isinstance(n_components, int) or n_components < 1:
        raise ValueError(f"n_components must be an integer >= 1, got {n_components!r}")
    T, H = hs.shape
    K = n_components
    coords, explained, components = np.zeros((T, K)), np.zeros(K), np.zeros((K, H))
    if T < 2 or H == 0:
        return StateTrail(coords, explained, components)
    centred = hs - hs.mean(axis=0)
    _, singular, vt = np.linalg.svd(centred, full_matrices=False)
    total = float(np.sum(singular ** 2))
    if total <= 0.0:
        return StateTrail(coords, explained, components)
    for i in range(min(K, vt.shape[0])):
        direction = vt[i]
        if direction[np.argmax(np.abs(direction))] < 0:
            direction = -direction
        components[i] = direction
        coords[:, i] = centred @ direction
        explained[i] = singular[i] ** 2 / total
    return StateTrail(coords, explained, components)


@dataclass(frozen=True)
class TextReading:
    """The network reading a text from h = 0.

    ids (T,), hs (T, H) hidden states, ps (T, V) next-character distributions, surprise (T,) nats
    (NaN at t = 0), bits_per_char over characters 1..T-1.
    """

    ids: np.ndarray
    hs: np.ndarray
    ps: np.ndarray
    surprise: np.ndarray
    bits_per_char: float


def read_text(model, ids) -> TextReading:
    """Run ``model`` (an rnn_core VanillaRNN) over ``ids`` (T,) from a zero hidden state."""
    ids = np.asarray(ids, dtype=np.int64).reshape(-1)
    if ids.shape[0] == 0:
        raise ValueError("the text to read must hold at least 1 character, got 0")
    trace = model.forward(ids)
    surprise = surprise_nats(trace.ps, ids)
    return TextReading(ids, trace.hs, trace.ps, surprise, bits_per_char(surprise))


def next_char_probs(model, prime_ids, temperature: float = 1.0) -> np.ndarray:
    """Distribution (V,) of the first sampled character: read ``prime_ids`` from h = 0 (none: h stays
    0), then softmax(logits / temperature), exactly as model.sample draws it."""
    ids = np.asarray(prime_ids if prime_ids is not None else [], dtype=np.int64).reshape(-1)
    h = model.forward(ids).h_last if ids.shape[0] else np.zeros(model.hidden_size, dtype=model.dtype)
    return model.next_probs(h, temperature)


# ---------------------------------------------------------------- text the user typed


def excerpt(text: str, start: int = 0, length: int = 400) -> str:
    """About ``length`` characters of ``text`` from ``start``, moved to whole lines: begins at the
    start of a line (a paragraph if one begins within ``length`` after ``start``) and ends at a
    line end when the cut would otherwise split a line."""
    if not text:
        return ""
    start = min(max(0, int(start)), len(text) - 1)
    if start > 0:
        paragraph = text.find("\n\n", start, start + length)
        line = text.find("\n", start, start + length)
        if paragraph >= 0:
            start = paragraph + 2
        elif line >= 0:
            start = line + 1
    piece = text[start:start + length]
    last_newline = piece.rfind("\n")
    if start + length < len(text) and last_newline > length // 2:
        piece = piece[:last_newline + 1]
    return piece


def describe_char(c: str) -> str:
    """A character the way an error message should name it: 'é' (U+00E9), space (U+0020)."""
    names = {" ": "space", "\n": "newline", "\t": "tab", "\r": "carriage return"}
    shown = names.get(c) or (repr(c) if c.isprintable() else repr(c).strip("'"))
    return f"{shown} (U+{ord(c):04X})"


def describe_vocab(chars: str) -> str:
    """The vocabulary in short form: runs of 3+ consecutive letters/digits as 'a–z' (joined by invisible
    word joiners so a line never breaks inside a range), space/newline named."""
    named = {" ": "space", "\n": "newline", "\t": "tab", "\r": "carriage return"}
    parts, i = [], 0
    while i < len(chars):
        j = i
        while j + 1 < len(chars) and ord(chars[j + 1]) == ord(chars[j]) + 1 and chars[j + 1].isalnum():
            j += 1
        if j - i >= 2 and chars[i].isalnum():
            parts.append(f"{chars[i]}\u2060–\u2060{chars[j]}")   # word joiners: never break inside
            i = j + 1
            continue
        c = chars[i]
        parts.append(named.get(c) or (c if c.isprintable() else f"U+{ord(c):04X}"))
        i += 1
    return " ".join(parts)


def _count(n: int, noun: str) -> str:
    # textviews.count, without importing the HTML helpers into the numeric module.
    return f"{n:,} {noun if n == 1 else noun + 's'}"


def unknown_chars_message(text: str, vocab_chars: str, what: str = "The text") -> str | None:
    """None when every character of ``text`` is in ``vocab_chars``; otherwise a plain sentence that
    names the unknown characters (with code points) and lists what is allowed."""
    allowed = set(vocab_chars)
    unknown = list(dict.fromkeys(c for c in text if c not in allowed))
    if not unknown:
        return None
    listed = ", ".join(describe_char(c) for c in unknown[:8])
    more = f" and {len(unknown) - 8} more" if len(unknown) > 8 else ""
    return (f"{what} contains {_count(len(unknown), 'character')} the model has never seen: {listed}{more}. "
            f"It can only read the {_count(len(vocab_chars), 'character')} of its training text: "
            f"{describe_vocab(vocab_chars)}.")
