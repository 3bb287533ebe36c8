"""Config defaults, loading, override checking and the one steps/epochs converter.

Every experiment config starts from `base_config()` and sets fields. Keys that
speak in epochs (`train_epochs`, `warmup_epochs`, `eval_every_epochs`,
`checkpoint_every_epochs`, ...) are converted to their step twins by
`resolve_epochs` when the twin is -1, so an explicit `--config.train_steps=N`
always wins over the epoch count.
"""

from __future__ import annotations

import difflib
import importlib.util
import os
from typing import Any, Callable, Mapping

import ml_collections

DERIVE = -1  # placeholder: "derive this step count from its *_epochs twin"


def base_config() -> ml_collections.ConfigDict:
  """The keys the framework reads; experiment configs override what they need."""
  c = ml_collections.ConfigDict()
  c.seed = 0
  # Training length and intervals, in steps (or -1 with an *_epochs twin).
  c.train_steps = 1000
  c.train_epochs = 0.0
  c.eval_every = 500
  c.eval_every_epochs = 0.0
  c.checkpoint_every = 1000
  c.checkpoint_every_epochs = 0.0
  c.log_every = 100
  c.keep_checkpoints = 3  # the newest ones; older ones are deleted...
  c.keep_checkpoint_every = 0  # ...except steps that are multiples of this (0 = none kept for good)
  c.profile_steps = 0  # > 0: jax.profiler trace of that many steps into <workdir>/profile
  c.batch_size = 128  # global, over all devices and hosts
  c.eval_batch_size = 1000
  c.eval_splits = ("test",)
  c.precision = "float32"  # or "bfloat16": bf16 compute, f32 params and optimizer state
  c.l2 = 0.0  # L2 regularization strength, loss += l2/2 * sum(w**2)
  c.l2_param_names = ("w",)

  c.dataset = ml_collections.ConfigDict()
  c.dataset.name = "mnist_5k"
  c.dataset.data_dir = ""  # TFDS data_dir ('' = TFDS default)
  c.dataset.download = False
  c.dataset.augment = "none"  # none | cifar | imagenet
  c.dataset.normalization = "per_channel"  # none | per_channel | per_location
  c.dataset.image_size = 224  # imagenet crops
  c.dataset.generator = ""  # 'generated' datasets: "<pkg>.<module>.<function>"
  c.dataset.kwargs = ml_collections.ConfigDict()
  c.dataset.num_train = 0  # 'generated': 0 = a fresh batch every step
  c.dataset.num_eval = 1000
  c.dataset.shuffle_buffer = 10_000
  c.dataset.prefetch = 2

  c.model = ml_collections.ConfigDict()
  c.model.name = "tat.mlp"

  c.loss = ml_collections.ConfigDict()
  c.loss.name = "softmax_xent"
  c.loss.label_smoothing = 0.0
  c.loss.sum_over_features = False

  c.optimizer = ml_collections.ConfigDict()
  c.optimizer.name = "sgd"  # sgd | adam | rmsprop | lars | kfac
  c.optimizer.learning_rate = 0.1
  c.optimizer.momentum = 0.9
  c.optimizer.nesterov = False
  c.optimizer.b1 = 0.9
  c.optimizer.b2 = 0.999
  c.optimizer.eps = 1e-8
  c.optimizer.decay = 0.9  # rmsprop
  c.optimizer.trust_coefficient = 0.001  # lars
  c.optimizer.grad_clip_norm = 0.0  # 0 = off
  c.optimizer.schedule = ml_collections.ConfigDict()
  c.optimizer.schedule.name = "constant"  # constant | cosine | step | sgdr
  c.optimizer.schedule.warmup_steps = 0
  c.optimizer.schedule.warmup_epochs = 0.0
  c.optimizer.schedule.boundaries = (0.5, 0.75)  # step: fractions of train_steps
  c.optimizer.schedule.decay_factor = 0.1
  c.optimizer.schedule.end_value = 0.0  # cosine / sgdr floor
  c.optimizer.schedule.cycle_steps = 0  # sgdr: first cycle length (0 = train_steps/ (1+mult+...) )
  c.optimizer.schedule.cycle_epochs = 0.0
  c.optimizer.schedule.cycle_mult = 2.0
  c.optimizer.schedule.num_cycles = 4
  c.optimizer.kfac = ml_collections.ConfigDict()
  c.optimizer.kfac.damping = 1e-3
  c.optimizer.kfac.norm_constraint = 1e-3  # 0 = off
  c.optimizer.kfac.curvature_update_period = 1
  c.optimizer.kfac.inverse_update_period = 50
  c.optimizer.kfac.estimation_mode = "ggn_curvature_prop"
  c.optimizer.kfac.curvature_ema = 0.95
  c.optimizer.kfac.num_burnin_steps = 10
  c.optimizer.kfac.use_adaptive_learning_rate = False
  c.optimizer.kfac.use_adaptive_momentum = False
  c.optimizer.kfac.use_adaptive_damping = False
  return c


# ---------------------------------------------------------------------------
# Epochs -> steps: one converter for every *_epochs key in the config tree.


def _step_twin(epoch_key: str) -> str:
  """train_epochs -> train_steps, eval_every_epochs -> eval_every."""
  base = epoch_key[: -len("_epochs")]
  return base if base.endswith("every") else base + "_steps"


def epochs_to_steps(epochs: float, steps_per_epoch: float) -> int:
  """The one rounding rule used for lengths, intervals and schedule points."""
  return max(int(round(epochs * steps_per_epoch)), 0)


def resolve_epochs(config: ml_collections.ConfigDict,
                   steps_per_epoch: Callable[[], float] | float) -> None:
  """Fills every step count left at -1 from its `*_epochs` twin, in place.

  `steps_per_epoch` may be a callable, evaluated only if a conversion is
  needed (datasets without epochs raise there). Raises a ValueError if a step
  count is -1 and its epoch twin is not positive.
  """
  per_epoch = steps_per_epoch if callable(steps_per_epoch) else (lambda: steps_per_epoch)

  def visit(node: ml_collections.ConfigDict, path: str):
    for key in list(node.keys()):
      value = node[key]
      if isinstance(value, ml_collections.ConfigDict):
        visit(value, f"{path}{key}.")
    for key in list(node.keys()):
      if key.endswith("_epochs"):
        twin = _step_twin(key)
        if twin in node and node[twin] == DERIVE:
          epochs = node[key]
          if not epochs or epochs <= 0:
            raise ValueError(
                f"config.{path}{twin} is -1 (derive from epochs) but "
                f"config.{path}{key} = {epochs!r}; set one of them to a positive value.")
          node[twin] = max(epochs_to_steps(epochs, per_epoch()), 1 if twin == "train_steps" else 0)
    for key in list(node.keys()):
      if not isinstance(node[key], ml_collections.ConfigDict) and node[key] is None:
        raise ValueError(f"config.{path}{key} is None; every field needs a typed value.")

  with config.unlocked():
    visit(config, "")
  if config.train_steps <= 0:
    raise ValueError(f"config.train_steps must be positive, got {config.train_steps}.")


# ---------------------------------------------------------------------------
# Loading configs by path (the same files absl's config_flags loads).


def load_config(spec: str, overrides: Mapping[str, Any] | None = None) -> ml_collections.ConfigDict:
  """Loads `path/to/config.py[:arg]`, applies dotted overrides and locks it.

  Overrides of unknown keys raise a KeyError naming close matches, as the
  command line does.
  """
  path, _, arg = spec.partition(":")
  if not os.path.exists(path):
    raise FileNotFoundError(f"config file {path!r} does not exist")
  module_name = "config_" + os.path.splitext(os.path.basename(path))[0]
  module_spec = importlib.util.spec_from_file_location(module_name, path)
  module = importlib.util.module_from_spec(module_spec)
  module_spec.loader.exec_module(module)
  config = module.get_config(arg) if arg else module.get_config()
  config.lock()
  for key, value in (overrides or {}).items():
    set_by_path(config, key, value)
  return config


def all_keys(config: ml_collections.ConfigDict, prefix: str = "") -> list[str]:
  keys = []
  for key, value in config.items():
    keys.append(prefix + key)
    if isinstance(value, ml_collections.ConfigDict):
      keys.extend(all_keys(value, prefix + key + "."))
  return keys


def unknown_key_error(config: ml_collections.ConfigDict, key: str) -> KeyError:
  close = difflib.get_close_matches(key, all_keys(config), n=5, cutoff=0.6)
  hint = f" Did you mean: {', '.join(close)}?" if close else ""
  return KeyError(f"Unknown config key {key!r}.{hint}")


def set_by_path(config: ml_collections.ConfigDict, dotted: str, value: Any) -> None:
  node = config
  parts = dotted.split(".")
  for part in parts[:-1]:
    if part not in node or not isinstance(node[part], ml_collections.ConfigDict):
      raise unknown_key_error(config, dotted)
    node = node[part]
  if parts[-1] not in node:
    raise unknown_key_error(config, dotted)
  current = node[parts[-1]]
  if isinstance(current, tuple) and isinstance(value, list):
    value = tuple(value)
  if isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool):
    value = float(value)
  node[parts[-1]] = value


def check_overrides(config: ml_collections.ConfigDict, argv_overrides: list[str]) -> None:
  """Checks `--config.a.b` flags against the config's keys (close-match hints)."""
  keys = set(all_keys(config))
  for item in argv_overrides:
    key = item.split("=", 1)[0]
    if key not in keys:
      raise unknown_key_error(config, key)


# ---------------------------------------------------------------------------
# Re-launching a workdir: compare the new resolved config with config.json.

# Keys a researcher may change on a running experiment: training length (when
# the schedule does not depend on it), evaluation/logging/checkpoint cadence,
# where the data lives, profiling. Everything else would mix two experiments.
RESUMABLE_KEYS = frozenset({
    "train_steps", "train_epochs", "eval_every", "eval_every_epochs", "checkpoint_every",
    "checkpoint_every_epochs", "log_every", "keep_checkpoints", "keep_checkpoint_every",
    "profile_steps", "dataset.data_dir", "dataset.download", "dataset.prefetch",
})
# Schedules whose learning rate at step k does not depend on train_steps.
LENGTH_INDEPENDENT_SCHEDULES = ("constant",)


class ConfigChanged(ValueError):
  """A re-launch whose config differs from the workdir's in keys that cannot change mid-run."""


def flatten(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
  """{dotted key: value} of a nested config dict (tuples as lists, as in config.json)."""
  out = {}
  for key, value in tree.items():
    if isinstance(value, Mapping):
      out.update(flatten(value, f"{prefix}{key}."))
    else:
      out[prefix + key] = list(value) if isinstance(value, tuple) else value
  return out


def as_json_dict(config: ml_collections.ConfigDict) -> dict[str, Any]:
  """The config as config.json stores it."""
  import json
  return json.loads(config.to_json_best_effort(sort_keys=True))


def config_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> dict[str, tuple[Any, Any]]:
  """{dotted key: (old, new)} for every key whose value differs (absent keys as None)."""
  a, b = flatten(old), flatten(new)
  return {k: (a.get(k), b.get(k)) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)}


def check_relaunch(old: Mapping[str, Any], new: Mapping[str, Any], workdir: str,
                   resume_step: int) -> dict[str, tuple[Any, Any]]:
  """The allowed changes of a re-launch; raises ConfigChanged naming every refused key.

  Keys absent from the old config (added to the framework since the run
  started) are allowed: the run never depended on them.
  """
  changes = config_changes(old, new)
  schedule = flatten(new).get("optimizer.schedule.name", "constant")
  refused = {}
  for key, (was, now) in changes.items():
    if was is None and key not in flatten(old):
      continue
    if key not in RESUMABLE_KEYS:
      refused[key] = (was, now)
    elif key in ("train_steps", "train_epochs") and resume_step and (
        schedule not in LENGTH_INDEPENDENT_SCHEDULES):
      refused[key] = (was, now)
  if key_steps := changes.get("train_steps"):
    if key_steps[1] is not None and key_steps[1] < resume_step and "train_steps" not in refused:
      refused["train_steps"] = key_steps
  if refused:
    lines = [f"  {k}: {was!r} -> {now!r}" for k, (was, now) in refused.items()]
    why = ""
    if "train_steps" in refused and schedule not in LENGTH_INDEPENDENT_SCHEDULES:
      why = (f" (the {schedule!r} learning-rate schedule depends on train_steps, so the steps "
             "already trained would not match the new length)")
    elif "train_steps" in refused:
      why = f" (the workdir already has a checkpoint at step {resume_step})"
    raise ConfigChanged(
        f"{workdir} holds a run with a different config{why}; use a new --workdir, or re-run with "
        f"the workdir's values. Changed key(s):\n" + "\n".join(lines))
  return changes
