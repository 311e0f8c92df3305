"""The pipeline stages, one module each: the entry function that `imgclf <stage>` (so
dvc.yaml) and the Prefect flow both call. No stage imports another."""
