"""Test helpers: build a shipped config and run a few real steps on tiny or mock data."""

from __future__ import annotations

import contextlib
import tempfile
from typing import Any

from experiments import config_lib
from experiments import data

TFDS_DATASETS = ("mnist", "fashion_mnist", "cifar10", "cifar100", "imagenet2012")


@contextlib.contextmanager
def mock_tfds(num_examples: int = 8):
  """tfds.testing.mock_data: random examples with the real feature specs, no files."""
  import tensorflow_datasets as tfds
  with tfds.testing.mock_data(num_examples=num_examples):
    yield


def tiny_overrides(config, steps: int = 2, batch_size: int = 4) -> dict[str, Any]:
  """Overrides that keep a config's code paths but make it run in seconds."""
  o = {"train_steps": steps, "batch_size": batch_size, "eval_batch_size": batch_size,
       "log_every": 1, "eval_every": steps, "checkpoint_every": steps}
  if config.dataset.name == "generated":
    o["dataset.num_eval"] = batch_size
    if config.dataset.num_train:
      o["dataset.num_train"] = max(batch_size * 2, 8)
  if config.dataset.name == "imagenet2012":
    o["dataset.image_size"] = 32
  if config.optimizer.name == "kfac":
    o["optimizer.kfac.num_burnin_steps"] = 1
    o["optimizer.kfac.inverse_update_period"] = 1
  return o


def build_and_step(spec: str, overrides: dict[str, Any] | None = None, steps: int = 2,
                   batch_size: int = 4, workdir: str | None = None) -> dict:
  """Loads `configs/...py[:variant]`, shrinks it, runs `steps` real steps; returns the summary.

  TFDS datasets run on `tfds.testing.mock_data`; `overrides` (e.g. a smaller
  width or depth) apply on top of the shrinking overrides.
  """
  from experiments import train
  config = config_lib.load_config(spec)
  tiny = tiny_overrides(config, steps, batch_size)
  tiny.update(overrides or {})
  for k, v in tiny.items():
    config_lib.set_by_path(config, k, v)
  uses_tfds = config.dataset.name in TFDS_DATASETS
  with contextlib.ExitStack() as stack:
    if workdir is None:
      workdir = stack.enter_context(tempfile.TemporaryDirectory())
    if uses_tfds:
      stack.enter_context(mock_tfds(num_examples=max(2 * batch_size, 8)))
    return train.run(config, workdir)
