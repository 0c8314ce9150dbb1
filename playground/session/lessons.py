"""Lessons: short ready experiments, each one screen. What to look for, the settings that set it up
(also as an experiment link), and, once the run has trained, a line on what the student should now
see, read from the run itself. Pure (no streamlit): every observation is tested on real runs.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import numpy as np

from playground.runs.run import Run, RunConfig

SMALL_TEXT_CHARS = 3_000   # the overfitting lesson's text: the first characters of Shakespeare
SMALL_TEXT_LABEL = f"the first {SMALL_TEXT_CHARS:,} characters of Shakespeare"


@dataclass(frozen=True)
class Lesson:
    key: str
    title: str
    look_for: str                  # one or two sentences before training
    config: RunConfig
    observe: Callable[[Run], str]  # after training: what the run shows, in a sentence
    min_iterations: int = 500      # before this, the observation says to train on
    small_text: bool = False       # trains on the first SMALL_TEXT_CHARS of Shakespeare

    def matches(self, run: Run) -> bool:
        """The run was set up by this lesson: the same settings that define the experiment, the live
        ones (optimizer, learning rate, clip) as the run has them now."""
        c, want = run.config, self.config
        defining = ("hidden_size", "seq_length", "batch_size", "optimizer", "learning_rate", "clip")
        same = all(getattr(c, name) == getattr(want, name) for name in defining)
        text = (c.corpus == "custom" and run.corpus_label == SMALL_TEXT_LABEL) if self.small_text else \
            c.corpus == want.corpus
        return same and text

    def observation(self, run: Run) -> str | None:
        """What the student should see now, or None when this run is not the lesson's."""
        if not self.matches(run):
            return None
        if run.iteration < self.min_iterations and not run.alert:
            return (f"Train a little longer: this lesson's point shows after about {self.min_iterations:,} "
                    f"iterations (the run is at {run.iteration:,}).")
        return self.observe(run)


def _observe_classic(run: Run) -> str:
    uniform = math.log2(run.vocab.size)
    return (f"The smoothed loss is {run.bits_per_char:.2f} bits per character, down from {uniform:.2f} for a "
            f"uniform guess over {run.vocab.size} characters: the network has learned which characters are "
            "common and, more and more, which follow which. Compare the samples on the Train page: spaces and "
            "line breaks come first, then short words, then names in capitals before a colon.")


def _observe_exploding(run: Run) -> str:
    if run.alert:
        return ("The loss blew up and the divergence guard paused the run, rolling it back to its last good "
                f"weights (iteration {run.iteration:,}). With gradient clip 100 nothing stopped one huge "
                "gradient step. The fix: press Classic on the Train page (learning rate 0.1, clip 5, Adagrad) "
                "and Reset.")
    return (f"No blow-up yet at iteration {run.iteration:,} (loss {run.bits_per_char:.2f} bits/char). Keep "
            "training: with plain SGD at learning rate 5 and clip 100, one large gradient is enough.")


def last_step_gradient_norms(run: Run) -> np.ndarray:
    """‖∂L_T/∂h_t‖ for t = 0..T-1 (T,): what the loss at the last step of the next training window
    sends back to each earlier hidden state, through Whh and the tanh at every step. (The full
    ‖∂L/∂h_t‖ also holds each step's own loss, which hides the decay.) From backprop_trace's hs
    and dy, by the same chain rule the trainer applies."""
    inputs, targets, h0 = run.trainer.current_window()
    one = (lambda a: None if a is None else (a[0] if np.ndim(a) == 2 else a))
    trace = run.trainer.model.backprop_trace(one(inputs), one(targets), one(h0))
    P = run.trainer.model.params
    hs, dy = trace["hs"], trace["dy"]
    g = P["Why"].T @ dy[-1]                          # ∂L_T/∂h_T
    norms = np.empty(len(hs))
    for t in range(len(hs) - 1, -1, -1):
        norms[t] = np.linalg.norm(g)
        g = P["Whh"].T @ ((1.0 - hs[t] ** 2) * g)   # ∂L_T/∂h_{t-1}
    return norms


def _observe_vanishing(run: Run) -> str:
    norms = last_step_gradient_norms(run)
    last, first = float(norms[-1]), float(norms[0])
    if last <= 0:
        return "The last step's loss sends no gradient at all here; press Step and look again."
    if first <= 0 or not np.isfinite(first):
        return "What the last step's loss sends back is exactly zero by the first step of the window: it vanished."
    decades = math.log10(last / first)
    return (f"The loss at the last of the {len(norms)} steps sends its gradient back through the window: "
            f"‖∂L_T/∂h_t‖ is {last:.3g} at the last step and {first:.3g} at the first, {decades:.0f} orders of "
            "magnitude smaller. On the Backprop page (tab *Through time*) each step's ‖∂L/∂h_t‖ stays up only "
            "because every step has a loss of its own: the first characters of a long window hardly learn "
            "from what comes many steps later, so a vanilla RNN learns short-range structure first.")


def _observe_capacity(run: Run) -> str:
    return (f"Hidden size {run.config.hidden_size}: {run.bits_per_char:.2f} bits per character after "
            f"{run.iteration:,} iterations. Now press *Keep this curve* under the loss chart, set hidden size "
            f"{256 if run.config.hidden_size < 100 else 8} on the Train page, Reset and train as long: the "
            "kept curve stays on the chart to compare, and the samples show the difference in words.")


def temperature_samples(run: Run, temperatures=(0.3, 1.0, 2.0), length: int = 160, seed: int = 0) -> list[tuple[float, str]]:
    """The same model sampled at each temperature from the same seed: (temperature, text)."""
    model, vocab = run.trainer.model, run.vocab
    return [(t, vocab.decode(model.sample(length, temperature=t, rng=seed))) for t in temperatures]


def _observe_temperature(run: Run) -> str:
    samples = temperature_samples(run)
    distinct = [len(set(text)) for _, text in samples]
    return (f"Below, the same model samples at temperature 0.3, 1 and 2 (from the same seed). Distinct characters "
            f"used: {distinct[0]}, {distinct[1]} and {distinct[2]}. Low temperature repeats the most likely "
            "characters (safe, dull, often loops); high temperature flattens the distribution into noise; "
            "1 samples what the model actually learned.")


def _observe_overfitting(run: Run) -> str:
    val = run.trainer.val_history.as_arrays()
    its, bits = val["iteration"], val["val_bits_per_char"]
    if len(bits) < 3:
        return "Train on: validation loss is measured every few hundred iterations, and it needs a few points."
    best = int(np.argmin(bits))
    if best < len(bits) - 1 and bits[-1] > bits[best] * 1.02:
        return (f"Validation loss was lowest at iteration {int(its[best]):,} ({bits[best]:.2f} bits/char) and "
                f"has risen to {bits[-1]:.2f} since, while the training loss kept falling to "
                f"{run.bits_per_char:.2f}: the network is memorising its {SMALL_TEXT_CHARS:,} characters "
                "instead of learning what generalises. More text, or stopping at the best point, is the answer.")
    return (f"Validation loss is still at its lowest ({bits[-1]:.2f} bits/char at iteration {int(its[-1]):,}); "
            "train on and watch the orange validation line on the Train page turn up while the blue one falls.")


LESSONS: tuple[Lesson, ...] = (
    Lesson("classic", "1. min-char-rnn, as Karpathy ran it",
           "The classic setting: 100 hidden units, windows of 25 characters, Adagrad at learning rate 0.1. "
           "Watch the loss fall and the samples turn from noise into something like a play.",
           RunConfig(), _observe_classic, min_iterations=2_000),
    Lesson("exploding", "2. Exploding gradients",
           "Plain SGD with a huge learning rate and (almost) no clipping. Look for the loss shooting up, and the "
           "divergence guard pausing the run with its weights rolled back.",
           RunConfig(learning_rate=5.0, optimizer="sgd", clip=100.0), _observe_exploding, min_iterations=200),
    Lesson("vanishing", "3. Vanishing gradients",
           "A long window: 200 characters. How much of the gradient of the last character's loss reaches the "
           "first steps of the window? Compare with ‖∂L/∂h_t‖ on the Backprop page, tab *Through time*.",
           RunConfig(seq_length=200), _observe_vanishing, min_iterations=200),
    Lesson("capacity", "4. Capacity: 8 hidden units against 256",
           "The same text with a tiny network. Keep its curve, then train a large one and compare the loss "
           "and the samples.",
           RunConfig(hidden_size=8), _observe_capacity, min_iterations=2_000),
    Lesson("temperature", "5. Temperature",
           "One trained model, sampled three ways: the logits divided by 0.3, 1 and 2 before the softmax.",
           RunConfig(), _observe_temperature, min_iterations=3_000),
    Lesson("overfitting", "6. Overfitting",
           f"A big network on a small text ({SMALL_TEXT_CHARS:,} characters of Shakespeare). Look at the "
           "validation loss (orange) against the training loss (blue) as training goes on.",
           RunConfig(corpus="custom", hidden_size=256, val_fraction=0.2), _observe_overfitting,
           min_iterations=3_000, small_text=True),
)


def by_key(key: str) -> Lesson:
    for lesson in LESSONS:
        if lesson.key == key:
            return lesson
    raise KeyError(key)
