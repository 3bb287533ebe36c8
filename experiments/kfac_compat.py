"""kfac-jax 0.0.8 on jax >= 0.9.2: two patched functions, applied only where needed.

kfac-jax re-evaluates traced equations with
`kfac_jax._src.tag_graph_matcher.eval_jaxpr_eqn`, which unpacks
`eqn.primitive.get_bind_params(eqn.params)` as `(subfuns, params)`. From jax
0.9.2 on, some primitives return the bind parameters as a plain dict, and the
K-FAC graph matcher fails with "too many values to unpack" (or passes dict keys
as operands). On jax >= 0.10, jax.device_put_replicated is gone, which its
replicate_all_local_devices calls on the pmap path (replaced by a device_put).
kfac-jax fixed these upstream after 0.0.8, the newest release on
PyPI; the first kfac-jax release after 0.0.8 makes this module unnecessary, and
`apply()` leaves any kfac-jax other than 0.0.8 untouched.

`apply()` is called by the K-FAC optimizer wrapper before kfac-jax traces
anything; it is idempotent.

`import_kfac_jax()` also keeps the install to one TensorFlow: kfac-jax imports
distrax, which imports tensorflow_probability's JAX substrate. When TensorFlow
is already imported (the TFDS input pipeline), tensorflow_probability's package
init eagerly loads its TensorFlow parts, which require `tf-keras`, and tf-keras
requires the full `tensorflow` wheel next to `tensorflow-cpu` (1.3 GB more).
The JAX substrate never uses TensorFlow, so TensorFlow is hidden from that one
import.
"""

from __future__ import annotations

import sys
from typing import Any, Sequence

# The only kfac-jax release known to need the patch (on jax >= 0.9.2).
PATCHED_KFAC_VERSIONS = ("0.0.8",)
FIRST_JAX_NEEDING_PATCH = (0, 9, 2)


def _version_tuple(version: str) -> tuple[int, ...]:
  parts = []
  for piece in version.split(".")[:3]:
    digits = "".join(c for c in piece if c.isdigit())
    parts.append(int(digits) if digits else 0)
  return tuple(parts)


def split_bind_params(result: Any) -> tuple[Sequence[Any], dict]:
  """(subfuns, params) from `Primitive.get_bind_params`'s result of any jax version."""
  if isinstance(result, dict):
    return (), result
  subfuns, params = result
  return subfuns, params


def eval_jaxpr_eqn(eqn, in_values: list) -> list:
  """kfac-jax's eval_jaxpr_eqn, accepting both get_bind_params return types."""
  import jax.extend as jex
  subfuns, bind_params = split_bind_params(eqn.primitive.get_bind_params(eqn.params))
  with jex.source_info_util.user_context(eqn.source_info.traceback):
    output = eqn.primitive.bind(*subfuns, *in_values, **bind_params)
  return output if isinstance(output, list) else [output]


def needed(jax_version: str, kfac_version: str) -> bool:
  """Whether this kfac-jax/jax pair needs the patch."""
  return (kfac_version in PATCHED_KFAC_VERSIONS
          and _version_tuple(jax_version) >= FIRST_JAX_NEEDING_PATCH)


def apply() -> bool:
  """Installs the patch when `needed`; returns whether kfac-jax is patched now."""
  import jax
  import kfac_jax
  from kfac_jax._src import tag_graph_matcher
  if tag_graph_matcher.eval_jaxpr_eqn is eval_jaxpr_eqn:
    return True
  if not needed(jax.__version__, kfac_jax.__version__):
    return False
  tag_graph_matcher.eval_jaxpr_eqn = eval_jaxpr_eqn
  _patch_replicate()
  return True


def _patch_replicate() -> None:
  """jax 0.10 removed jax.device_put_replicated, which kfac-jax 0.0.8's
  parallel.replicate_all_local_devices calls on the pmap path."""
  import jax
  from kfac_jax._src.utils import parallel
  try:
    jax.device_put_replicated  # pylint: disable=pointless-statement
    return
  except AttributeError:
    pass
  original = parallel.replicate_all_local_devices

  def replicate_all_local_devices(obj, axis_name=None):
    if parallel.types.tree_is_empty(obj) or not (parallel.using_legacy_pmap() or axis_name is None):
      return original(obj, axis_name)
    from experiments import parallel as layouts
    return layouts.PmapLayout(axis_name or "devices").replicate(obj)

  parallel.replicate_all_local_devices = replicate_all_local_devices


def import_kfac_jax():
  """Imports kfac_jax (TensorFlow hidden from tensorflow_probability's init) and `apply()`s."""
  from experiments import log
  if "tensorflow_probability" not in sys.modules and "tensorflow" in sys.modules:
    tensorflow = sys.modules.pop("tensorflow")
    try:
      log.import_quietly("tensorflow_probability")
    finally:
      sys.modules["tensorflow"] = tensorflow
  kfac_jax = log.import_quietly("kfac_jax")
  apply()
  return kfac_jax
