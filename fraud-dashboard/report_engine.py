"""The report's database engine, cached once per URL: shared by the pages of the report."""

from __future__ import annotations

import streamlit as st
from sqlalchemy.engine import Engine

from fraud_pipeline.config import get_settings
from fraud_pipeline.report import queries


@st.cache_resource(show_spinner=False)
def engine(url: str) -> Engine:
    name = f"report-{abs(hash(url))}"
    return st.connection(
        name, type="sql", url=queries.sqlalchemy_url(url), pool_pre_ping=True
    ).engine


def ttl() -> int:
    return get_settings().report_cache_ttl_s
