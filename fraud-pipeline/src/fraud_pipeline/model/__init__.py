"""The model: one feature definition, verified artifacts, reasons, training and evaluation."""
