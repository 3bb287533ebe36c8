r"""Benchmarks of the training step.

  python -m experiments.bench overhead [--config=configs/...py] [--steps=N] [--repeats=R]
      The framework's compiled train step (experiments.optimizers' updater, as
      the training loop calls it) against a minimal hand-written Haiku+optax
      jitted step of the same model, batch and optimizer, with and without
      donated buffers, interleaved in one process on one device. Prints JSON
      with the times per step, their ratios (median over rounds of the ratio
      within a round) and the copies of large arrays in both compiled steps.

  python -m experiments.bench kfac --config=configs/...py [--curvature_period=10] [--inverse_period=200]
      K-FAC against SGD (momentum) on the config's model and batch, one
      device: the times of a plain K-FAC step, a curvature-update step and an
      inverse-update step, interleaved with the SGD step, and the amortized
      K-FAC/SGD ratio at those update periods.

  python -m experiments.bench throughput --config=configs/...py [--config.batch_size=...]
      Training examples/s of the compiled step and the achieved FLOP/s from
      XLA's cost analysis, with the device named.

  python -m experiments.bench gpu [--small]
      The accelerator table: ResNet-50 v2 at ImageNet shape (224x224, batch
      --batch_per_device=256 per device) in bfloat16, standard vs
      vanilla TAT, SGD and K-FAC (amortized), images/s and model TFLOP/s, plus
      the input pipeline's own rate on TFDS mock data of the same shape and
      whether it is >= 2x the fastest step. `--small` (ResNet-18 at quarter
      width, 32x32, batch 8) runs the same code on a CPU.

  python -m experiments.bench resume --config=configs/...py [--resume_steps=0,100000]
      Seconds from opening the config's training stream at each of those steps
      to its first batch (median of --repeats), e.g. on a prepared TFDS dataset:
      what a resume costs before its first step.

The others use the config's model, loss and optimizer on random inputs of the
dataset's input shape (no data files needed), batches already on the devices,
host BLAS on one thread as in training.
"""

from __future__ import annotations

import copy
import functools
import json
import os
import re
import sys
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
from experiments import parallel
from experiments import schedules

_CONFIG = config_flags.DEFINE_config_file("config", None, "Config whose model/optimizer to benchmark.",
                                          lock_config=True)
_STEPS = flags.DEFINE_integer("steps", 50, "Timed steps per repeat.")
_REPEATS = flags.DEFINE_integer("repeats", 5, "Interleaved repeats (the median is reported).")
_CURVATURE_PERIOD = flags.DEFINE_integer("curvature_period", 10, "kfac: curvature update every N steps.")
_INVERSE_PERIOD = flags.DEFINE_integer("inverse_period", 200, "kfac: inverse update every N steps.")
_SMALL = flags.DEFINE_bool("small", False, "gpu: ResNet-18 at quarter width, 32x32, batch 8 (runs on a CPU).")
_RESUME_STEPS = flags.DEFINE_list("resume_steps", ["0", "100000"], "resume: the steps to open the stream at.")
_BATCH_PER_DEVICE = flags.DEFINE_integer("batch_per_device", 256, "gpu: batch size on the one device timed.")


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
    loss_fn = model_lib.make_loss_fn(self.model, config, optimizers.axis_name(config.optimizer, devices),
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

  def run(self, steps: int, global_step: int | None = None) -> float:
    """Seconds per step of `steps` steps (at `global_step` each time if given)."""
    start = time.perf_counter()
    for _ in range(steps):
      step = self.step if global_step is None else global_step
      self.params_r, self.state_r, self.opt_state_r, m = self.updater.update(
          self.params_r, self.state_r, self.opt_state_r, self.keys, self.batch, step)
      self.step += 1
    jax.block_until_ready((self.params_r, m))
    return (time.perf_counter() - start) / steps

  def set_kfac_step_counter(self, value: int) -> None:
    """Sets K-FAC's own step counter (it decides the inverse updates: counter % period == 0)."""
    counter = np.asarray(parallel.host_copy(self.opt_state_r.step_counter))
    state = self.opt_state_r.copy()
    state.step_counter = self.updater.layout.replicate(np.full_like(counter, value))
    self.opt_state_r = state


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
  """Seconds per step of each run, `repeats` rounds, the runs taking turns within a round.

  Progress goes to stderr (compiles of large models take minutes on a CPU); stdout keeps
  only the result.
  """
  for name, run in runs.items():
    start = time.perf_counter()
    run(3)  # compile and warm up
    print(f"[bench] {name}: compiled and warmed up in {time.perf_counter() - start:.1f} s",
          file=sys.stderr, flush=True)
  times: dict[str, list[float]] = {name: [] for name in runs}
  for i in range(repeats):
    for name, run in runs.items():
      times[name].append(run(steps))
    print(f"[bench] round {i + 1}/{repeats}: " + ", ".join(
        f"{name} {1e3 * t[-1]:.1f} ms/step" for name, t in times.items()), file=sys.stderr, flush=True)
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


def _step_flops(setup: StepSetup) -> float | None:
  """XLA's FLOP count of one optax step over all its devices (None for K-FAC or when unavailable)."""
  update = getattr(setup.updater, "_update", None)
  if update is None:
    return None
  try:
    lowered = update.lower(setup.params_r, setup.state_r, setup.opt_state_r, setup.keys, setup.batch)
    cost = lowered.compile().cost_analysis()
  except Exception:  # cost analysis is best effort on some backends
    return None
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  flops = float((cost or {}).get("flops", 0.0))
  # The SPMD program is one device's share of the step.
  return flops * len(setup.updater.layout.devices) or None


def kfac_cost(config, steps: int, repeats: int, curvature_period: int = 10,
              inverse_period: int = 200) -> dict:
  """Amortized K-FAC / SGD step time of the config's model (one device).

  Three kinds of K-FAC steps are timed on the same optimizer, interleaved in
  rounds with the SGD (momentum) step of the same model and batch: plain
  (gradient, preconditioning with the cached inverses, update), curvature
  (also the curvature-statistics update, every `curvature_period` steps) and
  inverse (also recomputing the inverses, every `inverse_period` steps; timed
  one step at a time). Over one inverse period the average K-FAC step is
  (t_inverse + (n_curvature - 1) t_curvature + (inverse_period - n_curvature)
  t_plain) / inverse_period with n_curvature = inverse_period / curvature_period.
  """
  if inverse_period % curvature_period:
    raise ValueError(f"inverse_period {inverse_period} must be a multiple of curvature_period {curvature_period}")
  devices = jax.local_devices()[:1]
  kcfg, scfg = copy.deepcopy(config), copy.deepcopy(config)
  for c in (kcfg, scfg):
    c.optimizer.learning_rate = 1e-5  # random inputs: keep the iterates finite and the timing honest
    c.optimizer.schedule.name = "constant"
    c.optimizer.schedule.warmup_steps = 0
    c.optimizer.schedule.warmup_epochs = 0.0
    c.optimizer.momentum = 0.9
  kcfg.optimizer.name = "kfac"
  kcfg.optimizer.kfac.curvature_update_period = curvature_period
  kcfg.optimizer.kfac.inverse_update_period = inverse_period
  kcfg.optimizer.kfac.num_burnin_steps = 0
  scfg.optimizer.name = "sgd"
  with model_lib.precision_policy(config.precision):
    sgd = StepSetup(scfg, devices)
    kfac = StepSetup(kcfg, devices)

    def plain(n):  # global step not a multiple of the curvature period; counter away from the inverse
      kfac.set_kfac_step_counter(1)
      return kfac.run(n, global_step=1)

    def curvature(n):
      kfac.set_kfac_step_counter(1)
      return kfac.run(n, global_step=curvature_period)

    def inverse(n):
      times = []
      for _ in range(n):
        kfac.set_kfac_step_counter(inverse_period)
        times.append(kfac.run(1, global_step=curvature_period))
      return float(np.mean(times))

    compile_start = time.perf_counter()
    times = _interleaved({"sgd": sgd.run, "plain": plain, "curvature": curvature,
                          "inverse": lambda n: inverse(max(1, n // 10))}, steps, repeats)
    total_s = time.perf_counter() - compile_start
    sgd_flops = _step_flops(sgd)
  t = {k: float(np.median(v)) for k, v in times.items()}
  n_curv = inverse_period // curvature_period
  amortized = (t["inverse"] + (n_curv - 1) * t["curvature"] + (inverse_period - n_curv) * t["plain"]) / inverse_period
  per_round = [(i + (n_curv - 1) * c + (inverse_period - n_curv) * p) / inverse_period / s
               for s, p, c, i in zip(times["sgd"], times["plain"], times["curvature"], times["inverse"])]
  return {"benchmark": "kfac", "model": config.model.name, "batch_size": config.batch_size,
          "precision": config.precision, "device": devices[0].device_kind,
          "curvature_update_period": curvature_period, "inverse_update_period": inverse_period,
          "estimation_mode": kcfg.optimizer.kfac.estimation_mode,
          "sgd_step_ms": 1e3 * t["sgd"], "kfac_plain_step_ms": 1e3 * t["plain"],
          "kfac_curvature_step_ms": 1e3 * t["curvature"], "kfac_inverse_step_ms": 1e3 * t["inverse"],
          "kfac_amortized_step_ms": 1e3 * amortized,
          "ratio_plain": _paired_ratio(times["plain"], times["sgd"]),
          "ratio_curvature": _paired_ratio(times["curvature"], times["sgd"]),
          "ratio_inverse": _paired_ratio(times["inverse"], times["sgd"]),
          "ratio_amortized": float(np.median(per_round)),
          "sgd_flops_per_step": sgd_flops,
          "steps": steps, "repeats": repeats, "total_seconds": total_s}


RESNET_CONFIG = "configs/tat/imagenet_resnet.py"


def resnet50_config(network: str, small: bool, batch_per_device: int = 256) -> ml_collections.ConfigDict:
  """ResNet-50 v2 at ImageNet shape in bfloat16 (`small`: ResNet-18 at quarter width, 32x32, batch 8)."""
  root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  config = config_lib.load_config(os.path.join(root, RESNET_CONFIG) + f":{network},kfac")
  config.precision = "bfloat16"
  config.batch_size = batch_per_device  # the benchmarks run on one device
  if small:
    config.depth = 18
    config.model.width_multiplier = 0.25
    config.dataset.image_size = 32
    config.batch_size = 8
  return config


def input_pipeline_rate(config, batches: int) -> float:
  """Images/s of the framework's TFDS training input pipeline (decode-free mock examples of the real feature spec)."""
  from experiments import testing
  with testing.mock_tfds(num_examples=max(4 * config.batch_size, 64)):
    dataset = data.get_dataset(config)
    stream = dataset.train_batches(config.batch_size, config.seed, 0)
    next(stream)  # pipeline start-up (normalization statistics, tf.data warm-up)
    start = time.perf_counter()
    for _ in range(batches):
      next(stream)
    return batches * config.batch_size / (time.perf_counter() - start)


def gpu_table(steps: int, repeats: int, small: bool = False, curvature_period: int = 10,
              inverse_period: int = 200, pipeline_batches: int = 50, batch_per_device: int = 256,
              networks: tuple[str, ...] = ("standard", "vanilla")) -> dict:
  """Images/s and achieved TFLOP/s of ResNet-50 v2 (standard and vanilla TAT), SGD and K-FAC.

  Both optimizers of a network are timed interleaved in one process
  (`kfac_cost`; K-FAC amortized over its curvature and inverse periods). TFLOP/s
  is XLA's FLOP count of the SGD step (the model's forward and backward pass)
  per second of each step, so K-FAC's row is the model FLOP rate it sustains.
  """
  rows = []
  config = None
  for network in networks:
    config = resnet50_config(network, small, batch_per_device)
    r = kfac_cost(config, steps, repeats, curvature_period, inverse_period)
    for optimizer, ms in (("sgd", r["sgd_step_ms"]), ("kfac", r["kfac_amortized_step_ms"])):
      row = {"network": network, "method": config.method, "optimizer": optimizer, "step_ms": ms,
             "images_per_sec": config.batch_size / (ms / 1e3)}
      row["model_tflops"] = r["sgd_flops_per_step"] / (ms / 1e3) / 1e12 if r["sgd_flops_per_step"] else None
      rows.append(row)
  fastest = max(row["images_per_sec"] for row in rows)
  pipeline = input_pipeline_rate(config, pipeline_batches)
  return {"benchmark": "gpu", "device": jax.local_devices()[0].device_kind, "small": small,
          "depth": config.depth, "image_size": config.dataset.image_size, "batch_size": config.batch_size,
          "precision": config.precision, "curvature_update_period": curvature_period,
          "inverse_update_period": inverse_period, "rows": rows,
          "input_pipeline_images_per_sec": pipeline, "input_pipeline_over_fastest_step": pipeline / fastest,
          "input_pipeline_ok": pipeline >= 2 * fastest}


def format_gpu_table(result: dict) -> str:
  head = (f"ResNet-{result['depth']} v2, {result['image_size']}x{result['image_size']}, batch "
          f"{result['batch_size']}, {result['precision']}, {result['device']}"
          f" (K-FAC: curvature every {result['curvature_update_period']}, inverses every "
          f"{result['inverse_update_period']} steps, amortized)")
  lines = [head, "", "| network | method | optimizer | step ms | images/s | model TFLOP/s |", "|---|---|---|---|---|---|"]
  for r in result["rows"]:
    tflops = f"{r['model_tflops']:.3f}" if r["model_tflops"] is not None else "n/a"
    lines.append(f"| {r['network']} | {r['method']} | {r['optimizer']} | {r['step_ms']:.1f} | "
                 f"{r['images_per_sec']:.1f} | {tflops} |")
  ratio = result["input_pipeline_over_fastest_step"]
  verdict = "OK (>= 2x)" if result["input_pipeline_ok"] else "TOO SLOW (< 2x): the input pipeline would bound training"
  lines += ["", f"input pipeline (TFDS mock data, same shape): {result['input_pipeline_images_per_sec']:.1f} "
            f"images/s = {ratio:.2f}x the fastest step: {verdict}"]
  return "\n".join(lines)


def throughput(config, steps: int, repeats: int) -> dict:
  devices = jax.local_devices()
  fw = StepSetup(config, devices)
  compile_start = time.perf_counter()
  fw.run(2)
  compile_s = time.perf_counter() - compile_start
  flops = _step_flops(fw)
  times = [fw.run(steps) for _ in range(repeats)]
  t = float(np.median(times))
  result = {"benchmark": "throughput", "model": config.model.name, "precision": config.precision,
            "optimizer": config.optimizer.name, "batch_size": config.batch_size,
            "devices": len(devices), "device": devices[0].device_kind, "step_ms": 1e3 * t,
            "examples_per_sec": config.batch_size / t, "compile_and_first_steps_s": compile_s}
  if flops:
    result["flops_per_step"] = flops
    result["achieved_tflops"] = flops / t / 1e12
  return result


def resume_time(config, steps, repeats: int) -> dict:
  """Seconds from opening the training stream at each step to its first batch (median)."""
  dataset = data.get_dataset(config)
  seconds = {}
  for step in steps:
    times = []
    for _ in range(repeats):
      start = time.perf_counter()
      stream = dataset.train_batches(config.batch_size, config.seed, int(step))
      next(stream)
      times.append(time.perf_counter() - start)
      stream.close()
    seconds[str(step)] = float(np.median(times))
  return {"dataset": config.dataset.name, "batch_size": config.batch_size,
          "examples_per_epoch": dataset.num_train, "seconds_to_first_batch": seconds}


def main(argv):
  benchmarks = {"overhead": overhead, "throughput": throughput, "kfac": kfac_cost, "gpu": None,
                "resume": None}
  if len(argv) != 2 or argv[1] not in benchmarks:
    raise app.UsageError(f"usage: python -m experiments.bench {'|'.join(benchmarks)} [--config=...]")
  if argv[1] == "gpu":
    with parallel.single_threaded_host_blas():
      result = gpu_table(_STEPS.value, _REPEATS.value, _SMALL.value, _CURVATURE_PERIOD.value,
                         _INVERSE_PERIOD.value, batch_per_device=_BATCH_PER_DEVICE.value)
    print(format_gpu_table(result))
    print(json.dumps(result))
    return
  config = _CONFIG.value if _CONFIG.value is not None else default_config()
  if argv[1] == "resume":
    print(json.dumps(resume_time(config, _RESUME_STEPS.value, _REPEATS.value), indent=2))
    return
  kwargs = {}
  if argv[1] == "kfac":
    kwargs = {"curvature_period": _CURVATURE_PERIOD.value, "inverse_period": _INVERSE_PERIOD.value}
  with parallel.single_threaded_host_blas():  # as in training (experiments.train)
    result = benchmarks[argv[1]](config, _STEPS.value, _REPEATS.value, **kwargs)
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  app.run(main)
