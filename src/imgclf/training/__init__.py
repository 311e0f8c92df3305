"""Training: the auto settings (autoconf), the network, its weights downloads, the training
set and its augmentation, fitting with resume (fitting, checkpoints) and distribution."""
