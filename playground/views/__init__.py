"""The drawing side: pure builders of figures, text views, tables and analyses from a run's
arrays. Each returns a Plotly figure, an HTML/Markdown string or plain data and is tested without
a server.

May import rnn_core, playground.escape, playground.runs (for the Run type) and playground.views;
never streamlit or playground.session.
"""
