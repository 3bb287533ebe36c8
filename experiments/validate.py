"""Checks of a launch's config before anything is written or compiled.

`check_config` catches what a researcher can mistype (sizes and counts that
must be positive, negative learning rates, schedule boundaries outside
training, names missing from their registries) and `check_resolved` what
needs the dataset, the devices or the model's builder (depth 0, an unknown
activation); both raise `ConfigError`, a ValueError whose message names the key. The launcher prints it in one or two
lines; no workdir is created for a launch that fails these checks.
"""

from __future__ import annotations

import difflib
import logging as pylogging
from typing import Any, Sequence

import ml_collections

logging = pylogging.getLogger("experiments")

SCHEDULES = ("constant", "cosine", "step", "sgdr")
PRECISIONS = ("float32", "bfloat16")
LOSSES = ("softmax_xent", "mse", "reconstruction_mse")
NORMALIZATIONS = ("none", "per_channel", "per_location")
AUGMENTS = ("none", "cifar", "imagenet")


class ConfigError(ValueError):
  """A user error in the config or its overrides; the message names the key."""

  def __init__(self, key: str, message: str):
    super().__init__(f"config.{key}: {message}" if key else message)
    self.key = key


def _name_error(key: str, value: Any, choices: Sequence[str]) -> ConfigError:
  close = difflib.get_close_matches(str(value), list(choices), n=3, cutoff=0.5)
  hint = f" Did you mean {', '.join(map(repr, close))}?" if close else ""
  return ConfigError(key, f"unknown name {value!r}; expected one of {', '.join(choices)}.{hint}")


def _get(config: ml_collections.ConfigDict, dotted: str) -> Any:
  node = config
  for part in dotted.split("."):
    if part not in node:
      return None
    node = node[part]
  return node


def _number(config, key: str, *, minimum: float, allow_derive: bool = False, integer: bool = True,
            strict: bool = False) -> None:
  value = _get(config, key)
  if value is None:
    return
  kind = int if integer else (int, float)
  if isinstance(value, bool) or not isinstance(value, kind):
    raise ConfigError(key, f"expected {'an integer' if integer else 'a number'}, got {value!r}.")
  if allow_derive and value == -1:
    return
  if value < minimum or (strict and value == minimum):
    bound = f"> {minimum}" if strict else f">= {minimum}"
    derive = " (or -1 to derive it from its *_epochs twin)" if allow_derive else ""
    raise ConfigError(key, f"must be {bound}{derive}, got {value!r}.")


def check_config(config: ml_collections.ConfigDict, log_warnings: bool = True) -> list[str]:
  """Raises ConfigError for the first invalid key; returns the warnings (and logs them)."""
  warnings = []
  _number(config, "seed", minimum=0)
  _number(config, "train_steps", minimum=0, strict=True, allow_derive=True)
  for key in ("batch_size", "eval_batch_size", "keep_checkpoints"):
    _number(config, key, minimum=0, strict=True)
  for key in ("eval_every", "checkpoint_every"):
    _number(config, key, minimum=0, allow_derive=True)
  for key in ("log_every", "keep_checkpoint_every", "profile_steps", "dataset.prefetch", "dataset.shuffle_buffer"):
    _number(config, key, minimum=0)
  for key in ("train_epochs", "eval_every_epochs", "checkpoint_every_epochs", "l2"):
    _number(config, key, minimum=0, integer=False)

  lr = _get(config, "optimizer.learning_rate")
  _number(config, "optimizer.learning_rate", minimum=0, integer=False)
  if lr == 0:
    warnings.append("config.optimizer.learning_rate is 0: the parameters will not change.")

  schedule = _get(config, "optimizer.schedule")
  if schedule is not None:
    if schedule.name not in SCHEDULES:
      raise _name_error("optimizer.schedule.name", schedule.name, SCHEDULES)
    _number(config, "optimizer.schedule.warmup_steps", minimum=0, allow_derive=True)
    if schedule.name == "step":
      boundaries = tuple(schedule.boundaries)
      if any(isinstance(b, bool) or not isinstance(b, (int, float)) or not 0 < b < 1 for b in boundaries):
        raise ConfigError("optimizer.schedule.boundaries",
                          f"fractions of training strictly between 0 and 1, got {boundaries}.")
      if list(boundaries) != sorted(boundaries):
        raise ConfigError("optimizer.schedule.boundaries", f"must be increasing, got {boundaries}.")
    if schedule.name == "sgdr":
      _number(config, "optimizer.schedule.num_cycles", minimum=0, strict=True)
      _number(config, "optimizer.schedule.cycle_mult", minimum=0, strict=True, integer=False)

  from experiments import data
  from experiments import model_lib
  from experiments import optimizers
  checks = (("optimizer.name", optimizers.OPTIMIZERS), ("dataset.name", data.names()),
            ("precision", PRECISIONS), ("loss.name", LOSSES),
            ("dataset.normalization", NORMALIZATIONS), ("dataset.augment", AUGMENTS))
  for key, choices in checks:
    value = _get(config, key)
    if value is not None and value not in choices:
      raise _name_error(key, value, choices)
  model = _get(config, "model.name")
  if model is not None:
    try:
      model_lib.get_builder(model)
    except (ValueError, ImportError) as e:
      raise ConfigError("model.name", str(e)) from None
  for w in warnings if log_warnings else ():
    logging.warning(w)
  return warnings


def check_resolved(config: ml_collections.ConfigDict, dataset_splits: Sequence[str],
                   global_devices: int) -> None:
  """Checks that need the dataset and the device count (still before any write)."""
  for key in ("batch_size", "eval_batch_size"):
    if config[key] % global_devices:
      raise ConfigError(key, f"{config[key]} is not divisible by the {global_devices} device(s).")
  if not set(config.eval_splits) <= set(dataset_splits) | {"train"}:
    raise ConfigError("eval_splits", f"{tuple(config.eval_splits)} but the dataset has splits "
                      f"{tuple(dataset_splits)}.")
  check_model(config.model)


def check_model(model_config: ml_collections.ConfigDict) -> None:
  """Builds the model once: the builders reject invalid sizes and names (depth 0, an
  unknown activation) with a ValueError, which becomes a ConfigError naming the key."""
  from experiments import model_lib
  try:
    model_lib.build_model(model_config)
  except ValueError as e:
    message = str(e)
    named = [k for k, v in model_config.items()
             if k != "name" and ((isinstance(v, str) and v and repr(v) in message)
                                 or f"{k}={v!r}" in message)]
    raise ConfigError(f"model.{named[0]}" if len(named) == 1 else "model", message) from None
