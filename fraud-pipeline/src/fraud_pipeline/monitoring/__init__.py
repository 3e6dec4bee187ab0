"""Model monitoring: drift of the score and top features against the training reference, the
daily health figures (flag share, alert volume, quarantine share, confirmed precision), their
thresholds, and the one warning email a day when one is crossed."""
