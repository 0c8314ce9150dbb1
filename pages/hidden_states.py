"""Placeholder: this page is being built."""
import streamlit as st

st.title("hidden_states")
st.info("Coming soon.")
