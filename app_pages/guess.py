"""Guess: you against the model, predicting the next character of a passage it never trained on."""
import random

import streamlit as st

from playground.escape import html_text, markdown_text
from playground.session import state
from playground.views import analysis, game, textviews

PASSAGE_CHARS = 400

ss = st.session_state
run = state.get_run()
model, vocab = run.trainer.model, run.vocab


def _passage() -> str:
    """A random stretch of the held-out text (the training text when there is none)."""
    ids = run.trainer.val_ids if run.trainer.val_ids is not None else run.trainer.data
    start = random.randrange(max(1, len(ids) - 2 * PASSAGE_CHARS))
    return analysis.excerpt(vocab.decode(ids[start:start + 2 * PASSAGE_CHARS]), 1 if start else 0, PASSAGE_CHARS)


def _new_game() -> None:
    ss.guess_game = game.new_game(_passage())
    ss.guess_run = run.uid
    ss.guess_error = None


@state.locked
def _submit() -> None:
    current: game.Game = ss.guess_game
    char, problem = game.parse_guess(ss.get("guess_input", ""), vocab.chars)
    ss.guess_error = problem
    if problem or current.finished:
        return
    probs = analysis.next_char_probs(model, vocab.encode(current.passage[:current.position]))
    game.play(current, char, probs, vocab.chars)


if "guess_game" not in ss or ss.get("guess_run") != run.uid:
    _new_game()
current: game.Game = ss.guess_game

st.title("Guess the next character")
st.caption("You and the network read the same passage, taken from text it never trained on. Before each "
           "character, type what you think comes next; the network's guess is its most likely character. "
           "It reads everything before the character from h = 0, one step per character, as in training.")


def _show(c: str) -> str:
    return markdown_text(textviews.visible_char(c))


def _context_html(context: str) -> str:
    # Line breaks as ⏎ plus a real break; invisible and text-reordering characters (U+202E, ...) by name.
    shown = "".join("&#9166;<br>" if c == "\n" else html_text(textviews.reveal_invisible(c)) for c in context)
    return ('<div style="font-family:' + textviews.MONOSPACE + ';font-size:1.05rem;line-height:1.6;'
            'white-space:pre-wrap;background:#f7f7f9;border-radius:6px;padding:10px 14px;">'
            f'{shown}<span style="background:#e4572e;color:white;border-radius:3px;padding:0 5px;'
            'margin-left:1px;">?</span></div>')


scores = st.columns([1, 1, 1, 1.3], vertical_alignment="bottom")
scores[0].metric("Rounds", f"{current.rounds}", help="Rounds = characters guessed so far in this game, one per round.")
scores[1].metric("You", f"{current.your_hits}" + (f" ({current.your_hits / current.rounds:.0%})" if current.rounds else ""),
                 help="Rounds where your guess was the actual next character (hits ÷ rounds in brackets).")
scores[2].metric("Network", f"{current.model_hits}" + (f" ({current.model_hits / current.rounds:.0%})" if current.rounds else ""),
                 help="Rounds where the network's top guess, argmax pₜ, was the actual next character (hits ÷ rounds "
                      f"in brackets), with the weights of training iteration {run.iteration:,}. Train more and play "
                      "again.")
scores[3].button("New passage", key="guess_new", on_click=_new_game, icon=":material/refresh:", width="stretch")

last = current.last
if last is not None:
    def mark(right: bool) -> str:
        return "— right" if right else "— wrong"
    verdict = (f"It was **{_show(last.truth)}**. You guessed **{_show(last.guess)}** {mark(last.you_right)}; "
               f"the network guessed **{_show(last.model_guess)}** {mark(last.model_right)} (it gave "
               f"**{_show(last.truth)}** {last.model_p_truth:.0%}).")
    (st.success if last.you_right else st.info)(verdict)
    st.caption("What the network expected there, most likely first: " + " · ".join(
        f"**{_show(c)}** {p:.0%}" for c, p in last.model_top))
if current.finished:
    st.info(f"End of the passage: you {current.your_hits}, the network {current.model_hits} out of {current.rounds}. "
            "Press **New passage** to play on.")
else:
    st.html(_context_html(current.context))
    with st.form("guess_form", clear_on_submit=True, border=False):
        typed_col, button_col = st.columns([3, 1], vertical_alignment="bottom")
        typed_col.text_input("Your guess for the next character (?)", key="guess_input",
                             placeholder="a character (\\n: line break)")
        button_col.form_submit_button("Guess", key="guess_submit", on_click=_submit, type="primary",
                                      width="stretch")
    if ss.get("guess_error"):
        st.error(markdown_text(ss.guess_error), icon=":material/error:")
