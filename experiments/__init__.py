"""Experiment framework: launcher, training loop, data, optimizers, checkpoints, reproduction."""

from experiments import log as _log

_log.quiet_startup()  # before any TensorFlow/libtpu import: no INFO banners
