"""RNN Playground: train a vanilla character-level RNN in the browser and watch it learn.

Run with `streamlit run dashboard.py`. This entry sets the page up and hands over to the chosen page.
"""
import streamlit as st

import playground  # noqa: F401  (first: caps BLAS threads before NumPy loads)

PAGES = [
    st.Page("pages/train.py", title="Train", icon=":material/model_training:", default=True),
    st.Page("pages/data.py", title="Data", icon=":material/description:"),
    st.Page("pages/hidden_states.py", title="Hidden states", icon=":material/grid_on:"),
    st.Page("pages/sample.py", title="Sample", icon=":material/edit_note:"),
    st.Page("pages/guess.py", title="Guess", icon=":material/sports_esports:"),
    st.Page("pages/backprop.py", title="Backprop", icon=":material/undo:"),
    st.Page("pages/files.py", title="Save & load", icon=":material/save:"),
    st.Page("pages/lessons.py", title="Lessons", icon=":material/school:"),
]

# Each page starts with state.page_setup() (session state, sidebar), so it also runs on its own.
from playground import state  # noqa: E402

PRESENTER = st.Page("pages/present.py", title="Presenter", icon=":material/co_present:")

with state.run_lock():   # a training tick still running in a fragment's thread finishes first
    if state.presenting():   # the projector's one screen, whatever page the URL names; no navigation
        st.navigation([PRESENTER], position="hidden").run()
    else:
        st.navigation(PAGES).run()
