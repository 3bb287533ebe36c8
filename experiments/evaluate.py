r"""Evaluate a workdir's checkpoint without training.

  python -m experiments.evaluate --workdir=DIR [--step=N] [--splits=test,train]

Rebuilds the model from DIR/config.json (the resolved config the run wrote),
restores the latest checkpoint or step N, evaluates the chosen splits with the
training loop's own evaluation code on all local devices and writes
DIR/eval/step_<N>.json (also printed). Nothing in DIR is changed otherwise, so
it is safe while a run is still training there.
"""

from __future__ import annotations

import json
import logging
import sys

from absl import app
from absl import flags

_WORKDIR = flags.DEFINE_string("workdir", None, "Run directory written by experiments.main (holds "
                               "config.json and checkpoints/).")
_STEP = flags.DEFINE_integer("step", -1, "Checkpoint step to evaluate; -1 = the latest.")
_SPLITS = flags.DEFINE_list("splits", [], "Comma-separated splits to evaluate (e.g. test,train); "
                            "empty = the run's config.eval_splits.")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data_dir to read instead of the run's "
                                "config.dataset.data_dir (e.g. on another machine).")
_BATCH = flags.DEFINE_integer("eval_batch_size", 0, "Evaluation batch size; 0 = the run's.")
flags.mark_flags_as_required(["workdir"])


def load_run_config(workdir: str):
  """The resolved config a run saved in `workdir`/config.json."""
  import ml_collections
  from experiments import paths
  path = paths.join(workdir, "config.json")
  if not paths.exists(path):
    raise FileNotFoundError(f"{path} not found: --workdir must be a directory written by "
                            "experiments.main.")
  return ml_collections.ConfigDict(json.loads(paths.read_text(path)))


def evaluate_checkpoint(workdir: str, step: int | None = None, splits=None,
                        overrides: dict | None = None) -> dict:
  """{"step": N, "<split>": {metric: value}, ...} for the checkpoint of `step` (None: latest)."""
  import jax
  import numpy as np
  import orbax.checkpoint as ocp

  from experiments import checkpoint
  from experiments import config_lib
  from experiments import data
  from experiments import model_lib
  from experiments import optimizers
  from experiments import parallel
  from experiments import paths
  from experiments import train

  config = load_run_config(workdir)
  for key, value in (overrides or {}).items():
    config_lib.set_by_path(config, key, value)
  directory = paths.absolute(paths.join(workdir, "checkpoints"))
  steps = checkpoint.steps_on_disk(directory)
  if not steps:
    raise FileNotFoundError(f"no checkpoint in {directory}.")
  if step is not None and step >= 0 and step not in steps:
    raise ValueError(f"no checkpoint for step {step} in {directory}; available: {steps}.")
  # The same manifest check as a resume; read-only here (nothing is moved).
  candidates = [step] if step is not None and step >= 0 else steps[::-1]
  for candidate in candidates:
    problem = checkpoint.verify(paths.join(directory, str(candidate)))
    if problem is None:
      step = candidate
      break
    logging.getLogger("experiments").warning("Checkpoint step %d in %s is damaged (%s).", candidate, directory, problem)
  else:
    raise ValueError(f"no intact checkpoint among steps {candidates} in {directory}.")
  dataset = data.get_dataset(config)
  splits = tuple(splits or config.eval_splits)
  unknown = set(splits) - (set(dataset.splits) | {"train"})
  if unknown:
    raise ValueError(f"splits {sorted(unknown)} not in {dataset.name!r} (splits {dataset.splits}).")
  devices = jax.local_devices()
  if config.eval_batch_size % (len(devices) * jax.process_count()):
    raise ValueError(f"eval_batch_size={config.eval_batch_size} is not divisible by the "
                     f"{len(devices) * jax.process_count()} devices; pass --eval_batch_size.")

  with model_lib.precision_policy(config.precision):
    model = model_lib.build_model(config.model)
    with ocp.CheckpointManager(directory) as manager:
      restored = manager.restore(step, args=ocp.args.StandardRestore())
    params, state = restored["params"], restored["state"]
    # The checkpoint must belong to this config's model: same tree and shapes as a fresh init.
    batch = next(dataset.eval_batches(splits[0], len(devices)))
    fresh = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), batch["inputs"][:1],
                                              is_training=True, step=np.int32(0)))
    shapes = lambda tree: jax.tree.map(np.shape, tree)
    if shapes((params, state)) != shapes(fresh):
      raise ValueError(f"checkpoint {directory}/{step} does not match the model in "
                       f"{workdir}/config.json.")
    layout = parallel.MeshLayout(optimizers.AXIS)
    eval_step = layout.compile(model_lib.make_eval_fn(model, config, layout.axis),
                               num_replicated=2, num_args=4)
    _, _, eval_key = jax.random.split(jax.random.PRNGKey(config.seed), 3)  # as in train.run
    results = train.evaluate_splits(eval_step, layout.replicate(params), layout.replicate(state),
                                    dataset, splits, config.eval_batch_size, step, eval_key, layout)
  return {"step": int(step), **results}


def main(argv):
  del argv
  from experiments import log
  log.setup()
  overrides = {}
  if _DATA_DIR.value is not None:
    overrides["dataset.data_dir"] = _DATA_DIR.value
  if _BATCH.value:
    overrides["eval_batch_size"] = _BATCH.value
  try:
    result = evaluate_checkpoint(_WORKDIR.value, _STEP.value, _SPLITS.value, overrides)
  except (FileNotFoundError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    sys.exit(2)
  import jax
  if jax.process_index() == 0:
    from experiments import paths
    out = paths.join(_WORKDIR.value, "eval", f"step_{result['step']}.json")
    paths.makedirs(paths.join(_WORKDIR.value, "eval"))
    paths.write_text_atomic(out, json.dumps(result, indent=2, sort_keys=True))
  print(json.dumps(result, sort_keys=True))


if __name__ == "__main__":
  app.run(main)
