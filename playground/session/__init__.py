"""One browser session: its typed app state (app_state), the shared sidebar and controls (state),
what it accepts from the user (uploads, experiment links) and the page parts shared by pages
(timeline_ui, lessons).

May import everything below it: playground.runs, playground.views, playground.escape, rnn_core,
and streamlit.
"""
