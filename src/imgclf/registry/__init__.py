"""Registry: the MLflow model registry with its aliases and history (registry), the register
stage's decision on a version over it (decision), and the model card."""
