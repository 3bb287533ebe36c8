"""What the processes of one run agree on: when to stop for a preemption, and that all are alive.

A preemption notice (SIGTERM from a scheduler, a maintenance event, Ctrl-C)
often reaches only some hosts. `PreemptionAgreement` makes every process stop
after the same step: each step, every process contributes the signal it
received (0 for none) to a tiny all-gather over all devices, and reads the
result of the all-gather dispatched `lag` steps earlier (already computed, so
the host does not wait for the device pipeline to drain). All processes read
the same values at the same step, so they save the same checkpoint and exit
with the same status. One process needs no collective: the flag is read after
each step.

`LivenessWatch` notices a process that dies without a word (SIGKILL, OOM
kill, a crashed host's closed connection): every process holds a TCP
connection to process 0, and a connection that closes without an orderly
goodbye names the lost process. The survivors then end at once with a short
message, instead of hanging in a collective until the coordination service's
heartbeat timeout aborts them.
"""

from __future__ import annotations

import collections
import logging as pylogging
import signal
import socket
import threading
from typing import Callable

import jax
import numpy as np
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from experiments import parallel

logging = pylogging.getLogger("experiments")


class PreemptionFlag:
  """SIGTERM or SIGINT (Ctrl-C) sets a flag that the loop reads between steps (no host sync).

  A second Ctrl-C stops at once (KeyboardInterrupt; the last complete checkpoint stays).
  """

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.requested = False
    self.signum = signal.SIGTERM
    self._previous = {}

  def __enter__(self):
    if threading.current_thread() is threading.main_thread():
      self._previous = {s: signal.signal(s, self._handle) for s in self.SIGNALS}
    return self

  def _handle(self, signum, frame):
    if self.requested and signum == signal.SIGINT:
      raise KeyboardInterrupt
    again = " (Ctrl-C again to stop without it)" if signum == signal.SIGINT else ""
    where = f" by process {jax.process_index()}" if jax.process_count() > 1 else ""
    logging.warning("%s received%s: saving a checkpoint after the current step%s.",
                    signal.Signals(signum).name, where, again)
    self.requested, self.signum = True, signum

  def __exit__(self, *exc):
    for s, previous in self._previous.items():
      # None: the previous handler was installed outside Python (jax.distributed's
      # preemption notifier); it cannot be put back, so the default is.
      signal.signal(s, signal.SIG_DFL if previous is None else previous)


class PreemptionAgreement:
  """Every process learns of a preemption at the same step (see the module docstring).

  `check(step)` is called once after every training step on every process; it
  returns None, or {process index: signal number} of the processes that were
  signalled, the same on all processes at the same step.
  """

  def __init__(self, flag: PreemptionFlag, lag: int = 2):
    self.flag = flag
    self.lag = lag
    self.process_count = jax.process_count()
    if self.process_count > 1:
      devices = parallel.global_devices()
      mesh = Mesh(np.asarray(devices), ("processes",))
      self._local = jax.local_device_count()
      self._sharding = NamedSharding(mesh, P("processes"))
      self._global_shape = (len(devices),)
      # An all-gather: every device ends with every process's signal number.
      self._gather = jax.jit(lambda x: x * 1, out_shardings=NamedSharding(mesh, P()))
      self._pending: collections.deque = collections.deque()

  def _local_signal(self) -> int:
    return int(self.flag.signum) if self.flag.requested else 0

  def check(self, step: int) -> dict[int, int] | None:
    del step  # every process calls once per step, so the calls line up
    if self.process_count == 1:
      return {0: self._local_signal()} if self.flag.requested else None
    local = np.full((self._local,), self._local_signal(), np.int32)
    mine = jax.make_array_from_process_local_data(self._sharding, local, self._global_shape)
    self._pending.append(self._gather(mine))
    if len(self._pending) <= self.lag:
      return None
    gathered = np.asarray(self._pending.popleft().addressable_shards[0].data)
    signals = {p: int(gathered[p * self._local]) for p in range(self.process_count)}
    signals = {p: s for p, s in signals.items() if s}
    return signals or None


def describe(signals: dict[int, int]) -> str:
  """'SIGTERM reached process 1' for the agreed {process: signal number}."""
  by_signal: dict[int, list[int]] = {}
  for process, signum in sorted(signals.items()):
    by_signal.setdefault(signum, []).append(process)
  parts = []
  for signum, processes in sorted(by_signal.items()):
    who = ", ".join(map(str, processes))
    parts.append(f"{signal.Signals(signum).name} reached process{'es' if len(processes) > 1 else ''} {who}")
  return "; ".join(parts)


_ADDRESS_KEY = "experiments/liveness_address"
_BYE, _FAILED, _LOST = "bye", "failed", "lost"


class LivenessWatch:
  """Connections to process 0 that tell every process when another one is gone.

  `on_lost(process, how)` runs in a watcher thread when `process` closed its
  connection without a goodbye (`how`: "was killed or lost its connection")
  or reported an error ("stopped with an error"); it is expected to end this
  process. Leaving the `with` block normally or with SystemExit says goodbye;
  leaving it with another exception reports an error to the others.
  """

  def __init__(self, on_lost: Callable[[int, str], None], connect_timeout_s: int = 300):
    self.on_lost = on_lost
    self.process_index = jax.process_index()
    self.process_count = jax.process_count()
    self._timeout_ms = connect_timeout_s * 1000
    self._peers: dict[int, socket.socket] = {}
    self._lock = threading.Lock()
    self._closing = False
    self._lost = threading.Event()

  def __enter__(self):
    if self.process_count == 1:
      return self
    from jax._src import distributed  # pylint: disable=import-outside-toplevel
    client = distributed.global_state.client
    if self.process_index == 0:
      server = socket.create_server(("", 0))
      server.settimeout(self._timeout_ms / 1000)
      host = distributed.global_state.coordinator_address.rsplit(":", 1)[0].strip("[]")
      client.key_value_set(_ADDRESS_KEY, f"{host}:{server.getsockname()[1]}")
      try:
        for _ in range(self.process_count - 1):
          conn, _ = server.accept()
          conn.settimeout(None)
          peer = int(conn.makefile("r").readline())
          self._peers[peer] = conn
      except socket.timeout:
        missing = sorted(set(range(1, self.process_count)) - set(self._peers))
        raise RuntimeError(f"process(es) {missing} did not reach the training loop within "
                           f"{self._timeout_ms // 1000} s; see their logs.") from None
      finally:
        server.close()
    else:
      address = client.blocking_key_value_get(_ADDRESS_KEY, self._timeout_ms)
      host, port = address.rsplit(":", 1)
      conn = socket.create_connection((host, int(port)))
      conn.sendall(f"{self.process_index}\n".encode())
      self._peers[0] = conn
    for peer, conn in self._peers.items():
      threading.Thread(target=self._watch, args=(peer, conn), daemon=True).start()
    return self

  def _send(self, conn: socket.socket, message: str) -> None:
    try:
      conn.sendall(f"{message}\n".encode())
    except OSError:
      pass

  def _watch(self, peer: int, conn: socket.socket) -> None:
    lost, how = peer, "was killed or lost its connection"
    try:
      for line in conn.makefile("r"):
        words = line.split()
        if words == [_BYE]:
          return
        if words[:1] == [_FAILED]:
          how = "stopped with an error"
          break
        if words[:1] == [_LOST] and len(words) == 3:  # process 0 relays another's loss
          lost, how = int(words[1]), words[2].replace("_", " ")
          break
    except OSError:  # closed by __exit__, or reset by a dead peer
      pass
    with self._lock:
      if self._closing or self._lost.is_set():
        return
      self._lost.set()
      for other, c in self._peers.items():
        if other != lost and self.process_index == 0:
          self._send(c, f"{_LOST} {lost} {how.replace(' ', '_')}")
    self.on_lost(lost, how)

  def __exit__(self, exc_type, exc, tb):
    if self.process_count == 1:
      return
    orderly = exc_type is None or issubclass(exc_type, SystemExit)
    if not orderly:
      # A collective that failed because a peer died: let the watcher name it.
      self._lost.wait(timeout=10)
    with self._lock:
      self._closing = True
      for conn in self._peers.values():
        self._send(conn, _BYE if orderly else _FAILED)
        conn.close()
