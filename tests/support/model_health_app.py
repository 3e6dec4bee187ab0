"""The Model health page alone, as a Streamlit script (AppTest, `streamlit run` for screenshots):
the report app mounts the same `render()` in its navigation."""

import importlib
import sys

import streamlit as st

from fraud_pipeline.config import REPO_ROOT

st.set_page_config(page_title="Model health", layout="wide")  # as the report app does
sys.path.insert(0, str(REPO_ROOT / "fraud-dashboard"))
importlib.import_module("model_health_page").render()
