"""Guess the next character: you against the model, reading the same passage one character at a time.

Pure helpers (no streamlit): the page keeps a Game in session state and calls ``play`` with the
player's guess and the model's next-character distribution (V,).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

CONTEXT_CHARS = 120       # characters shown before the one to guess
FIRST_GUESS_AT = 30       # the first guess comes after this many characters of the passage
TOP_K = 5
# What a player can type for characters a one-line text box cannot hold.
TYPED_NAMES = {"\\n": "\n", "⏎": "\n", "\\t": "\t"}


@dataclass(frozen=True)
class Round:
    """One guess: what came, who got it, and the model's view of it."""

    truth: str
    guess: str
    you_right: bool
    model_guess: str
    model_right: bool
    model_p_truth: float                   # the probability the model gave the true character
    model_top: tuple[tuple[str, float], ...]   # its TOP_K most likely characters, most likely first


@dataclass
class Game:
    passage: str
    position: int          # index in passage of the character to guess next
    rounds: int = 0
    your_hits: int = 0
    model_hits: int = 0
    last: Round | None = None

    @property
    def context(self) -> str:
        return self.passage[max(0, self.position - CONTEXT_CHARS):self.position]

    @property
    def finished(self) -> bool:
        return self.position >= len(self.passage)


def new_game(passage: str) -> Game:
    """A game on ``passage`` (at least 2 characters): the first guess comes after a little context."""
    if len(passage) < 2:
        raise ValueError(f"the passage must hold at least 2 characters, got {len(passage)}")
    return Game(passage, position=min(FIRST_GUESS_AT, len(passage) - 1))


def parse_guess(typed: str, vocab_chars: str) -> tuple[str | None, str | None]:
    """(character, None) for a valid guess, or (None, a sentence saying what is wrong)."""
    char = TYPED_NAMES.get(typed, typed)
    if len(char) != 1:
        shown = repr(typed) if typed else "nothing"
        return None, (f"Type exactly one character (you typed {shown}); for a line break type \\n.")
    if char not in vocab_chars:
        known = (f"one of the {len(vocab_chars)} characters" if len(vocab_chars) != 1
                 else "the only character")
        return None, f"The model has never seen {char!r}: guess {known} of its text."
    return char, None


def play(game: Game, guess: str, probs, vocab_chars: str) -> Round:
    """Judge ``guess`` against the next character of the passage and the model's distribution probs
    (V,) over ``vocab_chars``; score it and move on by one character. The guess must be valid
    (parse_guess) and the game not finished."""
    if game.finished:
        raise ValueError("the passage is finished: start a new one")
    probs = np.asarray(probs, dtype=float)
    if probs.shape != (len(vocab_chars),):
        raise ValueError(f"probs must have shape ({len(vocab_chars)},), got {probs.shape}")
    truth = game.passage[game.position]
    order = np.argsort(-probs, kind="stable")[:TOP_K]
    top = tuple((vocab_chars[i], float(probs[i])) for i in order)
    model_guess = top[0][0]
    result = Round(truth=truth, guess=guess, you_right=guess == truth,
                   model_guess=model_guess, model_right=model_guess == truth,
                   model_p_truth=float(probs[vocab_chars.index(truth)]) if truth in vocab_chars else 0.0,
                   model_top=top)
    game.rounds += 1
    game.your_hits += result.you_right
    game.model_hits += result.model_right
    game.position += 1
    game.last = result
    return result
