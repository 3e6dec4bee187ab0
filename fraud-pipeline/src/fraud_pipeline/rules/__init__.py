"""Rules and block/allow lists beside the model: the language, the evaluation in the
pipeline's one path, their store and life cycle, backtests (issue 30)."""
