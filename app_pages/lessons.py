"""Lessons: six short experiments that make one point each, set up with one button."""

import streamlit as st

from playground.session import app_state, experiment, lessons, state
from rnn_core.corpora import load_builtin

ss = st.session_state
run = state.get_run()


@state.owner_only
def set_up(key: str) -> None:
    lesson = lessons.by_key(key)
    if lesson.small_text:
        app_state.set_custom_text(load_builtin("shakespeare")[: lessons.SMALL_TEXT_CHARS], lessons.SMALL_TEXT_LABEL)
    app_state.load_draft(lesson.config)
    state.new_run_from_widgets()
    ss.lessons_open = key


st.title("Lessons")
st.caption("Each lesson sets up a fresh run (your current one is replaced: download it on Save & load first to keep "
           "it), tells you what to look for, and once the run has trained says what it shows. Press Start in the "
           "sidebar after setting one up.")
base = state.app_base_url()

for lesson in lessons.LESSONS:
    with st.container(border=True):
        st.subheader(lesson.title)
        st.markdown(lesson.look_for)
        button, link = st.columns([1, 3], vertical_alignment="center")
        button.button("Set up this lesson", key=f"lesson_{lesson.key}", on_click=set_up, args=(lesson.key,),
                      type="primary" if ss.get("lessons_open") == lesson.key else "secondary",
                      disabled=state.watching(), width="stretch")
        if lesson.small_text:
            link.caption("Its small text is set up by the button (a link cannot carry a text).")
        else:
            query = experiment.query(lesson.config, "bits", experiment.SMOOTHINGS[0])
            link.code(f"{base}/?{query}", language=None, wrap_lines=True)
        seen = lesson.observation(run)
        if seen:
            st.info(seen, icon=":material/visibility:")   # the lesson's own words and numbers: no user text
            if lesson.key == "temperature" and run.iteration >= lesson.min_iterations:
                for temperature, text in lessons.temperature_samples(run):
                    st.caption(f"temperature {temperature:g}")
                    st.code(text, language=None, wrap_lines=True)
