"""Models by name, the loss/metric functions and mixed precision.

`config.model.name = "<pkg>.<key>"` looks up `<pkg>.models.MODELS[key]`; the
other fields of `config.model` are the builder's keyword arguments (see
experiments/API.md).
"""

from __future__ import annotations

import contextlib
import importlib
from typing import Any, Callable, NamedTuple

import haiku as hk
import jax
import jax.numpy as jnp
import jmp
import ml_collections

PACKAGES = ("tat", "softtransfer", "dab", "optnets")


_EXTRA_MODELS: dict[str, Callable[..., Callable[..., Any]]] = {}


def register_model(name: str, builder: Callable[..., Callable[..., Any]]) -> None:
  """Registers a model outside the four packages (a notebook's or a test's)."""
  _EXTRA_MODELS[name] = builder


def get_builder(name: str) -> Callable[..., Callable[..., Any]]:
  if name in _EXTRA_MODELS:
    return _EXTRA_MODELS[name]
  pkg, _, key = name.partition(".")
  if pkg not in PACKAGES or not key:
    raise ValueError(f"model name {name!r} must be '<package>.<model>' with package in {PACKAGES}"
                     f" or a registered model ({', '.join(sorted(_EXTRA_MODELS)) or 'none'})")
  models = importlib.import_module(f"{pkg}.models").MODELS
  if key not in models:
    raise ValueError(f"Unknown model {key!r} in {pkg}.models; available: {', '.join(sorted(models))}")
  return models[key]


def model_names() -> list[str]:
  out = []
  for pkg in PACKAGES:
    try:
      out += [f"{pkg}.{k}" for k in importlib.import_module(f"{pkg}.models").MODELS]
    except ImportError:
      pass
  return sorted(out)


def normalize_output(out: Any) -> dict[str, Any]:
  """Array or dict model output -> dict with output, penalty, metrics, stats."""
  if not isinstance(out, dict):
    out = {"output": out}
  unknown = set(out) - {"output", "penalty", "metrics", "stats"}
  if "output" not in out or unknown:
    raise ValueError(f"model output dict needs 'output' and may have penalty/metrics/stats; got {sorted(out)}")
  return {"output": out["output"],
          "penalty": jnp.asarray(out.get("penalty", 0.0), jnp.float32),
          "metrics": {k: jnp.asarray(v, jnp.float32) for k, v in out.get("metrics", {}).items()},
          "stats": {k: jnp.asarray(v, jnp.float32) for k, v in out.get("stats", {}).items()}}


def build_model(model_config: ml_collections.ConfigDict) -> hk.TransformedWithState:
  """hk.transform_with_state of the named model, applied as f(inputs, is_training, step)."""
  kwargs = {k: v for k, v in model_config.to_dict().items() if k != "name"}
  forward = get_builder(model_config.name)(**kwargs)

  def fn(inputs, is_training: bool, step):
    return normalize_output(forward(inputs, is_training=is_training, step=step))

  return hk.transform_with_state(fn)


# ---------------------------------------------------------------------------
# Mixed precision.

_POLICY_CLASSES = (hk.Linear, hk.Conv2D, hk.Conv1D, hk.Conv3D, hk.ConvND)
_NORM_CLASSES = (hk.BatchNorm, hk.LayerNorm, hk.GroupNorm)


@contextlib.contextmanager
def precision_policy(precision: str):
  """bfloat16: bf16 compute in linear/conv layers, f32 params, optimizer state and norms."""
  if precision == "float32":
    yield
    return
  if precision != "bfloat16":
    raise ValueError(f"Unknown precision {precision!r}; expected float32 or bfloat16.")
  compute = jmp.get_policy("params=float32,compute=bfloat16,output=bfloat16")
  norm = jmp.get_policy("params=float32,compute=float32,output=bfloat16")
  for cls in _POLICY_CLASSES:
    hk.mixed_precision.set_policy(cls, compute)
  for cls in _NORM_CLASSES:
    hk.mixed_precision.set_policy(cls, norm)
  try:
    yield
  finally:
    for cls in _POLICY_CLASSES + _NORM_CLASSES:
      hk.mixed_precision.clear_policy(cls)


# ---------------------------------------------------------------------------
# Losses: per-example values, so training means and masked evaluation sums
# share one definition.


class PerExample(NamedTuple):
  loss: jnp.ndarray  # [B]
  metrics: dict[str, jnp.ndarray]  # each [B]


def per_example_loss(loss_config, output, batch, register_for_kfac: bool = False) -> PerExample:
  name = loss_config.name
  output = output.astype(jnp.float32)
  if name == "softmax_xent":
    labels = batch["labels"]
    if output.shape[:-1] != labels.shape:
      raise ValueError(f"softmax_xent: logits {output.shape} do not match labels {labels.shape} "
                       "(expected logits [B, ..., C] for labels [B, ...])")
    num_classes = output.shape[-1]
    onehot = jax.nn.one_hot(labels, num_classes)
    ls = loss_config.label_smoothing
    if ls:
      onehot = onehot * (1 - ls) + ls / num_classes
    logp = jax.nn.log_softmax(output)
    xent = -jnp.sum(onehot * logp, axis=-1)  # [B, ...]
    position_axes = tuple(range(1, xent.ndim))
    loss = jnp.sum(xent, axis=position_axes)
    correct = (jnp.argmax(output, -1) == labels).astype(jnp.float32)
    metrics = {"accuracy": jnp.mean(correct, axis=position_axes)}
    if position_axes:
      metrics["all_or_none_accuracy"] = jnp.min(correct, axis=position_axes)
    if register_for_kfac:
      from experiments import kfac_compat
      kfac_jax = kfac_compat.import_kfac_jax()
      positions = max(xent.size // xent.shape[0], 1)
      flat_logits = output.reshape(-1, num_classes)
      if ls:
        kfac_jax.register_softmax_cross_entropy_loss(flat_logits, onehot.reshape(-1, num_classes),
                                                     weight=float(positions))
      else:
        kfac_jax.register_softmax_cross_entropy_loss(flat_logits, labels.reshape(-1),
                                                     weight=float(positions))
    return PerExample(loss, metrics)
  if name in ("mse", "reconstruction_mse"):
    target = batch["inputs"] if name == "reconstruction_mse" else batch["labels"]
    target = target.astype(jnp.float32)
    if output.shape != target.shape:
      if output.size == target.size:
        output = output.reshape(target.shape)
      else:
        raise ValueError(f"{name}: predictions {output.shape} do not match targets {target.shape}")
    sq = jnp.square(output - target).reshape(output.shape[0], -1)
    mse = jnp.mean(sq, axis=1)
    loss = jnp.sum(sq, axis=1) if loss_config.sum_over_features else mse
    if register_for_kfac:
      from experiments import kfac_compat
      kfac_jax = kfac_compat.import_kfac_jax()
      features = sq.shape[1]
      weight = 2.0 if loss_config.sum_over_features else 2.0 / features
      kfac_jax.register_squared_error_loss(output.reshape(output.shape[0], -1),
                                           target.reshape(target.shape[0], -1), weight=weight)
    return PerExample(loss, {"mse": mse})
  raise ValueError(f"Unknown loss {name!r}; expected softmax_xent, mse or reconstruction_mse.")


def l2_penalty(params, param_names) -> jnp.ndarray:
  """0.5 * sum of squares of the leaves whose name is in `param_names` (weights only)."""
  total = jnp.zeros((), jnp.float32)
  for path, leaf in jax.tree_util.tree_flatten_with_path(params)[0]:
    last = path[-1]
    key = getattr(last, "key", getattr(last, "name", None))
    if key in param_names:
      total = total + 0.5 * jnp.sum(jnp.square(leaf.astype(jnp.float32)))
  return total


def device_mean(tree, axis_name: str | None):
  """`lax.pmean` over the data-parallel axis, skipped when that axis has one device.

  On a single device the all-reduce is still emitted and copies every gradient
  (about 3% of a CPU step of the overhead benchmark's MLP); the axis size is
  static (`psum(1)`), so the choice is made at trace time. `axis_name` None:
  no device axis (a one-device jitted step).
  """
  if axis_name is None or jax.lax.psum(1, axis_name) == 1:
    return tree
  return jax.lax.pmean(tree, axis_name)


def device_sum(tree, axis_name: str | None):
  """`lax.psum` over the data-parallel axis (`axis_name` None: no device axis)."""
  return tree if axis_name is None else jax.lax.psum(tree, axis_name)


def make_loss_fn(model: hk.TransformedWithState, config: ml_collections.ConfigDict,
                 axis_name: str | None, register_for_kfac: bool = False):
  """(params, state, rng, batch) -> (loss, (state, metrics)), for any optimizer.

  The batch carries the global `step`. Haiku state (batch statistics) is
  averaged over `axis_name` so replicas stay identical.
  """
  param_names = tuple(config.l2_param_names)
  l2 = config.l2

  def loss_fn(params, state, rng, batch):
    out, state = model.apply(params, state, rng, batch["inputs"], is_training=True, step=batch["step"])
    per = per_example_loss(config.loss, out["output"], batch, register_for_kfac)
    task = jnp.mean(per.loss)
    loss = task + out["penalty"]
    if l2:
      loss = loss + l2 * l2_penalty(params, param_names)
    metrics = {"loss": loss, "task_loss": task, "penalty": out["penalty"]}
    metrics.update({k: jnp.mean(v) for k, v in per.metrics.items()})
    metrics.update(out["metrics"])
    metrics.update(out["stats"])
    state = device_mean(state, axis_name)
    return loss, (state, metrics)

  return loss_fn


def make_eval_fn(model: hk.TransformedWithState, config: ml_collections.ConfigDict,
                 axis_name: str | None):
  """Masked sums of per-example metrics over one device's slice of an eval batch."""

  def eval_fn(params, state, rng, batch):
    out, _ = model.apply(params, state, rng, batch["inputs"], is_training=False, step=batch["step"])
    per = per_example_loss(config.loss, out["output"], batch)
    mask = batch["mask"]
    count = jnp.sum(mask)
    sums = {"loss": jnp.sum(per.loss * mask)}
    sums.update({k: jnp.sum(v * mask) for k, v in per.metrics.items()})
    sums.update({k: v * count for k, v in out["metrics"].items()})
    sums["count"] = count
    sums = device_sum(sums, axis_name)
    stats = device_mean(out["stats"], axis_name)
    return sums, stats

  return eval_fn
