"""The training side: a run and its timeline, the trainer pool and its handles (local worker
processes or Ray actors), watch handles, the run store, and the saver that writes runs to it.

May import rnn_core, playground.escape and playground.runs; never playground.views,
playground.session or a session's state. Only saver.py touches streamlit, to ask the server
whether a session's tab is still connected; the rest also runs in a worker process or a Ray actor.
"""
