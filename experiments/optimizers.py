"""Optimizers behind one interface, so the training loop never branches on them.

An `Updater` holds the compiled data-parallel update:

    opt_state = updater.init(params, state, rng, batch)
    params, state, opt_state, metrics = updater.update(params, state, opt_state, rng, batch, step)

`updater.layout` (experiments.parallel) places the arguments: rng and batch
always carry a leading local-device axis; params, state and opt_state are
replicated, held as the layout says. `updater.per_device_state` says whether
the optimizer state differs between devices (then checkpoints keep every
device's copy). `sgd`, `adam`, `rmsprop` and `lars` are optax transformations
stepped by one jitted SPMD function over all devices (`parallel.MeshLayout`:
gradients averaged with `lax.pmean` when there is more than one device,
params/state/opt_state donated and updated in place); `kfac` is
`kfac_jax.Optimizer`, which compiles its own multi-device `jax.pmap` step
(`parallel.PmapLayout`) or, on a single device, a `jax.jit` step
(`parallel.SingleDeviceLayout`).
"""

from __future__ import annotations

import itertools
from typing import Any, Callable, Iterator

import jax
import jax.numpy as jnp
import ml_collections
import optax

from experiments import model_lib
from experiments import parallel
from experiments import schedules

AXIS = "batch"
KFAC_AXIS = "kfac_axis"
OPTIMIZERS = ("sgd", "adam", "rmsprop", "lars", "kfac")


def _device_count(devices) -> int:
  return jax.device_count() if devices is None else len(devices)


def axis_name(opt_config: ml_collections.ConfigDict, devices=None) -> str | None:
  """The collective axis the optimizer's step runs under (None: one-device K-FAC, no axis).

  `devices`: those the updater will use (every device of every process by default).
  """
  if opt_config.name != "kfac":
    return AXIS
  return KFAC_AXIS if _device_count(devices) > 1 else None


def build_optax(opt_config: ml_collections.ConfigDict, schedule: optax.Schedule) -> optax.GradientTransformation:
  c = opt_config
  momentum = c.momentum or None
  if c.name == "sgd":
    tx = optax.sgd(schedule, momentum=momentum, nesterov=c.nesterov)
  elif c.name == "adam":
    tx = optax.adam(schedule, b1=c.b1, b2=c.b2, eps=c.eps)
  elif c.name == "rmsprop":
    tx = optax.rmsprop(schedule, decay=c.decay, eps=c.eps, momentum=momentum, nesterov=c.nesterov)
  elif c.name == "lars":
    # L2 is in the loss (weights only); LARS' own decay stays off.
    tx = optax.lars(schedule, weight_decay=0.0, trust_coefficient=c.trust_coefficient,
                    momentum=c.momentum, nesterov=c.nesterov)
  else:
    raise ValueError(f"Unknown optimizer {c.name!r}; expected one of {', '.join(OPTIMIZERS)}.")
  if c.grad_clip_norm:
    tx = optax.chain(optax.clip_by_global_norm(c.grad_clip_norm), tx)
  return tx


class OptaxUpdater:
  """A jitted SPMD optax step: value_and_grad, pmean of gradients, update."""

  # Optimizer state is identical on every device: checkpoints keep one copy.
  per_device_state = False

  def __init__(self, loss_fn: Callable, tx: optax.GradientTransformation, schedule: optax.Schedule,
               devices=None):

    def update(params, state, opt_state, rng, batch):
      (_, (state, metrics)), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, state, rng, batch)
      grads = model_lib.device_mean(grads, AXIS)
      metrics = model_lib.device_mean(metrics, AXIS)
      updates, opt_state = tx.update(grads, opt_state, params)
      params = optax.apply_updates(params, updates)
      metrics["learning_rate"] = schedule(batch["step"])
      return params, state, opt_state, metrics

    self.layout = parallel.MeshLayout(AXIS, devices)
    # (params, state, opt_state) replicated; (rng, batch) one device's slice each.
    self._update = self.layout.compile(update, num_replicated=3, num_args=5, donate_argnums=(0, 1, 2))
    self._init = self.layout.compile_replicated(tx.init)

  def init(self, params, state, rng, batch):
    return self._init(params)

  def update(self, params, state, opt_state, rng, batch, step: int):
    return self._update(params, state, opt_state, rng, batch)


class KfacUpdater:
  """kfac_jax.Optimizer behind the Updater interface (its own pmap on several devices, jit on one)."""

  # Curvature statistics are accumulated per device and only synchronized at
  # inverse updates: checkpoints keep every device's copy for exact resumes.
  per_device_state = True

  def __init__(self, loss_fn: Callable, opt_config: ml_collections.ConfigDict,
               schedule: optax.Schedule, warmup_batches: Callable[[], Iterator[Any]], devices=None):
    from experiments import kfac_compat
    kfac_jax = kfac_compat.import_kfac_jax()
    k = opt_config.kfac
    self._warmup_batches = warmup_batches
    self._num_burnin_steps = k.num_burnin_steps
    momentum = opt_config.momentum
    self._schedule = schedule
    multi_device = _device_count(devices) > 1
    self.layout = (parallel.PmapLayout(KFAC_AXIS, devices) if multi_device
                   else parallel.SingleDeviceLayout((devices or jax.local_devices())[0]))
    self._opt = kfac_jax.Optimizer(
        value_and_grad_func=jax.value_and_grad(loss_fn, has_aux=True),
        l2_reg=0.0,  # L2 on weights only is part of the loss
        value_func_has_aux=True,
        value_func_has_state=True,
        value_func_has_rng=True,
        use_adaptive_learning_rate=k.use_adaptive_learning_rate,
        learning_rate_schedule=None if k.use_adaptive_learning_rate else schedule,
        use_adaptive_momentum=k.use_adaptive_momentum,
        momentum_schedule=None if k.use_adaptive_momentum else (lambda step: jnp.asarray(momentum, jnp.float32)),
        use_adaptive_damping=k.use_adaptive_damping,
        damping_schedule=None if k.use_adaptive_damping else (lambda step: jnp.asarray(k.damping, jnp.float32)),
        initial_damping=k.damping if k.use_adaptive_damping else None,
        norm_constraint=k.norm_constraint or None,
        num_burnin_steps=k.num_burnin_steps,
        estimation_mode=k.estimation_mode,
        curvature_ema=k.curvature_ema,
        curvature_update_period=k.curvature_update_period,
        inverse_update_period=k.inverse_update_period,
        multi_device=multi_device,
        pmap_axis_name=self.layout.axis,
        batch_size_extractor=lambda batch: batch["inputs"].shape[0],
    )

  def init(self, params, state, rng, batch):
    return self._opt.init(params, rng, batch, state)

  def update(self, params, state, opt_state, rng, batch, step: int):
    if step == 0 and self._num_burnin_steps > 0:
      # Curvature burn-in draws its own batches (a separate deterministic
      # stream), then the step's batch: the step -> batch mapping is unchanged.
      burnin = itertools.islice(self._warmup_batches(), self._num_burnin_steps)
      inputs = {"data_iterator": itertools.chain(burnin, [batch])}
    else:
      inputs = {"batch": batch}
    params, opt_state, state, stats = self._opt.step(
        params, opt_state, rng, func_state=state, global_step_int=step, **inputs)
    metrics = dict(stats["aux"])
    metrics["learning_rate"] = stats["learning_rate"]
    return params, state, opt_state, metrics


def build_updater(config: ml_collections.ConfigDict, loss_fn: Callable,
                  warmup_batches: Callable[[], Iterator[Any]], devices=None) -> Any:
  """The optimizer named by config.optimizer.name.

  `warmup_batches()` returns device batches from a stream separate from the
  training batches (K-FAC's curvature burn-in uses them). `devices`: every
  device of every process by default (benchmarks pass a subset).
  """
  schedule = schedules.build_schedule(config.optimizer, config.train_steps)
  if config.optimizer.name == "kfac":
    return KfacUpdater(loss_fn, config.optimizer, schedule, warmup_batches, devices)
  return OptaxUpdater(loss_fn, build_optax(config.optimizer, schedule), schedule, devices)
