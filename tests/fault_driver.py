"""Runs experiments.main with one injected fault (used by test_faults.py as a subprocess).

usage: python fault_driver.py <fault> <step> <experiments.main flags...>

Faults: kill_before_commit (SIGKILL after the checkpoint's files are written,
before orbax renames its temporary directory), kill_before_manifest (SIGKILL
after the rename, before the checksum manifest), disk_full (the checkpoint
write fails the way tensorstore reports ENOSPC, after writing part of it);
sigterm_at_host_copy / sigkill_at_host_copy (the signal to this process at the
<step>-th (0-based) call of the host copy `train._unreplicate`, which the
metrics flush, the evaluation and the checkpoint save go through),
sigterm_at_update (SIGTERM while step <step> is dispatched).
"""

import os
import signal
import sys

from absl import app
import orbax.checkpoint as ocp
from orbax.checkpoint._src.path import atomicity

from experiments import checkpoint
from experiments import main as launcher
from experiments import optimizers
from experiments import train

fault, step = sys.argv[1], sys.argv[2]

if fault == "kill_before_commit":
  finalize = atomicity.AtomicRenameTemporaryPath.finalize

  async def killing_finalize(self, *args, **kwargs):
    if os.path.basename(str(self._final_path)) == step:
      os.kill(os.getpid(), signal.SIGKILL)
    return await finalize(self, *args, **kwargs)

  atomicity.AtomicRenameTemporaryPath.finalize = killing_finalize
elif fault == "kill_before_manifest":
  write_manifest = checkpoint.write_manifest

  def killing_write_manifest(directory):
    if os.path.basename(directory) == step:
      os.kill(os.getpid(), signal.SIGKILL)
    return write_manifest(directory)

  checkpoint.write_manifest = killing_write_manifest
elif fault == "disk_full":
  save = ocp.CheckpointManager.save

  def full_save(self, s, *args, **kwargs):
    if str(s) == step:
      tmp = os.path.join(str(self.directory), f"{s}.orbax-checkpoint-tmp")
      os.makedirs(tmp, exist_ok=True)
      with open(os.path.join(tmp, "partial"), "wb") as f:
        f.write(b"\0" * 1000)
      raise ValueError(  # the message tensorstore gives on a full tmpfs
          f'RESOURCE_EXHAUSTED: Error writing "params.linear.w/0.0" in OCDBT database at local file '
          f'"{tmp}/": Failed to write 6463488 bytes to file 18: No space left on device '
          "[os_error_code='28']")
    return save(self, s, *args, **kwargs)

  ocp.CheckpointManager.save = full_save
elif fault in ("sigterm_at_host_copy", "sigkill_at_host_copy"):
  unreplicate, calls = train._unreplicate, []
  signum = signal.SIGTERM if fault == "sigterm_at_host_copy" else signal.SIGKILL

  def signalling_unreplicate(tree):
    calls.append(None)
    if len(calls) - 1 == int(step):
      os.kill(os.getpid(), signum)
    return unreplicate(tree)

  train._unreplicate = signalling_unreplicate
elif fault == "sigterm_at_update":
  build_updater = optimizers.build_updater

  def signalling_build_updater(*args, **kwargs):
    updater = build_updater(*args, **kwargs)
    update = updater.update

    def signalling_update(params, state, opt_state, rng, batch, s):
      if s == int(step):
        os.kill(os.getpid(), signal.SIGTERM)
      return update(params, state, opt_state, rng, batch, s)

    updater.update = signalling_update
    return updater

  optimizers.build_updater = signalling_build_updater
else:
  raise SystemExit(f"unknown fault {fault!r}")

sys.argv = ["experiments.main"] + sys.argv[3:]
app.run(launcher.main, flags_parser=launcher.parse_flags)
