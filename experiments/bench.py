r"""Benchmarks of the training step.

  python -m experiments.bench overhead [--config=configs/...py] [--steps=N] [--repeats=R]
      The framework's compiled train step (experiments.optimizers' updater, as
      the training loop calls it) against a minimal hand-written Haiku+optax
      jitted step of the same model, batch and optimizer, interleaved in one
      process. Prints JSON with both times per step and their ratio, and the
      ratio to the same hand-written step with donated buffers.

  python -m experiments.bench throughput --config=configs/...py [--config.batch_size=...]
      Training examples/s of the compiled step and the achieved FLOP/s from
      XLA's cost analysis, with the device named.

Both use the config's model, loss and optimizer on random inputs of the
dataset's input shape (no data files needed), batches already on the devices.
"""

from __future__ import annotations

import functools
import json
import re
import time
from typing import Callable

from absl import app
from absl import flags
import haiku as hk
import jax
import jax.numpy as jnp
import ml_collections
from ml_collections import config_flags
import numpy as np
import optax

from experiments import config_lib
from experiments import data
from experiments import model_lib
from experiments import optimizers
from experiments import schedules

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config whose model/optimizer to benchmark.",
                                          lock_config=True)
_STEPS = flags.DEFINE_integer("steps", 50, "Timed steps per repeat.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Interleaved repeats (the median is reported).")


def bench_mlp(width: int = 1024, depth: int = 3, num_classes: int = 10):
  """The default overhead model: a ReLU MLP (a few ms per step on a CPU)."""
  def forward(x, *, is_training, step):
    x = x.reshape(x.shape[0], -1)
    for _ in range(depth):
      x = jax.nn.relu(hk.Linear(width)(x))
    return hk.Linear(num_classes)(x)
  return forward


model_lib.register_model("bench.mlp", bench_mlp)


def default_config() -> ml_collections.ConfigDict:
  c = config_lib.base_config()
  c.model.name = "bench.mlp"
  c.model.width = 1024
  c.model.depth = 3
  c.model.num_classes = 10
  c.dataset.name = "random_images"
  c.dataset.kwargs = {"shape": (28, 28, 1), "num_classes": 10, "num_examples": 256}
  c.batch_size = 256
  c.optimizer.name = "sgd"
  c.optimizer.learning_rate = 0.01
  c.optimizer.momentum = 0.9
  return c


def _host_batch(config, dataset: data.Dataset) -> dict[str, np.ndarray]:
  if config.dataset.name in ("mnist", "fashion_mnist", "cifar10", "cifar100", "imagenet2012"):
    rng = np.random.default_rng(0)
    return {"inputs": rng.standard_normal((config.batch_size,) + dataset.input_shape, dtype=np.float32),
            "labels": np.zeros((config.batch_size,), np.int32)}
  return next(dataset.train_batches(config.batch_size, config.seed, 0))


class StepSetup:
  """The framework's updater with params/state/opt_state and one batch on the devices."""

  def __init__(self, config: ml_collections.ConfigDict, devices):
    self.config = config
    dataset = data.get_dataset(config)
    config_lib.resolve_epochs(config, lambda: dataset.steps_per_epoch(config.batch_size))
    self.host_batch = _host_batch(config, dataset)
    n = len(devices)
    self.model = model_lib.build_model(config.model)
    loss_fn = model_lib.make_loss_fn(self.model, config, optimizers.axis_name(config.optimizer),
                                     register_for_kfac=config.optimizer.name == "kfac")
    self.updater = optimizers.build_updater(config, loss_fn, lambda: iter([self.batch] * 1000),
                                           devices)
    layout = self.updater.layout
    batch = data.shard_for_pmap(self.host_batch, n)
    batch["step"] = np.zeros((n,), np.int32)
    self.batch = layout.put(batch)
    self.keys = layout.put(np.asarray(jax.random.split(jax.random.PRNGKey(0), n)))
    params, state = self.model.init(jax.random.PRNGKey(1), self.host_batch["inputs"][: max(1, config.batch_size // n)],
                                    is_training=True, step=jnp.int32(0))
    self.params, self.state = params, state
    self.params_r = layout.replicate(params)
    self.state_r = layout.replicate(state)
    self.opt_state_r = self.updater.init(self.params_r, self.state_r,
                                         layout.replicate(np.asarray(jax.random.PRNGKey(2))), self.batch)
    self.step = 0

  def hlo(self) -> str:
    """The optimized HLO of the optax step (K-FAC compiles its own)."""
    return self.updater._update.lower(self.params_r, self.state_r, self.opt_state_r, self.keys,
                                      self.batch).compile().as_text()

  def run(self, steps: int) -> float:
    start = time.perf_counter()
    for _ in range(steps):
      self.params_r, self.state_r, self.opt_state_r, m = self.updater.update(
          self.params_r, self.state_r, self.opt_state_r, self.keys, self.batch, self.step)
      self.step += 1
    jax.block_until_ready((self.params_r, m))
    return (time.perf_counter() - start) / steps


def handwritten_step(config, params, state, host_batch, donate: bool = False):
  """The minimal jitted Haiku+optax step of the same model: loss, grad, optax update.

  `donate=True` also donates params/state/optimizer state to XLA, as the
  framework's step does (the tighter comparison on CPU).
  """
  forward = model_lib.get_builder(config.model.name)(
      **{k: v for k, v in config.model.to_dict().items() if k != "name"})

  def apply(x):
    out = forward(x, is_training=True, step=jnp.int32(0))
    return out["output"] if isinstance(out, dict) else out

  model = hk.transform_with_state(apply)
  tx = optimizers.build_optax(config.optimizer, schedules.build_schedule(config.optimizer, config.train_steps))

  def loss_fn(p, s, rng, x, y):
    logits, s = model.apply(p, s, rng, x)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), s

  @functools.partial(jax.jit, donate_argnums=(0, 1, 2) if donate else ())
  def step(p, s, o, rng, x, y):
    (_, s), g = jax.value_and_grad(loss_fn, has_aux=True)(p, s, rng, x, y)
    updates, o = tx.update(g, o, p)
    return optax.apply_updates(p, updates), s, o

  x, y = jnp.asarray(host_batch["inputs"]), jnp.asarray(host_batch["labels"])
  copy = lambda tree: jax.tree.map(jnp.array, tree)  # donated: not the framework's buffers
  carry = {"p": copy(params), "s": copy(state), "o": tx.init(copy(params))}
  rng = jax.random.PRNGKey(0)

  def run(steps: int) -> float:
    start = time.perf_counter()
    p, s, o = carry["p"], carry["s"], carry["o"]
    for _ in range(steps):
      p, s, o = step(p, s, o, rng, x, y)
    jax.block_until_ready(p)
    carry.update(p=p, s=s, o=o)
    return (time.perf_counter() - start) / steps

  run.hlo = lambda: step.lower(carry["p"], carry["s"], carry["o"], rng, x, y).compile().as_text()
  return run


def count_copies(hlo_text: str, min_elements: int = 0) -> int:
  """Copy instructions of arrays with >= `min_elements` elements in an optimized HLO module.

  XLA inserts them where a donated buffer cannot be updated in place.
  """
  count = 0
  for dims in re.findall(r"= \w+\[([\d,]*)\]\S* copy\(", hlo_text):
    count += int(np.prod([int(d) for d in dims.split(",") if d])) >= min_elements
  return count


def _interleaved(runs: dict[str, Callable[[int], float]], steps: int, repeats: int) -> dict[str, list[float]]:
  """Seconds per step of each run, `repeats` rounds, the runs taking turns within a round."""
  for run in runs.values():
    run(3)  # compile and warm up
  times: dict[str, list[float]] = {name: [] for name in runs}
  for _ in range(repeats):
    for name, run in runs.items():
      times[name].append(run(steps))
  return times


def _paired_ratio(a: list[float], b: list[float]) -> float:
  """Median over rounds of a/b within a round (robust to load changes between rounds)."""
  return float(np.median(np.asarray(a) / np.asarray(b)))


def overhead(config, steps: int, repeats: int) -> dict:
  if config.optimizer.name == "kfac" or config.loss.name != "softmax_xent":
    raise ValueError("the overhead benchmark compares against a hand-written optax softmax "
                     "cross-entropy step: use a config with an optax optimizer and softmax_xent")
  devices = jax.local_devices()[:1]
  fw = StepSetup(config, devices)
  hand = handwritten_step(config, fw.params, fw.state, fw.host_batch)
  hand_donated = handwritten_step(config, fw.params, fw.state, fw.host_batch, donate=True)
  times = _interleaved({"framework": fw.run, "handwritten": hand, "donated": hand_donated}, steps, repeats)
  fw_t, hand_t, donated_t = (float(np.median(times[k])) for k in ("framework", "handwritten", "donated"))
  return {"benchmark": "overhead", "model": config.model.name, "batch_size": config.batch_size,
          "optimizer": config.optimizer.name, "device": devices[0].device_kind,
          "framework_step_ms": 1e3 * fw_t, "handwritten_step_ms": 1e3 * hand_t,
          "handwritten_donated_step_ms": 1e3 * donated_t,
          "ratio": _paired_ratio(times["framework"], times["handwritten"]),
          "ratio_vs_donated": _paired_ratio(times["framework"], times["donated"]),
          # Copies of arrays of >= 1,000 elements (params, optimizer state) in the compiled steps.
          "large_copies": {"framework": count_copies(fw.hlo(), 1000),
                           "handwritten_donated": count_copies(hand_donated.hlo(), 1000)},
          "steps": steps, "repeats": repeats}


def throughput(config, steps: int, repeats: int) -> dict:
  devices = jax.local_devices()
  fw = StepSetup(config, devices)
  compile_start = time.perf_counter()
  fw.run(2)
  compile_s = time.perf_counter() - compile_start
  flops = None
  update = getattr(fw.updater, "_update", None)
  if update is not None:
    try:
      lowered = update.lower(fw.params_r, fw.state_r, fw.opt_state_r, fw.keys, fw.batch)
      cost = lowered.compile().cost_analysis()
      cost = cost[0] if isinstance(cost, (list, tuple)) else cost
      flops = float(cost.get("flops", 0.0)) or None  # per device
    except Exception:  # cost analysis is best effort on some backends
      flops = None
  times = [fw.run(steps) for _ in range(repeats)]
  t = float(np.median(times))
  result = {"benchmark": "throughput", "model": config.model.name, "precision": config.precision,
            "optimizer": config.optimizer.name, "batch_size": config.batch_size,
            "devices": len(devices), "device": devices[0].device_kind, "step_ms": 1e3 * t,
            "examples_per_sec": config.batch_size / t, "compile_and_first_steps_s": compile_s}
  if flops:
    result["flops_per_step"] = flops * len(devices)
    result["achieved_tflops"] = flops * len(devices) / t / 1e12
  return result


def main(argv):
  if len(argv) != 2 or argv[1] not in ("overhead", "throughput"):
    raise app.UsageError("usage: python -m experiments.bench overhead|throughput [--config=...]")
  config = _CONFIG.value if _CONFIG.value is not None else default_config()
  fn = overhead if argv[1] == "overhead" else throughput
  print(json.dumps(fn(config, _STEPS.value, _REPEATS.value), indent=2))


if __name__ == "__main__":
  app.run(main)
