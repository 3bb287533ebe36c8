"""Atomic, verified orbax checkpoints of the training state.

Orbax writes each checkpoint into a temporary directory and renames it when
complete (on object stores, which cannot rename, it writes a commit file last
instead), so a run killed mid-save leaves the previous checkpoint intact; the
unfinished writes such a kill leaves behind are removed when the next run
opens the directory. Every file access goes through experiments.paths. After each save a `manifest.json` with the size and
SHA-256 of every file is written into the checkpoint; before a resume the
newest checkpoint is checked against it, and a damaged one (truncated or
altered file) is moved to `<workdir>/damaged_checkpoints/` with a warning
naming its step, and the newest intact older one is used instead.

Kept: the newest `keep` checkpoints, plus (with `keep_every` > 0) every
checkpoint whose step is a multiple of `keep_every`, for good. Checkpoints
hold one (unreplicated) copy of params, Haiku state and optimizer state plus
the step; restoring needs a template of the same structure (from a fresh
initialization).
"""

from __future__ import annotations

import contextlib
import errno
import json
import logging as pylogging
import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp

from experiments import paths

logging = pylogging.getLogger("experiments")

MANIFEST = "manifest.json"
TMP_MARKER = ".orbax-checkpoint-tmp"
COMMIT_FILE = "commit_success.txt"  # orbax's mark of a finished save where it cannot rename


class CheckpointWriteError(OSError):
  """A checkpoint could not be written (disk full, quota, ...); older checkpoints are intact."""

  def __str__(self):
    return self.strerror


# How tensorstore reports a full disk or quota (a ValueError, not an OSError).
_STORAGE_ERRORS = ("No space left on device", "Disk quota exceeded", "os_error_code='28'",
                   "os_error_code='122'")


class _DropOrbaxThreadErrors(pylogging.Filter):
  """Orbax's writer threads log a failed write with its traceback once per thread; the
  exception raised from save() carries the same cause, so those copies are dropped."""

  def filter(self, record):
    return not (record.levelno >= pylogging.ERROR and "orbax" in record.pathname)


@contextlib.contextmanager
def _quiet_orbax_thread_errors():
  logger, drop = pylogging.getLogger("absl"), _DropOrbaxThreadErrors()
  handlers = [logger, *logger.handlers, *pylogging.getLogger().handlers]
  for h in handlers:
    h.addFilter(drop)
  try:
    yield
  finally:
    for h in handlers:
      h.removeFilter(drop)


def _storage_error(e: Exception) -> tuple[int | None, str] | None:
  """(errno, reason) if `e` is a storage failure rather than a bug."""
  if isinstance(e, OSError):
    return e.errno, os.strerror(e.errno) if e.errno else str(e)
  text = str(e)
  for marker in _STORAGE_ERRORS:
    if marker in text:
      code = errno.EDQUOT if ("quota" in marker or "122" in marker) else errno.ENOSPC
      return code, os.strerror(code)
  return None


def _files(directory: str) -> list[str]:
  return sorted(rel for rel in paths.files(directory) if rel != MANIFEST)


def write_manifest(directory: str) -> None:
  """{relative path: [size, sha256]} of every file of a finished checkpoint, written atomically."""
  manifest = {rel: list(paths.digest(paths.join(directory, rel))) for rel in _files(directory)}
  paths.write_text_atomic(paths.join(directory, MANIFEST), json.dumps(manifest, indent=1, sort_keys=True))


def verify(directory: str) -> str | None:
  """None if the checkpoint matches its manifest (or has none, e.g. killed before writing it:
  orbax committed it complete); else what is wrong."""
  path = paths.join(directory, MANIFEST)
  if not paths.exists(path):
    return None
  try:
    manifest = json.loads(paths.read_text(path))
  except (OSError, ValueError) as e:
    return f"unreadable {MANIFEST} ({e})"
  for rel, (size, digest) in sorted(manifest.items()):
    file = paths.join(directory, rel)
    if not paths.exists(file):
      return f"{rel} is missing"
    actual_size, actual_digest = paths.digest(file)
    if actual_size != size:
      return f"{rel} has {actual_size} bytes, {size} when written"
    if actual_digest != digest:
      return f"{rel} differs from its checksum when written"
  return None


def _committed(directory: str, name: str) -> bool:
  """A step directory orbax finished: on local disks every one not named as temporary (orbax
  renames it when complete); on object stores (no rename) those with orbax's commit file."""
  if paths.is_local(directory):
    return True
  return paths.exists(paths.join(directory, name, COMMIT_FILE))


def remove_stale_tmp(directory: str) -> list[str]:
  """Deletes the unfinished writes of saves that were killed mid-write."""
  removed = []
  for name in paths.listdir(directory):
    if TMP_MARKER in name or (name.isdigit() and not _committed(directory, name)):
      paths.remove(paths.join(directory, name))
      removed.append(name)
  if removed:
    logging.warning("Removed %d unfinished checkpoint write(s) in %s: %s", len(removed), directory,
                    ", ".join(removed))
  return removed


def steps_on_disk(directory: str) -> list[int]:
  """The steps of the complete checkpoints in `directory`."""
  return sorted(int(n) for n in paths.listdir(directory)
                if n.isdigit() and paths.isdir(paths.join(directory, n)) and _committed(directory, n))


def drop_damaged(directory: str, quarantine: str, chief: bool = True) -> list[int]:
  """Checks checkpoints newest first; moves damaged ones to `quarantine` until an intact one.

  Returns the skipped steps. Every process checks (and so skips the same
  steps on a shared filesystem); only the chief moves files.
  """
  skipped = []
  for step in reversed(steps_on_disk(directory)):
    path = paths.join(directory, str(step))
    problem = verify(path)
    if problem is None:
      break
    skipped.append(step)
    if not chief:
      continue
    logging.warning("Checkpoint step %d in %s is damaged (%s); skipping it and resuming from the "
                    "newest intact older one. It is moved to %s.", step, path, problem, quarantine)
    paths.move_tree(path, paths.join(quarantine, str(step)))
  return skipped


class Checkpointer:
  """Saves and restores the training state in `directory` (see the module docstring)."""

  def __init__(self, directory: str, keep: int, keep_every: int = 0, chief: bool = True):
    self.directory = paths.absolute(directory)
    self.chief = chief
    if chief:
      remove_stale_tmp(self.directory)
    self.skipped = drop_damaged(self.directory, paths.join(self.directory.rsplit("/", 1)[0],
                                                           "damaged_checkpoints"), chief)
    policies = [ocp.checkpoint_managers.LatestN(max(keep, 1))]
    if keep_every > 0:
      policies.append(ocp.checkpoint_managers.EveryNSteps(keep_every))
    options = ocp.CheckpointManagerOptions(
        preservation_policy=ocp.checkpoint_managers.AnyPreservationPolicy(policies),
        create=True, enable_async_checkpointing=False)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    """The newest intact step (also on processes that saw a damaged one before it was moved)."""
    steps = [s for s in self._manager.all_steps() if s not in self.skipped]
    return max(steps) if steps else None

  def path(self, step: int) -> str:
    return paths.join(self.directory, str(step))

  def save(self, step: int, tree: Any) -> str:
    """Writes the checkpoint and its manifest; raises CheckpointWriteError on a full disk."""
    tree = jax.tree.map(np.asarray, jax.device_get(tree))
    self.skipped = [s for s in self.skipped if s != step]
    try:
      with _quiet_orbax_thread_errors():
        self._manager.save(step, args=ocp.args.StandardSave(tree), force=True)
        self._manager.wait_until_finished()
      if self.chief:
        write_manifest(self.path(step))
    except (OSError, ValueError) as e:
      storage = _storage_error(e)
      if storage is None:
        raise
      if self.chief:
        remove_stale_tmp(self.directory)
      previous = [s for s in steps_on_disk(self.directory) if s != step]
      kept = (f"the previous checkpoint (step {previous[-1]}) is intact"
              if previous else "no earlier checkpoint exists")
      code, reason = storage
      hint = "free disk space, then " if code in (errno.ENOSPC, errno.EDQUOT) else ""
      raise CheckpointWriteError(
          code, f"could not write checkpoint step {step} to {self.directory}: {reason}; {kept}; "
          f"{hint}re-run the same command to resume.") from e
    return self.path(step)

  def restore(self, step: int, template: Any) -> Any:
    abstract = jax.tree.map(lambda x: np.zeros(np.shape(x), np.asarray(x).dtype), template)
    try:
      return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
    except (ValueError, KeyError) as e:
      raise ValueError(
          f"checkpoint {self.path(step)} does not match this config's model/optimizer "
          f"(different architecture or optimizer in the same workdir?): {e}") from e

  def close(self):
    self._manager.close()
