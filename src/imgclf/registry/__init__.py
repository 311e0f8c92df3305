"""Registry: the MLflow model registry, its gate and aliases (registry), and the model card."""
