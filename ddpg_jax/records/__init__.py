"""What a run writes down: evaluation and chunk records, metric files and loggers, learning
curves, and the versions of what ran."""
