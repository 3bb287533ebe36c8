"""The training loop: init, one compiled train step, eval, logging, checkpoints.

`run(config, workdir)` trains (or resumes) the experiment described by a
resolved config and returns summary.json's content. It is data-parallel over
every device of every process (`jax.distributed`), laid out as the optimizer's
updater says (experiments.parallel): each process feeds its slice of every
global batch, only process 0 writes files other than checkpoints (which orbax
coordinates).

Determinism: the batch and the random keys of step k are functions of
(seed, k) only, so a resumed run continues exactly like an uninterrupted one.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import math
import os
import sys
import time
import warnings
from typing import Any, Iterator

import logging as pylogging

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from experiments import checkpoint
from experiments import config_lib
from experiments import data
from experiments import metrics as metrics_lib
from experiments import model_lib
from experiments import multihost
from experiments import optimizers
from experiments import parallel
from experiments import paths
from experiments import validate


logging = pylogging.getLogger("experiments")
# kfac-jax donates buffers that XLA on CPU cannot always reuse; harmless.
warnings.filterwarnings("ignore", message="Some donated buffers were not usable")


# metrics.jsonl split of the training-step lines (loss, accuracy, learning rate,
# steps/s averaged since the last line); evaluations use the dataset's split
# names, `train` included, and model statistics the split `stats`.
TRAIN_STEP_SPLIT = "train_step"


class TrainingDiverged(FloatingPointError):
  """The loss became NaN or infinite; names the step and the last good checkpoint."""

  def __init__(self, message: str, step: int):
    super().__init__(message)
    self.step = step

  def __reduce__(self):  # picklable despite the extra field
    return type(self), (str(self), self.step)


def resolve_config(config: ml_collections.ConfigDict, dataset: data.Dataset) -> ml_collections.ConfigDict:
  """A resolved copy: epochs converted to steps with this dataset's epoch length."""
  config = copy.deepcopy(config)
  config_lib.resolve_epochs(config, lambda: dataset.steps_per_epoch(config.batch_size))
  return config


def _unreplicate(tree):
  """The first local device's copy, on the host (either device layout)."""
  return parallel.host_copy(tree)


def _step_keys(base_key, step: int, device_ids: np.ndarray) -> np.ndarray:
  """Per-device PRNG keys of a step: fold_in(fold_in(key, step), global device id)."""
  key = jax.random.fold_in(base_key, step)
  return np.asarray(jax.vmap(lambda d: jax.random.fold_in(key, d))(device_ids))


def _mean_records(records: list[dict]) -> dict:
  out = {}
  for k in records[-1]:
    values = [r[k] for r in records if k in r]
    out[k] = values[-1] if k == "learning_rate" else float(np.mean(values))
  return out


def evaluate_splits(eval_step, params_r, state_r, dataset: data.Dataset, splits, eval_batch_size: int,
                    step: int, eval_key, layout) -> dict[str, dict[str, float]]:
  """Global mean metrics per split, plus the model statistics as split "stats" (if any).

  `eval_step` is `model_lib.make_eval_fn` compiled by `layout` (experiments.parallel);
  params and state are replicated as the layout holds them; every process
  takes its share of each evaluation batch over its local devices.
  """
  process_index, process_count = jax.process_index(), jax.process_count()
  num_devices = jax.local_device_count()
  put = layout.put
  device_ids = np.arange(num_devices) + process_index * num_devices
  eval_keys = put(_step_keys(eval_key, 0, device_ids))
  results, stats = {}, None
  for split in splits:
    sums = None
    for host_batch in dataset.eval_batches(split, eval_batch_size // process_count,
                                           process_index, process_count):
      batch = data.shard_for_pmap(host_batch, num_devices)
      batch["step"] = np.full((num_devices,), step, np.int32)
      s, stats = eval_step(params_r, state_r, eval_keys, put(batch))
      s = _unreplicate(s)  # psum-ed: every device holds the global sums
      sums = s if sums is None else jax.tree.map(np.add, sums, s)
    count = max(float(sums.pop("count")), 1.0)
    results[split] = {k: float(v) / count for k, v in sums.items()}
    logging.info("step %d %s: %s", step, split,
                 ", ".join(f"{k}={v:.4g}" for k, v in sorted(results[split].items())))
  if stats:
    results["stats"] = {k: float(v) for k, v in _unreplicate(stats).items()}
  return results


WorkdirInUse = paths.WorkdirInUse


def _checked(config: ml_collections.ConfigDict) -> tuple[ml_collections.ConfigDict, data.Dataset]:
  """The validated, resolved config and its dataset (validate.ConfigError on bad values)."""
  validate.check_config(config)
  dataset = data.get_dataset(config)
  try:
    config = resolve_config(config, dataset)
  except ValueError as e:
    raise validate.ConfigError("", str(e)) from None
  validate.check_resolved(config, dataset.splits, len(jax.local_devices()) * jax.process_count())
  return config, dataset


def run(config: ml_collections.ConfigDict, workdir: str) -> dict:
  """Trains or resumes `config` in `workdir`; returns the summary dict.

  The config is validated before anything is written (validate.ConfigError);
  a re-launch is compared with the workdir's config.json
  (config_lib.ConfigChanged); an unchanged finished run returns its
  summary.json. Raises WorkdirInUse when another live run trains in `workdir`.
  """
  config, dataset = _checked(config)
  chief = jax.process_index() == 0
  workdir = paths.absolute(workdir)
  if chief:
    paths.makedirs(workdir)
  with paths.WorkdirLock(workdir) if chief else contextlib.nullcontext():
    finished = _prepare_workdir(config, workdir, chief)
    if finished is not None:
      return finished
    return _run(config, dataset, workdir)


def _prepare_workdir(config: ml_collections.ConfigDict, workdir: str, chief: bool) -> dict | None:
  """Checks a re-launch against config.json, then writes config.json (and config_history.jsonl).

  Returns summary.json's content for an unchanged finished run (nothing to do).
  """
  path = paths.join(workdir, "config.json")
  new = config_lib.as_json_dict(config)
  steps = checkpoint.steps_on_disk(paths.join(workdir, "checkpoints"))
  changes = {}
  if steps and paths.exists(path):
    old = json.loads(paths.read_text(path))
    changes = config_lib.check_relaunch(old, new, workdir, resume_step=steps[-1])
    summary_path = paths.join(workdir, "summary.json")
    if not changes and steps[-1] == config.train_steps and paths.exists(summary_path):
      summary = json.loads(paths.read_text(summary_path))
      if summary.get("step") == config.train_steps:
        logging.info("%s already finished %d steps; returning its summary.json.", workdir,
                     config.train_steps)
        return summary
  if chief and changes:
    ckpt_dir = paths.join(workdir, "checkpoints")
    intact = next((s for s in reversed(steps)
                   if checkpoint.verify(paths.join(ckpt_dir, str(s))) is None), 0)
    record = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
              "resumed_at_step": intact,
              "changes": {k: {"old": was, "new": now} for k, (was, now) in changes.items()}}
    paths.append_text(paths.join(workdir, "config_history.jsonl"),
                      json.dumps(record, sort_keys=True) + "\n")
    logging.warning("Config changed since the run started (recorded in config_history.jsonl): %s",
                    ", ".join(f"{k} {was!r} -> {now!r}" for k, (was, now) in changes.items()))
  history = paths.join(workdir, "config_history.jsonl")
  if chief and not steps and paths.exists(history):
    paths.remove(history)  # a fresh run in an old workdir without checkpoints
  if chief and (changes or not steps or not paths.exists(path)):
    metrics_lib.write_json_atomic(path, new)
  return None


def dry_run(config: ml_collections.ConfigDict) -> dict:
  """Builds the run of `config` and runs one training step and one evaluation step on zeros of
  the real batch shapes, without a workdir; returns the parameter count, the step time
  (with compilation) and each local device's memory.

  Reads one example of the first evaluation split for the shapes, so a dataset that is not
  prepared fails here too. Memory: what the backend reports (`Device.memory_stats()`:
  GPUs and TPUs; the CPU reports none), and XLA's memory analysis of the compiled step
  (optax optimizers).
  """
  config, dataset = _checked(config)
  process_index, process_count = jax.process_index(), jax.process_count()
  num_devices = jax.local_device_count()
  device_ids = np.arange(num_devices) + process_index * num_devices
  example = next(dataset.eval_batches(config.eval_splits[0], process_count, process_index, process_count))
  zeros = lambda n: {k: np.zeros((n,) + v.shape[1:], v.dtype) for k, v in example.items() if k != "mask"}
  local = config.batch_size // process_count
  key = jax.random.PRNGKey(config.seed)

  def device_batch(n):
    batch = data.shard_for_pmap(zeros(n), num_devices)
    batch["step"] = np.zeros((num_devices,), np.int32)
    return batch

  with model_lib.precision_policy(config.precision), parallel.single_threaded_host_blas():
    model = model_lib.build_model(config.model)
    axis = optimizers.axis_name(config.optimizer)
    loss_fn = model_lib.make_loss_fn(model, config, axis, register_for_kfac=config.optimizer.name == "kfac")
    updater = optimizers.build_updater(config, loss_fn,
                                       lambda: (put(device_batch(local)) for _ in itertools.count()))
    layout = updater.layout
    put, replicate = layout.put, layout.replicate
    batch = device_batch(local)
    params, state = jax.jit(model.init, static_argnames="is_training")(
        key, batch["inputs"][0], is_training=True, step=jnp.int32(0))
    parameters = sum(x.size for x in jax.tree.leaves(params))
    params_r, state_r = replicate(params), replicate(state)
    opt_state_r = updater.init(params_r, state_r, replicate(key), put(batch))
    keys = _step_keys(key, 0, device_ids)
    compiled_memory = None
    if hasattr(updater, "_update"):  # optax: XLA's memory analysis of the jitted step
      try:
        analysis = updater._update.lower(params_r, state_r, opt_state_r, put(keys), put(batch)).compile()
        m = analysis.memory_analysis()
        compiled_memory = {k: int(getattr(m, k)) for k in (
            "argument_size_in_bytes", "output_size_in_bytes", "temp_size_in_bytes",
            "generated_code_size_in_bytes") if hasattr(m, k)}
      except Exception:  # best effort: not every backend analyses memory
        compiled_memory = None
    started = time.perf_counter()
    params_r, state_r, opt_state_r, step_metrics = updater.update(
        params_r, state_r, opt_state_r, put(keys), put(batch), 0)
    loss = float(_unreplicate(step_metrics)["loss"])
    step_seconds = time.perf_counter() - started
    eval_step = layout.compile(model_lib.make_eval_fn(model, config, layout.axis),
                               num_replicated=2, num_args=4)
    eval_batch = data.shard_for_pmap({**zeros(config.eval_batch_size // process_count),
                                      "mask": np.ones(config.eval_batch_size // process_count,
                                                      np.float32)}, num_devices)
    eval_batch["step"] = np.zeros((num_devices,), np.int32)
    jax.block_until_ready(eval_step(params_r, state_r, put(keys), put(eval_batch)))
  memory = {}
  for device in jax.local_devices():
    stats = device.memory_stats() or {}
    memory[str(device)] = {k: int(stats[k]) for k in ("bytes_in_use", "peak_bytes_in_use", "bytes_limit")
                           if k in stats} or "not reported by this backend"
  return {"model": config.model.name, "parameters": int(parameters), "optimizer": config.optimizer.name,
          "batch_size": config.batch_size, "per_device_batch_shapes": {
              k: list(v.shape[1:]) for k, v in batch.items() if k != "step"},
          "devices": f"{num_devices} local x {process_count} process(es), {jax.devices()[0].device_kind}",
          "first_step_seconds_with_compilation": step_seconds, "loss": loss,
          "compiled_step_memory_bytes": compiled_memory, "memory_per_device": memory}


def _end_after_a_lost_process(checkpoint_dir: str):
  """What a process does when another one of the run is gone: a short message naming it and
  the last complete checkpoint, then exit 1 at once (its collectives would never finish)."""
  def on_lost(process: int, how: str) -> None:
    steps = checkpoint.steps_on_disk(checkpoint_dir)
    last = (f"{paths.join(checkpoint_dir, str(steps[-1]))} (step {steps[-1]})" if steps
            else "none yet")
    sys.stdout.flush()
    print(f"error: process {process} {how}; process {jax.process_index()} stops too. Last "
          f"complete checkpoint: {last}; re-launch every process with the same command to resume.",
          file=sys.stderr, flush=True)
    os._exit(1)
  return on_lost


def _run(config: ml_collections.ConfigDict, dataset: data.Dataset, workdir: str) -> dict:
  process_index, process_count = jax.process_index(), jax.process_count()
  chief = process_index == 0
  devices = jax.local_devices()
  num_devices = len(devices)
  if not chief:
    logging.setLevel(pylogging.WARNING)  # progress lines come from process 0
  total = config.train_steps

  writer = metrics_lib.MetricsWriter(workdir, enabled=chief)
  ckpt = checkpoint.Checkpointer(paths.join(workdir, "checkpoints"), config.keep_checkpoints,
                                 config.get("keep_checkpoint_every", 0), chief=chief)
  base_key = jax.random.PRNGKey(config.seed)
  init_key, train_key, eval_key = jax.random.split(base_key, 3)
  device_ids = np.arange(num_devices) + process_index * num_devices

  with model_lib.precision_policy(config.precision), parallel.single_threaded_host_blas(), \
      multihost.PreemptionFlag() as preemption, \
      multihost.LivenessWatch(_end_after_a_lost_process(ckpt.directory)):
    agreement = multihost.PreemptionAgreement(preemption)
    model = model_lib.build_model(config.model)
    is_kfac = config.optimizer.name == "kfac"
    axis = optimizers.axis_name(config.optimizer)  # the updater's layout's axis
    loss_fn = model_lib.make_loss_fn(model, config, axis, register_for_kfac=is_kfac)
    def warmup_batches():
      stream = dataset.train_batches(config.batch_size, config.seed + 7919, 0, process_index, process_count)
      for step, host_batch in enumerate(stream):
        batch = data.shard_for_pmap(host_batch, num_devices)
        batch["step"] = np.zeros((num_devices,), np.int32)
        yield put(batch)

    updater = optimizers.build_updater(config, loss_fn, warmup_batches)
    layout = updater.layout
    put, replicate = layout.put, layout.replicate
    # (params, state) replicated, (rng, batch) one device's slice each.
    eval_step = layout.compile(model_lib.make_eval_fn(model, config, layout.axis),
                               num_replicated=2, num_args=4)

    start = ckpt.latest_step() or 0
    start = min(start, total)
    host_batches = dataset.train_batches(config.batch_size, config.seed, start,
                                         process_index, process_count)
    first = next(host_batches)

    def device_item(host_batch, step):
      batch = data.shard_for_pmap(host_batch, num_devices)
      batch["step"] = np.full((num_devices,), step, np.int32)
      return batch, _step_keys(train_key, step, device_ids)

    first_batch, first_keys = device_item(first, start)
    params, state = jax.jit(model.init, static_argnames="is_training")(
        init_key, first_batch["inputs"][0], is_training=True, step=jnp.int32(0))
    params_r, state_r = replicate(params), replicate(state)
    opt_state_r = updater.init(params_r, state_r, replicate(init_key), put(first_batch))

    def opt_state_for_checkpoint(opt_state):
      if not updater.per_device_state:
        return _unreplicate(opt_state)
      local = parallel.local_copies(opt_state)  # [local devices, ...]
      if process_count == 1:
        return local
      from jax.experimental import multihost_utils
      return multihost_utils.process_allgather(local, tiled=True)  # [global devices, ...]

    def opt_state_from_checkpoint(saved):
      if not updater.per_device_state:
        return replicate(saved)
      mine = slice(process_index * num_devices, (process_index + 1) * num_devices)
      return put(jax.tree.map(lambda x: x[mine], saved))

    history: list[dict] = []
    if start > 0:
      template = {"params": params, "state": state, "opt_state": opt_state_for_checkpoint(opt_state_r)}
      restored = ckpt.restore(start, template)
      params_r, state_r = replicate(restored["params"]), replicate(restored["state"])
      opt_state_r = opt_state_from_checkpoint(restored["opt_state"])
      history = [r for r in writer.truncate_after(start) if r["split"] != TRAIN_STEP_SPLIT]
      logging.info("Resuming %s from step %d (%s).", workdir, start, ckpt.path(start))
    elif chief and paths.exists(writer.path):
      paths.remove(writer.path)  # a fresh run in an old workdir without checkpoints
    del params, state
    logging.info("Model %s: %s parameters on %d device(s) x %d process(es).", config.model.name,
                 f"{sum(x.size for x in jax.tree.leaves(params_r)) // num_devices:,}",
                 num_devices, process_count)

    def evaluate(step: int) -> None:
      results = evaluate_splits(eval_step, params_r, state_r, dataset, config.eval_splits,
                                config.eval_batch_size, step, eval_key, layout)
      for split, values in results.items():
        history.append(writer.write(step, split, values))

    last_ckpt = start if start > 0 else None

    def save(step: int) -> None:
      nonlocal last_ckpt
      tree = {"params": _unreplicate(params_r), "state": _unreplicate(state_r),
              "opt_state": opt_state_for_checkpoint(opt_state_r)}
      ckpt.save(step, tree)
      last_ckpt = step

    pending: list[tuple[int, Any]] = []
    # Timings of the steps since the last metrics line, evaluations and saves excluded:
    # seconds the host waited for input batches (`data`) and for the devices (`device`:
    # dispatching a step, the preemption agreement, the metrics sync).
    clock = {"time": time.perf_counter(), "step": start, "data": 0.0, "device": 0.0}

    def restart_clock(step: int) -> None:
      clock.update(time=time.perf_counter(), step=step, data=0.0, device=0.0)

    def flush(step: int) -> None:
      """Host-syncs the pending step metrics: NaN check, progress line, metrics.jsonl."""
      if not pending:
        return
      synced = time.perf_counter()
      records = [{k: float(v) for k, v in _unreplicate(m).items()} for _, m in pending]
      clock["device"] += time.perf_counter() - synced
      for (s, _), r in zip(pending, records):
        if not math.isfinite(r["loss"]):
          where = (f"{ckpt.path(last_ckpt)} (step {last_ckpt}); re-running resumes from it"
                   if last_ckpt is not None else "none (no checkpoint was written yet)")
          raise TrainingDiverged(
              f"loss became {r['loss']} at step {s} (the update from step {s - 1}); "
              f"last good checkpoint: {where}. Lower the learning rate or check the "
              "model/initialization.", step=s)
      pending.clear()
      steps, elapsed = step - clock["step"], max(time.perf_counter() - clock["time"], 1e-9)
      rate = steps / elapsed
      values = _mean_records(records)
      values.update(steps_per_sec=rate, examples_per_sec=rate * config.batch_size,
                    step_time_s=elapsed / max(steps, 1), data_wait_s=clock["data"] / max(steps, 1),
                    data_wait_fraction=min(clock["data"] / elapsed, 1.0),
                    device_utilization=min(clock["device"] / elapsed, 1.0))
      restart_clock(step)
      writer.write(step, TRAIN_STEP_SPLIT, values)
      eta = (total - step) / max(rate, 1e-9)
      logging.info("step %d/%d  loss %.4f  %.2f steps/s  ETA %s", step, total, values["loss"], rate,
                   time.strftime("%H:%M:%S", time.gmtime(eta)))

    items = (device_item(b, s) for s, b in zip(itertools.count(start), itertools.chain([first], host_batches)))
    device_items: Iterator[Any] = data.prefetch_to_devices(items, config.dataset.prefetch, put)
    step = start
    # config.profile_steps > 0: a jax.profiler trace of that many steps, after
    # two steps of compilation, into <workdir>/profile (TensorBoard or Perfetto).
    profile_start = start + 2 if config.profile_steps > 0 and start + 2 < total else -1
    profile_stop = min(profile_start + config.profile_steps, total)
    while step < total:
      waited = time.perf_counter()
      batch, keys = next(device_items)
      dispatched = time.perf_counter()
      clock["data"] += dispatched - waited
      if step == profile_start:
        jax.profiler.start_trace(paths.join(workdir, "profile"), create_perfetto_trace=True)
      params_r, state_r, opt_state_r, step_metrics = updater.update(
          params_r, state_r, opt_state_r, keys, batch, step)
      step += 1
      if step == profile_stop and profile_start >= 0:
        jax.block_until_ready(step_metrics)
        jax.profiler.stop_trace()
        logging.info("Profile of steps %d-%d written to %s.", profile_start, step - 1,
                     paths.join(workdir, "profile"))
      pending.append((step, step_metrics))
      is_last = step == total
      do_eval = is_last or (config.eval_every > 0 and step % config.eval_every == 0)
      signals = agreement.check(step)  # the same on every process at this step
      preempted = signals is not None
      clock["device"] += time.perf_counter() - dispatched
      do_ckpt = is_last or preempted or (
          config.checkpoint_every > 0 and step % config.checkpoint_every == 0)
      if do_eval or do_ckpt or step % max(config.log_every, 1) == 0:
        flush(step)
      if do_eval:
        evaluate(step)
      if do_ckpt:
        save(step)
      if do_eval or do_ckpt:
        restart_clock(step)
      if preempted and not is_last:
        logging.warning("Preempted: checkpoint at step %d in %s; re-run the same command to resume "
                        "(%s).", step, ckpt.path(step), multihost.describe(signals))
        writer.close()
        ckpt.close()
        raise SystemExit(128 + max(signals.values()))
    device_items.close()

    if not any(r["step"] == total for r in history):
      evaluate(total)  # a finished run re-launched: report without training
    summary = metrics_lib.summarize(history)
    if chief:
      metrics_lib.write_json_atomic(paths.join(workdir, "summary.json"), summary)
    writer.close()
    ckpt.close()
  return summary
