"""Backprop through time as an animation: the frames of the Backprop page's player and their figures.

Pure functions over NumPy and Plotly (no streamlit), tested without a server. Shapes: T window
length, H hidden size, V vocabulary size.

A window of T steps gives 2T frames. Frames 0..T−1 are the forward pass, left to right: frame k
has computed h_0..h_k, p_0..p_k and loss_0..loss_k. Frames T..2T−1 are the backward pass, right to
left: frame T + j is step t = T−1−j, which has dy_t, dh_t (the part from the output, W_hyᵀ dy_t,
plus the part from the future step, W_hhᵀ dh_raw_{t+1}) and dh_raw_t = (1 − h_t²) ⊙ dh_t for every
step from T−1 down to t, and each weight gradient summed over those steps, term by term.

Every per-step array of a frame is a row of ``VanillaRNN.backprop_trace`` (the engine's one
implementation of the math), copied, never recomputed; only what the trace does not hold (the two
parts of dh_t, each step's gradient term and their running sums) is computed here, from the trace's
own rows.

The page steps through the frames on the server, one fragment rerun per frame (``tick`` decides when
the next one is due), and draws each with the figure builders below. A Plotly animation would have
to send all 2T frames' arrays with the figure, and again on every refresh of the page while training
runs; one frame at a time also lets the page show each step's equations in LaTeX with its numbers.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import plotly.graph_objects as go

from playground.escape import chart_label
from playground.views.style import DIVERGING_COLORSCALE, MAIN_COLOUR, MARGIN, RAW_COLOUR, REFERENCE_COLOUR, VAL_COLOUR
from playground.views.textviews import visible_chars

PHASES = ("forward", "backward")
GRAD_NAMES = ("Why", "by", "Whh", "bh", "Wxh")
MATRIX_NAMES = ("Whh", "Wxh", "Why")
# Frames per second the player offers; each frame is one server round trip, so a few per second.
SPEEDS = {"slow": 1.0, "normal": 2.0, "fast": 4.0}
DEFAULT_SPEED = "normal"
# Heatmaps show at most this many hidden units (rows): beyond it cells shrink below a pixel row.
MAX_UNITS_DRAWN = 128
PLAYER_HEIGHT = 360
FONT = dict(size=15)                 # readable on a projector
CURRENT_COLOUR = "#000000"           # outline of the current step: black reads on every colour of the scale


@dataclass(frozen=True)
class Frame:
    """Everything known at one frame of the animation.

    phase: "forward" or "backward"; t: the step this frame computes; index: 0..2T−1.
    Per-step arrays hold NaN for steps not computed yet at this frame:
    hs (T,H), h_prev (T,H) (h_{s−1}; row 0 is the window's h0), p_target (T,), losses (T,)
    (forward: steps 0..t; backward: all);
    dy (T,V), from_output (T,H) (W_hyᵀ dy_s), from_future (T,H) (W_hhᵀ dh_raw_{s+1}, 0 at s = T−1),
    dh (T,H), dh_raw (T,H) (backward: steps t..T−1; forward: none).
    loss_so_far: Σ losses computed so far (nats); grads: {name: Σ over steps T−1..t of that step's
    term} shaped like the parameter (zeros in the forward pass); terms: {name: step t's term}
    (backward only, else None).
    """

    index: int
    phase: str
    t: int
    hs: np.ndarray
    h_prev: np.ndarray
    p_target: np.ndarray
    losses: np.ndarray
    loss_so_far: float
    dy: np.ndarray
    from_output: np.ndarray
    from_future: np.ndarray
    dh: np.ndarray
    dh_raw: np.ndarray
    grads: dict
    terms: dict | None

    @property
    def length(self) -> int:
        return int(self.hs.shape[0])


def frame_count(T: int) -> int:
    """2T: T forward steps, then T backward steps."""
    return 2 * int(T)


def frame_step(T: int, index: int) -> tuple[str, int]:
    """(phase, t) of frame ``index`` in 0..2T−1: forward t = index, then backward t = 2T−1−index."""
    if isinstance(index, bool) or not isinstance(index, (int, np.integer)) or not 0 <= index < 2 * T:
        raise ValueError(f"frame index must be an integer in 0..{2 * T - 1}, got {index!r}")
    index = int(index)
    return ("forward", index) if index < T else ("backward", 2 * T - 1 - index)


def needs_new_window(held: tuple | None, current: tuple, training: bool, playing: bool) -> bool:
    """Whether the player takes the current window: held and current are (run owner, iteration).

    Always for a first window or another run; for a newer iteration only while neither training
    nor playing, so the animation never changes under the viewer's eyes (training moves the window
    every tick); the page offers a button to take the newer window meanwhile.
    """
    if held is None or held[0] != current[0]:
        return True
    return held[1] != current[1] and not training and not playing


def frame_label(T: int, index: int) -> str:
    """Short label of a frame for the player's slider: "forward t = 3" / "backward t = 20"."""
    phase, t = frame_step(T, index)
    return f"{phase} t = {t}"


def step_terms(params: dict, trace: dict, inputs: np.ndarray, t: int) -> dict:
    """Step t's term of each weight gradient, from the trace's rows (shapes of the parameters):
    dW_hy: dy_t h_tᵀ, db_y: dy_t, dW_hh: dh_raw_t h_{t−1}ᵀ, db_h: dh_raw_t, dW_xh: dh_raw_t x_tᵀ
    (x_t one-hot: dh_raw_t in column inputs[t], zeros elsewhere)."""
    dy, dh_raw = trace["dy"][t], trace["dh_raw"][t]
    wxh = np.zeros_like(params["Wxh"], dtype=dh_raw.dtype)
    wxh[:, int(inputs[t])] = dh_raw
    return {"Why": np.outer(dy, trace["hs"][t]), "by": dy.copy(),
            "Whh": np.outer(dh_raw, trace["h_prev"][t]), "bh": dh_raw.copy(), "Wxh": wxh}


def _masked(rows: np.ndarray, keep: slice) -> np.ndarray:
    out = np.full(rows.shape, np.nan, dtype=float)
    out[keep] = rows[keep]
    return out


def build_frame(params: dict, trace: dict, inputs, targets, index: int) -> Frame:
    """Frame ``index`` (0..2T−1) of the animation of ``trace`` (``VanillaRNN.backprop_trace`` of the
    window of input ids ``inputs`` (T,) and target ids ``targets`` (T,), with the model's ``params``)."""
    inputs, targets = np.asarray(inputs), np.asarray(targets)
    T = int(trace["hs"].shape[0])
    for name, ids in (("inputs", inputs), ("targets", targets)):
        if ids.shape != (T,):
            raise ValueError(f"{name} must have shape ({T},) like the trace, got {ids.shape}")
    phase, t = frame_step(T, index)
    targets_p = trace["ps"][np.arange(T), targets]
    dh_raw = trace["dh_raw"]
    from_output = trace["dy"] @ params["Why"]                     # row s: W_hyᵀ dy_s
    from_future = np.zeros_like(trace["dh"])
    from_future[:-1] = dh_raw[1:] @ params["Whh"]                 # row s: W_hhᵀ dh_raw_{s+1}
    if phase == "forward":
        seen, back = slice(0, t + 1), slice(0, 0)
    else:
        seen, back = slice(0, T), slice(t, T)
    losses = _masked(trace["losses"], seen)
    grads = {name: np.zeros_like(params[name], dtype=float) for name in GRAD_NAMES}
    terms = None
    if phase == "backward":
        for s in range(T - 1, t - 1, -1):         # the order backprop visits the steps
            terms = step_terms(params, trace, inputs, s)
            for name in GRAD_NAMES:
                grads[name] += terms[name]
    return Frame(
        index=int(index), phase=phase, t=t,
        hs=_masked(trace["hs"], seen), h_prev=_masked(trace["h_prev"], seen), p_target=_masked(targets_p, seen), losses=losses,
        loss_so_far=float(np.cumsum(trace["losses"])[seen.stop - 1]),
        dy=_masked(trace["dy"], back), from_output=_masked(from_output, back),
        from_future=_masked(from_future, back), dh=_masked(trace["dh"], back), dh_raw=_masked(dh_raw, back),
        grads=grads, terms=terms,
    )


def all_frames(params: dict, trace: dict, inputs, targets) -> list[Frame]:
    """Every frame, 0..2T−1 (for tests and small windows; the page builds one frame at a time)."""
    return [build_frame(params, trace, inputs, targets, k) for k in range(frame_count(trace["hs"].shape[0]))]


def default_unit(trace: dict) -> int:
    """The hidden unit to follow in the equations: the one with the largest Σ_t |dh_raw_t| (the unit
    whose weights this window moves most), so the numbers shown are not all near zero."""
    return int(np.argmax(np.abs(trace["dh_raw"]).sum(axis=0)))


# ---------------------------------------------------------------- player state
@dataclass(frozen=True)
class PlayerState:
    """Where the player is: frame index, whether it plays, and when it last advanced (monotonic s)."""

    index: int = 0
    playing: bool = False
    last_advance: float = 0.0


def tick(state: PlayerState, n_frames: int, now: float, fps: float) -> PlayerState:
    """The state after a timer tick at time ``now``: one frame further when playing and at least a
    frame's time (1/fps, less a tenth for timer jitter) has passed since the last advance; playing
    stops on the last frame. Reruns that are not timer ticks (a refresh, another widget) come sooner
    and change nothing, so the speed does not depend on how often the page reruns."""
    if not state.playing:
        return state
    if state.index >= n_frames - 1:
        return PlayerState(n_frames - 1, False, state.last_advance)
    if now - state.last_advance < 0.9 / fps:
        return state
    index = state.index + 1
    return PlayerState(index, index < n_frames - 1, now)


def play(state: PlayerState, n_frames: int, now: float) -> PlayerState:
    """Start playing (from the first frame when at the end)."""
    index = 0 if state.index >= n_frames - 1 else state.index
    return PlayerState(index, True, now)


def step(state: PlayerState, n_frames: int, delta: int) -> PlayerState:
    """Pause and move ``delta`` frames (clamped to 0..n_frames−1)."""
    return PlayerState(min(max(state.index + delta, 0), n_frames - 1), False, state.last_advance)


# ---------------------------------------------------------------- equations with the numbers
def _n(x: float) -> str:
    """A number for LaTeX: 4 significant digits, exponents as ×10^k."""
    if not math.isfinite(x):
        return r"\text{" + ("NaN" if math.isnan(x) else ("+∞" if x > 0 else "−∞")) + "}"
    s = f"{x:.4g}"
    if "e" in s:
        mant, exp = s.split("e")
        s = rf"{mant}\times 10^{{{int(exp)}}}"
    return s


def _p(x: float) -> str:
    """A number for LaTeX in parentheses when negative, for use after + or ×."""
    s = _n(x)
    return f"({s})" if x < 0 else s


def _line(active: bool, tex: str) -> str:
    # The current step's equations: dark orange with a marker; the other phase's grey. Two cues, so it
    # does not rest on colour alone.
    if active:
        return r"&{\color{#b34700}" + tex + r"}\quad\blacktriangleleft"
    return r"&{\color{#888888}" + tex + "}"


def equations_latex(frame: Frame, params: dict, inputs, targets, unit: int) -> str:
    """LaTeX of the current phase's equations, the ones step t computes highlighted, each followed by
    its numbers for hidden unit ``unit`` (and the target character's entry for p_t and dy_t)."""
    t, T = frame.t, frame.length
    x = int(np.asarray(inputs)[t])
    y = int(np.asarray(targets)[t])
    u = int(unit)
    if not 0 <= u < frame.hs.shape[1]:
        raise ValueError(f"unit must be in 0..{frame.hs.shape[1] - 1}, got {unit!r}")
    if frame.phase == "forward":
        pre_x = float(params["Wxh"][u, x])
        pre_h = float(params["Whh"][u] @ frame.h_prev[t])     # h_{−1} is the window's h0
        pre_b = float(params["bh"][u])
        h_t = float(frame.hs[t, u])
        p, loss = float(frame.p_target[t]), float(frame.losses[t])
        before = frame.loss_so_far - loss
        rows = [
            _line(True, rf"h_{{{t}}}[{u}] = \tanh\big(W_{{xh}}[{u},x_{{{t}}}] + (W_{{hh}}h_{{{t - 1}}})[{u}] + b_h[{u}]\big)"),
            _line(True, rf"\phantom{{h_{{{t}}}[{u}]}} = \tanh({_n(pre_x)} + {_p(pre_h)} + {_p(pre_b)}) = {_n(h_t)}"),
            _line(True, rf"p_{{{t}}}[\mathrm{{target}}] = \operatorname{{softmax}}(W_{{hy}}h_{{{t}}} + b_y)[\mathrm{{target}}] = {_n(p)}"),
            _line(True, rf"\mathrm{{loss}}_{{{t}}} = -\ln p_{{{t}}}[\mathrm{{target}}] = -\ln {_n(p)} = {_n(loss)}"),
            _line(True, rf"L_{{0..{t}}} = L_{{0..{t - 1}}} + \mathrm{{loss}}_{{{t}}} = {_n(before)} + {_n(loss)} = {_n(frame.loss_so_far)}"),
        ]
        if t == 0:
            rows[4] = _line(True, rf"L_{{0..0}} = \mathrm{{loss}}_0 = {_n(frame.loss_so_far)}")
        return r"\begin{aligned}" + r" \\ ".join(rows) + r"\end{aligned}"
    dy_target = float(frame.dy[t, y])
    p = float(frame.p_target[t])
    fo, ff = float(frame.from_output[t, u]), float(frame.from_future[t, u])
    dh, h_t = float(frame.dh[t, u]), float(frame.hs[t, u])
    dh_raw = float(frame.dh_raw[t, u])
    g = frame.grads
    future = (rf"(W_{{hh}}^\top dh^{{\mathrm{{raw}}}}_{{{t + 1}}})[{u}]" if t + 1 < T
              else r"0\ (\text{no later step})")
    rows = [
        _line(True, rf"dy_{{{t}}}[\mathrm{{target}}] = p_{{{t}}}[\mathrm{{target}}] - 1 = {_n(p)} - 1 = {_n(dy_target)}"),
        _line(True, rf"dh_{{{t}}}[{u}] = (W_{{hy}}^\top dy_{{{t}}})[{u}] + {future}"),
        _line(True, rf"\phantom{{dh_{{{t}}}[{u}]}} = {_n(fo)} + {_p(ff)} = {_n(dh)}"),
        _line(True, rf"dh^{{\mathrm{{raw}}}}_{{{t}}}[{u}] = (1 - h_{{{t}}}[{u}]^2)\, dh_{{{t}}}[{u}]"),
        _line(True, rf"\phantom{{dh^{{\mathrm{{raw}}}}_{{{t}}}[{u}]}} = (1 - {_p(h_t)}^2) \times {_p(dh)} = {_n(dh_raw)}"),
        _line(True, rf"\|dW_{{hy}}\| = \|\textstyle\sum_{{s={t}}}^{{{T - 1}}} dy_s h_s^\top\| = {_n(np.linalg.norm(g['Why']))}, \quad "
                    rf"\|db_y\| = {_n(np.linalg.norm(g['by']))}"),
        _line(True, rf"\|dW_{{hh}}\| = \|\textstyle\sum_{{s={t}}}^{{{T - 1}}} dh^{{\mathrm{{raw}}}}_s h_{{s-1}}^\top\| = "
                    rf"{_n(np.linalg.norm(g['Whh']))}, \quad \|db_h\| = {_n(np.linalg.norm(g['bh']))}"),
        _line(True, rf"\|dW_{{xh}}\| = \|\textstyle\sum_{{s={t}}}^{{{T - 1}}} dh^{{\mathrm{{raw}}}}_s x_s^\top\| = {_n(np.linalg.norm(g['Wxh']))}"),
    ]
    return r"\begin{aligned}" + r" \\ ".join(rows) + r"\end{aligned}"


def phase_equations_latex(phase: str) -> str:
    """The equations of the other phase, greyed: the whole pass stays in view while one half plays."""
    if phase == "forward":
        rows = [r"dy_t = p_t - e_{\mathrm{target}_t}", r"dh_t = W_{hy}^\top dy_t + W_{hh}^\top dh^{\mathrm{raw}}_{t+1}",
                r"dh^{\mathrm{raw}}_t = (1 - h_t^2) \odot dh_t", r"dW \mathrel{+}= \text{step } t\text{'s term}"]
    elif phase == "backward":
        rows = [r"h_t = \tanh(W_{xh} x_t + W_{hh} h_{t-1} + b_h)", r"p_t = \operatorname{softmax}(W_{hy} h_t + b_y)",
                r"L = \textstyle\sum_t -\ln p_t[\mathrm{target}_t]"]
    else:
        raise ValueError(f"phase must be one of {', '.join(PHASES)}, got {phase!r}")
    # Smaller: it sits in a narrow column beside the current equations.
    return r"\footnotesize\begin{aligned}" + r" \\ ".join(_line(False, r) for r in rows) + r"\end{aligned}"


# ---------------------------------------------------------------- figures
def _player_style(fig: go.Figure, title: str, x_title: str, y_title: str, height: int = PLAYER_HEIGHT) -> go.Figure:
    fig.update_layout(plot_bgcolor="white", height=height, margin=MARGIN, font=FONT,
                      title=dict(text=title, x=0.01, xanchor="left", font=dict(size=17)),
                      hoverlabel=dict(font_family="monospace", font_size=15),
                      legend=dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1.0),
                      # A fixed uirevision keeps zoom and hover steady while the frames change.
                      uirevision="bptt-player")
    fig.update_xaxes(title_text=x_title)
    fig.update_yaxes(title_text=y_title)
    return fig


def _step_axis(fig: go.Figure, labels: list[str], T: int) -> None:
    # Every character as a tick up to 50 steps; beyond that Plotly's own spacing keeps them legible.
    if T <= 50:
        fig.update_xaxes(tickmode="array", tickvals=list(range(T)), ticktext=labels, tickangle=0,
                         tickfont=dict(family="monospace", size=14))
    fig.update_xaxes(range=[-0.5, T - 0.5], showgrid=False)


def _current_box(fig: go.Figure, t: int, y0: float, y1: float) -> None:
    fig.add_shape(type="rect", x0=t - 0.5, x1=t + 0.5, y0=y0, y1=y1, line=dict(color=CURRENT_COLOUR, width=3),
                  fillcolor="rgba(0,0,0,0)", layer="above")


def _unit_heatmap(values: np.ndarray, chars: str, t: int | None, *, name: str, title: str, zmax: float,
                  bar_title: str, meaning: str) -> go.Figure:
    """Heatmap of one (T,H) quantity: units on y (at most MAX_UNITS_DRAWN), steps on x, NaN blank;
    step ``t`` outlined (none when None)."""
    T, H = values.shape
    shown = min(H, MAX_UNITS_DRAWN)
    labels = visible_chars(chars)
    hover_chars = np.tile(np.array([chart_label(c) for c in labels], dtype=object), (shown, 1))
    more = f" (first {shown} of {H} units)" if shown < H else ""
    fig = _player_style(go.Figure(), title + more, "time step t (input character)", "hidden unit")
    zmax = zmax if zmax > 0 and math.isfinite(zmax) else 1.0
    fig.add_trace(go.Heatmap(
        z=values[:, :shown].T, x=np.arange(T), y=np.arange(shown), customdata=hover_chars,
        colorscale=DIVERGING_COLORSCALE, zmin=-zmax, zmax=zmax, zmid=0.0, hoverongaps=False,
        colorbar=dict(title=dict(text=bar_title, side="right"), thickness=14),
        hovertemplate=(f"{name}: {meaning}<br>step t = %{{x}}, input '%{{customdata}}'<br>"
                       f"hidden unit %{{y}}<br>value %{{z:+.4g}}<extra></extra>"),
    ))
    _step_axis(fig, labels, T)
    # A fixed range, unit 0 on top: an all-blank heatmap (nothing computed yet) has no range of its own.
    fig.update_yaxes(range=[shown - 0.5, -0.5], showgrid=False)
    if t is not None:
        _current_box(fig, t, -0.5, shown - 0.5)
    return fig


def hidden_figure(frame: Frame, chars: str) -> go.Figure:
    """h_t (T,H) filled in up to the current step in the forward pass; the current step outlined."""
    _check_chars(frame, chars)
    return _unit_heatmap(frame.hs, chars, frame.t, name="h_t", meaning="hidden state after the input",
                         title="Forward: hidden state hₜ", zmax=1.0, bar_title="hₜ (−1 blue … +1 orange)")


def dh_figure(frame: Frame, chars: str, zmax: float) -> go.Figure:
    """dh_t (T,H) filled in from the last step back to the current one; colours span ±zmax (the
    window's largest |dh|, so they mean the same in every frame)."""
    _check_chars(frame, chars)
    # No outline in the forward pass: no dh has been computed at that step yet.
    current = frame.t if frame.phase == "backward" else None
    fig = _unit_heatmap(frame.dh, chars, current, name="dh_t", meaning="∂L/∂h_t (from output + from future)",
                        title="Backward: gradient dhₜ = ∂L/∂hₜ", zmax=zmax,
                        bar_title=f"dhₜ (−{zmax:.2g} blue … +{zmax:.2g} orange)")
    if frame.phase == "forward":
        fig.add_annotation(text="The backward pass starts after the last step", xref="paper", yref="paper",
                           x=0.5, y=0.5, showarrow=False, font=dict(size=17, color="#555"))
    return fig


def loss_figure(frame: Frame, chars: str) -> go.Figure:
    """loss_t per step as bars (forward: up to t) and the running sum L as a line on a second axis."""
    _check_chars(frame, chars)
    T = frame.length
    labels = visible_chars(chars)
    custom = [chart_label(c) for c in labels]
    fig = _player_style(go.Figure(), f"Loss adding up: L = {frame.loss_so_far:.3f} nats so far",
                 "time step t (input character)", "lossₜ = −ln pₜ[target] (nats)", height=300)
    t = np.arange(T)
    colours = [VAL_COLOUR if (s == frame.t and frame.phase == "forward") else MAIN_COLOUR for s in range(T)]
    fig.add_trace(go.Bar(x=t, y=frame.losses, customdata=np.column_stack([custom, frame.p_target]),
                         marker=dict(color=colours), name="lossₜ",
                         hovertemplate=("step t = %{x}, input '%{customdata[0]}'<br>loss_t = −ln p_t[target] = "
                                        "%{y:.4f} nats<br>p_t[target] = %{customdata[1]:.4f}<extra></extra>")))
    running = np.where(np.isnan(frame.losses), np.nan, np.nancumsum(frame.losses))
    fig.add_trace(go.Scatter(x=t, y=running, yaxis="y2", mode="lines+markers", name="L so far",
                             line=dict(color=REFERENCE_COLOUR, width=3),
                             hovertemplate="step t = %{x}<br>L = Σ loss up to t = %{y:.3f} nats<extra></extra>"))
    fig.update_layout(yaxis=dict(rangemode="tozero"),
                      yaxis2=dict(title=dict(text="L so far (nats)"), overlaying="y", side="right",
                                  showgrid=False, rangemode="tozero"),
                      margin=dict(MARGIN, r=70))
    _step_axis(fig, labels, T)
    return fig


def flow_figure(frame: Frame, chars: str) -> go.Figure:
    """Per step, the norms of what reaches h_t: ‖W_hyᵀ dy_t‖ (from the output), ‖W_hhᵀ dh_raw_{t+1}‖
    (from the future step), their sum ‖dh_t‖ and ‖dh_raw_t‖ after the tanh; log y."""
    _check_chars(frame, chars)
    T = frame.length
    labels = visible_chars(chars)
    fig = _player_style(go.Figure(), "Backward: norms of what reaches hₜ",
                 "time step t (input character)", "norm (log scale)", height=300)
    # Short legend names; the hover says what each one is.
    series = (("from output", frame.from_output, RAW_COLOUR, "W_hyᵀ dy_t‖: from the output"),
              ("from step t+1", frame.from_future, "#e6a700", "W_hhᵀ dh_raw_(t+1)‖: from the step after"),
              ("dhₜ", frame.dh, MAIN_COLOUR, "dh_t‖ = ‖the two together"),
              ("dh_rawₜ", frame.dh_raw, VAL_COLOUR, "dh_raw_t‖ = ‖(1 − h_t²) ⊙ dh_t‖: after the tanh"))
    custom = [chart_label(c) for c in labels]
    for name, values, colour, meaning in series:
        norms = np.linalg.norm(values, axis=1)               # NaN rows stay NaN: not computed yet
        # A zero norm (the future part at the last step) has no place on a log axis: left out.
        norms = np.where(norms > 0, norms, np.nan)
        fig.add_trace(go.Bar(x=np.arange(T), y=norms, name=name, marker=dict(color=colour), customdata=custom,
                             hovertemplate=(f"‖{meaning}<br>step t = %{{x}}, input '%{{customdata}}'<br>"
                                            f"norm = %{{y:.4g}}<extra></extra>")))
    # Legend under the axis: four entries above the plot would wrap into the title at half width.
    fig.update_layout(barmode="group", height=340, margin=dict(MARGIN, b=110),
                      legend=dict(font=dict(size=13), orientation="h", x=0, xanchor="left", y=-0.32, yanchor="top"))
    fig.update_yaxes(type="log", dtick=1)       # one labelled tick per decade
    _step_axis(fig, labels, T)
    if frame.phase == "forward":
        fig.add_annotation(text="The backward pass starts after the last step", xref="paper", yref="paper",
                           x=0.5, y=0.5, showarrow=False, font=dict(size=17, color="#555"))
    return fig


def grad_figure(frame: Frame, name: str, final: np.ndarray, vocab_chars: str) -> go.Figure:
    """The weight gradient d``name`` summed over the steps visited so far (T−1 down to t), colours
    spanning ±max|final| (the whole window's gradient), so each frame adds visibly to the last."""
    if name not in MATRIX_NAMES:
        raise ValueError(f"name must be one of {', '.join(MATRIX_NAMES)}, got {name!r}")
    G = frame.grads[name]
    rows, cols = G.shape
    # Hidden-unit axes are cut to MAX_UNITS_DRAWN like the other heatmaps; character axes are kept.
    r = min(rows, MAX_UNITS_DRAWN) if name in ("Whh", "Wxh") else rows
    c = min(cols, MAX_UNITS_DRAWN) if name in ("Whh", "Why") else cols
    axes = {"Whh": ("from hidden unit (t−1)", "to hidden unit (t)", "unit %{x} → unit %{y}"),
            "Wxh": ("input character", "hidden unit", "input '%{x}' → unit %{y}"),
            "Why": ("hidden unit", "output character", "unit %{x} → output '%{y}'")}[name]
    limit = float(np.max(np.abs(final))) if np.size(final) else 0.0
    limit = limit if limit > 0 and math.isfinite(limit) else 1.0
    visited = "none yet" if frame.phase == "forward" else f"steps {frame.length - 1} down to {frame.t}"
    fig = _player_style(go.Figure(), f"Weight gradient d{name} = Σ of each step's term ({visited})",
                 axes[0], axes[1], height=PLAYER_HEIGHT + 40)
    x = np.arange(c)
    y = np.arange(r)
    if name == "Wxh":
        x = [chart_label(ch) for ch in visible_chars(vocab_chars)][:c]
    if name == "Why":
        y = [chart_label(ch) for ch in visible_chars(vocab_chars)][:r]
    fig.add_trace(go.Heatmap(
        z=G[:r, :c], x=x, y=y, colorscale=DIVERGING_COLORSCALE, zmin=-limit, zmax=limit, zmid=0.0,
        colorbar=dict(title=dict(text=f"d{name} (−{limit:.2g} blue … +{limit:.2g} orange)", side="right"),
                      thickness=14),
        hovertemplate=(f"d{name}, summed so far: {axes[2]}<br>value %{{z:+.4g}}<extra></extra>"),
    ))
    if name in ("Wxh", "Why"):
        fig.update_xaxes(type="category") if name == "Wxh" else fig.update_yaxes(type="category")
    fig.update_yaxes(autorange="reversed", showgrid=False)
    fig.update_xaxes(showgrid=False)
    return fig


def _check_chars(frame: Frame, chars: str) -> None:
    if len(chars) != frame.length:
        raise ValueError(f"chars must have one character per time step ({frame.length}), got {len(chars)}")


def dh_limit(trace: dict) -> float:
    """max |dh| over the whole window (the colour range of the dh heatmap in every frame)."""
    finite = np.abs(trace["dh"][np.isfinite(trace["dh"])])
    return float(finite.max()) if finite.size else 1.0


def norm(v: np.ndarray) -> float:
    """Euclidean norm of a vector (H,) or (V,)."""
    return float(np.linalg.norm(v))
