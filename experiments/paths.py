"""Workdir files through one path layer, for local directories and object stores alike.

Every file the framework reads or writes in a workdir (config.json,
config_history.jsonl, metrics.jsonl, summary.json, the lock, checkpoint
manifests, damaged-checkpoint moves) goes through these functions, which use
`etils.epath`, as orbax does for the checkpoints themselves: local paths go to
the operating system, `gs://` (and `s3://`, ...) to TensorFlow's `tf.io.gfile`
or fsspec. Object stores have no rename and no append, so on them a file is
written whole (a single object write is atomic there) and an "appended" file
is rewritten.

Paths are plain strings everywhere else; local ones are made absolute.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import socket
import threading
import time
import uuid
from typing import Iterator

from etils import epath

_URI = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def is_local(path: str) -> bool:
  """False for `scheme://...` paths (object stores)."""
  return not _URI.match(str(path))


def absolute(path: str) -> str:
  return os.path.abspath(path) if is_local(path) else str(path).rstrip("/")


def join(path: str, *names: str) -> str:
  return os.path.join(str(path), *names) if is_local(path) else "/".join([str(path).rstrip("/"), *names])


def _p(path: str) -> epath.Path:
  return epath.Path(path)


def exists(path: str) -> bool:
  return _p(path).exists()


def isdir(path: str) -> bool:
  return _p(path).is_dir()


def makedirs(path: str) -> None:
  _p(path).mkdir(parents=True, exist_ok=True)


def listdir(path: str) -> list[str]:
  """Names in a directory ([] if it does not exist)."""
  p = _p(path)
  if not p.is_dir():
    return []
  return sorted(child.name for child in p.iterdir())


def read_text(path: str) -> str:
  return _p(path).read_text()


def read_bytes(path: str) -> bytes:
  return _p(path).read_bytes()


def digest(path: str) -> tuple[int, str]:
  """(size in bytes, SHA-256) of a file, in one read."""
  h, n = hashlib.sha256(), 0
  with _p(path).open("rb") as f:
    for block in iter(lambda: f.read(1 << 20), b""):
      h.update(block)
      n += len(block)
  return n, h.hexdigest()


def write_text_atomic(path: str, text: str) -> None:
  """Readers see the old or the new content, never a part (local: temporary file + rename)."""
  if not is_local(path):
    _p(path).write_text(text)
    return
  tmp = f"{path}.tmp"
  with open(tmp, "w") as f:
    f.write(text)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


def write_bytes(path: str, data: bytes) -> None:
  _p(path).write_bytes(data)


def append_text(path: str, text: str) -> None:
  """Appends (object stores: rewrites the object with `text` added)."""
  if is_local(path):
    with open(path, "a") as f:
      f.write(text)
    return
  old = read_text(path) if exists(path) else ""
  _p(path).write_text(old + text)


def remove(path: str) -> None:
  p = _p(path)
  if p.is_dir():
    p.rmtree()
  elif p.exists():
    p.unlink()


def files(directory: str) -> Iterator[str]:
  """Paths of all files under `directory`, relative to it ('/'-separated)."""
  root = _p(directory)
  for parent, _, names in root.walk():
    for name in names:
      yield str((parent / name).relative_to(root))


def move_tree(source: str, target: str) -> None:
  """Moves a directory (object stores: copies every file, then deletes the source)."""
  if exists(target):
    remove(target)
  if is_local(source) and is_local(target):
    makedirs(os.path.dirname(target))
    os.replace(source, target)
    return
  for rel in list(files(source)):
    makedirs(os.path.dirname(join(target, rel)))
    _p(join(source, rel)).copy(join(target, rel), overwrite=True)
  remove(source)


def unique_token() -> str:
  return uuid.uuid4().hex


class WorkdirInUse(RuntimeError):
  """Another live run holds the workdir (two runs would overwrite each other's checkpoints)."""


def _process_start(pid: int) -> str | None:
  """A process's start time (Linux /proc), None where unknown; tells a reused pid apart."""
  try:
    with open(f"/proc/{pid}/stat") as f:
      return f.read().rsplit(")", 1)[1].split()[19]
  except (OSError, IndexError):
    return None


def _running(pid: int, start: str | None) -> bool:
  try:
    os.kill(pid, 0)
  except ProcessLookupError:
    return False
  except PermissionError:
    pass
  return start is None or _process_start(pid) in (None, start)


class WorkdirLock:
  """`<workdir>/.lock`, a lease that needs no flock (object stores have none).

  The holder writes {token, host, pid, its start time, renewal time} and
  rewrites it every `lease_s / 4` seconds from a thread, and deletes it when
  the run ends. A lock counts as held while its process runs (same host), or,
  from another host, while it was renewed less than `lease_s` ago; so a run
  killed outright blocks its workdir for at most `lease_s` seconds on other
  hosts and not at all on its own. Two launches racing for a free lock each
  write, then read back: the one whose token is not there refuses.
  """

  def __init__(self, workdir: str, lease_s: float = 60.0):
    self.path = join(workdir, ".lock")
    self.workdir = workdir
    self.lease_s = lease_s
    self.token = unique_token()
    self._stop = None

  def _record(self) -> dict:
    pid = os.getpid()
    return {"token": self.token, "host": socket.gethostname(), "pid": pid,
            "start": _process_start(pid), "renewed": time.time()}

  def _read(self) -> dict | None:
    """The lease record, or None where there is none (a lock file of the earlier flock
    scheme holds a bare pid, and a flock dies with its process: nothing holds it)."""
    try:
      record = json.loads(read_text(self.path))
    except (OSError, ValueError):
      return None
    return record if isinstance(record, dict) else None

  def _held_by_other(self, record: dict | None) -> bool:
    if not record or record.get("token") == self.token:
      return False
    if record.get("host") == socket.gethostname():
      return _running(int(record.get("pid", 0)) or -1, record.get("start"))
    return time.time() - float(record.get("renewed", 0)) < self.lease_s

  def _refuse(self, record: dict) -> None:
    where = "" if record.get("host") == socket.gethostname() else f" on host {record.get('host')}"
    age = time.time() - float(record.get("renewed", 0))
    raise WorkdirInUse(
        f"{self.workdir} is in use by another run (pid {record.get('pid')}){where}, whose lock was "
        f"renewed {age:.0f} s ago; wait for it to finish or stop it, or pass a different --workdir.")

  def _write(self) -> None:
    write_text_atomic(self.path, json.dumps(self._record(), sort_keys=True))

  def __enter__(self):
    record = self._read()
    if self._held_by_other(record):
      self._refuse(record)
    self._write()
    record = self._read()
    if self._held_by_other(record):  # another launch wrote after us
      self._refuse(record)
    self._stop = threading.Event()

    def renew():
      while not self._stop.wait(self.lease_s / 4):
        try:
          self._write()
        except OSError:
          pass  # retried at the next renewal; the lease outlives a few failures

    threading.Thread(target=renew, daemon=True).start()
    return self

  def __exit__(self, *exc):
    self._stop.set()
    record = self._read()
    if record and record.get("token") == self.token:
      remove(self.path)
