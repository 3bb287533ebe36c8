"""Runs experiments.main with one injected fault (used by test_faults.py as a subprocess).

usage: python fault_driver.py <fault> <step> <experiments.main flags...>

Faults: kill_before_commit (SIGKILL after the checkpoint's files are written,
before orbax renames its temporary directory), kill_before_manifest (SIGKILL
after the rename, before the checksum manifest), disk_full (the checkpoint
write fails the way tensorstore reports ENOSPC, after writing part of it).
"""

import os
import signal
import sys

from absl import app
import orbax.checkpoint as ocp
from orbax.checkpoint._src.path import atomicity

from experiments import checkpoint
from experiments import main as launcher

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
else:
  raise SystemExit(f"unknown fault {fault!r}")

sys.argv = ["experiments.main"] + sys.argv[3:]
app.run(launcher.main, flags_parser=launcher.parse_flags)
