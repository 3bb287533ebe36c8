"""Data parallelism over every device of every process, in two layouts.

Batches and per-device random keys always arrive from the host with a leading
local-device axis (`data.shard_for_pmap`: [local devices, per-device batch, ...]);
the layouts differ in how the replicated training state is held:

- `MeshLayout` (optax optimizers): `jax.jit` of a `jax.shard_map` over a 1-D
  mesh of all devices of all processes. Params, state and optimizer state are
  global arrays replicated on every device with no device axis, so a donated
  step updates them in place exactly like a hand-written single-device jitted
  step. (`jax.pmap` keeps a leading device axis; XLA then copies most donated
  buffers before the update: 19 copies against 3-6 for the same step here.)
- `PmapLayout` (K-FAC on several devices): a leading local-device axis on
  every array, as `kfac_jax.Optimizer(multi_device=True)`, which compiles its
  own `jax.pmap`, expects.
- `SingleDeviceLayout` (K-FAC on one device): plain arrays on the device and
  `jax.jit` (`kfac_jax.Optimizer(multi_device=False)`), no collectives
  (`axis` is None). A one-device pmap K-FAC step spent half its time copying
  its donated state.

Inside a compiled step every layout runs the same per-device function: one
device's slice of the batch, collectives over the axis `axis` (gradients
`lax.pmean`-ed, batch statistics per device), so results do not depend on the
layout or on how the devices are split between processes.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Iterator, Sequence

import jax
import numpy as np
import threadpoolctl
from jax.sharding import Mesh
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P


@contextlib.contextmanager
def single_threaded_host_blas() -> Iterator[None]:
  """Host BLAS/LAPACK (numpy's and scipy's OpenBLAS) on one thread inside the block.

  XLA's CPU backend runs factorizations and triangular solves (K-FAC's
  inverses) as LAPACK calls into scipy's OpenBLAS, whose own threads then
  compete with XLA's thread pool. Measured on this project's 2-core CPU: a
  257x257 inverse 20 ms with OpenBLAS threads, 1.8 ms without; a Cholesky
  factorization 168 ms vs 0.3 ms. XLA's own matmuls and convolutions do not use
  OpenBLAS, so nothing else slows down.
  """
  # threadpoolctl limits the libraries loaded so far: load scipy's LAPACK
  # (which jaxlib's CPU kernels call) first.
  import scipy.linalg.cython_lapack  # pylint: disable=import-outside-toplevel,unused-import
  with threadpoolctl.threadpool_limits(limits=1, user_api="blas"):
    yield


def global_devices() -> list[Any]:
  """All devices, process-major: device i of process p is at p * local_count + i.

  The order matches the global device ids the training loop folds into each
  device's random key.
  """
  return sorted(jax.devices(), key=lambda d: (d.process_index, d.id))


def _is_replicated(x: Any) -> bool:
  sharding = getattr(x, "sharding", None)
  if isinstance(sharding, jax.sharding.SingleDeviceSharding):
    return True
  return isinstance(sharding, NamedSharding) and not any(sharding.spec)


def local_copies(tree: Any) -> Any:
  """Host copies [local devices, ...] of per-device values (multi-host arrays too).

  An array with a leading device axis gives its local rows; a replicated array
  (no device axis) one copy per local device.
  """
  def get(x):
    if isinstance(x, jax.Array) and _is_replicated(x):
      return np.stack([np.asarray(s.data) for s in x.addressable_shards])
    if isinstance(x, jax.Array):
      shards = sorted(x.addressable_shards, key=lambda s: s.index[0].start or 0)
      return np.concatenate([np.asarray(s.data) for s in shards])
    return np.asarray(x)
  return jax.tree.map(get, tree)


def host_copy(tree: Any) -> Any:
  """The first local device's copy, on the host, of a tree in either layout."""
  def get(x):
    if isinstance(x, jax.Array) and _is_replicated(x):
      return np.asarray(x.addressable_shards[0].data)
    if isinstance(x, jax.Array):
      first = min(x.addressable_shards, key=lambda s: s.index[0].start or 0)
      return np.asarray(first.data)[0]
    return np.asarray(x)[0]
  return jax.tree.map(get, tree)


class MeshLayout:
  """jit + shard_map over all devices; replicated state without a device axis."""

  per_device_axis = False

  def __init__(self, axis: str, devices: Sequence[Any] | None = None):
    """`devices`: all of them by default (a subset of one process's devices for benchmarks)."""
    self.axis = axis
    self.mesh = Mesh(np.asarray(global_devices() if devices is None else devices), (axis,))
    self.devices = list(self.mesh.devices.flat)
    self.replicated = NamedSharding(self.mesh, P())
    self._sharded = NamedSharding(self.mesh, P(axis))
    self._processes = len({d.process_index for d in self.devices})

  def replicate(self, tree: Any) -> Any:
    """Host tree (the same on every process) -> global arrays on every device."""
    def put(x):
      x = np.asarray(x)
      return jax.make_array_from_callback(x.shape, self.replicated, lambda index: x[index])
    return jax.tree.map(put, jax.device_get(tree))

  def put(self, tree: Any) -> Any:
    """This process's [local devices, ...] host arrays -> global [all devices, ...] arrays."""
    def put(x):
      x = np.asarray(x)
      global_shape = (x.shape[0] * self._processes,) + x.shape[1:]
      return jax.make_array_from_process_local_data(self._sharded, x, global_shape)
    return jax.tree.map(put, tree)

  def compile(self, fn: Callable, num_replicated: int, num_args: int,
              donate_argnums: Sequence[int] = ()) -> Callable:
    """The per-device `fn` as one jitted SPMD program.

    The first `num_replicated` arguments are replicated trees (no device
    axis), the others have a leading device axis (one device's slice each);
    every output must be identical on all devices (pmean/psum-ed).
    """
    def per_device(*args):
      sliced = [jax.tree.map(lambda x: x[0], a) for a in args[num_replicated:]]
      return fn(*args[:num_replicated], *sliced)

    in_specs = (P(),) * num_replicated + (P(self.axis),) * (num_args - num_replicated)
    # check_vma=False: replication of the outputs is guaranteed by the
    # collectives in `fn`, which skip the all-reduce on a one-device axis.
    step = jax.shard_map(per_device, mesh=self.mesh, in_specs=in_specs, out_specs=P(),
                         check_vma=False)
    return jax.jit(step, donate_argnums=tuple(donate_argnums))

  def compile_replicated(self, fn: Callable) -> Callable:
    """`fn` of replicated trees only (optimizer init), its outputs replicated."""
    return jax.jit(fn, out_shardings=self.replicated)


class PmapLayout:
  """jax.pmap over the local devices; every array has a leading local-device axis."""

  per_device_axis = True

  def __init__(self, axis: str, devices: Sequence[Any] | None = None):
    self.axis = axis
    self.devices = jax.local_devices() if devices is None else list(devices)
    mesh = Mesh(np.asarray(self.devices), ("devices",))
    self._sharded = NamedSharding(mesh, P("devices"))

  def put(self, tree: Any) -> Any:
    """[local devices, ...] host arrays -> arrays laid out for pmap."""
    return jax.tree.map(lambda x: jax.device_put(np.asarray(x), self._sharded), tree)

  def replicate(self, tree: Any) -> Any:
    """One copy per local device."""
    n = len(self.devices)
    tree = jax.device_get(tree)
    return self.put(jax.tree.map(lambda x: np.broadcast_to(np.asarray(x), (n,) + np.shape(x)), tree))

  def compile(self, fn: Callable, num_replicated: int, num_args: int,
              donate_argnums: Sequence[int] = ()) -> Callable:
    del num_replicated, num_args  # every argument has the device axis
    return jax.pmap(fn, axis_name=self.axis, donate_argnums=tuple(donate_argnums))

  def compile_replicated(self, fn: Callable) -> Callable:
    return jax.pmap(fn, axis_name=self.axis)


class SingleDeviceLayout:
  """One device, jax.jit, no device axis and no collectives (axis None)."""

  per_device_axis = False
  axis = None

  def __init__(self, device: Any):
    self.devices = [device]

  def put(self, tree: Any) -> Any:
    """[1, ...] host arrays (one device's slice) -> that slice on the device."""
    def put(x):
      x = np.asarray(x)
      if x.shape[0] != 1:
        raise ValueError(f"one device expects a leading device axis of 1, got shape {x.shape}")
      return jax.device_put(x[0], self.devices[0])
    return jax.tree.map(put, tree)

  def replicate(self, tree: Any) -> Any:
    return jax.device_put(jax.device_get(tree), self.devices[0])

  def compile(self, fn: Callable, num_replicated: int, num_args: int,
              donate_argnums: Sequence[int] = ()) -> Callable:
    del num_replicated, num_args
    return jax.jit(fn, donate_argnums=tuple(donate_argnums))

  def compile_replicated(self, fn: Callable) -> Callable:
    return jax.jit(fn)
