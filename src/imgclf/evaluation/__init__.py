"""Evaluation: the metrics (scoring) and the reports and plots drawn from them (reporting)."""
