"""Pure text views: a string plus one number per character in, safe HTML out.

The HTML is meant for ``st.html``. Every character of user text, and every tooltip, goes through
``playground.escape.html_text`` (the one place text is escaped), which also writes the characters
Markdown or Streamlit would interpret (``$ * _ ` [ ] : ~ # | \\``) as numeric entities, so a corpus
containing ``$x$`` or ``:red[hi]`` shows up literally.

No streamlit or plotly import here, so the palette and ``visible_char`` are
shared with the figure modules (``playground.views.style`` and the figures built on it).
"""

from __future__ import annotations

import math
import re
import unicodedata
from typing import Sequence

import numpy as np

from playground.escape import html_text

# Colour stops as (position in [0, 1], (r, g, b)). Blue = negative, near-white = 0,
# orange = positive: blue against orange stays apart for every common colour-vision deficiency
# (red against green, or red against blue for some, does not); the same stops feed the plotly
# colorscales in style.py, so activations look the same in every view.
DIVERGING_STOPS: tuple[tuple[float, tuple[int, int, int]], ...] = (
    (0.0, (33, 102, 172)),
    (0.25, (146, 197, 222)),
    (0.5, (247, 247, 247)),
    (0.75, (253, 184, 99)),
    (1.0, (230, 97, 1)),
)
# White -> orange -> red, for "how surprising was this character".
SURPRISE_STOPS: tuple[tuple[float, tuple[int, int, int]], ...] = (
    (0.0, (255, 255, 255)),
    (0.4, (254, 224, 144)),
    (0.7, (253, 141, 60)),
    (1.0, (204, 24, 30)),
)

MONOSPACE = "ui-monospace, SFMono-Regular, Menlo, Consolas, 'DejaVu Sans Mono', monospace"

_VISIBLE = {" ": "␣", "\n": "⏎", "\t": "⇥", "\r": "␍"}
# Characters that draw nothing (zero-width, format and direction controls) or that move the text
# around them (a right-to-left override reverses everything after it): shown by a short name.
_INVISIBLE_NAMES = {
    "\u00ad": "SHY", "\u034f": "CGJ", "\u061c": "ALM", "\u180e": "MVS",
    "\u200b": "ZWSP", "\u200c": "ZWNJ", "\u200d": "ZWJ", "\u200e": "LRM", "\u200f": "RLM",
    "\u2028": "LSEP", "\u2029": "PSEP",
    "\u202a": "LRE", "\u202b": "RLE", "\u202c": "PDF", "\u202d": "LRO", "\u202e": "RLO",
    "\u2060": "WJ", "\u2066": "LRI", "\u2067": "RLI", "\u2068": "FSI", "\u2069": "PDI",
    "\ufeff": "ZWNBSP",
}
# Unicode categories that never draw a glyph of their own: other controls, format characters (Cf,
# which includes every bidi control), line/paragraph separators, lone surrogates.
_INVISIBLE_CATEGORIES = frozenset({"Cc", "Cf", "Zl", "Zp", "Cs"})


def visible_char(c: str) -> str:
    """Printable stand-in for one character, for every per-character view (text views, heatmap and
    chart labels, tables): ' '->'␣', '\\n'->'⏎', '\\t'->'⇥', other C0 controls -> their Unicode
    'control picture'; characters that draw nothing or reorder the text (zero-width characters,
    bidi controls such as U+202E, any category Cc/Cf/Zl/Zp/Cs) -> a bracketed name such as
    '⟨RLO⟩', '⟨ZWSP⟩' or '⟨U+0085⟩'; every other character unchanged."""
    if c in _VISIBLE:
        return _VISIBLE[c]
    if len(c) != 1:
        return c
    code = ord(c)
    if code < 32:
        return chr(0x2400 + code)
    if code == 0x7F:
        return "␡"
    if c in _INVISIBLE_NAMES:
        return f"⟨{_INVISIBLE_NAMES[c]}⟩"
    if unicodedata.category(c) in _INVISIBLE_CATEGORIES:
        return f"⟨U+{code:04X}⟩"
    return c


def visible_chars(chars: str | Sequence[str]) -> list[str]:
    """``visible_char`` applied to each character of a string or list of characters."""
    return [visible_char(c) for c in chars]


def reveal_invisible(text: str) -> str:
    """``text`` with spaces, tabs and line breaks kept as they are and every other invisible or
    text-reordering character replaced by its ``visible_char`` stand-in: for text shown as a text
    (previews, the Guess page's passage) rather than character by character."""
    return "".join(c if c in " \t\n" else visible_char(c) for c in text)


def count(n: int, noun: str, plural: str | None = None) -> str:
    """'1 character', '0 characters', '12,345 characters': a number and its noun, agreeing."""
    return f"{n:,} {noun if n == 1 else plural or noun + 's'}"


def interpolate_rgb(stops, t: float) -> tuple[int, int, int]:
    """Colour at position t in [0, 1] (clipped) along piecewise-linear ``stops``."""
    t = min(1.0, max(0.0, float(t)))
    for (p0, c0), (p1, c1) in zip(stops, stops[1:]):
        if t <= p1:
            f = 0.0 if p1 == p0 else (t - p0) / (p1 - p0)
            return tuple(int(round(a + (b - a) * f)) for a, b in zip(c0, c1))
    return stops[-1][1]


def diverging_position(value: float, vmin: float, vmax: float) -> float:
    """Map value to [0, 1] so that vmin->0, the centre->0.5, vmax->1.

    The centre is 0 when vmin < 0 < vmax (each side scaled on its own, so white
    always means exactly zero), otherwise the midpoint of the range.
    """
    centre = 0.0 if vmin < 0.0 < vmax else (vmin + vmax) / 2.0
    if value >= centre:
        span = vmax - centre
        return 0.5 + (0.5 * (value - centre) / span if span > 0 else 0.0)
    span = centre - vmin
    return 0.5 - (0.5 * (centre - value) / span if span > 0 else 0.0)


def _rgb_css(rgb: tuple[int, int, int]) -> str:
    return f"rgb({rgb[0]},{rgb[1]},{rgb[2]})"


def _text_colour(rgb: tuple[int, int, int]) -> str:
    # Light text on dark cells keeps characters readable at the ends of the scale.
    luminance = (0.299 * rgb[0] + 0.587 * rgb[1] + 0.114 * rgb[2]) / 255.0
    return "#ffffff" if luminance < 0.5 else "#111111"


def _check_lengths(text: str, values, name: str) -> np.ndarray:
    if not isinstance(text, str):
        raise ValueError(f"text must be a str, got {type(text).__name__}")
    arr = np.asarray(values, dtype=float).reshape(-1)
    if arr.size != len(text):
        raise ValueError(
            f"{name} must have one value per character of text: "
            f"len(text) = {len(text)}, got {arr.size} values"
        )
    return arr


def _char_span(c: str, rgb: tuple[int, int, int] | None, title: str) -> str:
    """One character as a coloured span; a newline becomes a '⏎' marker plus <br>."""
    # A real space keeps word shapes readable; pre-wrap keeps its background visible.
    shown = " " if c == " " else visible_char(c)
    style = "border-radius:2px;"
    if rgb is not None:
        style += f"background-color:{_rgb_css(rgb)};color:{_text_colour(rgb)};"
    span = f'<span style="{style}" title="{html_text(title)}">{html_text(shown)}</span>'
    if c == "\n":
        span = f'<span style="{style}opacity:0.75;" title="{html_text(title)}">&#9166;</span><br>'
    return span


def _wrap(spans: list[str], font_size: str = "0.95rem") -> str:
    # No newlines inside the returned string: Markdown then treats it as one raw HTML block.
    style = (
        f"font-family:{MONOSPACE};font-size:{font_size};line-height:1.7;"
        "white-space:pre-wrap;word-break:break-all;overflow-wrap:anywhere;"
    )
    return f'<div class="rnn-textview" style="{style}">{"".join(spans)}</div>'


def colored_text_html(
    text: str,
    values,
    *,
    vmin: float = -1.0,
    vmax: float = 1.0,
    diverging: bool = True,
    value_label: str = "value",
    font_size: str = "0.95rem",
) -> str:
    """Each character of ``text`` on a background coloured by its value.

    values: (len(text),) floats. diverging=True: blue (vmin) - white (0) - orange (vmax);
    otherwise white (vmin) -> red (vmax). NaN values get no colour. Each span's
    title (tooltip) shows the character and ``value_label = value``. font_size: a CSS size
    (e.g. "24px" on a projector). Raises ValueError when len(values) != len(text) or vmin >= vmax.
    """
    if not re.fullmatch(r"\d{1,3}(\.\d{1,3})?(px|rem|em)", font_size):
        raise ValueError(f"font_size must be a CSS size such as 24px or 1.2rem, got {font_size!r}")
    arr = _check_lengths(text, values, "values")
    if not vmin < vmax:
        raise ValueError(f"vmin must be smaller than vmax, got vmin={vmin}, vmax={vmax}")
    spans = []
    for c, v in zip(text, arr):
        label = f"'{visible_char(c)}'"
        if math.isnan(v):
            spans.append(_char_span(c, None, f"{label}: {value_label} n/a"))
            continue
        if diverging:
            rgb = interpolate_rgb(DIVERGING_STOPS, diverging_position(v, vmin, vmax))
        else:
            rgb = interpolate_rgb(SURPRISE_STOPS, (v - vmin) / (vmax - vmin))
        spans.append(_char_span(c, rgb, f"{label}: {value_label} = {v:+.3f}"))
    return _wrap(spans, font_size)


def surprise_text_html(text: str, surprise_nats, *, max_bits: float = 6.0) -> str:
    """Each character coloured by how surprised the model was to see it.

    surprise_nats: (len(text),) values of -ln p(char | previous chars); NaN means
    "no prediction" (e.g. the very first character) and is left uncoloured.
    Colour runs white (0 bits) -> orange -> red (>= max_bits; 6 bits is a uniform
    guess over 64 characters). Tooltips give -log2 p in bits and p.
    Raises ValueError when len(surprise_nats) != len(text) or max_bits <= 0.
    """
    arr = _check_lengths(text, surprise_nats, "surprise_nats")
    if not max_bits > 0:
        raise ValueError(f"max_bits must be > 0, got {max_bits}")
    spans = []
    for c, nats in zip(text, arr):
        label = f"'{visible_char(c)}'"
        if math.isnan(nats):
            spans.append(_char_span(c, None, f"{label}: no prediction"))
            continue
        bits = nats / math.log(2.0)
        rgb = interpolate_rgb(SURPRISE_STOPS, bits / max_bits)
        p = math.exp(-nats)
        spans.append(_char_span(c, rgb, f"{label}: −log₂ p = {bits:.2f} bits (p = {p:.3g})"))
    return _wrap(spans)


def legend_html(
    vmin: float = -1.0,
    vmax: float = 1.0,
    *,
    diverging: bool = True,
    label: str = "",
    width_px: int = 220,
) -> str:
    """A small horizontal colour bar with end (and centre) labels.

    diverging=True matches ``colored_text_html``'s default palette; diverging=False
    matches the white->red palette (e.g. ``legend_html(0, 6, diverging=False,
    label="surprise (bits)")`` for ``surprise_text_html``).
    """
    if not vmin < vmax:
        raise ValueError(f"vmin must be smaller than vmax, got vmin={vmin}, vmax={vmax}")
    stops = DIVERGING_STOPS if diverging else SURPRISE_STOPS
    gradient = ", ".join(f"{_rgb_css(rgb)} {pos * 100:.0f}%" for pos, rgb in stops)
    centre = 0.0 if (diverging and vmin < 0.0 < vmax) else (vmin + vmax) / 2.0
    bar = (
        f'<div style="width:{int(width_px)}px;height:10px;border:1px solid #ccc;'
        f'border-radius:3px;background:linear-gradient(to right, {gradient});"></div>'
    )
    ticks = (
        f'<div style="width:{int(width_px)}px;position:relative;height:1.2em;font-size:0.75rem;color:#555;">'
        f'<span style="position:absolute;left:0;">{html_text(f"{vmin:g}")}</span>'
        f'<span style="position:absolute;left:50%;transform:translateX(-50%);">'
        f'{html_text(f"{centre:g}")}</span>'
        f'<span style="position:absolute;right:0;">{html_text(f"{vmax:g}")}</span></div>'
    )
    caption = (
        f'<div style="font-size:0.8rem;color:#333;margin-bottom:2px;">{html_text(label)}</div>'
        if label
        else ""
    )
    return f'<div class="rnn-legend" style="display:inline-block;">{caption}{bar}{ticks}</div>'
