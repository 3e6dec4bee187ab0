"""Retraining (issue 17): a challenger trained on the recent window, measured against the
champion on the same out-of-time days, promoted only past the gate (the fraud_retrain DAG)."""
