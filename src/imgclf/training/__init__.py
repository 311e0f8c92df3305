"""Training: the auto settings (autoconf), the network, its weights downloads, the training
set (trainset), the model compiled and fitted in its phases (phases) with resume
(fitting, checkpoints), distribution, and what a run logs about its inputs (lineage)."""
