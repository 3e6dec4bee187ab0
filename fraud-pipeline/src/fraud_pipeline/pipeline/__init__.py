"""The pipeline: one function per DAG task, and back-fills of long periods with the same steps."""
