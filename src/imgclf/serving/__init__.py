"""Serving: the Classifier that evaluate, register, predict and the server share (classifier),
the registered pyfunc (model_code), `imgclf predict`, and `imgclf serve` (server, workers,
supervise)."""
