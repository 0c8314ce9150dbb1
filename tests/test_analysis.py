"""Unit tests for playground.views.analysis: text features, the unit finder, predictions and surprise."""

import math

import numpy as np
import pytest

from playground.views import analysis as A
from rnn_core import VanillaRNN, Vocab

QUOTED = 'He said "no way" and (then (left)) home.\nNext "line'


def _ints(values):
    return [int(v) for v in values]


# ---------------------------------------------------------------- text features


def test_features_have_one_value_per_character_in_description_order():
    features = A.text_features(QUOTED)
    assert list(features) == list(A.FEATURE_DESCRIPTIONS)
    assert all(v.shape == (len(QUOTED),) for v in features.values())


def test_inside_double_quotes_starts_at_the_opening_quote_and_ends_at_the_closing_one():
    text = 'a "bc" d'
    assert _ints(A.text_features(text)["inside double quotes"]) == [0, 0, 1, 1, 1, 0, 0, 0]


def test_double_quotes_span_lines_but_single_quotes_reset_at_a_newline():
    text = "\"a\nb\" 'c\nd"
    f = A.text_features(text)
    assert _ints(f["inside double quotes"]) == [1, 1, 1, 1, 0, 0, 0, 0, 0, 0]
    assert _ints(f["inside single quotes"]) == [0, 0, 0, 0, 0, 0, 1, 1, 0, 0]


def test_apostrophe_inside_a_word_is_not_a_quote_and_belongs_to_the_word():
    text = "don't 'x'"
    f = A.text_features(text)
    assert _ints(f["inside single quotes"]) == [0, 0, 0, 0, 0, 0, 1, 1, 0]
    assert _ints(f["position in word"]) == [1, 2, 3, 4, 5, 0, 0, 1, 0]
    assert _ints(f["word start"]) == [1, 0, 0, 0, 0, 0, 0, 1, 0]
    assert _ints(f["punctuation"]) == [0, 0, 0, 0, 0, 0, 1, 0, 1]


def test_bracket_depth_counts_nesting_and_ignores_unmatched_closers():
    text = "a(b[c])d)e{"
    f = A.text_features(text)
    assert _ints(f["bracket depth"]) == [0, 1, 1, 2, 2, 1, 0, 0, 0, 0, 1]
    assert _ints(f["inside brackets"]) == [0, 1, 1, 1, 1, 1, 0, 0, 0, 0, 1]


def test_position_in_line_counts_characters_since_the_last_newline():
    assert _ints(A.text_features("ab\ncde\n\nf")["position in line"]) == [1, 2, 0, 1, 2, 3, 0, 0, 1]


def test_character_class_features():
    text = "Ab e\tU!"
    f = A.text_features(text)
    assert _ints(f["whitespace"]) == [0, 0, 1, 0, 1, 0, 0]
    assert _ints(f["vowel"]) == [1, 0, 0, 1, 0, 1, 0]
    assert _ints(f["uppercase"]) == [1, 0, 0, 0, 0, 1, 0]
    assert _ints(f["punctuation"]) == [0, 0, 0, 0, 0, 0, 1]


def test_features_of_empty_text_are_empty_and_non_text_is_rejected():
    assert all(v.shape == (0,) for v in A.text_features("").values())
    with pytest.raises(ValueError, match="text must be a str"):
        A.text_features(b"bytes")


# ---------------------------------------------------------------- unit finder


def _hidden_states_with_planted_units(text, hidden=12, seed=0):
    """Random states in -0.5..0.5, with unit 3 = the inside-quotes indicator (correlation exactly 1,
    the one clearly strongest unit) and unit 7 = minus the position in line plus a little noise (a
    strong negative correlation, about -0.94: clearly second)."""
    rng = np.random.default_rng(seed)
    f = A.text_features(text)
    hs = rng.uniform(-0.5, 0.5, size=(len(text), hidden))
    hs[:, 3] = f["inside double quotes"]
    hs[:, 7] = -0.01 * f["position in line"] + rng.uniform(-0.1, 0.1, size=len(text))
    return hs, f


LONG_TEXT = ('She wrote "hello there" and then (after a while) "goodbye".\n' * 6
             + 'A line with no quotes at all, only words.\n' * 3)


def test_feature_correlations_match_numpy_corrcoef():
    hs, f = _hidden_states_with_planted_units(LONG_TEXT)
    corr = A.feature_correlations(hs, f)
    assert corr.shape == (12, len(f))
    names = list(f)
    for unit in (0, 3, 5):
        for k in (0, 4, 8):
            expected = np.corrcoef(hs[:, unit], f[names[k]])[0, 1]
            assert corr[unit, k] == pytest.approx(expected, abs=1e-12)


def test_constant_units_and_features_give_nan():
    hs, f = _hidden_states_with_planted_units(LONG_TEXT)
    hs[:, 5] = 0.25
    corr = A.feature_correlations(hs, f)
    assert np.isnan(corr[5]).all()
    # A text without brackets: the bracket features never vary, so nothing can correlate with them.
    flat = A.feature_correlations(hs[:10], A.text_features("abcdefghij"))
    assert np.isnan(flat[:, list(A.FEATURE_DESCRIPTIONS).index("inside brackets")]).all()


def test_planted_units_are_unambiguous():
    hs, f = _hidden_states_with_planted_units(LONG_TEXT)
    corr = np.abs(A.feature_correlations(hs, f))
    assert corr[3, 0] == pytest.approx(1.0)
    assert 0.9 < corr[7, 4] < 0.99                      # clearly below unit 3, clearly above the rest
    others = np.delete(np.nan_to_num(corr), [3, 7], axis=0)
    assert others.max() < 0.5


def test_finder_ranks_a_planted_quote_unit_first():
    hs, f = _hidden_states_with_planted_units(LONG_TEXT)
    ranked = A.rank_units(hs, f, top=5)
    assert ranked[0] == A.UnitMatch(3, "inside double quotes", pytest.approx(1.0))
    assert (ranked[1].unit, ranked[1].feature) == (7, "position in line")
    assert len(ranked) == 5
    assert len({m.unit for m in ranked}) == 5          # one row per unit
    strengths = [round(abs(m.correlation), 9) for m in ranked]    # ranked on rounded strengths
    assert strengths == sorted(strengths, reverse=True)


def test_finder_for_one_feature_ranks_by_absolute_correlation_and_keeps_the_sign():
    hs, f = _hidden_states_with_planted_units(LONG_TEXT)
    ranked = A.rank_units(hs, f, feature="position in line", top=12)
    assert ranked[0].unit == 7
    assert ranked[0].feature == "position in line"
    assert -0.99 < ranked[0].correlation < -0.9
    assert {m.feature for m in ranked} == {"position in line"}
    assert sorted(m.unit for m in ranked) == list(range(12))


def _fake_correlations(monkeypatch, corr):
    monkeypatch.setattr(A, "feature_correlations", lambda hs, features: np.array(corr, dtype=float))


def test_finder_ties_that_differ_only_by_round_off_go_to_the_earlier_feature_then_the_lower_unit(monkeypatch):
    names = list(A.FEATURE_DESCRIPTIONS)
    f = A.text_features("ab")
    nan = float("nan")
    one_ulp_below = np.nextafter(1.0, 0.0)
    corr = np.full((4, len(names)), nan)
    corr[0, names.index("position in line")] = -1.0          # the largest float, a later feature
    corr[1, names.index("inside brackets")] = one_ulp_below   # "equal", an earlier feature
    corr[1, names.index("bracket depth")] = 1.0               # the same unit: the earlier feature is its best
    corr[2, names.index("inside brackets")] = 1.0             # same feature as unit 1: lower unit first
    corr[3, names.index("vowel")] = 0.5
    _fake_correlations(monkeypatch, corr)
    ranked = A.rank_units(np.zeros((2, 4)), f, top=4)
    assert [(m.unit, m.feature) for m in ranked] == [
        (1, "inside brackets"), (2, "inside brackets"), (0, "position in line"), (3, "vowel")]
    # Raw values are reported unrounded.
    assert ranked[0].correlation == one_ulp_below and ranked[2].correlation == -1.0
    # One feature: ties by unit index whatever the sign or the last bit.
    corr[:, names.index("vowel")] = [-one_ulp_below, 1.0, -1.0, one_ulp_below]
    _fake_correlations(monkeypatch, corr)
    assert [m.unit for m in A.rank_units(np.zeros((2, 4)), f, feature="vowel")] == [0, 1, 2, 3]


def test_finder_still_separates_scores_that_really_differ(monkeypatch):
    names = list(A.FEATURE_DESCRIPTIONS)
    corr = np.full((3, len(names)), float("nan"))
    corr[:, 0] = [0.30001, 0.3, 1e-7]
    corr[2, 1] = 2e-7
    _fake_correlations(monkeypatch, corr)
    ranked = A.rank_units(np.zeros((2, 3)), A.text_features("ab"), top=3)
    assert [(m.unit, m.feature) for m in ranked] == [(0, names[0]), (1, names[0]), (2, names[1])]


def test_most_active_units_ties_up_to_round_off_keep_the_lower_unit_first():
    hs = np.zeros((2, 3))
    hs[:, 0] = 0.3
    hs[:, 1] = np.nextafter(0.3, 1.0)                         # larger by one ulp: still a tie
    hs[:, 2] = 0.1
    units, _ = A.most_active_units(hs, top=3)
    assert units.tolist() == [0, 1, 2]


def test_finder_leaves_out_constant_units_and_checks_its_arguments():
    hs, f = _hidden_states_with_planted_units(LONG_TEXT)
    hs[:, 0] = 0.0
    assert 0 not in {m.unit for m in A.rank_units(hs, f, top=12)}
    with pytest.raises(ValueError, match="feature must be one of"):
        A.rank_units(hs, f, feature="sarcasm")
    with pytest.raises(ValueError, match="top must be an integer >= 1, got 0"):
        A.rank_units(hs, f, top=0)
    with pytest.raises(ValueError, match="hs must be 2-D"):
        A.rank_units(hs[:, 0], f)
    with pytest.raises(ValueError, match=r"must have shape \(3,\)"):
        A.feature_correlations(hs[:3], f)


def test_most_active_and_most_variable_units():
    rng = np.random.default_rng(1)
    hs = rng.uniform(-0.1, 0.1, size=(50, 6))
    hs[:, 2] = 0.95                               # saturated: most active, not variable at all
    hs[:, 4] = np.where(np.arange(50) % 2, 0.6, -0.6)   # flips every step: most variable
    units, mean_abs = A.most_active_units(hs, top=2)
    assert units[0] == 2 and mean_abs[0] == pytest.approx(0.95)
    units, std = A.most_variable_units(hs, top=3)
    assert units[0] == 4 and std[0] == pytest.approx(0.6)
    assert len(units) == 3 and 2 not in units


# ---------------------------------------------------------------- predictions and surprise


def test_top_k_orders_by_probability_and_caps_k():
    ps = np.array([[0.1, 0.6, 0.3], [0.5, 0.25, 0.25]])
    ids, probs = A.top_k(ps, 2)
    assert ids.tolist() == [[1, 2], [0, 1]]          # tie 0.25/0.25: lower id first
    assert probs.tolist() == [[0.6, 0.3], [0.5, 0.25]]
    ids, _ = A.top_k(ps, 10)
    assert ids.shape == (2, 3)
    with pytest.raises(ValueError, match="k must be an integer >= 1, got 0"):
        A.top_k(ps, 0)


def test_surprise_is_minus_log_of_the_probability_given_to_the_next_character():
    ps = np.array([[0.5, 0.25, 0.25], [0.1, 0.1, 0.8], [1.0, 0.0, 0.0]])
    ids = np.array([0, 1, 2])
    s = A.surprise_nats(ps, ids)
    assert math.isnan(s[0])
    assert s[1] == pytest.approx(math.log(4))        # ps[0][1] = 0.25
    assert s[2] == pytest.approx(-math.log(0.8))     # ps[1][2] = 0.8
    assert A.bits_per_char(s) == pytest.approx((2 + -math.log2(0.8)) / 2)


def test_impossible_character_costs_a_finite_surprise():
    s = A.surprise_nats(np.array([[1.0, 0.0], [0.5, 0.5]]), np.array([0, 1]))
    assert s[1] == pytest.approx(-math.log(A.MIN_PROBABILITY))


def test_surprise_checks_shapes_and_single_characters_have_no_prediction():
    assert np.isnan(A.surprise_nats(np.ones((1, 3)) / 3, [2])).all()
    assert math.isnan(A.bits_per_char([np.nan]))
    with pytest.raises(ValueError, match="T = len"):
        A.surprise_nats(np.ones((2, 3)) / 3, [0, 1, 2])


def test_top_k_accuracy_counts_the_next_character_among_the_best_guesses():
    ps = np.array([[0.7, 0.2, 0.1], [0.1, 0.3, 0.6], [0.3, 0.3, 0.4]])
    ids = np.array([0, 0, 1])     # next chars: 0 (rank 1 at t=0), 1 (rank 2 at t=1)
    assert A.top_k_accuracy(ps, ids, 1) == pytest.approx(0.5)
    assert A.top_k_accuracy(ps, ids, 2) == pytest.approx(1.0)
    assert math.isnan(A.top_k_accuracy(ps[:1], ids[:1], 1))


def _model_and_vocab(text="hello world, hello quotes\n", hidden=8, seed=3):
    vocab = Vocab.from_text(text)
    model = VanillaRNN(vocab.size, hidden, seed=seed)
    rng = np.random.default_rng(seed)
    for k in model.params:      # away from the 0.01 init, so predictions are not uniform
        model.params[k] += rng.normal(0, 0.5, model.params[k].shape)
    return model, vocab


def test_read_text_runs_the_model_from_zero_and_scores_each_next_character():
    model, vocab = _model_and_vocab()
    ids = vocab.encode("hello world")
    reading = A.read_text(model, ids)
    trace = model.forward(ids)
    assert reading.hs.shape == (11, 8) and reading.ps.shape == (11, vocab.size)
    np.testing.assert_allclose(reading.hs, trace.hs)
    h = np.zeros(8)
    for t, tok in enumerate(ids):            # the same recurrence, one step at a time
        h = model.step_hidden(h, int(tok))
        np.testing.assert_allclose(reading.hs[t], h, atol=1e-12)
    assert reading.surprise[4] == pytest.approx(-math.log(reading.ps[3, ids[4]]))
    assert reading.bits_per_char == pytest.approx(np.nanmean(reading.surprise) / math.log(2))
    with pytest.raises(ValueError, match="at least 1 character"):
        A.read_text(model, [])


def test_next_char_probs_is_the_distribution_sampling_draws_from():
    model, vocab = _model_and_vocab()
    prime = vocab.encode("hel")
    for temperature in (0.5, 1.0, 2.0):
        p = A.next_char_probs(model, prime, temperature)
        assert p.shape == (vocab.size,) and p.sum() == pytest.approx(1.0)
        assert model.sample(1, prime=prime, temperature=temperature, greedy=True)[0] == np.argmax(p)
    p0 = A.next_char_probs(model, [], 1.0)
    by = model.params["by"]                   # h = 0: only the output bias is left
    np.testing.assert_allclose(p0, np.exp(by - by.max()) / np.exp(by - by.max()).sum())
    sharp, flat = A.next_char_probs(model, prime, 0.3), A.next_char_probs(model, prime, 3.0)
    assert sharp.max() > A.next_char_probs(model, prime, 1.0).max() > flat.max()


# ---------------------------------------------------------------- text the user typed


def test_excerpt_starts_at_a_paragraph_and_ends_at_a_line_end():
    text = "".join(f"SPEAKER {i}:\nline one of {i}\nline two of {i}\n\n" for i in range(40))
    piece = A.excerpt(text, 100, 120)
    assert piece.startswith("SPEAKER ")
    assert piece.endswith("\n") and len(piece) <= 120
    assert piece in text
    assert A.excerpt(text, 0, 50) == text[:text.rfind("\n", 0, 50) + 1]
    assert A.excerpt("", 0, 10) == ""


def test_unknown_chars_message_names_each_character_and_what_is_allowed():
    vocab = "\n !ABCDabcdefghijklmnopqrstuvwxyz"
    assert A.unknown_chars_message("abc def\n", vocab) is None
    msg = A.unknown_chars_message("ab€c\x00€", vocab, what="The prime")
    assert msg.startswith("The prime contains 2 characters the model has never seen")
    assert "'€' (U+20AC)" in msg and "U+0000" in msg
    assert f"{len(vocab)} characters" in msg
    assert "newline space ! A\u2060–\u2060D a\u2060–\u2060z" in msg


def test_describe_char_names_invisible_characters():
    assert A.describe_char(" ") == "space (U+0020)"
    assert A.describe_char("\x01") == "\\x01 (U+0001)"
    assert A.describe_char("é") == "'é' (U+00E9)"


# ---------------------------------------------------------------- state-space trail (PCA)
def test_state_trail_recovers_a_plane_the_states_move_in():
    rng = np.random.default_rng(5)
    basis = np.linalg.qr(rng.standard_normal((12, 2)))[0].T          # two orthonormal directions in R^12
    plane = np.c_[3.0 * rng.standard_normal(40), 1.0 * rng.standard_normal(40)]
    hs = plane @ basis + 0.2                                          # an offset the centring removes
    trail = A.state_trail(hs, n_components=2)
    assert trail.coords.shape == (40, 2) and trail.components.shape == (2, 12)
    np.testing.assert_allclose(trail.explained.sum(), 1.0)
    assert trail.explained[0] > trail.explained[1] > 0.0
    # Pairwise distances in the plane are the distances between the states themselves.
    d_states = np.linalg.norm(hs[:, None] - hs[None], axis=-1)
    d_trail = np.linalg.norm(trail.coords[:, None] - trail.coords[None], axis=-1)
    np.testing.assert_allclose(d_trail, d_states, atol=1e-9)
    for direction in trail.components:                                # signs fixed: largest loading > 0
        assert direction[np.argmax(np.abs(direction))] > 0
        np.testing.assert_allclose(np.linalg.norm(direction), 1.0)


def test_state_trail_of_too_few_or_constant_states_is_all_zeros():
    for hs in (np.zeros((1, 5)), np.ones((6, 5))):
        trail = A.state_trail(hs)
        assert not trail.coords.any() and not trail.explained.any()
    with pytest.raises(ValueError, match="2-D"):
        A.state_trail(np.zeros(5))
    with pytest.raises(ValueError, match="n_components must be an integer >= 1, got 0"):
        A.state_trail(np.zeros((3, 5)), n_components=0)


def test_state_trail_directions_are_ordered_orthonormal_and_missing_ones_are_zero():
    hs = np.random.default_rng(6).standard_normal((30, 3))
    trail = A.state_trail(hs, n_components=4)                        # only 3 directions exist in R^3
    assert trail.coords.shape == (30, 4)
    assert np.all(np.diff(trail.explained[:3]) <= 0) and trail.explained[3] == 0.0
    np.testing.assert_allclose(trail.explained.sum(), 1.0)
    np.testing.assert_allclose(trail.components[:3] @ trail.components[:3].T, np.eye(3), atol=1e-12)
    assert not trail.coords[:, 3].any()
