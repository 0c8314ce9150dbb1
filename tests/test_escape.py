"""playground.escape, the one place user text is made safe: pure tests of markdown_text and
chart_label, the loss chart's legend, and the app's messages and captions in AppTest (the Markdown
source Streamlit receives holds the escaped label, never the raw one)."""
import html
import pathlib
import re

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from playground.escape import chart_label, html_text, markdown_text
from playground.runs import saver
from playground.runs.run import Run, RunConfig
from playground.runs.store import RunStore, new_run_id
from playground.views import compare, loss_chart

DASHBOARD = str(pathlib.Path(__file__).resolve().parents[1] / "dashboard.py")
FILES, TRAIN = "app_pages/files.py", "app_pages/train.py"
POEM = "roses are red, violets are blue,\nsugar is sweet and so are you.\n" * 40
HOSTILE = "[x](http://evil) ![i](http://evil/i.png) :red[spoof] <b>"
JOINER = "\u2060"
# What Markdown, GitHub's extensions and Streamlit act on; none may survive outside a reference.
ACTIVE = set("\\`*[]<>&~|$:#{}@")
ENTITY = re.compile(r"&#\d+;")


def shown(escaped: str) -> str:
    """The text a reader sees: references decoded, the invisible word joiners dropped."""
    return html.unescape(escaped).replace(JOINER, "")


# ---------------------------------------------------------------- markdown_text (pure)
def test_the_hostile_label_becomes_inert_references():
    assert markdown_text(HOSTILE) == (
        "&#91;x&#93;(http&#58;&#8288;//evil) !&#91;i&#93;(http&#58;&#8288;//evil/i.png) "
        "&#58;&#8288;red&#91;spoof&#93; &#60;b&#62;")


@pytest.mark.parametrize("text", [
    HOSTILE,
    "**bold** _em_ `code` ~~del~~ $x^2$ $$y$$ \\(z\\)",
    ":material/home: :smile: :blue-background[x] :small[y]",
    "<img src=x onerror=alert(1)> &amp; &lt; &#91;",
    "www.evil.com https://evil.com mailto:a@b.co a@b.co",
    "| a | b |\n|---|---|\n# heading\n> quote",
    "{#id .class} [^1] [ref]: http://evil",
    "it's \"quoted\"",
])
def test_markdown_text_reads_as_itself_and_leaves_nothing_active(text):
    escaped = markdown_text(text)
    assert not ACTIVE & set(ENTITY.sub("", escaped))
    assert shown(escaped) == text.replace("\n", " ")


def test_autolinks_and_emoji_are_broken_by_an_invisible_joiner():
    # Streamlit links bare URLs and turns :smile: into an emoji after decoding the references.
    for text in ("https://evil.com", "www.evil.com", "WWW.EVIL.COM", "me@evil.com", ":smile:"):
        decoded = html.unescape(markdown_text(text))
        assert decoded != text and decoded.replace(JOINER, "") == text
    assert not re.search(r"https?://|www\.|\w@\w|:\w+:", html.unescape(markdown_text("x https://a.b www.c.d e@f.g :h:")))


def test_an_underscore_inside_a_word_stays_and_one_at_a_word_edge_is_escaped():
    assert markdown_text("learning_rate") == "learning_rate"
    assert markdown_text("_em_ x_ _y") == "&#95;em&#95; x&#95; &#95;y"


@pytest.mark.parametrize("text, start", [
    ("- item", "&#45; item"), ("+ item", "&#43; item"), ("1. one", "1&#46; one"), ("12) twelve", "12&#41; twelve"),
    ("===", "&#61;=="), ("    indented code", "&#32;&#32;&#32;&#32;indented code"), ("# title", "&#35; title"),
])
def test_what_would_start_a_block_at_the_start_of_a_line_is_escaped(text, start):
    assert markdown_text(text) == start
    assert markdown_text(f"in the middle: {text}").endswith(text[4:])   # only at the very start


def test_one_line_valid_text_whatever_comes_in():
    escaped = markdown_text("line one\n\n- two\r\n\tthree\x1b[31m\u2028four\ud800five\u202eevil")
    assert "\n" not in escaped and "\r" not in escaped and "\x1b" not in escaped
    escaped.encode("utf-8")   # a lone surrogate would make every page of the run fail to send
    assert "\ud800" not in escaped and "\u202e" not in escaped and escaped.count("\ufffd") == 2
    assert markdown_text(42) == "42" and markdown_text(ValueError("a: b")) == "a&#58;&#8288; b"


# ---------------------------------------------------------------- html_text (pure)
@pytest.mark.parametrize("text", [
    HOSTILE, "<img src=x onerror=alert(1)>", "\" onmouseover=\"alert(1)", "' x='", "$x$ *a* `c` ~d~ #e |f| {g} \\",
])
def test_html_text_leaves_no_tag_attribute_end_or_markdown_and_reads_as_itself(text):
    escaped = html_text(text)
    assert not set("<>\"'&$*_`[]:~#|{}\\") & set(re.sub(r"&(#\d+|#x[0-9a-f]+|[a-z]+);", "", escaped))
    assert html.unescape(escaped) == text


def test_html_text_is_one_line_keeps_tabs_and_drops_what_a_browser_cannot_take():
    assert html_text("a\tb\nc\rd\x00e") == "a\tb c d e"
    assert html_text("x\u202ey\ud800") == "x\ufffdy\ufffd"
    assert html_text("a < b & c") == "a &lt; b &amp; c" and html_text(1.5) == "1.5"


# ---------------------------------------------------------------- chart_label (pure) and the legend
def test_chart_label_escapes_plotly_html_latex_and_placeholders():
    assert chart_label("<b>x</b> & $y$ %{x} <a href='http://evil'>") == (
        "&lt;b&gt;x&lt;/b&gt; &amp; &#36;y&#36; &#37;{x} &lt;a href='http://evil'&gt;")
    assert chart_label("lr 0.1 · H8 · notes.txt") == "lr 0.1 · H8 · notes.txt"
    assert chart_label("a\nb\ud800") == "a b\ufffd"


def test_the_loss_chart_legend_and_hover_of_a_kept_curve_are_escaped():
    it = np.arange(1.0, 6.0)
    curve = loss_chart.ComparedCurve(f"adam · {HOSTILE} $x$", it, np.full(5, 3.0), 5)
    fig = loss_chart.loss_figure(it, np.full(5, 4.0), np.full(5, 4.0), seq_length=5, vocab_size=4, compare=[curve])
    kept = [t for t in fig.data if t.line.dash == "dash" and t.name and "adam" in t.name]
    assert len(kept) == 1
    assert kept[0].name == chart_label(curve.label) and "<b>" not in kept[0].name and "$x$" not in kept[0].name
    assert f"<extra>{chart_label(curve.label)}</extra>" in kept[0].hovertemplate


# ---------------------------------------------------------------- the app's messages (AppTest)
@pytest.fixture
def data_dir(monkeypatch, tmp_path):
    """A temporary store, and dashboard.py run on every script run as the real server does (see
    test_app_data_files.isolated_app)."""
    directory = tmp_path / "runs"
    monkeypatch.setenv("RNN_PLAYGROUND_DATA_DIR", str(directory))
    yield directory
    saver.wait_for_saves()


def hostile_run(iterations=0) -> Run:
    run = Run(RunConfig(corpus="custom", hidden_size=8, seq_length=10), POEM, HOSTILE)
    if iterations:
        run.step(iterations)
    return run


def bodies(elements) -> list[str]:
    return [e.value for e in elements]


def assert_escaped(body: str) -> None:
    assert markdown_text(HOSTILE) in body
    assert "[x](" not in body and "![i]" not in body and ":red[" not in body and "<b>" not in body


def test_welcome_back_message_and_sidebar_show_the_label_escaped(data_dir):
    run_id = new_run_id()
    RunStore(data_dir).save(run_id, hostile_run(iterations=2).to_bytes())
    at = AppTest.from_file(DASHBOARD, default_timeout=60)
    at.query_params["run"] = run_id
    at.run()
    assert not at.exception and at.session_state.app.run.corpus_label == HOSTILE
    welcome = [b for b in bodies(at.success) if "Welcome back" in b]
    assert len(welcome) == 1
    assert_escaped(welcome[0])
    sidebar = [b for b in bodies(at.sidebar.caption) if "characters in vocabulary" in b]
    assert len(sidebar) == 1
    assert_escaped(sidebar[0])


def test_new_run_message_shows_the_label_escaped(data_dir):
    at = AppTest.from_file(DASHBOARD, default_timeout=60)
    at.run()
    at.switch_page(FILES).run()   # the sidebar's Reset, away from the Train page's corpus selector
    at.session_state.app.custom_text, at.session_state.app.custom_label = POEM, HOSTILE
    at.session_state.cfg_corpus = "custom"
    at.button(key="btn_reset").click().run()
    assert not at.exception and at.session_state.app.run.corpus_label == HOSTILE
    new_run = [b for b in bodies(at.success) if b.startswith("New run")]
    assert len(new_run) == 1
    assert_escaped(new_run[0])


def test_loaded_checkpoint_message_shows_the_label_and_the_file_name_escaped(data_dir):
    at = AppTest.from_file(DASHBOARD, default_timeout=60)
    at.run()
    at.switch_page(FILES).run()
    at.file_uploader(key="files_upload").upload("[f](http://evil).npz", hostile_run(iterations=3).to_bytes()).run()
    assert not at.exception and not at.error
    loaded = [b for b in bodies(at.success) if b.startswith("Loaded")]
    assert len(loaded) == 1
    assert_escaped(loaded[0])
    assert markdown_text("[f](http://evil).npz") in loaded[0] and "[f](" not in loaded[0]
    replaces = [b for b in bodies(at.caption) if "Loading replaces" in b]
    assert len(replaces) == 1
    assert_escaped(replaces[0])


def test_compare_runs_caption_shows_the_kept_label_escaped(data_dir):
    at = AppTest.from_file(DASHBOARD, default_timeout=60)
    at.run()
    run = hostile_run(iterations=3)
    at.session_state.app.run = run
    at.session_state.app.kept_curves = compare.keep([], run)
    at.switch_page(TRAIN).run()
    assert not at.exception
    kept = [b for b in bodies(at.caption) if b.startswith("- ")]
    assert len(kept) == 1
    assert markdown_text(compare.describe(run)) in kept[0] and "[x](" not in kept[0]
