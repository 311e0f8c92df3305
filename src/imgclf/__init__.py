"""imgclf: train, validate, track and ship image classifiers from a folder of labelled images.

The README maps the subpackages onto the pipeline. Nothing is imported here, so
`imgclf --help` and every stage start without loading TensorFlow or MLflow.
"""
