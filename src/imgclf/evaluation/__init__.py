"""Evaluation: the candidate model and its test split (candidate), the metrics (scoring), and
the reports and plots drawn from them (reporting)."""
