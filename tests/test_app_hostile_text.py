"""A corpus, label and vocabulary written to attack the page (issue 10) show as plain text on the
Sample, Guess, Hidden states and Data pages: in AppTest, every Markdown message that quotes them holds
nothing Markdown or Streamlit could act on outside a character reference (no link, image, HTML tag,
colour directive, autolink or e-mail link), and reads as the text itself; every HTML view (st.html)
holds no tag of the text's and shows its characters."""
import html
import re
from html.parser import HTMLParser

import pytest

from playground.escape import markdown_text
from playground.runs.run import Run, RunConfig
from playground.views import game
from playground.views.textviews import visible_chars

LINE = "<img src=x onerror=alert(1)> [x](http://e) :red[x] a@b.co www.e.com $x$ *b* `c` ~d~ #e |f|\n"
TEXT = (LINE + "roses are red, violets are blue,\n") * 40
LABEL = "<img src=x onerror=alert(1)> [x](http://e) :red[x]"
JOINER = "\u2060"
# What Markdown, GitHub's extensions and Streamlit act on; none may survive outside a reference.
ACTIVE = set("\\`*[]<>&~|$:#{}@")
ENTITY = re.compile(r"&#\d+;")


def shown(body: str) -> str:
    """The text a reader sees: references decoded, the invisible word joiners dropped."""
    return html.unescape(body).replace(JOINER, "")


def assert_inert(body: str) -> None:
    """Nothing active outside a reference, and no autolink pattern once the references are decoded."""
    assert not ACTIVE & set(ENTITY.sub("", body)), body
    assert not re.search(r"https?://|www\.|\w@\w", html.unescape(body)), body


class _Html(HTMLParser):
    """The tags and the visible text of an st.html body."""

    def __init__(self, body: str):
        super().__init__(convert_charrefs=True)
        self.tags, self.text = [], ""
        self.feed(body)

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)

    def handle_data(self, data):
        self.text += data


@pytest.fixture
def hostile(open_page):
    """factory(page) -> an AppTest on ``page`` whose run trains on TEXT, labelled LABEL."""
    def open_hostile(page: str):
        at = open_page(page)
        at.session_state.app.run = Run(RunConfig(corpus="custom", hidden_size=8, seq_length=10), TEXT, LABEL)
        at.run()
        assert not at.exception
        return at
    return open_hostile


def errors(at) -> list[str]:
    return [e.value for e in at.error]


def html_bodies(at) -> list[str]:
    return [h.proto.body for h in at.get("html")]


# ---------------------------------------------------------------- Sample
def test_sample_page_shows_a_hostile_prime_and_the_vocabulary_in_its_error_as_text(hostile):
    at = hostile("app_pages/sample.py")
    vocab = at.session_state.app.run.vocab
    at.text_area(key="smp_prime").input(LINE[:-1] + " ü").run()         # ü: not in the vocabulary
    (error,) = errors(at)
    assert_inert(error)
    assert shown(error).startswith("The prime contains 1 character the model has never seen: 'ü' (U+00FC). "
                                   f"It can only read the {vocab.size} characters of its training text: ")
    assert " @ " in shown(error) and " < " in shown(error)

    at.text_area(key="smp_prime").input(LINE).run()
    at.number_input(key="smp_length").set_value(1)
    at.button(key="smp_generate").click().run()
    assert not at.exception and not at.error
    (prime,) = [_Html(b) for b in html_bodies(at) if "PRIME (yours)" in b]
    assert set(prime.tags) <= {"div", "span", "br"}                    # no <img> of the prime's
    assert prime.text == "PRIME (yours)" + LINE[:-1] + "⏎"
    assert [c.value for c in at.caption if c.value.startswith("Sample 1")] == ["Sample 1 · seed 0 · 1 character"]
    assert any(m.value.startswith("**1 sample** · temperature 1") for m in at.markdown)


# ---------------------------------------------------------------- Guess
def test_guess_page_shows_a_hostile_passage_verdict_and_typed_text_as_text(hostile):
    at = hostile("app_pages/guess.py")
    passage = LINE * 3
    # The page has already tied a game to this run (ss.guess_run): replace only the game.
    at.session_state.guess_game = game.Game(passage, position=len(LINE) + LINE.index("@"))
    at.run()
    (context,) = [_Html(b) for b in html_bodies(at) if "?</span>" in b]
    assert set(context.tags) <= {"div", "span", "br"}
    assert context.text == (LINE + LINE[:LINE.index("@")])[-game.CONTEXT_CHARS:].replace("\n", "⏎") + "?"

    at.text_input(key="guess_input").input("[x](http://e)")            # not one character
    at.button(key="guess_submit").click().run()
    (error,) = errors(at)
    assert_inert(error)
    assert shown(error) == "Type exactly one character (you typed '[x](http://e)'); for a line break type \\n."

    at.text_input(key="guess_input").input("<")
    at.button(key="guess_submit").click().run()
    assert not at.exception and not at.error
    (verdict,) = [m.value for m in [*at.success, *at.info] if m.value.startswith("It was")]
    assert_inert(verdict.replace("**", ""))
    assert shown(verdict).startswith("It was **@**. You guessed **<** — wrong; the network guessed **")
    (expected,) = [c.value for c in at.caption if c.value.startswith("What the network expected there")]
    assert_inert(expected.removeprefix("What the network expected there, most likely first: ").replace("**", ""))


# ---------------------------------------------------------------- Hidden states
def test_hidden_states_page_shows_a_hostile_text_and_the_vocabulary_in_its_error_as_text(hostile):
    at = hostile("app_pages/hidden_states.py")
    at.text_area(key="hs_text").input(LINE).run()
    assert not at.exception and not at.error
    views = [_Html(b) for b in html_bodies(at) if "rnn-textview" in b]
    assert len(views) == 2                                              # one unit, surprise
    for view in views:
        assert set(view.tags) <= {"div", "span", "br"}
        assert view.text == LINE.replace("\n", "⏎")

    at.text_area(key="hs_text").input(LINE + "ü").run()
    (error,) = errors(at)
    assert_inert(error)
    assert shown(error).startswith("The text contains 1 character the model has never seen: 'ü' (U+00FC).")
    assert " @ " in shown(error) and " < " in shown(error)


# ---------------------------------------------------------------- Data
def test_data_page_shows_a_hostile_label_and_vocabulary_as_text(hostile):
    at = hostile("app_pages/data.py")
    chars = at.session_state.app.run.vocab.chars
    (caption,) = [c.value for c in at.caption if "Vocabulary: " in c.value]
    label, strip = caption.split(" · the model trains on the first ")[0], caption.split("Vocabulary: ")[1]
    assert label == f"**{markdown_text(LABEL)}**" and LABEL not in caption
    assert_inert(label.strip("*"))
    assert_inert(strip)
    assert shown(strip) == " ".join(visible_chars(chars))
    assert "<img" not in caption
