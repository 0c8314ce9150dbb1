"""Unit tests for playground.views.textviews: safe HTML from text plus per-character values."""

import math
import re
from html.parser import HTMLParser

import pytest

from playground.views import textviews as TV


class _SpanCollector(HTMLParser):
    """Collects (title, text, style) of each <span> and counts <br> tags."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.spans = []
        self.brs = 0
        self._open = None

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "span":
            self._open = [attrs.get("title"), "", attrs.get("style", "")]
        elif tag == "br":
            self.brs += 1

    def handle_data(self, data):
        if self._open is not None:
            self._open[1] += data

    def handle_endtag(self, tag):
        if tag == "span" and self._open is not None:
            self.spans.append(tuple(self._open))
            self._open = None


def _parse(html_text):
    parser = _SpanCollector()
    parser.feed(html_text)
    return parser


def _background(style):
    match = re.search(r"background-color:rgb\((\d+),(\d+),(\d+)\)", style)
    return tuple(int(g) for g in match.groups()) if match else None


def test_visible_char():
    assert [TV.visible_char(c) for c in " \n\tA\x00"] == ["␣", "⏎", "⇥", "A", "␀"]


INVISIBLE = {
    "\u202e": "⟨RLO⟩", "\u202a": "⟨LRE⟩", "\u202b": "⟨RLE⟩", "\u202c": "⟨PDF⟩", "\u202d": "⟨LRO⟩",
    "\u2066": "⟨LRI⟩", "\u2067": "⟨RLI⟩", "\u2068": "⟨FSI⟩", "\u2069": "⟨PDI⟩",
    "\u200b": "⟨ZWSP⟩", "\u200c": "⟨ZWNJ⟩", "\u200d": "⟨ZWJ⟩", "\u2060": "⟨WJ⟩", "\ufeff": "⟨ZWNBSP⟩",
    "\u200e": "⟨LRM⟩", "\u200f": "⟨RLM⟩", "\u00ad": "⟨SHY⟩", "\u2028": "⟨LSEP⟩", "\u2029": "⟨PSEP⟩",
    "\u0085": "⟨U+0085⟩",      # a C1 control
    "\u2064": "⟨U+2064⟩",      # INVISIBLE PLUS, another format character (category Cf)
    "\U000e0041": "⟨U+E0041⟩",  # a tag character (Cf)
}


@pytest.mark.parametrize("char, shown", INVISIBLE.items())
def test_invisible_and_reordering_characters_are_shown_by_name(char, shown):
    assert TV.visible_char(char) == shown


def test_visible_characters_are_left_alone():
    for c in "aZ9é€中👍\u00a0\u0301":      # letters, symbols, emoji, no-break space, a combining accent
        assert TV.visible_char(c) == c


def test_a_right_to_left_override_cannot_reverse_a_per_character_view():
    text = "ab\u202ecd\u200be"
    for html_text in (TV.colored_text_html(text, [0.1] * len(text)),
                      TV.surprise_text_html(text, [0.5] * len(text))):
        assert "\u202e" not in html_text and "\u200b" not in html_text
        spans = _parse(html_text).spans
        assert [s[1] for s in spans] == ["a", "b", "⟨RLO⟩", "c", "d", "⟨ZWSP⟩", "e"]
        assert spans[2][0].startswith("'⟨RLO⟩'")       # the tooltip names it too


def test_reveal_invisible_keeps_spaces_and_line_breaks_of_a_text():
    assert TV.reveal_invisible("a b\tc\nd\u202ee\x00") == "a b\tc\nd⟨RLO⟩e␀"


def test_heatmap_tick_labels_use_the_same_stand_ins():
    import numpy as np

    from playground.views import hidden_figures

    fig = hidden_figures.hidden_heatmap(np.zeros((3, 2)), "a\u202eb")
    assert list(fig.layout.xaxis.ticktext) == ["a", "⟨RLO⟩", "b"]


@pytest.mark.parametrize("n, expected", [(0, "0 characters"), (1, "1 character"), (2, "2 characters"),
                                         (12345, "12,345 characters")])
def test_count_agrees_with_its_number(n, expected):
    assert TV.count(n, "character") == expected
    assert TV.count(1, "sample") == "1 sample" and TV.count(3, "iteration") == "3 iterations"


def test_the_guess_page_shows_an_override_in_its_passage_by_name(open_page):
    from playground.runs.run import Run, RunConfig
    from playground.views import game

    text = "To be, or not to be: \u202ethat is the question.\n" * 40
    at = open_page("app_pages/guess.py")
    at.session_state.app.run = Run(RunConfig(corpus="custom", hidden_size=8, seq_length=10), text, "rlo")
    at.session_state.guess_game = game.new_game(text[:200])
    at.session_state.guess_run = id(at.session_state.app.run)
    at.run()
    assert not at.exception
    (passage,) = [h.proto.body for h in at.get("html") if "?</span>" in h.proto.body]
    assert "\u202e" not in passage and "⟨RLO⟩that is" in passage


def test_messages_that_count_agree_with_their_number():
    from playground.views import analysis, game

    assert game.parse_guess("z", "a")[1] == "The model has never seen 'z': guess the only character of its text."
    assert "guess one of the 2 characters" in game.parse_guess("z", "ab")[1]
    message = analysis.unknown_chars_message("az", "a")
    assert message.startswith("The text contains 1 character the model has never seen: 'z' (U+007A).")
    assert "It can only read the 1 character of its training text: a." in message


def test_colored_text_one_span_per_char_and_values_in_titles():
    html_text = TV.colored_text_html("abc", [-1.0, 0.0, 1.0])
    spans = _parse(html_text).spans
    assert [s[1] for s in spans] == ["a", "b", "c"]
    assert "-1.000" in spans[0][0] and "+0.000" in spans[1][0] and "+1.000" in spans[2][0]
    assert "monospace" in html_text and "pre-wrap" in html_text


def test_colored_text_diverging_colours():
    spans = _parse(TV.colored_text_html("abc", [-1.0, 0.0, 1.0])).spans
    neg, zero, pos = (_background(s[2]) for s in spans)
    assert neg[2] > neg[0]  # blue dominates
    assert pos[0] > pos[2]  # red dominates
    assert min(zero) > 240  # near white
    # Out-of-range values saturate instead of failing.
    spans = _parse(TV.colored_text_html("ab", [-5.0, 5.0])).spans
    assert _background(spans[0][2]) == neg and _background(spans[1][2]) == pos


def test_colored_text_sequential_mode():
    spans = _parse(TV.colored_text_html("ab", [0.0, 1.0], vmin=0.0, vmax=1.0, diverging=False)).spans
    assert _background(spans[0][2]) == (255, 255, 255)
    low, high = _background(spans[0][2]), _background(spans[1][2])
    assert high[1] < low[1]  # redder


def test_html_escaping_of_special_characters():
    text = '<b>&"x\'</b>'
    html_text = TV.colored_text_html(text, [0.0] * len(text))
    assert "<b>" not in html_text and "</b>" not in html_text
    assert "&lt;" in html_text and "&amp;" in html_text and "&quot;" in html_text
    spans = _parse(html_text).spans
    assert "".join(s[1] for s in spans) == text  # browser shows the original characters
    assert spans[0][0].startswith("'<'")  # tooltip decoded correctly too


def test_markdown_and_streamlit_syntax_neutralised():
    text = "$x$ *a* :red[b] `c`"
    html_text = TV.colored_text_html(text, [0.0] * len(text))
    for raw in "$*:`[":
        assert raw not in re.sub(r"<[^>]*>", "", html_text)  # not in visible text
    assert "".join(s[1] for s in _parse(html_text).spans) == text


def test_the_views_escape_in_the_one_place():
    from playground.escape import html_text

    text = "<a href='x'>&\"$:"
    body = TV.colored_text_html(text, [0.0] * len(text))
    for c in text:
        assert f">{html_text(c)}</span>" in body
    assert f">{html_text('<h> & $x$')}</div>" in TV.legend_html(-1, 1, label="<h> & $x$")


def test_newline_marker_and_break():
    parsed = _parse(TV.colored_text_html("a\nb", [0.1, 0.2, 0.3]))
    assert parsed.brs == 1
    assert [s[1] for s in parsed.spans] == ["a", "⏎", "b"]
    assert "\n" not in TV.colored_text_html("a\nb", [0.1, 0.2, 0.3])


def test_nan_value_is_uncoloured():
    spans = _parse(TV.colored_text_html("ab", [math.nan, 0.5])).spans
    assert _background(spans[0][2]) is None and "n/a" in spans[0][0]


@pytest.mark.parametrize("builder", [TV.colored_text_html, TV.surprise_text_html])
def test_length_mismatch_raises(builder):
    with pytest.raises(ValueError, match="len\\(text\\) = 3, got 2"):
        builder("abc", [0.1, 0.2])


def test_bad_range_raises():
    with pytest.raises(ValueError, match="vmin"):
        TV.colored_text_html("a", [0.0], vmin=1.0, vmax=1.0)
    with pytest.raises(ValueError, match="max_bits"):
        TV.surprise_text_html("a", [0.0], max_bits=0)


def test_surprise_tooltips_in_bits_and_colour_order():
    nats = [math.nan, math.log(2), 6 * math.log(2)]
    spans = _parse(TV.surprise_text_html("a<c", nats)).spans
    assert "no prediction" in spans[0][0] and _background(spans[0][2]) is None
    assert "1.00 bits" in spans[1][0] and "p = 0.5" in spans[1][0]
    assert "6.00 bits" in spans[2][0]
    assert spans[1][1] == "<"
    calm, shocked = _background(spans[1][2]), _background(spans[2][2])
    assert shocked[1] < calm[1]  # more surprise -> less green -> redder


def test_empty_text():
    assert _parse(TV.colored_text_html("", [])).spans == []


def test_legend_html():
    html_text = TV.legend_html(-1, 1, label="activation <h>")
    assert "linear-gradient" in html_text
    assert "&lt;h&gt;" in html_text
    assert ">-1<" in html_text and ">0<" in html_text and ">1<" in html_text
    seq = TV.legend_html(0, 6, diverging=False, label="surprise (bits)")
    assert "rgb(255,255,255) 0%" in seq and ">6<" in seq
    with pytest.raises(ValueError, match="vmin"):
        TV.legend_html(1, 0)


def test_colored_text_takes_a_css_font_size_and_refuses_anything_else():
    assert "font-size:24px" in TV.colored_text_html("ab", [0.1, -0.2], font_size="24px")
    for bad in ("24", "24px;color:red", "</div>", "huge"):
        with pytest.raises(ValueError, match="font_size"):
            TV.colored_text_html("ab", [0.1, -0.2], font_size=bad)
