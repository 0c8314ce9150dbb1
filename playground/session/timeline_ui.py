"""The Train page's timeline section (streamlit): a scrubber over the run's snapshots, the sample and
the hidden states of the chosen one, its mark on the loss chart, Play, and Continue from here.

It runs inside the Train page's live fragment, so moving the scrubber redraws the loss chart with the
new mark. Play sets that fragment's timer to PLAY_SECONDS (``refresh_interval``, read when the page
runs in full); each run of the fragment while playing shows one snapshot and queues the next, and a
full rerun turns the timer back when the last one has been shown. What is drawn comes from
playground.views.timeline_view (pure functions).
"""
from __future__ import annotations

import streamlit as st

from playground.runs.run import Run
from playground.session import app_state, state
from playground.views import timeline_view as tv
from playground.views.textviews import reveal_invisible

PLAY_SECONDS = 0.8           # per snapshot while playing: 13 snapshots in about ten seconds
PICK_KEY = "timeline_pick"   # the scrubber: the chosen snapshot's iteration
PLAYING_KEY = "timeline_playing"
NEXT_KEY = "timeline_next"   # while playing: the index to show at the fragment's next run
TIMER_KEY = "timeline_timer"  # whether the live fragment's timer was set for playing
NEWEST_KEY = "timeline_newest"  # the newest iteration when the scrubber was last drawn
SHOWN_KEY = "timeline_shown"  # the iteration the scrubber was last drawn at


def refresh_interval(live: float | None) -> float | None:
    """run_every for the live fragment: PLAY_SECONDS while the timeline plays, else ``live``."""
    ss = st.session_state
    ss[TIMER_KEY] = bool(ss.get(PLAYING_KEY))
    return PLAY_SECONDS if ss[TIMER_KEY] else live


def _take_queued(its: list[int]) -> None:
    """While playing: the snapshot queued by the fragment's last run becomes the pick. Called by
    ``marked`` and ``section`` (whichever runs first in a script run), so the chart's mark and the
    section show the same snapshot."""
    ss = st.session_state
    if ss.get(PLAYING_KEY) and NEXT_KEY in ss:
        ss[PICK_KEY] = its[min(ss.pop(NEXT_KEY), len(its) - 1)]


def chosen(run: Run) -> int:
    """Index of the snapshot the scrubber shows: the one picked, the nearest kept one if it was
    thinned away, the newest if none was picked (or the newest was, and a newer one arrived)."""
    ss = st.session_state
    its = run.timeline.iterations
    pick = ss.get(PICK_KEY)
    if pick is None or (pick == ss.get(NEWEST_KEY) and not ss.get(PLAYING_KEY)):
        return len(its) - 1
    return run.timeline.nearest(pick)


def marked(fig, run: Run):
    """The loss chart ``fig`` with the chosen snapshot marked on it (returns ``fig``)."""
    if not len(run.timeline):
        return fig
    _take_queued(run.timeline.iterations)
    snap = run.timeline.snapshots[chosen(run)]
    unit = app_state.loss_unit()
    return tv.mark_snapshot(fig, snap.iteration, tv.chart_value(run, snap, unit, app_state.smoothing()), unit)


def _play(last: int) -> None:
    ss = st.session_state
    ss[PLAYING_KEY] = True
    ss.pop(NEXT_KEY, None)
    its = ss[PICK_KEY + "_options"]
    if ss.get(PICK_KEY) in (None, its[last]):
        ss[PICK_KEY] = its[0]            # from the start, unless paused half-way


FORKED_KEY = "timeline_forked"
TOAST_KEY = "timeline_toast"


def _fork(index: int) -> None:
    """Continue from here. A button in a fragment reruns only the fragment: the section then asks for
    a full rerun, so that the sidebar and the message show the new run."""
    ss = st.session_state
    before = app_state.app().run.uid
    state.continue_from_snapshot(index)
    ss[FORKED_KEY] = True
    run = app_state.app().run
    if run.uid != before:   # also beside the timeline, where the user is (the message is at the top)
        ss[TOAST_KEY] = f"New run from iteration {run.iteration:,}: press Start to train it."


def _stop() -> None:
    st.session_state[PLAYING_KEY] = False
    st.session_state.pop(NEXT_KEY, None)


def _scrubbed() -> None:
    """The scrubber's on_change. While playing it is disabled, so a change is a value the browser
    sent from before the player last moved it (a tick's rerun that crossed the new position on a
    busy laptop), not the user's: the player goes on from where it was. Otherwise the user moved it,
    and the player stops there."""
    ss = st.session_state
    if ss.get(PLAYING_KEY):
        ss[PICK_KEY] = ss.get(SHOWN_KEY, ss[PICK_KEY])
    else:
        _stop()


def section(run: Run) -> None:
    """The timeline, under the loss chart (inside the live fragment)."""
    ss = st.session_state
    timeline = run.timeline
    if not len(timeline):
        return
    # The fragment's timer changes only with a full rerun; after a fork, so do the sidebar and the
    # message (still pending when this is a fragment run: a full run shows it before getting here).
    forked = ss.pop(FORKED_KEY, False) and app_state.app().flash
    if bool(ss.get(PLAYING_KEY)) != bool(ss.get(TIMER_KEY)) or forked:
        st.rerun()
    if TOAST_KEY in ss:
        st.toast(ss.pop(TOAST_KEY), icon=":material/fork_right:")
    its = timeline.iterations
    ss[PICK_KEY + "_options"] = its
    _take_queued(its)
    index = chosen(run)
    ss[PICK_KEY] = ss[SHOWN_KEY] = its[index]
    ss[NEWEST_KEY] = its[-1]
    if ss.get(PLAYING_KEY):
        if index + 1 < len(its):
            ss[NEXT_KEY] = index + 1
        else:
            ss[PLAYING_KEY] = False       # the last one: the next run turns the timer back

    snap = timeline.snapshots[index]
    with st.container(border=True, key="timeline"):
        st.markdown("**Timeline** · rewind the run")
        if len(its) > 1:
            st.select_slider("Snapshot", its, key=PICK_KEY, format_func=tv.moment_label, on_change=_scrubbed,
                             disabled=bool(ss.get(PLAYING_KEY)),
                             help=f"The run keeps up to {timeline.capacity} snapshots of its whole training "
                                  "state (weights, optimizer memory, position, hidden state, random generator), "
                                  "denser early: iterations 0, 100, 200, 500, 1k, 2k, 5k, 10k, then every 10k; "
                                  "older ones are thinned evenly, never the first. They are saved with the run.")
        else:
            st.caption("Snapshots are taken at iterations 0, 100, 200, 500, 1k, 2k, 5k, 10k and then every 10k: "
                       "train past 100 to scrub back and forth.")
        play_col, fork_col = st.columns(2)
        if ss.get(PLAYING_KEY) or NEXT_KEY in ss:
            play_col.button("Pause", key="timeline_pause", on_click=_stop, icon=":material/pause:",
                            width="stretch")
        else:
            play_col.button("Play", key="timeline_play", on_click=_play, args=(len(its) - 1,),
                            icon=":material/play_arrow:", width="stretch", disabled=len(its) < 2,
                            help="Step through the snapshots from the first: noise becomes words.")
        if not state.watching():
            fork_col.button("Continue from here", key="timeline_fork", on_click=_fork,
                            args=(index,), icon=":material/fork_right:", width="stretch",
                            disabled=snap.iteration == run.iteration,   # it would only copy the run as it is
                            help="A new run from exactly this snapshot. The current run is kept: its curve "
                                 "stays on the chart (dashed), and its link still opens it.")
        st.caption(tv.describe(snap, run.trainer.seq_length))
        st.caption("What the model wrote then (the same seed every time, after the passage's first character):")
        st.code(reveal_invisible(tv.sample_text(run, snap)), language=None, wrap_lines=True)
        st.plotly_chart(tv.passage_heatmap(run, snap), key="timeline_heatmap", width="stretch")
