"""Placeholder: this page is being built."""
import streamlit as st

st.title("sample")
st.info("Coming soon.")
