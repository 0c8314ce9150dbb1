"""The Guess page's game (playground.views.game) and the page itself in AppTest."""
import numpy as np
import pytest

from playground.views import analysis, game

CHARS = "\n abc"


def probs_for(top: str) -> np.ndarray:
    p = np.full(len(CHARS), 0.1)
    p[CHARS.index(top)] = 0.6
    return p


def test_play_scores_both_players_and_moves_on_by_one_character():
    g = game.new_game("ab" * 40)
    assert g.position == game.FIRST_GUESS_AT and g.context == ("ab" * 40)[:game.FIRST_GUESS_AT]
    truth = g.passage[g.position]                              # "a"
    r = game.play(g, truth, probs_for("b"), CHARS)
    assert (r.truth, r.you_right, r.model_guess, r.model_right) == (truth, True, "b", False)
    assert r.model_p_truth == pytest.approx(0.1) and r.model_top[0] == ("b", pytest.approx(0.6))
    assert len(r.model_top) == game.TOP_K
    r = game.play(g, "c", probs_for(g.passage[g.position]), CHARS)
    assert not r.you_right and r.model_right
    assert (g.rounds, g.your_hits, g.model_hits, g.position) == (2, 1, 1, game.FIRST_GUESS_AT + 2)
    assert g.last is r


def test_a_passage_ends_and_refuses_further_guesses():
    g = game.new_game("ab")
    assert g.position == 1
    game.play(g, "b", probs_for("b"), CHARS)
    assert g.finished
    with pytest.raises(ValueError, match="finished"):
        game.play(g, "a", probs_for("a"), CHARS)
    with pytest.raises(ValueError, match="at least 2 characters"):
        game.new_game("a")


@pytest.mark.parametrize("typed, expected", [("a", "a"), (" ", " "), ("\\n", "\n"), ("⏎", "\n")])
def test_parse_guess_accepts_one_known_character_or_a_line_break_name(typed, expected):
    assert game.parse_guess(typed, CHARS) == (expected, None)


@pytest.mark.parametrize("typed, message", [("", "you typed nothing"), ("ab", "you typed 'ab'"),
                                            ("z", "never seen 'z'")])
def test_parse_guess_says_what_is_wrong(typed, message):
    char, problem = game.parse_guess(typed, CHARS)
    assert char is None and message in problem


# ---------------------------------------------------------------- the page
@pytest.fixture
def guess_page(open_page):
    return open_page("app_pages/guess.py")


def metric(at, label):
    return next(m.value for m in at.metric if m.label == label)


def test_guessing_scores_against_the_networks_top_choice(guess_page):
    at = guess_page
    g = at.session_state.guess_game
    run = at.session_state.app.run
    truth, position = g.passage[g.position], g.position
    probs = analysis.next_char_probs(run.trainer.model, run.vocab.encode(g.passage[:position]))
    model_top = run.vocab.chars[int(np.argmax(probs))]

    at.text_input(key="guess_input").input("\\n" if truth == "\n" else truth)
    at.button(key="guess_submit").click().run()
    assert not at.exception and not at.error
    g = at.session_state.guess_game
    assert g.position == position + 1 and g.rounds == 1 and g.your_hits == 1
    assert g.model_hits == int(model_top == truth)
    assert metric(at, "You") == "1 (100%)" and metric(at, "Rounds") == "1"
    assert any("It was" in s.value for s in at.success)


def test_a_bad_guess_is_explained_and_not_scored(guess_page):
    at = guess_page
    at.text_input(key="guess_input").input("€")
    at.button(key="guess_submit").click().run()
    assert not at.exception
    assert any("never seen" in e.value and "€" in e.value for e in at.error)
    assert at.session_state.guess_game.rounds == 0


def test_new_passage_restarts_the_score(guess_page):
    at = guess_page
    g = at.session_state.guess_game
    at.text_input(key="guess_input").input(g.passage[g.position] if g.passage[g.position] != "\n" else "\\n")
    at.button(key="guess_submit").click().run()
    at.button(key="guess_new").click().run()
    assert at.session_state.guess_game.rounds == 0 and metric(at, "Rounds") == "0"
