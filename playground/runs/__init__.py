"""The training side: a run and its timeline, the trainer pool and its handles (local worker
processes or Ray actors), watch handles, the run store and saving.

May import rnn_core, playground.escape and playground.runs; never playground.views or
playground.session. Only persist.py uses streamlit (a session's id, its ?run= link and its save
record); the rest also runs in a worker process or a Ray actor.
"""
