"""Card data and who touches it: one masking rule for every sink, logs included."""
