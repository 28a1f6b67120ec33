"""predict page (placeholder until its issue lands)."""

import streamlit as st

st.title("predict")
