"""Data: reading images (imaging), finding them (scan), the manifest, the Great Expectations
checks, the demo and photo sets, and the tf.data pipelines that feed the model (datasets)."""
