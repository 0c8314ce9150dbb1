"""RNN Playground: train a vanilla character-level RNN in the browser and watch it learn.

Run with `streamlit run dashboard.py`. This entry frames every page: page config, the session's
state, the shared sidebar and the message left by the last action, then the chosen page.
"""
import streamlit as st

import playground  # noqa: F401  (first: caps BLAS threads before NumPy loads)
from playground.session import app_state, state

PAGES = [
    st.Page("app_pages/train.py", title="Train", icon=":material/model_training:", default=True),
    st.Page("app_pages/data.py", title="Data", icon=":material/description:"),
    st.Page("app_pages/hidden_states.py", title="Hidden states", icon=":material/grid_on:"),
    st.Page("app_pages/sample.py", title="Sample", icon=":material/edit_note:"),
    st.Page("app_pages/guess.py", title="Guess", icon=":material/sports_esports:"),
    st.Page("app_pages/backprop.py", title="Backprop", icon=":material/undo:"),
    st.Page("app_pages/files.py", title="Save & load", icon=":material/save:"),
    st.Page("app_pages/lessons.py", title="Lessons", icon=":material/school:"),
]
PRESENTER = st.Page("app_pages/present.py", title="Presenter", icon=":material/co_present:")

st.set_page_config(page_title="RNN Playground", page_icon=":material/neurology:", layout="wide")
with state.run_lock():   # a training tick still running in a fragment's thread finishes first
    state.init_session()
    # Presenter mode is the projector's one screen, whatever page the URL names: no navigation.
    page = (st.navigation([PRESENTER], position="hidden") if state.presenting()
            else st.navigation(PAGES))
    app_state.app().page_path = page.url_path
    state.sidebar()
    state.show_flash()
    page.run()
