"""Evaluation: the candidate model and its test split (candidate), the metrics (scoring), and
the reports and plots drawn from them (reporting)."""

# The headline test metrics, in the order metrics.json, `dvc exp show`, the summary, the
# flow's result line and the MLflow runs list's columns (as test_<name>) show them.
HEADLINE = ("accuracy", "precision", "recall", "f1", "roc_auc")
