"""The one place where user-controlled text is made safe to show.

Corpus labels, file names, vocabularies and error messages that quote them come from uploads,
checkpoints and saved runs: anything. Two targets:

- ``markdown_text(s)``: for Streamlit Markdown (``st.markdown``, ``st.caption``, ``st.success`` ...,
  also inside ``unsafe_allow_html`` HTML). Every ASCII punctuation character becomes a numeric
  character reference, so no link, image, emphasis, heading, list, table, math (``$``), HTML tag,
  colour directive (``:red[...]``) or icon (``:material/...:``) can start inside it; Markdown
  turns the references back into the characters, so the text reads exactly as it was.
- ``chart_label(s)``: for Plotly legend, hover and tick text, which Plotly renders as a small HTML
  subset (``<b>``, ``<a href>``, entities), as LaTeX between ``$`` signs, and with ``%{...}``
  placeholders in hover templates: ``& < > $ %`` become character references.

Both also make the text one line (line breaks and other control characters become spaces, since a
new line would start a new Markdown block) and replace what cannot be sent to a browser (unpaired
surrogates) or could reorder the text around it (bidirectional controls) by U+FFFD.

Escape once, where the string is put into Markdown or a chart; store and pass around the raw text.
"""
from __future__ import annotations

import string
import unicodedata

__all__ = ["markdown_text", "chart_label"]

# Unicode's bidirectional embedding, override and isolate controls: they reorder surrounding text.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
_MARKDOWN = {c: f"&#{ord(c)};" for c in string.punctuation}
_CHART = {c: f"&#{ord(c)};" for c in "&<>$%"}


def _char(c: str, table: dict[str, str]) -> str:
    if c in table:
        return table[c]
    category = unicodedata.category(c)
    if category == "Cc" or category in ("Zl", "Zp"):   # control characters, line/paragraph separators
        return " "
    if category == "Cs" or c in _BIDI_CONTROLS:        # unpaired surrogate, bidirectional control
        return "\ufffd"
    return c


def _escape(s: object, table: dict[str, str]) -> str:
    text = s if isinstance(s, str) else str(s)
    return "".join(_char(c, table) for c in text)


def markdown_text(s: object) -> str:
    """``s`` as literal text inside Streamlit Markdown (one line; see the module docstring)."""
    return _escape(s, _MARKDOWN)


def chart_label(s: object) -> str:
    """``s`` as literal text in a Plotly legend, hover label or tick (one line)."""
    return _escape(s, _CHART)
