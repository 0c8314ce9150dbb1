"""The one place where user-controlled text is made safe to show.

Corpus labels, file names, vocabularies and error messages that quote them come from uploads,
checkpoints and saved runs: anything. Three targets:

- ``markdown_text(s)``: for Streamlit Markdown (``st.markdown``, ``st.caption``, ``st.success`` ...,
  also inside ``unsafe_allow_html`` HTML). The characters Markdown, GitHub's extensions and
  Streamlit act on become numeric character references, so no link (``[x](url)``, ``<url>``),
  image, emphasis, code, heading, list, table, math (``$``), HTML tag, colour directive
  (``:red[...]``) or icon (``:material/...:``) can start inside it; Markdown turns the references
  back into the characters, so the text reads exactly as it was. Two of Streamlit's extensions
  work on the decoded text instead: bare ``http://``, ``www.`` and e-mail addresses become links,
  ``:smile:`` an emoji. An invisible WORD JOINER (U+2060) after every colon and before every ``@``
  and the dot of ``www.`` breaks those patterns. (An underscore between two letters or digits is
  left as it is: Markdown never reads it as emphasis, and names such as ``hidden_size`` stay
  searchable in the page source.)
- ``chart_label(s)``: for Plotly legend, hover and tick text, which Plotly renders as a small HTML
  subset (``<b>``, ``<a href>``, entities), as LaTeX between ``$`` signs, and with ``%{...}``
  placeholders in hover templates: ``& < > $ %`` become character references.
- ``html_text(s)``: for text and quoted attribute values inside HTML the app writes itself
  (``st.html``: the per-character text views, the Sample page's prime, the Guess page's passage).
  ``& < > " '`` become references, and so do the characters Markdown and Streamlit act on
  (``$ * _ ` [ ] : ~ # | \\ { }``), so no Markdown syntax starts in it either. (Bare URLs are not
  broken: text meant for Markdown goes through ``markdown_text``.) A tab is kept, as it is only
  whitespace in HTML; a caller that wants line breaks writes its own ``<br>``.

All three also make the text one line (line breaks and other control characters become spaces,
since a new line would start a new Markdown block) and replace what cannot be sent to a browser
(unpaired surrogates) or could reorder the text around it (bidirectional controls) by U+FFFD.

Escape once, where the string is put into Markdown, HTML or a chart; store and pass around the raw text.
"""
from __future__ import annotations

import unicodedata

__all__ = ["markdown_text", "chart_label", "html_text"]

# Unicode's bidirectional embedding, override and isolate controls: they reorder surrounding text.
_BIDI_CONTROLS = frozenset("\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069\u200e\u200f\u061c")
_JOINER = "&#8288;"   # U+2060 WORD JOINER: invisible, and no letter, digit or punctuation
_MARKDOWN = {c: f"&#{ord(c)};" for c in "\\`*_[]<>&~|$#{}\"'"}
_MARKDOWN[":"] = "&#58;" + _JOINER    # no "http://" autolink, no ":smile:" emoji
_MARKDOWN["@"] = _JOINER + "&#64;"    # no e-mail autolink
# At the very start of a line these begin a list or a heading underline: "- x", "+ x", "===".
_LINE_START = frozenset("-+=")
_CHART = {"&": "&amp;", "<": "&lt;", ">": "&gt;", "$": "&#36;", "%": "&#37;"}
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#x27;", "\t": "\t"}
_HTML.update({c: f"&#{ord(c)};" for c in "$*_`[]:~#|\\{}"})


def _char(c: str, table: dict[str, str]) -> str:
    if c in table:
        return table[c]
    category = unicodedata.category(c)
    if category == "Cc" or category in ("Zl", "Zp"):   # control characters, line/paragraph separators
        return " "
    if category == "Cs" or c in _BIDI_CONTROLS:        # unpaired surrogate, bidirectional control
        return "\ufffd"
    return c


def markdown_text(s: object) -> str:
    """``s`` as literal text inside Streamlit Markdown (one line; see the module docstring)."""
    text = s if isinstance(s, str) else str(s)
    out = [_char(c, _MARKDOWN) for c in text]
    for i, c in enumerate(text):
        if c == "_" and 0 < i < len(text) - 1 and text[i - 1].isalnum() and text[i + 1].isalnum():
            out[i] = "_"                                   # intraword: never emphasis
        elif c == "." and text[max(0, i - 3):i].lower() == "www":
            out[i] = _JOINER + "&#46;"                     # no www. autolink
    # What would start a block if the text begins a line: indentation (a code block), "- ", "1. ".
    lead = len(text) - len(text.lstrip())
    out[:lead] = ["&#32;"] * lead
    if lead < len(text):
        if text[lead] in _LINE_START:
            out[lead] = f"&#{ord(text[lead])};"
        digits = len(text[lead:]) - len(text[lead:].lstrip("0123456789"))
        end = lead + digits
        if digits and end < len(text) and text[end] in ".)":
            out[end] = f"&#{ord(text[end])};"
    return "".join(out)


def chart_label(s: object) -> str:
    """``s`` as literal text in a Plotly legend, hover label or tick (one line)."""
    text = s if isinstance(s, str) else str(s)
    return "".join(_char(c, _CHART) for c in text)


def html_text(s: object) -> str:
    """``s`` as literal text inside HTML, between tags or in a quoted attribute (one line; a tab
    stays a tab; see the module docstring)."""
    text = s if isinstance(s, str) else str(s)
    return "".join(_char(c, _HTML) for c in text)
