r"""Launcher: python -m experiments.main --config=configs/<group>/<name>.py[:variant] --workdir=DIR.

Overrides: --config.<dotted.key>=<value> (unknown keys fail with close matches).
Re-running with the same --workdir resumes from its last checkpoint.

Multi-host: on TPU pods `--distributed` (jax.distributed.initialize() finds the
pod); elsewhere pass --coordinator_address=HOST:PORT --num_processes=N
--process_id=I on every host (CPU hosts use gloo collectives).
"""

from __future__ import annotations

import json
import sys

from absl import app
from absl import flags
from ml_collections import config_flags

_CONFIG = config_flags.DEFINE_config_file("config", None, "Experiment config file (path[:variant]).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, metrics and summary.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False,
                                 "Call jax.distributed.initialize() (auto-detection on TPU pods / SLURM).")
_COORDINATOR = flags.DEFINE_string("coordinator_address", "", "HOST:PORT of process 0 (multi-host).")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", 1, "Number of processes (multi-host).")
_PROCESS_ID = flags.DEFINE_integer("process_id", 0, "This process's index (multi-host).")
flags.mark_flags_as_required(["config", "workdir"])


def initialize_distributed(coordinator: str, num_processes: int, process_id: int, auto: bool) -> None:
  """jax.distributed setup; CPU hosts need the gloo collectives."""
  import jax
  if coordinator:
    # Only used by CPU devices; GPU/TPU collectives are unaffected.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator, num_processes=num_processes,
                               process_id=process_id)
  elif auto:
    jax.distributed.initialize()


def main(argv):
  del argv
  from experiments import log
  log.setup()
  initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                         _DISTRIBUTED.value)
  from experiments import train
  summary = train.run(_CONFIG.value, _WORKDIR.value)
  final = summary["final"]
  print(json.dumps({"final": final}, sort_keys=True))


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing, with a clean error for misspelled --config.<key> overrides."""
  try:
    return flags.FLAGS(argv)
  except (AttributeError, KeyError) as e:
    from experiments import config_lib
    spec = next((a.split("=", 1)[1] for a in argv if a.startswith("--config=")), None)
    keys = [a[len("--config."):] for a in argv if a.startswith("--config.")]
    message = str(e)
    if spec:
      try:
        config_lib.check_overrides(config_lib.load_config(spec), keys)
      except KeyError as unknown:
        message = unknown.args[0]
    print(f"error: {message}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  app.run(main, flags_parser=parse_flags)
