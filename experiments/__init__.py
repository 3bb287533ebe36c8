"""Experiment framework: launcher, training loop, data, optimizers, checkpoints, reproduction."""
