"""The model registry: which model versions exist, where their verified artifacts are stored,
and which one is the champion the scoring endpoint serves (issue 17)."""
