"""RNN Playground: train a vanilla character-level RNN in the browser and watch it learn.

Run with `streamlit run dashboard.py`. This entry sets the page up, creates the session's state,
draws the shared sidebar and hands over to the chosen page.
"""
import streamlit as st

from playground import state

st.set_page_config(page_title="RNN Playground", page_icon=":material/neurology:", layout="wide")

PAGES = [
    st.Page("pages/train.py", title="Train", icon=":material/model_training:", default=True),
    st.Page("pages/data.py", title="Data", icon=":material/description:"),
    st.Page("pages/hidden_states.py", title="Hidden states", icon=":material/grid_on:"),
    st.Page("pages/sample.py", title="Sample", icon=":material/edit_note:"),
    st.Page("pages/backprop.py", title="Backprop", icon=":material/undo:"),
    st.Page("pages/files.py", title="Save & load", icon=":material/save:"),
]

page = st.navigation(PAGES)
state.init_session()
state.sidebar()
state.show_flash()
page.run()
