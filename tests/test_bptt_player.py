"""The BPTT player's frames and figures, without a server: every frame holds the engine's own
``backprop_trace`` rows (the same numbers, compared exactly), and the gradients add up term by term."""
import json

import numpy as np
import pytest

from playground.views import bptt_player as bp
from rnn_core import VanillaRNN

T, H, V = 9, 12, 7


@pytest.fixture(scope="module")
def window():
    model = VanillaRNN(V, H, seed=3)
    rng = np.random.default_rng(5)
    inputs, targets = rng.integers(0, V, T), rng.integers(0, V, T)
    h0 = np.tanh(rng.normal(size=H))            # a window in the middle of the text starts from a real h
    trace = model.backprop_trace(inputs, targets, h0)
    return model.params, trace, inputs, targets, h0


@pytest.fixture(scope="module")
def frames(window):
    params, trace, inputs, targets, _ = window
    return bp.all_frames(params, trace, inputs, targets)


def test_frame_order_forward_then_backward():
    assert bp.frame_count(T) == 2 * T
    steps = [bp.frame_step(T, k) for k in range(2 * T)]
    assert steps[:T] == [("forward", t) for t in range(T)]
    assert steps[T:] == [("backward", t) for t in range(T - 1, -1, -1)]
    assert bp.frame_label(T, T) == f"backward t = {T - 1}"
    for bad in (-1, 2 * T, 1.0, True):
        with pytest.raises(ValueError, match="frame index"):
            bp.frame_step(T, bad)


def test_forward_frames_hold_the_traces_rows_up_to_t(window, frames):
    _, trace, _, targets, h0 = window
    for t, frame in enumerate(frames[:T]):
        assert (frame.phase, frame.t, frame.index) == ("forward", t, t)
        np.testing.assert_array_equal(frame.hs[: t + 1], trace["hs"][: t + 1])
        assert np.isnan(frame.hs[t + 1:]).all()
        np.testing.assert_array_equal(frame.h_prev[: t + 1], trace["h_prev"][: t + 1])
        np.testing.assert_array_equal(frame.losses[: t + 1], trace["losses"][: t + 1])
        np.testing.assert_array_equal(frame.p_target[: t + 1], trace["ps"][np.arange(t + 1), targets[: t + 1]])
        assert frame.loss_so_far == np.cumsum(trace["losses"])[t]
        for part in (frame.dy, frame.dh, frame.dh_raw, frame.from_output, frame.from_future):
            assert np.isnan(part).all()              # nothing of the backward pass yet
        assert frame.terms is None and all(not g.any() for g in frame.grads.values())
    np.testing.assert_array_equal(frames[0].h_prev[0], h0)
    assert frames[T - 1].loss_so_far == pytest.approx(trace["loss"], rel=1e-12)


def test_backward_frames_hold_the_traces_rows_from_the_end_to_t(window, frames):
    params, trace, inputs, _, _ = window
    for j, frame in enumerate(frames[T:]):
        t = T - 1 - j
        assert (frame.phase, frame.t) == ("backward", t)
        np.testing.assert_array_equal(frame.hs, trace["hs"])
        np.testing.assert_array_equal(frame.losses, trace["losses"])
        for name in ("dy", "dh", "dh_raw"):
            np.testing.assert_array_equal(getattr(frame, name)[t:], trace[name][t:])
            assert np.isnan(getattr(frame, name)[:t]).all()
        # dh_t arrives from the output and from the step after (computed here, not held by the trace:
        # the same products in another BLAS order, so equal to rounding); their sum is the engine's dh_t.
        np.testing.assert_allclose(frame.from_output[t], params["Why"].T @ trace["dy"][t], rtol=1e-13, atol=1e-17)
        if t + 1 < T:
            np.testing.assert_allclose(frame.from_future[t], params["Whh"].T @ trace["dh_raw"][t + 1], rtol=1e-13,
                                       atol=1e-17)
        else:
            assert not frame.from_future[t].any()
        np.testing.assert_allclose(frame.from_output[t] + frame.from_future[t], trace["dh"][t], rtol=1e-12,
                                   atol=1e-15)
        np.testing.assert_array_equal(frame.dh_raw[t], (1 - trace["hs"][t] ** 2) * trace["dh"][t])
        # This step's terms, from the trace's rows:
        x = np.zeros(V)
        x[inputs[t]] = 1.0
        np.testing.assert_array_equal(frame.terms["Why"], np.outer(trace["dy"][t], trace["hs"][t]))
        np.testing.assert_array_equal(frame.terms["by"], trace["dy"][t])
        np.testing.assert_array_equal(frame.terms["Whh"], np.outer(trace["dh_raw"][t], trace["h_prev"][t]))
        np.testing.assert_array_equal(frame.terms["bh"], trace["dh_raw"][t])
        np.testing.assert_array_equal(frame.terms["Wxh"], np.outer(trace["dh_raw"][t], x))


def test_gradients_accumulate_term_by_term_to_the_engines(window, frames):
    _, trace, _, _, _ = window
    previous = {name: np.zeros_like(g) for name, g in frames[0].grads.items()}
    for frame in frames[T:]:
        for name in bp.GRAD_NAMES:
            np.testing.assert_array_equal(frame.grads[name], previous[name] + frame.terms[name])
        previous = frame.grads
    # The sum over all steps is the engine's gradient (summed in another order: equal to rounding).
    for name in bp.GRAD_NAMES:
        np.testing.assert_allclose(frames[-1].grads[name], trace["grads"][name], rtol=1e-10, atol=1e-14)


def test_build_frame_checks_its_inputs(window):
    params, trace, inputs, targets, _ = window
    with pytest.raises(ValueError, match="inputs must have shape"):
        bp.build_frame(params, trace, inputs[:-1], targets, 0)
    with pytest.raises(ValueError, match="frame index"):
        bp.build_frame(params, trace, inputs, targets, 2 * T)


def test_tick_plays_one_frame_per_period_and_stops_at_the_end():
    n = 4
    state = bp.play(bp.PlayerState(), n, now=10.0)
    assert state == bp.PlayerState(0, True, 10.0)
    assert bp.tick(state, n, now=10.1, fps=2.0) == state       # an early rerun changes nothing
    state = bp.tick(state, n, now=10.5, fps=2.0)
    assert state == bp.PlayerState(1, True, 10.5)
    state = bp.tick(bp.tick(state, n, 11.0, 2.0), n, 11.5, 2.0)
    assert state == bp.PlayerState(3, False, 11.5)                # last frame reached: stopped
    assert bp.tick(state, n, 20.0, 2.0) == state
    assert bp.play(state, n, now=30.0) == bp.PlayerState(0, True, 30.0)   # play again from the start
    assert bp.step(bp.PlayerState(2, True, 1.0), n, 5) == bp.PlayerState(3, False, 1.0)
    assert bp.step(bp.PlayerState(0, False, 1.0), n, -1).index == 0


def test_needs_new_window():
    assert bp.needs_new_window(None, ("a", 0), training=True, playing=False)
    assert bp.needs_new_window(("a", 3), ("b", 3), training=True, playing=True)     # another run
    assert not bp.needs_new_window(("a", 3), ("a", 3), training=False, playing=False)
    assert bp.needs_new_window(("a", 3), ("a", 4), training=False, playing=False)   # stepped while paused
    assert not bp.needs_new_window(("a", 3), ("a", 9), training=True, playing=False)
    assert not bp.needs_new_window(("a", 3), ("a", 4), training=False, playing=True)


def test_equations_show_the_frames_numbers(window, frames):
    params, trace, inputs, targets, _ = window
    unit = bp.default_unit(trace)
    assert unit == int(np.argmax(np.abs(trace["dh_raw"]).sum(axis=0)))
    forward = bp.equations_latex(frames[2], params, inputs, targets, unit)
    assert rf"h_{{2}}[{unit}]" in forward and f"{trace['losses'][2]:.4g}" in forward
    assert f"{np.cumsum(trace['losses'])[2]:.4g}" in forward
    assert r"\blacktriangleleft" in forward and r"\color{#b34700}" in forward
    back = bp.equations_latex(frames[T + 1], params, inputs, targets, unit)   # t = T − 2
    t = T - 2
    assert f"{trace['dh'][t, unit]:.4g}" in back and f"{trace['dh_raw'][t, unit]:.4g}" in back
    last = bp.equations_latex(frames[T], params, inputs, targets, unit)       # t = T − 1: no later step
    assert r"\text{no later step}" in last
    with pytest.raises(ValueError, match="unit must be"):
        bp.equations_latex(frames[0], params, inputs, targets, H)
    assert r"\color{#888888}" in bp.phase_equations_latex("forward")
    with pytest.raises(ValueError, match="phase"):
        bp.phase_equations_latex("sideways")


def _z(fig):
    return np.asarray(fig.data[0].z, dtype=float)


def test_figures_draw_the_frames_arrays_with_hover_and_labelled_colour_bars(window, frames):
    params, trace, inputs, targets, _ = window
    chars = "ab <c&$\n"[:T].ljust(T, "x")
    frame = frames[T + 2]
    hidden = bp.hidden_figure(frame, chars)
    np.testing.assert_array_equal(_z(hidden), frame.hs.T)
    assert "h_t" in hidden.data[0].hovertemplate and "hidden unit %{y}" in hidden.data[0].hovertemplate
    assert "blue" in hidden.data[0].colorbar.title.text and "orange" in hidden.data[0].colorbar.title.text
    assert hidden.layout.shapes[0].x0 == frame.t - 0.5                     # the current step outlined
    assert "&lt;" in hidden.data[0].customdata.ravel().tolist()             # characters escaped for Plotly
    assert not bp.dh_figure(frames[2], chars, 1.0).layout.shapes     # forward: no dh step outlined yet
    dh = bp.dh_figure(frame, chars, bp.dh_limit(trace))
    assert dh.layout.shapes[0].x0 == frame.t - 0.5
    np.testing.assert_array_equal(_z(dh), frame.dh.T)
    assert dh.data[0].zmax == bp.dh_limit(trace) == np.abs(trace["dh"]).max()
    loss = bp.loss_figure(frames[3], chars)
    np.testing.assert_array_equal(np.asarray(loss.data[0].y, dtype=float), frames[3].losses)
    assert f"{frames[3].loss_so_far:.3f}" in loss.layout.title.text
    flow = bp.flow_figure(frame, chars)
    assert [tr.name for tr in flow.data] == ["from output", "from step t+1", "dhₜ", "dh_rawₜ"]
    assert "W_hyᵀ dy_t" in flow.data[0].hovertemplate and "after the tanh" in flow.data[3].hovertemplate
    np.testing.assert_array_equal(np.asarray(flow.data[2].y, dtype=float)[frame.t:],
                                  np.linalg.norm(trace["dh"][frame.t:], axis=1))
    grad = bp.grad_figure(frame, "Whh", trace["grads"]["Whh"], "abcdefg")
    np.testing.assert_array_equal(_z(grad), frame.grads["Whh"])
    for fig in (hidden, dh, loss, flow, grad):
        json.loads(fig.to_json())
        assert all(tr.hovertemplate for tr in fig.data)
    with pytest.raises(ValueError, match="one character per time step"):
        bp.hidden_figure(frame, chars[:-1])
    with pytest.raises(ValueError, match="name must be"):
        bp.grad_figure(frame, "bh", trace["grads"]["bh"], "abcdefg")


def test_heatmaps_cap_the_units_drawn():
    big = VanillaRNN(5, bp.MAX_UNITS_DRAWN + 20, seed=0)
    ids = np.arange(6) % 5
    trace = big.backprop_trace(ids, ids[::-1])
    frame = bp.build_frame(big.params, trace, ids, ids[::-1], 8)
    fig = bp.hidden_figure(frame, "abcdef")
    assert _z(fig).shape == (bp.MAX_UNITS_DRAWN, 6)
    assert f"first {bp.MAX_UNITS_DRAWN} of {bp.MAX_UNITS_DRAWN + 20}" in fig.layout.title.text
    assert _z(bp.grad_figure(frame, "Whh", trace["grads"]["Whh"], "abcde")).shape == (bp.MAX_UNITS_DRAWN,) * 2
