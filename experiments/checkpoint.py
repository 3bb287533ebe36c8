"""Atomic orbax checkpoints of the training state, kept to a configurable number.

Orbax writes each checkpoint into a temporary directory and renames it when
complete, so a run killed mid-save leaves the previous checkpoint intact.
Checkpoints hold one (unreplicated) copy of params, Haiku state and optimizer
state plus the step; restoring needs a template of the same structure (from a
fresh initialization), which also checks that the workdir belongs to the same
model.
"""

from __future__ import annotations

import os
from typing import Any

import jax
import numpy as np
import orbax.checkpoint as ocp


class Checkpointer:

  def __init__(self, directory: str, keep: int):
    self.directory = os.path.abspath(directory)
    options = ocp.CheckpointManagerOptions(
        max_to_keep=max(keep, 1), create=True, enable_async_checkpointing=False)
    self._manager = ocp.CheckpointManager(self.directory, options=options)

  def latest_step(self) -> int | None:
    return self._manager.latest_step()

  def path(self, step: int) -> str:
    return os.path.join(self.directory, str(step))

  def save(self, step: int, tree: Any) -> str:
    tree = jax.tree.map(np.asarray, jax.device_get(tree))
    self._manager.save(step, args=ocp.args.StandardSave(tree), force=True)
    self._manager.wait_until_finished()
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
