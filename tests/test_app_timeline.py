"""The Train page's timeline in Streamlit's AppTest (issue 15): the scrubber shows each snapshot's
reproducible sample, marks it on the loss chart and draws the passage's hidden states; Play steps
through every snapshot (AppTest never fires run_every: each run of the app stands for one tick of
the player); Continue from here forks a new run and keeps the old one's curve on the chart."""
import json
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from playground.runs.run import Run, RunConfig
from playground.views import timeline_view as tv
from playground.views.textviews import reveal_invisible

DASHBOARD = str(Path(__file__).resolve().parent.parent / "dashboard.py")
POEM = "roses are red, violets are blue,\nsugar is sweet and so are you.\n" * 60


def trained_run(steps: int = 520) -> Run:
    run = Run(RunConfig(corpus="custom", hidden_size=16, seq_length=10), POEM, "poems")
    run.step(steps)
    return run


@pytest.fixture
def app():
    at = AppTest.from_file(DASHBOARD, default_timeout=60)
    at.run()
    assert not at.exception
    at.session_state.app.run = trained_run()          # the session's run now (its trainer takes it)
    at.run()
    assert not at.exception
    return at


def timeline_block(at):
    """The timeline's bordered container (key "timeline") in the element tree."""
    def walk(node):
        for child in getattr(node, "children", {}).values():
            proto = getattr(child, "proto", None)
            if hasattr(child, "children") and str(getattr(proto, "id", "")).endswith("-timeline"):
                return child
            found = walk(child)
            if found is not None:
                return found
        return None
    block = walk(at.main)
    assert block is not None, "no timeline on the page"
    return block


def timeline_sample(at) -> str:
    """The sample the timeline shows (its one code block; st.code drops a trailing newline)."""
    codes = timeline_block(at).code
    assert len(codes) == 1
    return codes[0].value.rstrip("\n")


def expected(run, snap) -> str:
    return reveal_invisible(tv.sample_text(run, snap)).rstrip("\n")


def loss_chart(at) -> dict:
    return json.loads(at.get("plotly_chart")[0].proto.spec)


def mark(at) -> tuple[list, list]:
    trace = [t for t in loss_chart(at)["data"] if t.get("name") == "timeline snapshot"]
    assert len(trace) == 1
    return trace[0]["x"], trace[0]["y"]


def test_the_scrubber_shows_each_snapshots_sample_mark_and_hidden_states(app):
    run = app.session_state.app.run
    slider = app.select_slider(key="timeline_pick")
    assert list(slider.options) == [tv.moment_label(i) for i in (0, 100, 200, 500)]
    assert slider.value == 500                       # the newest at first
    assert mark(app)[0] == [500]
    first = run.timeline.snapshots[0]
    slider.set_value(0).run()
    assert not app.exception
    assert timeline_sample(app) == expected(run, first)    # the untrained model's sample
    x, y = mark(app)
    assert x == [0] and y[0] == pytest.approx(first.smooth_loss)
    heat = json.loads(app.get("plotly_chart")[1].proto.spec)
    assert "at iteration 0" in heat["layout"]["title"]["text"]
    app.select_slider(key="timeline_pick").set_value(200).run()
    later = timeline_sample(app)
    assert later == expected(run, run.timeline.snapshots[2]) != expected(run, first)
    app.select_slider(key="timeline_pick").set_value(0).run()     # back again: the same text as before
    assert timeline_sample(app) == expected(run, first)


def play(app) -> list[int]:
    """Press Play and run the app as the player's ticks would until it stops: the snapshots shown."""
    app.button(key="timeline_play").click().run()
    assert not app.exception
    shown = [app.session_state.timeline_pick]
    assert app.session_state.timeline_playing and app.button(key="timeline_pause")
    for _ in range(10):
        if not app.session_state.timeline_playing:
            break
        app.run()                                  # one tick of the player
        assert not app.exception
        shown.append(app.session_state.timeline_pick)
        assert mark(app)[0] == [shown[-1]]         # the chart marks the snapshot the section shows
    app.run()
    assert not app.session_state.timeline_playing and app.button(key="timeline_play")
    return shown


def test_play_steps_through_every_snapshot_from_the_first_and_stops_at_the_last(app):
    shown = play(app)                                 # from the newest (the default): from the start
    assert shown == [0, 100, 200, 500]
    assert timeline_sample(app) == expected(app.session_state.app.run, app.session_state.app.run.timeline.snapshots[-1])


def test_play_from_a_moment_half_way_plays_on_from_there(app):
    app.select_slider(key="timeline_pick").set_value(100).run()
    assert play(app) == [100, 200, 500]


def test_a_scrubber_value_the_browser_sent_from_before_a_tick_does_not_stop_the_player(app):
    app.select_slider(key="timeline_pick").set_value(0).run()
    app.button(key="timeline_play").click().run()
    app.run()                                                   # the player moved on to 100
    assert app.session_state.timeline_pick == 100 and app.select_slider(key="timeline_pick").disabled
    # A busy browser's tick still says 0. AppTest refuses a disabled widget's new value, as a user's
    # would be; the browser's stale report of its old one is what gets through, so send it anyway.
    stale = app.select_slider(key="timeline_pick")
    stale.proto.disabled = False
    stale.set_value(0).run()
    assert not app.exception and app.session_state.timeline_playing
    assert app.session_state.timeline_pick == 200               # on from where it was, not from 0


def test_pause_stops_the_player_where_it_is(app):
    app.select_slider(key="timeline_pick").set_value(0).run()
    app.button(key="timeline_play").click().run()
    app.run()
    at_pause = app.session_state.timeline_pick
    app.button(key="timeline_pause").click().run()
    app.run()
    assert not app.session_state.timeline_playing and app.session_state.timeline_pick == at_pause


def test_continue_from_here_forks_and_keeps_the_current_curve(app):
    original = app.session_state.app.run
    before = original.trainer.model.flat_params().copy()
    app.select_slider(key="timeline_pick").set_value(100).run()
    app.button(key="timeline_fork").click().run()
    assert not app.exception
    fork = app.session_state.app.run
    assert fork.uid != original.uid and fork.iteration == 100
    assert (original.trainer.model.flat_params() == before).all() and original.iteration == 520
    names = [t.get("name", "") for t in loss_chart(app)["data"]]
    assert any("to 520" in n for n in names)          # the original's curve, dashed, as Compare runs keeps it
    assert len(app.session_state.app.kept_curves) == 1
    assert any("continues from iteration 100" in s.value for s in app.success)
    assert any("New run from iteration 100" in t.value for t in app.toast)   # beside the timeline too
    assert app.select_slider(key="timeline_pick").options == [tv.moment_label(i) for i in (0, 100)]
    app.button(key="btn_step").click().run()           # the fork trains on from there
    assert app.session_state.app.run.iteration == 101


def test_a_new_run_shows_its_untrained_snapshot_without_a_scrubber():
    at = AppTest.from_file(DASHBOARD, default_timeout=60)
    at.run()
    assert not at.exception
    assert not [s for s in at.select_slider if s.key == "timeline_pick"]
    assert at.button(key="timeline_fork").disabled and at.button(key="timeline_play").disabled
    assert any("train past 100" in c.value for c in at.caption)
    assert timeline_sample(at) == expected(at.session_state.app.run, at.session_state.app.run.timeline.snapshots[0])


def test_continue_from_here_keeps_the_original_saved_at_its_link(app):
    from playground.runs import saver

    saver.wait_for_saves(timeout=30)
    app.run()                                        # the URL names a run once a script run sees it saved
    old_id = app.session_state.app.persist.run_id
    assert app.query_params["run"] == old_id         # the trained run was saved when it arrived
    app.select_slider(key="timeline_pick").set_value(200).run()
    app.button(key="timeline_fork").click().run()
    assert any(old_id in s.value for s in app.success)     # the message gives the kept run's link
    saver.wait_for_saves(timeout=30)
    app.run()
    new_id = app.session_state.app.persist.run_id
    assert new_id != old_id and app.query_params["run"] == new_id
    store = saver.get_store()
    kept = Run.from_bytes(store.load(old_id))
    assert kept.iteration == 520 and kept.timeline.iterations == [0, 100, 200, 500]
    fork = Run.from_bytes(store.load(new_id))
    assert fork.iteration == 200 and fork.timeline.iterations == [0, 100, 200]


def test_a_watcher_scrubs_the_owners_timeline_but_cannot_fork_it(app):
    from playground.runs import saver, watch

    saver.wait_for_saves(timeout=30)
    watch_id = saver.get_store().new_watch_link(app.session_state.app.persist.run_id)
    at = AppTest.from_file(DASHBOARD, default_timeout=60)
    at.query_params[watch.QUERY_KEY] = watch_id
    at.run()
    assert not at.exception
    assert at.select_slider(key="timeline_pick").options == [tv.moment_label(i) for i in (0, 100, 200, 500)]
    assert not [b for b in at.button if b.key == "timeline_fork"]
    at.select_slider(key="timeline_pick").set_value(0).run()
    assert timeline_sample(at) == expected(at.session_state.app.run, at.session_state.app.run.timeline.snapshots[0])
