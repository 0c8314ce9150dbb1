"""Backprop: backprop through time with the real numbers of the current model on the next window."""
import time

import streamlit as st

from playground.escape import markdown_text
from playground.session import app_state, state
from playground.views import backprop_view as bv
from playground.views import bptt_player as bp
from playground.views import style, weight_figures
from playground.views.textviews import visible_char, visible_chars

ss = st.session_state
run = state.get_run()

st.title("Backprop through time")
st.caption("Every number on this page is computed from the current model on the window the next training "
           "step will use, exactly as the trainer computes it. While training runs it refreshes every "
           "few seconds.")

FORWARD_LATEX = r"""\begin{aligned}
h_t &= \tanh\left(W_{xh}\,x_t + W_{hh}\,h_{t-1} + b_h\right) \\
y_t &= W_{hy}\,h_t + b_y \\
p_t &= \operatorname{softmax}(y_t) \\
L &= \textstyle\sum_t -\log p_t[\mathrm{target}_t]
\end{aligned}"""

BACKWARD_LATEX = r"""\begin{aligned}
dy_t &= p_t - e_{\mathrm{target}_t} \\
dW_{hy} &= \textstyle\sum_t dy_t\,h_t^\top, \qquad db_y = \textstyle\sum_t dy_t \\
dh_t &= W_{hy}^\top dy_t + W_{hh}^\top\, dh^{\mathrm{raw}}_{t+1} \\
dh^{\mathrm{raw}}_t &= (1 - h_t^2) \odot dh_t \\
dW_{xh} &= \textstyle\sum_t dh^{\mathrm{raw}}_t\,x_t^\top \\
dW_{hh} &= \textstyle\sum_t dh^{\mathrm{raw}}_t\,h_{t-1}^\top, \qquad db_h = \textstyle\sum_t dh^{\mathrm{raw}}_t
\end{aligned}"""

TAB_LABELS = ["Equations & numbers", "Animated", "Gradient check", "Through time", "Weights"]
# %.3g: 0.0123, 4.56, 7.89e-07 — shorter and easier to read than a fixed exponent.
SCI = st.column_config.NumberColumn(format="%.3g")
FIXED = st.column_config.NumberColumn(format="%.4f")


def live_interval() -> float | None:
    """Refresh period while training; eigenvalues of a big W_hh cost enough to refresh it less often."""
    if not app_state.app().running:
        return None
    return 1.0 if run.trainer.model.hidden_size <= 256 else 3.0


def run_owner(current) -> str:
    return current.uid


def equations_tab(current, window: bv.WindowBackprop) -> None:
    tr = current.trainer
    forward, backward = st.columns(2, gap="large")
    with forward:
        st.markdown("**Forward** (one step per character)")
        st.latex(FORWARD_LATEX)
        st.caption("$x_t$ is the one-hot vector of the input character, so $W_{xh} x_t$ is one column of "
                   "$W_{xh}$. $L$ is in nats; the trainer's loss is this sum for one window.")
    with backward:
        st.markdown(r"**Backward** ($t = T-1$ down to $0$; $dh^{\mathrm{raw}}_T = 0$)")
        st.latex(BACKWARD_LATEX)
        st.markdown(f"**Update** ({tr.optimizer_name}, the trainer's current setting)")
        st.latex(bv.update_latex(tr.optimizer_name, tr.learning_rate, tr.clip))

    st.divider()
    st.markdown("**The numbers at one time step**")
    T = window.length
    if T > 1:
        # The widget stores its label, which changes when the window moves: remember t apart from it.
        chosen = min(ss.get("bp_t_chosen", T // 2), T - 1)
        t = st.select_slider("Time step t (input → target)", options=list(range(T)), value=chosen, key="bp_t",
                             format_func=lambda s: bv.step_label(window, s))
        ss.bp_t_chosen = t
    else:
        t = 0
        st.caption(bv.step_label(window, 0))
    params = tr.model.params
    facts = bv.step_facts(params, window, t)
    numbers, outputs, hidden = st.columns([0.7, 1.4, 2.8], gap="small")
    with numbers:
        # One per row: two side by side truncate to "in…" and "0.6…" in this narrow column.
        st.metric("input $x_t$", repr_char(facts["input_char"]), help="the character read at step t; "
                  "x_t is its one-hot vector")
        st.metric("target", repr_char(facts["target_char"]), help="the next character, which p_t should predict")
        st.metric(r"$p_t[\mathrm{target}]$", f"{facts['p_target']:.4f}",
                  help="softmax(W_hy h_t + b_y) at the target character")
        st.metric(r"$\mathrm{loss}_t$", f"{facts['loss']:.3f}", help="−ln p_t[target], in nats")
    with outputs:
        st.markdown(r"$dy_t = p_t - e_{\mathrm{target}}$, largest entries")
        st.dataframe(bv.dy_table(window, t, current.vocab.chars), hide_index=True, width="stretch",
                     column_config={"p": FIXED, "dy": st.column_config.NumberColumn(format="%+.4f")})
    with hidden:
        st.markdown(rf"$dh_t$ and $dh^{{\mathrm{{raw}}}}_t$, first units of {tr.model.hidden_size}")
        st.dataframe(bv.hidden_table(params, window, t), hide_index=True, width="stretch",
                     column_config={c: SCI for c in ("1 − h²", "from output", "from future", "dh", "dh_raw")}
                     | {"h": FIXED, "unit": st.column_config.NumberColumn(width="small")})
        st.caption(rf"$\|dh_t\|$ = {facts['dh_norm']:.3g} (from the output {facts['from_output_norm']:.3g}, "
                   f"from later steps {facts['from_future_norm']:.3g}); "
                   rf"$\|dh^{{\mathrm{{raw}}}}_t\|$ = {facts['dh_raw_norm']:.3g}, "
                   r"after $\tanh' = 1 - h_t^2$, which is near 0 for saturated units ($h \approx \pm 1$).")

    st.markdown("**Gradients of the whole window**")
    grads = window.trace["grads"]
    st.dataframe(bv.gradient_summary(grads, tr.clip), hide_index=True, width="stretch",
                 column_config={"norm": SCI, "max |entry|": SCI,
                                "clipped %": st.column_config.NumberColumn(format="%.2f%%")})
    note = (f"Loss of the window L = {window.trace['loss']:.3f} nats. The next step clips "
            f"{100 * bv.clipped_fraction(grads, tr.clip):.2f}% of all gradient entries to ±{tr.clip:g}.")
    if tr.batch_size > 1:
        note += (f" With batch size {tr.batch_size} the trainer averages these gradients over "
                 f"{tr.batch_size} streams; shown here is stream 0 alone.")
    st.caption(note)


def subscript(n: int) -> str:
    return str(n).translate(str.maketrans("0123456789", "₀₁₂₃₄₅₆₇₈₉"))


def repr_char(c: str) -> str:
    return f"'{markdown_text(visible_char(c))}'"


def gradcheck_tab(current, window: bv.WindowBackprop) -> None:
    model = current.trainer.model
    per_param = bv.checks_per_param_for(window.length, model.hidden_size, model.vocab_size)
    st.markdown(
        "Backprop's gradients can be checked against the definition of a derivative: nudge one weight by "
        f"±δ (δ = {bv.FD_DELTA:g}), rerun the forward pass, and compare (L₊ − L₋) / 2δ with the analytic "
        f"entry. {per_param} entries per parameter are checked (half the largest, half at random), "
        "each costing two forward passes.")
    if st.button("Run gradient check", key="btn_gradcheck", icon=":material/fact_check:"):
        with st.spinner("Checking gradients…"):
            frame = bv.gradcheck_frame(model, window, per_param)
        ss.bp_gradcheck = {"owner": run_owner(current), "iteration": window.iteration, "frame": frame}
    result = ss.get("bp_gradcheck")
    if not result or result["owner"] != run_owner(current):
        st.caption("Press the button to check the current model.")
        return
    frame = result["frame"]
    passed = int(frame["result"].str.startswith("pass").sum())
    message = f"{passed} of {len(frame)} checked entries agree (checked at iteration {result['iteration']:,})."
    (st.success if passed == len(frame) else st.error)(message)
    if result["iteration"] != current.iteration:
        st.caption("The model has trained since: press the button again to check it as it is now.")
    precise = st.column_config.NumberColumn(format="%.8e")    # enough digits to see them agree
    st.dataframe(frame, hide_index=True, width="stretch", height=35 * (len(frame) + 1) + 3,
                 column_config={"analytic": precise, "numerical": precise, "|a − n|": SCI, "relative error": SCI})
    st.caption(
        f"Relative error = |a − n| / (|a| + |n|): 0 when they agree, 1 when one is 0 or they have opposite "
        f"signs; it does not depend on the gradient's scale. An entry passes below {bv.REL_TOL:g}. For tiny "
        f"entries the finite difference itself is limited by rounding (about "
        f"{bv.noise_floor(window.trace['loss']):.0e} here, since L ≈ {window.trace['loss']:.0f}), so a difference "
        "below that counts as a pass at the noise floor. The check always runs in float64.")


def through_time_tab(current, window: bv.WindowBackprop) -> None:
    left, right = st.columns(2, gap="large")
    with left:
        st.plotly_chart(weight_figures.dh_norm_figure(bv.dh_norms(window), window.chars), key="bp_dh_norms",
                        width="stretch")
        reach = bv.last_loss_reach(current.trainer.model.params, window)
        reach_fig = weight_figures.dh_norm_figure(reach, window.chars)
        last = subscript(window.length - 1)
        reach_fig.update_layout(title_text=f"Only the last step's loss flowing back, ‖∂L{last}/∂hₜ‖")
        reach_fig.update_yaxes(title_text=f"‖∂L{last}/∂hₜ‖")
        reach_fig.update_traces(hovertemplate=f"t = %{{x}}, char '%{{customdata}}'<br>‖∂L{last}/∂hₜ‖ = "
                                f"%{{y:.3g}}: the last step's loss alone<extra></extra>")
        st.plotly_chart(reach_fig, key="bp_reach", width="stretch")
    with right:
        st.markdown(
            r"Each step back multiplies the gradient by $W_{hh}^\top$ and by $\tanh' = 1 - h_t^2 \le 1$. When these "
            "factors shrink vectors, the gradient **vanishes** exponentially with distance (a straight "
            "downward slope on the log axis), so early characters barely learn from late losses; when they "
            "stretch vectors it **explodes**, which is why gradients are clipped.")
        if window.length > 1 and reach[-1] > 0:
            ratio = reach[0] / reach[-1]
            st.metric(f"How much of the last loss reaches t = 0 (of what reaches t = {window.length - 1})",
                      f"{ratio:.2e}",
                      help="‖∂L_{T−1}/∂h_0‖ / ‖∂L_{T−1}/∂h_{T−1}‖ on this window: the lower chart's first "
                           "bar over its last")
        hist = current.trainer.history.as_arrays()
        norms = {k: hist[f"grad_norm_{k}"] for k in ("Wxh", "Whh", "Why", "bh", "by")}
        st.plotly_chart(weight_figures.grad_norms_figure(hist["iteration"], norms, hist["clip_fraction"],
                                                  clip=current.trainer.clip),
                        key="bp_grad_norms", width="stretch")


def weights_tab(current, radius_now: float) -> None:
    name = st.segmented_control("Matrix", bv.WEIGHT_NAMES, key="bp_weight", default="Wxh") or "Wxh"
    W = current.trainer.model.params[name]
    # Full width: Wxh has one labelled column per vocabulary character. Why has one labelled row per
    # character, so it grows tall enough for each row's label to be legible.
    heatmap = weight_figures.weight_heatmap(W, name, **bv.weight_axis_labels(name, current.vocab.chars))
    if name == "Why":
        heatmap.update_layout(height=min(1400, max(style.HEATMAP_HEIGHT, 110 + 13 * W.shape[0])))
    st.plotly_chart(heatmap, key="bp_heatmap", width="stretch")
    series: bv.SpectralSeries = ss.bp_spectral
    hist, spectral = st.columns(2, gap="large")
    hist.plotly_chart(weight_figures.weight_histogram(W, name), key="bp_histogram", width="stretch")
    with spectral:
        st.metric(r"Spectral radius $\rho(W_{hh})$ now", f"{radius_now:.4f}",
                  help="ρ(W_hh) = max |λ| over the eigenvalues λ of W_hh")
        st.markdown(
            r"$\rho$ is the largest |eigenvalue| of $W_{hh}$. Above 1, repeated multiplication by $W_{hh}$ can "
            "grow a vector step after step (tanh then saturates, and gradients flowing back can explode); "
            "well below 1, signals and gradients fade within a few steps.")
        st.plotly_chart(weight_figures.spectral_radius_figure(*series.arrays()), key="bp_spectral", width="stretch")
        kept = len(series.iterations)
        st.caption(f"Recorded whenever this page draws ({kept} point{'s' if kept != 1 else ''} kept so far).")


# ---------------------------------------------------------------- the animated player
def player_interval() -> float | None:
    """The player's timer: one tick per frame while it plays, none otherwise."""
    held = ss.get("bp_player")
    if not held or not held["state"].playing:
        return None
    return 1.0 / bp.SPEEDS[held["speed"]]


# A change of run_every only takes effect on a full rerun (BRIEF pitfall 2): the player compares
# the interval it needs with this one and asks for a full rerun when they differ.
ss.bp_player_timer = player_interval()


def hold_window(current, window: bv.WindowBackprop) -> dict:
    """The window the player animates, with a copy of the weights it was computed with (training
    changes the live ones in place)."""
    held = ss.get("bp_player")
    key = (run_owner(current), window.iteration)
    previous = (held["owner"], held["window"].iteration) if held else None
    playing = bool(held and held["state"].playing)
    if bp.needs_new_window(previous, key, app_state.app().running, playing):
        T = window.length
        index = min(held["state"].index, bp.frame_count(T) - 1) if held and held["owner"] == key[0] else 0
        held = {"owner": key[0], "window": window,
                "params": {k: v.copy() for k, v in current.trainer.model.params.items()},
                "state": bp.PlayerState(index), "speed": held["speed"] if held else bp.DEFAULT_SPEED,
                "unit": bp.default_unit(window.trace)}
        ss.bp_player = held
    return held


def player_set(**changes) -> None:
    """Callback: replace fields of the player's state (e.g. index, playing)."""
    held = ss.bp_player
    held["state"] = bp.PlayerState(**{**vars(held["state"]), **changes})


def player_play() -> None:
    held = ss.bp_player
    held["state"] = bp.play(held["state"], bp.frame_count(held["window"].length), time.monotonic())


def player_goto(index: int, n_frames: int) -> None:
    """Callback of Back and Step: pause on frame ``index`` (clamped), made for a player of
    ``n_frames``; a stale click from a player since given another window moves nothing."""
    held = ss.bp_player
    if bp.frame_count(held["window"].length) == n_frames:
        held["state"] = bp.step(held["state"], n_frames, index - held["state"].index)


def player_slider(key: str, shown: int) -> None:
    """Callback of the frame slider made for frame ``shown``: moving it by hand pauses on the frame
    chosen. The browser also reports a slider's own value as a change after the player has moved on
    (the slider is redrawn under a new key each frame): a value equal to ``shown`` is no move."""
    if int(ss[key]) != shown:
        player_set(index=int(ss[key]), playing=False)


def player_speed() -> None:
    ss.bp_player["speed"] = ss.bp_speed or bp.DEFAULT_SPEED


def player_take_current() -> None:
    """Callback: animate the current window from its first frame (the chosen speed stays)."""
    ss.bp_player["owner"] = None


@st.fragment(run_every=ss.bp_player_timer)
def bptt_player(current, window: bv.WindowBackprop) -> None:
    held = hold_window(current, window)
    win, params = held["window"], held["params"]
    T = win.length
    n = bp.frame_count(T)
    held["state"] = bp.tick(held["state"], n, time.monotonic(), bp.SPEEDS[held["speed"]])
    if player_interval() != ss.bp_player_timer:
        st.rerun()      # start, stop or re-time the timer (it changes only on a full rerun)
    player_state = held["state"]

    st.markdown("The forward pass left to right, then backprop right to left, on the window above, one "
                "step per frame. Every number is the engine's own (`backprop_trace`).")
    if (held["owner"], win.iteration) != (run_owner(current), current.iteration):
        note, button = st.columns([3, 1], vertical_alignment="center")
        note.caption(f"Animating the window of iteration {win.iteration:,}; the model has trained since "
                     f"(iteration {current.iteration:,}).")
        button.button("Use the current window", key="bp_take_current", on_click=player_take_current,
                      icon=":material/refresh:")
    controls = st.columns([1, 1, 1.3, 1, 2], vertical_alignment="center")
    controls[0].button("First", key="bp_first", on_click=player_set, kwargs=dict(index=0, playing=False),
                       icon=":material/first_page:", width="stretch")
    # Back and Step name the frame they go to, not a move: a click whose callback Streamlit runs twice
    # (a timer's rerun coalesced with the click's, on a busy server) still moves one frame.
    controls[1].button("Back", key="bp_back", on_click=player_goto, args=(player_state.index - 1, n),
                       icon=":material/chevron_left:", width="stretch")
    if player_state.playing:
        controls[2].button("Pause", key="bp_pause", on_click=player_set, kwargs=dict(playing=False),
                           icon=":material/pause:", type="primary", width="stretch")
    else:
        controls[2].button("Play", key="bp_play", on_click=player_play, icon=":material/play_arrow:",
                           type="primary", width="stretch")
    controls[3].button("Step", key="bp_step", on_click=player_goto, args=(player_state.index + 1, n),
                       icon=":material/chevron_right:", width="stretch")
    ss.bp_speed = held["speed"]
    controls[4].segmented_control("Speed", list(bp.SPEEDS), key="bp_speed", on_change=player_speed,
                                  label_visibility="collapsed",
                                  help=", ".join(f"{k}: {v:g}" for k, v in bp.SPEEDS.items())
                                  + " frames a second at most (a busy server draws fewer)")
    # One slider per frame shown: a browser reports a slider's old value after the server has moved it,
    # which would drag the player back.
    slider_key = f"bp_frame_at_{player_state.index}"
    st.slider("Frame", 0, n - 1, value=player_state.index, key=slider_key, on_change=player_slider,
              args=(slider_key, player_state.index), format="%d", help=f"0..{T - 1}: forward pass, step t = frame; {T}..{n - 1}: backward pass, "
                                f"step t = {n - 1} − frame")

    frame = bp.build_frame(params, win.trace, win.inputs, win.targets, player_state.index)
    t = frame.t
    unit = held["unit"]
    st.markdown(f"**Frame {player_state.index + 1} of {n}: {frame.phase} pass, step t = {t}**, input "
                f"'{markdown_text(visible_char(win.chars[t]))}' → target "
                f"'{markdown_text(visible_char(win.target_chars[t]))}' · numbers for hidden unit {unit}",
                help="The unit followed is the one with the largest Σ|dh_raw_t| on this window.")
    cols = st.columns(4)
    cols[0].metric(r"$\mathrm{loss}_t$", f"{frame.losses[t]:.4f}", help="loss_t = −ln p_t[target], in nats")
    cols[1].metric("L so far", f"{frame.loss_so_far:.3f}",
                   help="Σ loss_s over the steps computed so far (forward: s = 0..t; backward: the whole window)")
    if frame.phase == "backward":
        cols[2].metric(r"$\|dh_t\|$", f"{bp.norm(frame.dh[t]):.4g}",
                       help="‖dh_t‖ = ‖W_hyᵀ dy_t + W_hhᵀ dh_raw_{t+1}‖: what reaches h_t from the output and from step t+1")
        cols[3].metric(r"$\|dh^{\mathrm{raw}}_t\|$", f"{bp.norm(frame.dh_raw[t]):.4g}",
                       help="‖dh_raw_t‖ = ‖(1 − h_t²) ⊙ dh_t‖: what passes back through the tanh")
    else:
        cols[2].metric(r"$p_t[\mathrm{target}]$", f"{frame.p_target[t]:.4f}",
                       help="softmax(W_hy h_t + b_y) at the target character")
        cols[3].metric(r"$\|h_t\|$", f"{bp.norm(frame.hs[t]):.4g}",
                       help="‖h_t‖ = ‖tanh(W_xh x_t + W_hh h_{t−1} + b_h)‖ (at most √H)")
    now, other = st.columns([2.4, 1], gap="small")
    now.latex(bp.equations_latex(frame, params, win.inputs, win.targets, unit))
    other.latex(bp.phase_equations_latex(frame.phase))

    left, right = st.columns(2, gap="medium")
    left.plotly_chart(bp.hidden_figure(frame, win.chars), key="bp_anim_hidden", width="stretch")
    right.plotly_chart(bp.dh_figure(frame, win.chars, bp.dh_limit(win.trace)), key="bp_anim_dh", width="stretch")
    left.plotly_chart(bp.loss_figure(frame, win.chars), key="bp_anim_loss", width="stretch")
    right.plotly_chart(bp.flow_figure(frame, win.chars), key="bp_anim_flow", width="stretch")
    name = st.segmented_control("Weight gradient", bp.MATRIX_NAMES, key="bp_anim_grad", default="Whh",
                                format_func=lambda k: f"d{k}") or "Whh"
    st.plotly_chart(bp.grad_figure(frame, name, win.trace["grads"][name], current.vocab.chars),
                    key="bp_anim_gradmap", width="stretch")


@st.fragment(run_every=live_interval())
def backprop_panel() -> None:
    current = state.get_run()
    try:
        window = bv.window_backprop(current)
    except ValueError as exc:
        st.error(f"The backprop view cannot be computed for this run: {exc}")
        return
    if "bp_spectral" not in ss:
        ss.bp_spectral = bv.SpectralSeries()
    radius_now = ss.bp_spectral.record(run_owner(current), current.iteration,
                                       current.trainer.model.spectral_radius)

    st.markdown(f"Iteration **{current.iteration:,}** · window of T = {window.length} characters "
                f"(input → target, shifted by one):")
    st.code("input   " + "".join(visible_chars(window.chars)) + "\n"
            "target  " + "".join(visible_chars(window.target_chars)), language=None)
    # Lazy tabs: only the open one is computed, so live refreshes stay cheap and training keeps its pace.
    tabs = st.tabs(TAB_LABELS, key="bp_tab", on_change="rerun")
    draw = (lambda: equations_tab(current, window), lambda: bptt_player(current, window),
            lambda: gradcheck_tab(current, window),
            lambda: through_time_tab(current, window), lambda: weights_tab(current, radius_now))
    for tab, draw_tab in zip(tabs, draw):
        if tab.open:
            with tab:
                draw_tab()


backprop_panel()
