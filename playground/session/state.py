"""Session state, set up in one place, and the controls every page shares.

Each browser session's run trains in a worker process of the trainer pool (playground.runs.trainers);
the session's AppState (playground.session.app_state) holds its TrainerHandle in ``trainer`` and,
in ``run``, the newest snapshot of the run: a consistent copy the pages read and
compute on (at most VIEW_SECONDS old while training, exact while paused), never trained here.
Draft settings live in the Train page's widgets; ``app_state.draft_config`` turns them into a
RunConfig. The sidebar's ``training_status`` fragment asks the worker for progress every
TICK_SECONDS while running; the buttons' callbacks send Start / Pause / Step / Reset at once.
"""
from __future__ import annotations

import functools
import threading
from dataclasses import asdict

import streamlit as st

from playground.escape import markdown_text
from playground.runs import saver, trainers, watch
from playground.runs.run import PRESETS, Run, RunConfig, builtin_run_or_fallback
from playground.session import experiment, persist
from playground.session.app_state import (
    DEFAULT_LOSS_UNIT,
    STOP_AT_KEY,
    adopt_text,
    app,
    default_chart_view,
    default_drafts,
    draft_config,
    flash,
    load_draft,
    set_chart_view,
    set_draft,
    stop_at,
)
from playground.views import compare, loss_chart

# The worker trains on its own; a tick only asks it for progress (a round trip of a few ms).
# Each tick also costs every open browser tab a fragment rerun in Streamlit's frontend, far more CPU
# than the tick's round trip (bench/dashboard_overhead.py, where the tabs share the server's cores;
# on a student's Chromebook it is that laptop's battery): one count a second.
TICK_SECONDS = 1.0     # sidebar fragment timer while training
VIEW_SECONDS = 2.0     # while training, pages read a snapshot at most this old
# Charts refresh less often than the count: building and drawing them costs the server tens of
# milliseconds and the browser more (bench/dashboard_overhead.py).
LIVE_REFRESH_SECONDS = 3.0
MAX_STOP_AT = 10**9    # "Pause at iteration": the largest value the input takes
# Keyboard shortcuts: Streamlit's own (st.button's shortcut), so no component is needed. "R" and
# "C" are Streamlit's (rerun, clear cache) and cannot be used; Reset discards training, so it takes
# two keys.
SHORTCUTS = {"start": "Space", "step": "Right", "reset": "Shift+N", "present": "P"}
SHORTCUT_HELP = ("**Keyboard shortcuts** (anywhere in the app, except while typing in a box)\n\n"
                 "| key | does |\n|---|---|\n| Space | Start / Pause |\n| → | Step one iteration |\n"
                 "| Shift+N | Reset: a new model from the Train page's settings |\n"
                 "| P | Presenter mode on / off |")
PRESENT_KEY = "present"   # ?present=1: presenter mode (the projector's one-screen view)
# A class of watchers costs each laptop (and a server whose browsers share its cores) a rerun per
# tick and a chart redraw per refresh: they follow the run at half the owner's rate.
WATCH_TICK_SECONDS = 2.0     # a watcher's count (also while paused: it notices the owner's Start)
WATCH_REFRESH_SECONDS = 6.0  # a watcher's charts


def live_interval() -> float | None:
    """run_every for a page's live views: refresh while training, stay still while paused."""
    if not app().running:
        return None
    return WATCH_REFRESH_SECONDS if watching() else LIVE_REFRESH_SECONDS



def run_lock() -> threading.RLock:
    """The session's lock around every use of its run: Streamlit may start a full rerun (and its
    callbacks) while a fragment's training tick is still running in another thread.

    The rule — what runs under it: every callback that changes the run or its handle (``owner_only``
    wraps ``locked``; pages wrap theirs in ``locked``); the sidebar's tick (``_tick``, ``_watch_tick``)
    and what it does about a stop, a restart or an autosave; making one's own copy of a watched run;
    the entry file's script run (init, sidebar, page); and the saver's sweeper, which tries it
    (``saver._acquire`` without waiting: a busy session is skipped until the next sweep) before it
    snapshots, saves or releases a session's run. Not under it: page fragments rerun by their own
    timer, which read ``get_run()`` (it may swap in a newer snapshot, never change one in place).
    Never wait for another session's lock while holding this one, with one bounded exception: a
    session opening a ``?run=`` link that another live session holds waits at most
    ``saver.LOCK_WAIT_SECONDS`` for that session's lock, to save it first (``saver.flush_holders``)."""
    return app().lock


def locked(func):
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        with run_lock():
            return func(*args, **kwargs)
    return wrapper


def watching() -> bool:
    """True in a watch session: someone else's run, shown live, with no controls."""
    return isinstance(app().trainer, watch.WatchHandle)


def owner_only(func):
    """A control callback: run under the session's lock, and in a watch session refused with a
    sentence (the WatchHandle would refuse it too; this keeps the refusal off the page as an error)."""
    guarded = locked(func)

    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        if watching():
            flash("error", "This is a watch link: only the run's owner can change it. Press "
                           "*Make my own copy* in the sidebar to train a copy of your own.")
            return None
        return guarded(*args, **kwargs)
    return wrapper


def _open_watch_link() -> bool:
    """At session start, for a ``?watch=<id>`` link: become a watch session. False (with a sentence)
    when the link does not open a run; the session then starts a run of its own."""
    session = app()
    requested = st.query_params.get(watch.QUERY_KEY)
    if not requested:
        return False
    store = saver.get_store()
    try:
        if store is None:
            raise watch.WatchClosed("saved runs are not available on this server")
        handle = watch.WatchHandle(store, requested, saver.owner_handle)
    except (watch.WatchClosed, ValueError, OSError) as exc:
        reason = str(exc) if isinstance(exc, watch.WatchClosed) else "the run behind it could not be read"
        flash("warning", f"That watch link does not open a run ({markdown_text(reason)}); this is a new run "
                         "of your own.")
        st.query_params.pop(watch.QUERY_KEY, None)
        return False
    session.trainer = handle
    session.run = session.trainer_view = handle.latest
    session.running = handle.running
    return True


def init_session() -> None:
    """Create the session's defaults and its run (the classic setting on Shakespeare), or, for a
    watch link, the run it shows."""
    session = app()
    default_chart_view(DEFAULT_LOSS_UNIT, loss_chart.CLASSIC_SMOOTHING)
    if (session.run is None and _open_watch_link()) or watching():
        default_drafts(session.run.config)
        # Streamlit drops the query when the sidebar's navigation changes page: put the link back,
        # so a reload (or a copied address) still shows the watched run, as ?run= does for an owner.
        if st.query_params.get(watch.QUERY_KEY) != session.trainer.watch_id:
            st.query_params[watch.QUERY_KEY] = session.trainer.watch_id
        return
    if session.run is None:
        # A ?run=<id> link continues that saved run; otherwise a fresh one, on another built-in
        # text (with a sentence saying so) if the classic one cannot be read.
        run = persist.restore_from_url()
        if run is None:
            config, view, problems = PRESETS["classic"], {}, []
            if experiment.is_experiment_link(st.query_params):   # a fresh run with the link's settings
                config, view, problems = experiment.parse(st.query_params.to_dict())
            run, problem = builtin_run_or_fallback(config)
            said = [session.flash[1]] if session.flash else []   # e.g. why the run in the link could not be opened
            if problems:   # the link's values are the sender's text: shown escaped
                said.append(markdown_text(experiment.sentence(problems)))
            if problem:
                said.append(problem)
            if said:
                flash("warning", " ".join(said))
            load_draft(run.config)
            set_chart_view(view)
        session.run = run
    handle = trainer()
    if session.running and not handle.running:
        # Stopped outside this session's script runs: released while the tab was away, or its
        # worker restarted. The run as it stopped is already in app().run (trainer()).
        session.running = False
    default_drafts(session.run.config)
    persist.after_init()   # saves a paused run that changed, keeps ?run= in the URL


def app_base_url() -> str:
    """The app's address, from this script run's URL: the start page's, with no query and no page
    name (the entry file records which page this run shows)."""
    base = (st.context.url or "").split("?")[0].rstrip("/")
    page = app().page_path
    if page and base.endswith("/" + page):
        base = base[: -len(page) - 1]
    return base


def trainer() -> trainers.TrainerHandle:
    """The session's handle in the trainer pool, made on first use. A Run put into
    ``app().run`` by other code (a test, say) becomes the session's run, paused; a
    snapshot the handle took outside a script run (the saver's sweeper) becomes the session's view."""
    session = app()
    handle = session.trainer
    if isinstance(handle, watch.WatchHandle):    # someone else's run: never replaced from here
        return handle
    if handle is None:
        handle = session.trainer = trainers.get_pool().handle(session.run)
    elif session.run is not session.trainer_view:
        if session.run is not handle.latest:
            handle.replace(session.run)
    elif handle.latest is not session.run:
        session.run = handle.latest
    session.trainer_view = session.run
    return handle


def _show(run: Run) -> Run:
    """Make ``run`` (a snapshot from the handle) what the pages read."""
    session = app()
    session.run = session.trainer_view = run
    return run


def get_run() -> Run:
    """The run the pages read: while training, a snapshot at most VIEW_SECONDS old."""
    session = app()
    handle = trainer()
    if watching() or session.running and handle.running:   # a watcher's owner may also Step or Reset
        return _show(_survive(lambda: handle.snapshot(max_age=VIEW_SECONDS), session.run))
    return session.run


def _survive(call, fallback):
    """A pool call from a page: a worker that died mid-call is replaced by the handle; if even that
    fails, the page shows what it has and the sidebar says why."""
    try:
        return call()
    except trainers.WorkerDied:
        return fallback


def adopt_run(run: Run) -> None:
    """Make ``run`` the session's run (a loaded checkpoint): paused, its settings in the widgets,
    its text as the custom text when it is not a built-in corpus, and saved."""
    app().running = False
    trainer().replace(run)
    _show(run)
    load_draft(run.config)
    adopt_text(run)
    persist.save_now()
    _park(trainer())


def show_flash() -> None:
    """Show the message the last action left, once, at the top of this script run."""
    session = app()
    item, session.flash = session.flash, None
    session.flash_shown = item[1] if item else None
    if item:
        kind, message = item
        {"error": st.error, "warning": st.warning, "success": st.success}.get(kind, st.info)(message)


def shown_flash() -> str | None:
    """The message show_flash put at the top of this script run, if any."""
    return app().flash_shown


# ---------------------------------------------------------------- callbacks (run before the rerun)
@owner_only
def start() -> None:
    session = app()
    handle = trainer()
    session.run.alert = None
    try:
        handle.start(stop_at=stop_at())
    except trainers.ServerFull as exc:
        flash("warning", f"Training did not start: {exc}. Your run stays paused and intact; press Start "
                         "again in a minute.")
        return
    except trainers.WorkerDied as exc:
        flash("error", _no_trainer(exc))
        return
    session.running = True
    session.sent_stop_at = stop_at()


def _no_trainer(exc: Exception) -> str:
    """The sentence for a pool call that failed even after the handle replaced the training process:
    the cluster's own sentence when none could be reached (ServerFull says it plainly)."""
    why = f"{markdown_text(exc)}. " if isinstance(exc, trainers.ServerFull) else ""
    return (f"The training process could not be reached. {why}Your run is kept as it is: try again in a "
            "moment, or reload the page.")


def _park(handle: trainers.TrainerHandle) -> None:
    """The run has paused: let its backend free what a paused run need not hold (handle.park)."""
    _survive(handle.park, None)


@owner_only
def pause() -> None:
    session = app()
    session.running = False
    handle = trainer()
    _show(_survive(handle.pause, handle.latest))
    # Wait for the write (briefly), so the rerun that follows shows in the sidebar if it failed.
    persist.save_now(wait=persist.PAUSE_SAVE_WAIT_SECONDS)
    _park(handle)


@owner_only
def step_once() -> None:
    app().running = False
    handle = trainer()
    try:
        run, alert = handle.step(1)
    except trainers.WorkerDied as exc:
        flash("error", _no_trainer(exc))
        return
    _show(run)
    _park(handle)
    if alert:
        flash("error", alert)


@owner_only
def apply_live_settings() -> None:
    """on_change of learning rate, optimizer, clip, sample interval: applied to the running model."""
    try:
        draft = draft_config()
        draft.validate()
        _show(trainer().apply_live(draft))
    except ValueError as exc:
        flash("error", f"That setting was not applied: {markdown_text(exc)}")
    except trainers.WorkerDied as exc:
        flash("error", f"That setting was not applied. {_no_trainer(exc)}")


def reset_to_drafts() -> Run:
    """A fresh model from the draft settings and corpus becomes the session's run (paused, saved),
    with a message saying so for the top of the page. Raises ValueError (a sentence naming the
    setting) when the drafts cannot make a run: the old run stays as it is. Caller holds the lock."""
    session = app()
    config = draft_config().validate()
    if config.corpus == "custom":
        if not session.custom_text:
            raise ValueError("no uploaded or pasted text yet: add one on the Data page first")
        run, problem = Run(config, session.custom_text, session.custom_label or "your text"), None
    else:
        run, problem = builtin_run_or_fallback(config)
    trainer().replace(run)
    _show(run)
    session.running = False
    if problem:   # the chosen built-in text cannot be read: the run is on another one
        set_draft("corpus", run.config.corpus)
    persist.save_now()
    done = (f"New run: {markdown_text(run.corpus_label)}, hidden size {config.hidden_size}, "
            f"sequence length {config.seq_length}, batch size {config.batch_size}.")
    if problem:
        flash("warning", f"{problem} {done}")
    else:
        flash("success", done)
    return run


@owner_only
def new_run_from_widgets() -> None:
    """Reset (the sidebar's button): reset_to_drafts, or a sentence at the top saying why not."""
    try:
        reset_to_drafts()
    except ValueError as exc:
        flash("error", f"The run was not reset: {markdown_text(exc)}")


@owner_only
def apply_preset(name: str) -> None:
    current = draft_config()
    preset = PRESETS[name]
    load_draft(RunConfig(**{**asdict(preset), "corpus": current.corpus, "seed": current.seed}))


def presenting() -> bool:
    """Presenter mode: one screen for a projector (``?present=1``, or the sidebar's toggle)."""
    session = app()
    if session.presenting is None:
        session.presenting = st.query_params.get(PRESENT_KEY) == "1"
    return session.presenting


def toggle_presenter() -> None:
    session = app()
    session.presenting = not presenting()
    if session.presenting:
        st.query_params[PRESENT_KEY] = "1"
    else:
        st.query_params.pop(PRESENT_KEY, None)


def presenter_button(**kwargs) -> None:
    label = "Leave presenter mode" if presenting() else "Presenter mode"
    st.button(label, key="btn_present", on_click=toggle_presenter, icon=":material/co_present:",
              shortcut=SHORTCUTS["present"], help="One screen for a projector: the loss, the latest sample "
              "and the controls in large type (P).", **kwargs)


def make_own_copy() -> None:
    """A watcher's "Make my own copy": a private run continuing from the weights and optimizer state
    on screen, trained in this session from now on; the owner's run is untouched."""
    session = app()
    handle = session.trainer
    if not isinstance(handle, watch.WatchHandle):
        return
    with run_lock():
        run = watch.fork(_survive(lambda: handle.snapshot(), session.run))
        session.trainer = trainers.get_pool().handle(run)
        session.run = session.trainer_view = run
        session.running = False
        load_draft(run.config)
        persist.begin_own_run()
        adopt_text(run)
        persist.save_now(wait=persist.PAUSE_SAVE_WAIT_SECONDS)   # so this rerun already shows its link
    st.query_params.pop(watch.QUERY_KEY, None)
    flash("success", f"This is your own copy, at iteration {run.iteration:,}: press Start to train it. "
                     "The run you were watching goes on without you.")


@owner_only
def continue_from_snapshot(index: int) -> None:
    """The timeline's "Continue from here": a new run from timeline snapshot ``index`` of the run on
    screen, trained in this session from now on. The run it came from is kept: paused, saved under
    its own link, and its loss curve kept on the chart (as Compare runs keeps one)."""
    session = app()
    handle = trainer()
    current = _show(_survive(handle.pause, session.run))
    session.running = False
    if not 0 <= index < len(current.timeline):
        flash("error", "That snapshot is no longer kept (the timeline was thinned); pick another one.")
        return
    persist.save_now(wait=persist.PAUSE_SAVE_WAIT_SECONDS)
    link = persist.run_link(app_base_url())
    fork = current.continue_from(index)
    session.kept_curves = compare.keep(session.kept_curves, current)
    _survive(handle.release, None)        # its worker's copy: the run itself is in session state and saved
    session.trainer = trainers.get_pool().handle(fork)
    _show(fork)
    load_draft(fork.config)
    persist.begin_own_run()               # a new run id: saves of the fork never overwrite the original
    persist.save_now()
    _park(session.trainer)                     # paused, as every run that is not training
    kept = f" (its link: {markdown_text(link)})" if link else ""
    flash("success", f"A new run continues from iteration {fork.iteration:,}: press Start to train it. The run "
                     f"you had, at iteration {current.iteration:,}, is kept{kept}; its curve is dashed on the chart.")


def _run_summary(run: Run) -> None:
    st.markdown("### Watching a run" if watching() else "### Current run")
    c = run.config
    st.caption(f"**{markdown_text(run.corpus_label)}** · {run.vocab.size} characters in vocabulary · "
               f"{len(run.trainer.data):,} training characters")
    st.caption(f"hidden {c.hidden_size} · seq {c.seq_length} · batch {c.batch_size} · "
               f"{run.trainer.optimizer_name} lr {run.trainer.learning_rate:g} · clip {run.trainer.clip:g}")


def _watch_sidebar() -> None:
    st.caption("You are watching someone else's run as it trains: every page shows its current weights. "
               "Its owner starts and pauses it.")
    st.button("Make my own copy", key="btn_fork", on_click=make_own_copy, icon=":material/fork_right:",
              width="stretch", type="primary",
              help="A run of your own from exactly these weights and optimizer state, trained in your "
                   "browser session from now on. The run you are watching is not affected.")
    training_status()


# ---------------------------------------------------------------- shared sidebar
def sidebar() -> None:
    """Run summary and Start / Pause / Step / Reset, on every page (for a watcher: the summary,
    the live count and Make my own copy)."""
    session = app()
    run = get_run()
    with st.sidebar:
        _run_summary(run)
        if watching():
            _watch_sidebar()
            return
        # Start / Pause on a row of its own: the buttons show their keyboard shortcut, which a half-width
        # button in the sidebar cuts off.
        if session.running:
            st.button("Pause", key="btn_pause", on_click=pause, icon=":material/pause:",
                      width="stretch", shortcut=SHORTCUTS["start"])
        else:
            st.button("Start", key="btn_start", on_click=start, type="primary", icon=":material/play_arrow:",
                      width="stretch", shortcut=SHORTCUTS["start"])
        left, right = st.columns(2)
        left.button("Step", key="btn_step", on_click=step_once, icon=":material/skip_next:",
                    width="stretch", help="Train exactly one iteration", shortcut=SHORTCUTS["step"])
        with right.popover("Keys", icon=":material/keyboard:", width="stretch", help="Keyboard shortcuts"):
            st.markdown(SHORTCUT_HELP)
        pending = draft_config().reset_changes(run.config)
        st.button("Reset", key="btn_reset", on_click=new_run_from_widgets, icon=":material/restart_alt:",
                  width="stretch", type="primary" if pending else "secondary", shortcut=SHORTCUTS["reset"],
                  help="Start a fresh model from the settings on the Train page. "
                       f"The current {run.iteration:,} iterations of training are discarded.")
        st.number_input("Pause at iteration", min_value=0, max_value=MAX_STOP_AT, step=1000, key=STOP_AT_KEY,
                        persist_state="session",
                        help="Training pauses by itself when the run reaches this iteration, e.g. to look at "
                             "the model at a planned moment in a lecture. 0: never. A number the run has "
                             "already passed is ignored.")
        training_status()
        if not presenting():   # in presenter mode the page has its own (the sidebar is hidden)
            presenter_button(width="stretch")


def _watch_tick() -> trainers.Progress | None:
    """A watcher's tick: the owner's progress; a rerun when the run started, stopped or changed, so
    the pages follow; a sentence when the owner closed the link."""
    session = app()
    handle = session.trainer
    with run_lock():
        try:
            if handle.closed:
                flash("warning", "The owner closed this watch link, so the run is no longer shown here. "
                                 "Ask for the new link, or train a run of your own.")
                session.trainer = None
                session.run = session.trainer_view = None
                session.running = False
                st.query_params.pop(watch.QUERY_KEY, None)
                st.rerun()
            progress = handle.progress()
        except trainers.WorkerDied:
            return None
        before = session.run
        if progress.running != session.running or progress.iteration < before.iteration or (
                not progress.running and progress.iteration != before.iteration):
            session.running = progress.running
            _show(_survive(lambda: handle.snapshot(), before))
            st.rerun()
    return progress


def _tick() -> trainers.Progress | None:
    """Ask the worker how the run is doing; act on what it says (a stop by itself, a restart)."""
    session = app()
    if watching():
        return _watch_tick()
    with run_lock():
        if not session.running:
            return None
        handle = trainer()
        pause_at = stop_at()
        if pause_at != session.sent_stop_at:            # "Pause at iteration" changed while training
            handle.set_stop_at(pause_at)
            session.sent_stop_at = pause_at
        try:
            progress = handle.progress()
        except trainers.WorkerDied:                # the replacement died too: say so, stay paused
            session.running = False
            flash("error", "The training process stopped and could not be restarted; your run is paused "
                           f"at iteration {session.run.iteration:,}.")
            st.rerun()
        if progress.restarted is not None:
            session.running = False
            _show(handle.latest)
            flash("warning", trainers.restarted_sentence(progress.restarted))
        elif not progress.running:                 # the guard or stop_at paused it
            session.running = False
            _show(handle.snapshot())
            persist.save_now()
            _park(handle)
            if progress.alert:
                flash("error", progress.alert)
            elif progress.reached is not None:
                flash("success", f"Paused at iteration {progress.reached:,}, as set in the sidebar.")
        elif persist.autosave_due():
            _show(handle.snapshot())
            persist.autosave_if_due()
        else:
            persist.touch()
    if not session.running:
        st.rerun()   # a full rerun turns the fragment's timer off
    return progress


def _status_body(progress: trainers.Progress | None) -> None:
    run = app().run
    state = "training" if app().running else "paused"
    iteration, smooth, bits = ((progress.iteration, progress.smooth_loss, progress.bits_per_char) if progress
                               else (run.iteration, run.trainer.smooth_loss, run.bits_per_char))
    st.markdown(f"**Iteration {iteration:,}** · {state}")
    st.caption(f"smoothed loss {smooth:.2f} per window · {bits:.3f} bits/char")
    problem = None if watching() else persist.save_problem()   # a watcher saves nothing
    if problem:   # here, beside the controls, on every page and every tick until a save succeeds
        st.error(problem, icon=":material/sd_card_alert:")


def training_status() -> None:
    """The one place training advances: a sidebar fragment that ticks while running (and, for a
    watcher, slowly while the owner has paused, to notice the next Start)."""
    interval = TICK_SECONDS if app().running else None
    if watching():
        interval = WATCH_TICK_SECONDS

    @st.fragment(run_every=interval)
    def status() -> None:
        # A tick is a round trip to the worker, not training: each fragment run ends long before
        # the timer's next one starts. (When a fragment run trained in the script thread, the next
        # run was already queued when it ended, and Streamlit dropped its unsent output: the count
        # froze on some pages.)
        _status_body(_tick())

    status()
