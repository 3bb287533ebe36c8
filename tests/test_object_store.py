"""A workdir on an object store (gs://), offline: preempted, resumed, locked, damaged checkpoints.

The stand-in: `gs://` paths resolve, through etils.epath (the library the
framework's path layer and orbax both use), to a hidden local directory, and
tensorstore (orbax's array writer) gets a file kvstore there in place of the
GCS one. Orbax then takes its object-store code paths (no renames: a commit
file marks a finished checkpoint). Anything that reached a `gs://` path with
`os` or `open()` instead would create a relative `gs:` directory in the
working directory, which every test checks stays empty.
"""

import json
import logging
import os
import signal
import socket
import time

import pytest
from etils import epath
from etils.epath import backend as epath_backend
from etils.epath import gpath
from etils.epath import register as epath_register
from orbax.checkpoint._src.path import gcs_utils

from experiments import checkpoint
from experiments import config_lib
from experiments import paths
from experiments import train

HERE = os.path.dirname(os.path.abspath(__file__))
TINY = os.path.join(HERE, "tiny_config.py")
WORKDIR = "gs://bucket/run"


class _BucketsBackend(epath_backend._OsPathBackend):  # pylint: disable=protected-access
  """epath's local backend with gs://<bucket>/<key> mapped to <root>/<bucket>/<key>; like an
  object store, writing a file needs no parent directory."""

  root = ""

  def local(self, path):
    path = os.fspath(path)
    return os.path.join(self.root, path[len("gs://"):]) if path.startswith("gs://") else path

  def remote(self, path):
    rel = os.path.relpath(path, self.root)
    return "gs://" + rel if not rel.startswith("..") else path


def _mapped(name):
  base = getattr(epath_backend._OsPathBackend, name)  # pylint: disable=protected-access

  def method(self, *args, **kwargs):
    args = [self.local(a) if isinstance(a, (str, os.PathLike)) else a for a in args]
    if name in ("open", "copy", "rename", "replace") and (name != "open" or "r" not in args[1]):
      os.makedirs(os.path.dirname(args[-1] if name != "open" else args[0]), exist_ok=True)
    out = base(self, *args, **kwargs)
    if name == "walk":
      return ((self.remote(r), d, f) for r, d, f in out)
    if name == "glob":
      return [self.remote(p) for p in out]
    return out
  return method


for _name in ("open", "exists", "isdir", "listdir", "glob", "walk", "makedirs", "mkdir", "rmtree",
              "remove", "rename", "replace", "copy", "stat"):
  setattr(_BucketsBackend, _name, _mapped(_name))


class _BucketPath(gpath.PosixGPath):
  backend = _BucketsBackend()

  @property
  def _backend(self):
    return self.backend


@pytest.fixture
def bucket(tmp_path, monkeypatch):
  """gs:// served from tmp_path/buckets; yields that local root."""
  root = tmp_path / "buckets"
  (root / "bucket").mkdir(parents=True)
  monkeypatch.setattr(_BucketPath.backend, "root", str(root))
  monkeypatch.setitem(epath_register._URI_PREFIXES_TO_CLS, "gs://", _BucketPath)  # pylint: disable=protected-access
  monkeypatch.setattr(gcs_utils, "is_hierarchical_namespace_enabled", lambda path: False)
  monkeypatch.setattr(gcs_utils, "get_kvstore_for_gcs",
                      lambda path: {"driver": "file", "path": _BucketPath.backend.local(path)})
  cwd = tmp_path / "cwd"
  cwd.mkdir()
  monkeypatch.chdir(cwd)
  yield root
  assert os.listdir(cwd) == [], "something bypassed the path layer (a local 'gs:' directory)"


def load(**overrides):
  return config_lib.load_config(TINY, overrides)


def evals(text):
  return [r for r in map(json.loads, text.splitlines()) if r["split"] != train.TRAIN_STEP_SPLIT]


def test_the_stand_in_is_not_the_local_filesystem(bucket):
  paths.write_text_atomic(f"{WORKDIR}/a.txt", "x")
  assert epath.Path(f"{WORKDIR}/a.txt").read_text() == "x"
  assert (bucket / "bucket" / "run" / "a.txt").read_text() == "x"
  assert not os.path.exists(f"{WORKDIR}/a.txt")


def test_preempted_run_resumes_exactly_in_an_object_store_workdir(bucket, tmp_path, monkeypatch,
                                                                   caplog):
  caplog.set_level(logging.INFO, logger="experiments")
  reference_dir = str(tmp_path / "local")
  with monkeypatch.context() as local:
    local.chdir(tmp_path)
    reference = train.run(load(), reference_dir)
  calls, unreplicate = [], train._unreplicate

  def signalling_unreplicate(tree):  # SIGTERM during the checkpoint save at step 6
    calls.append(None)
    if len(calls) - 1 == 10:
      os.kill(os.getpid(), signal.SIGTERM)
    return unreplicate(tree)

  monkeypatch.setattr(train, "_unreplicate", signalling_unreplicate)
  with pytest.raises(SystemExit) as info:
    train.run(load(), WORKDIR)
  assert info.value.code == 143
  monkeypatch.setattr(train, "_unreplicate", unreplicate)
  ckpts = f"{WORKDIR}/checkpoints"
  assert checkpoint.steps_on_disk(ckpts) == [6, 7]
  assert paths.exists(f"{ckpts}/7/{checkpoint.COMMIT_FILE}")  # orbax's object-store commit
  assert checkpoint.verify(f"{ckpts}/7") is None and paths.exists(f"{ckpts}/7/{checkpoint.MANIFEST}")
  assert f"Preempted: checkpoint at step 7 in {ckpts}/7;" in caplog.text
  assert not paths.exists(f"{WORKDIR}/.lock")  # released

  caplog.clear()
  summary = train.run(load(), WORKDIR)
  assert "from step 7 " in caplog.text
  assert summary == reference
  assert json.loads(paths.read_text(f"{WORKDIR}/summary.json")) == reference
  with open(os.path.join(reference_dir, "metrics.jsonl")) as f:
    assert evals(paths.read_text(f"{WORKDIR}/metrics.jsonl")) == evals(f.read())
  assert any(n.startswith("events.out.tfevents") for n in paths.listdir(f"{WORKDIR}/tensorboard"))
  assert train.run(load(), WORKDIR) == reference  # finished: read from summary.json


def test_lock_without_flock(bucket):
  lock_path = f"{WORKDIR}/.lock"
  paths.makedirs(WORKDIR)
  other = {"token": "other", "host": "another-host", "pid": 1, "start": None,
           "renewed": time.time()}
  paths.write_text_atomic(lock_path, json.dumps(other))
  with pytest.raises(train.WorkdirInUse, match=r"in use by another run \(pid 1\) on host another-host"):
    train.run(load(train_steps=1), WORKDIR)
  # A lease not renewed for longer than the lease time: its holder is gone.
  other["renewed"] = time.time() - 3600
  paths.write_text_atomic(lock_path, json.dumps(other))
  with paths.WorkdirLock(WORKDIR) as lock:
    held = json.loads(paths.read_text(lock_path))
    assert held["token"] == lock.token and held["host"] == socket.gethostname()
    with pytest.raises(paths.WorkdirInUse, match=rf"\(pid {os.getpid()}\), whose lock"):
      with paths.WorkdirLock(WORKDIR):
        pass
  assert not paths.exists(lock_path)


def test_damaged_checkpoint_is_moved_and_unfinished_write_removed(bucket):
  ckpts = f"{WORKDIR}/checkpoints"
  for step in (3, 6):
    paths.makedirs(f"{ckpts}/{step}/state")
    paths.write_text_atomic(f"{ckpts}/{step}/state/data", f"weights of step {step}")
    paths.write_text_atomic(f"{ckpts}/{step}/{checkpoint.COMMIT_FILE}", "")
    checkpoint.write_manifest(f"{ckpts}/{step}")
  paths.makedirs(f"{ckpts}/9/state")  # a save killed before orbax's commit file
  assert checkpoint.steps_on_disk(ckpts) == [3, 6]
  paths.write_text_atomic(f"{ckpts}/6/state/data", "WEIGHTS of step 6")  # same size
  assert "differs from its checksum" in checkpoint.verify(f"{ckpts}/6")
  assert checkpoint.remove_stale_tmp(ckpts) == ["9"]
  assert checkpoint.drop_damaged(ckpts, f"{WORKDIR}/damaged_checkpoints") == [6]
  assert paths.listdir(ckpts) == ["3"]
  assert paths.read_text(f"{WORKDIR}/damaged_checkpoints/6/state/data") == "WEIGHTS of step 6"


def test_lock_file_of_the_earlier_flock_scheme_does_not_block_a_resume(tmp_path):
  """Workdirs made before the lease lock hold a bare pid in .lock (a flock, released when
  its process ended): re-launching there must take the lock, not crash on the record."""
  workdir = str(tmp_path / "run")
  os.makedirs(workdir)
  with open(os.path.join(workdir, ".lock"), "w") as f:
    f.write(str(os.getpid()))
  with paths.WorkdirLock(workdir) as lock:
    assert json.loads(paths.read_text(f"{workdir}/.lock"))["token"] == lock.token
  assert not os.path.exists(os.path.join(workdir, ".lock"))
