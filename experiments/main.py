r"""Launcher: python -m experiments.main --config=configs/<group>/<name>.py[:variant] --workdir=DIR.

Overrides: --config.<dotted.key>=<value> (unknown keys fail with close matches).
Re-running with the same --workdir resumes from its last checkpoint (a changed
config is refused, naming the keys, unless only its length or cadence changed).
User errors (config file, overrides, values, names) end in a short `error:`
message with exit status 2 before anything is written; SIGTERM (or Ctrl-C)
saves a checkpoint and exits with status 143 (130); a second Ctrl-C stops at once.
--dry_run builds everything, runs one step on zeros of the real shapes and prints the
memory per device (no workdir).

Multi-host: on TPU pods `--distributed` (jax.distributed.initialize() finds the
pod); elsewhere pass --coordinator_address=HOST:PORT --num_processes=N
--process_id=I on every host (CPU hosts use gloo collectives).
"""

from __future__ import annotations

import errno
import json
import os
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
_DRY_RUN = flags.DEFINE_bool("dry_run", False, "Build everything and run one training and one "
                              "evaluation step on zeros of the real batch shapes; print the memory "
                              "per device as JSON. No workdir is needed or written.")
flags.mark_flags_as_required(["config"])


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


def fail(message: str, status: int = 2, hard: bool = False) -> None:
  """Ends the launch with a short message (no traceback), the cause on the last line.

  `hard` skips interpreter shutdown, where orbax's writer threads would print
  "Event loop is closed" tracebacks after the message.
  """
  sys.stdout.flush()
  print(f"error: {message}", file=sys.stderr, flush=True)
  if hard:
    os._exit(status)
  sys.exit(status)


def load_config_flag():
  """--config's value; a missing or failing config file is a short error, not a traceback."""
  try:
    config = _CONFIG.value
    config.keys()  # a file that failed to load raises here
    return config
  except (OSError, ValueError, KeyError, TypeError) as e:
    cause = e
    while cause.__cause__ is not None or cause.__context__ is not None:
      cause = cause.__cause__ or cause.__context__
    lines = [l.strip() for l in str(cause).splitlines() if l.strip()]
    fail(f"--config: could not load the config file: {lines[-1] if lines else type(cause).__name__}")


def main(argv):
  del argv
  config = load_config_flag()
  from experiments import config_lib
  from experiments import validate
  try:
    validate.check_config(config, log_warnings=False)  # before devices are set up; train.run logs
  except validate.ConfigError as e:
    fail(str(e))
  from experiments import log
  log.setup()
  initialize_distributed(_COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value,
                         _DISTRIBUTED.value)
  from experiments import checkpoint
  from experiments import train
  if _DRY_RUN.value:
    try:
      report = train.dry_run(config)
    except validate.ConfigError as e:
      fail(str(e))
    print(json.dumps(report, indent=2, sort_keys=True))
    return
  if not _WORKDIR.value:
    fail("--workdir is required (or pass --dry_run).")
  try:
    summary = train.run(config, _WORKDIR.value)
  except (validate.ConfigError, config_lib.ConfigChanged) as e:
    fail(str(e))
  except (train.WorkdirInUse, train.TrainingDiverged) as e:
    fail(str(e), status=1)
  except checkpoint.CheckpointWriteError as e:
    fail(str(e), status=1, hard=True)
  except OSError as e:
    if e.errno not in (errno.ENOSPC, errno.EDQUOT):
      raise
    fail(f"{e.filename or _WORKDIR.value}: {e.strerror}; free disk space, then re-run the same "
         "command to resume from the last checkpoint.", status=1, hard=True)
  final = summary["final"]
  print(json.dumps({"final": final}, sort_keys=True))


def parse_flags(argv: list[str]) -> list[str]:
  """absl flag parsing, with a clean error for misspelled --config.<key> overrides."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:  # e.g. --config.train_steps=abc, or get_config() raising
    lines = [l for l in str(e).splitlines() if l.strip()]
    short = lines[0] if len(lines) < 3 else f"{lines[0].rstrip(':')}: {lines[-1].strip()}"
    print(f"error: {short}", file=sys.stderr)
    sys.exit(2)
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
