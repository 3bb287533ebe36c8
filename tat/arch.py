"""One definition per architecture, two interpretations.

An architecture is a plain Python function ``arch(ops, x)`` that describes the
network by calling a handful of operations on ``ops``:

* ``ops.dense(x, features)``, ``ops.conv(x, features, kernel, stride)``: affine layers,
* ``ops.act(x)``: the (transformed) elementwise nonlinearity,
* ``ops.add([(w1, x1), (w2, x2), ...])``: weighted sum (normalized in rescaled nets,
  eq. 6; plain sums ``w = 1`` in standard ResNets),
* ``ops.norm(x)``: batch/layer normalization where the architecture has it,
* ``ops.max_pool``, ``ops.mean_pool``, ``ops.flatten``, ``ops.dropout``.

:class:`HaikuOps` evaluates these on tensors (it is the Haiku network).
:class:`KernelOps` evaluates the *same* calls on kernel values (section 2.3,
following DKS's rules): affine layers with orthogonal / delta init preserve c
(with sigma_w, sigma_b they map q -> sw^2 q + sb^2), a nonlinearity applies
its local map, a sum of branches takes the w^2-weighted average, pooling and
flattening act per location (identity), and normalization resets q to 1.
``KernelOps`` also tracks, for every branch entering a sum, the value of that
branch evaluated as a stand-alone subnetwork from the network's input value
(the branch "restarted" at the block input), so that the subnetwork maximizing
function M_{f,r}(x) of DKS/TAT (TAT appendix B) is the maximum of the network's
value and all branch values. There is no second copy of any topology.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, Callable, NamedTuple, Optional, Sequence

import haiku as hk
import jax
import jax.numpy as jnp

from tat import init as tat_init


# ---------------------------------------------------------------------------
# Kernel interpretation.

class KV(NamedTuple):
  """A kernel value: ``v`` along the real network, ``s`` restarted at the last merge."""
  v: Any
  s: Any


class KernelOps:
  """Evaluates an architecture on kernel values.

  Args:
    act_fn: local map applied by every nonlinearity (a function of one value).
    linear_fn: map applied by affine layers (identity for c values at q = 1).
    sum_fn: ``sum_fn(weights, values)`` for a weighted sum of branches; the
      default is the w^2-weighted average (normalized sums keep q = 1).
    norm_fn: map applied by normalization layers (identity by default).
  """

  def __init__(self, act_fn: Callable, linear_fn: Callable = lambda x: x,
               sum_fn: Optional[Callable] = None, norm_fn: Callable = lambda x: x):
    self.act_fn = act_fn
    self.linear_fn = linear_fn
    self.sum_fn = sum_fn or _weighted_average
    self.norm_fn = norm_fn
    self.candidates: list = []
    self.num_acts = 0
    self._x0 = None

  def run(self, arch: Callable, x0) -> KV:
    self._x0 = x0
    self.candidates = []
    self.num_acts = 0
    return arch(self, KV(x0, x0))

  # Layers.
  def dense(self, x: KV, features: int, name: Optional[str] = None) -> KV:
    del features, name
    return self._apply(self.linear_fn, x)

  def conv(self, x: KV, features: int, kernel: int = 3, stride: int = 1,
           name: Optional[str] = None) -> KV:
    del features, kernel, stride, name
    return self._apply(self.linear_fn, x)

  def act(self, x: KV) -> KV:
    self.num_acts += 1
    return self._apply(self.act_fn, x)

  def add(self, terms: Sequence[tuple[float, KV]]) -> KV:
    terms = [(w, t) for w, t in terms if w != 0]
    weights = [w for w, _ in terms]
    self.candidates.extend(t.s for _, t in terms)
    return KV(self.sum_fn(weights, [t.v for _, t in terms]), self._x0)

  def norm(self, x: KV, name: Optional[str] = None) -> KV:
    del name
    return self._apply(self.norm_fn, x)

  @staticmethod
  def _apply(fn, x: KV) -> KV:
    v = fn(x.v)
    return KV(v, v if x.s is x.v else fn(x.s))  # one evaluation until the two differ

  def max_pool(self, x, window=3, stride=2):
    return x

  def mean_pool(self, x):
    return x

  def flatten(self, x):
    return x

  def dropout(self, x, rate):
    return x


def _weighted_average(weights, values):
  total = sum(w * w for w in weights)
  return sum(w * w * v for w, v in zip(weights, values)) / total


def subnet_max(arch: Callable, x0, r_fn: Callable, maximum=jnp.maximum):
  """Subnetwork maximizing function M_{f,r}(x0) (TAT appendix B, DKS section 5).

  Evaluates ``arch`` with every nonlinearity replaced by ``r_fn`` and returns
  the maximum over the whole network and every branch entering a sum
  (evaluated from ``x0``). With ``r_fn`` a local C map this is max C_f(x0);
  with ``lambda y: s * y`` from x0 = 1 the maximal slope function (DKS); with
  ``lambda y: y + k`` from x0 = 0 the maximal curvature function (TAT).
  """
  ops = KernelOps(r_fn)
  out = ops.run(arch, x0).v
  for cand in ops.candidates:
    out = maximum(out, cand)
  return out


def global_map(arch: Callable, x0, r_fn: Callable):
  """Global map of the network (no maximization): C_f(x0) for r_fn = local C map."""
  return KernelOps(r_fn).run(arch, x0).v


def count_nonlinear_layers(arch: Callable) -> int:
  """Number of ``ops.act`` calls along the network (for reporting)."""
  ops = KernelOps(lambda y: y)
  ops.run(arch, 0.0)
  return ops.num_acts


class QC(NamedTuple):
  """Kernel state for two inputs with equal q values: (q, c)."""
  q: Any
  c: Any


def qc_ops(q_fn: Callable, c_fn: Callable, sigma_w: float = 1.0, sigma_b: float = 0.0) -> KernelOps:
  """KernelOps on (q, c) states (eq. 3-5) for predictions with any q.

  ``q_fn(q)`` is the local Q map, ``c_fn(c, q)`` the local C map at input q.
  Affine layers: q -> sw^2 q + sb^2, c -> (sw^2 q c + sb^2) / q'. Sums of
  branches: q = sum w^2 q_i, c = sum w^2 q_i c_i / q. Normalization: q -> 1.
  """
  def linear(s):
    q = sigma_w ** 2 * s.q + sigma_b ** 2
    return QC(q, (sigma_w ** 2 * s.q * s.c + sigma_b ** 2) / q)

  def act(s):
    return QC(q_fn(s.q), c_fn(s.c, s.q))

  def add(weights, states):
    q = sum(w * w * s.q for w, s in zip(weights, states))
    return QC(q, sum(w * w * s.q * s.c for w, s in zip(weights, states)) / q)

  return KernelOps(act, linear, add, lambda s: QC(1.0, s.c))


# ---------------------------------------------------------------------------
# Tensor interpretation (the Haiku network).

@dataclasses.dataclass
class HaikuOps:
  """Evaluates an architecture on tensors inside ``hk.transform``.

  Args:
    activation: elementwise function, or a zero-argument factory returning a
      callable module (for PReLU, whose slope is a parameter per layer).
    init: 'orthogonal' (SUO / Orthogonal Delta) or 'gaussian' (fan-in).
    sigma_w, sigma_b: weight multiplier and bias std (appendix D).
    is_training: switches dropout and batch norm statistics.
    norm: None, 'batch' or 'layer' (what ``ops.norm`` does; None = identity).
  """
  activation: Callable
  init: str = "orthogonal"
  sigma_w: float = 1.0
  sigma_b: float = 0.0
  is_training: bool = True
  norm_kind: Optional[str] = None
  activation_is_factory: bool = False
  bn_decay: float = 0.9

  def dense(self, x, features, name=None):
    return hk.Linear(features, w_init=tat_init.weight_init(self.init, self.sigma_w, False),
                     b_init=tat_init.bias_init(self.sigma_b), name=name)(x)

  def conv(self, x, features, kernel=3, stride=1, name=None):
    return hk.Conv2D(features, kernel, stride=stride, padding="SAME",
                     w_init=tat_init.weight_init(self.init, self.sigma_w, True),
                     b_init=tat_init.bias_init(self.sigma_b), name=name)(x)

  def act(self, x):
    if self.activation_is_factory:
      return self.activation()(x)
    return self.activation(x)

  def add(self, terms):
    out = None
    for w, t in terms:
      if w == 0:
        continue
      out = w * t if out is None else out + w * t
    return out

  def norm(self, x, name=None):
    if self.norm_kind is None:
      return x
    if self.norm_kind == "batch":
      return hk.BatchNorm(True, True, decay_rate=self.bn_decay, name=name)(
          x, is_training=self.is_training)
    if self.norm_kind == "layer":
      return hk.LayerNorm(axis=-1, create_scale=True, create_offset=True, name=name)(x)
    raise ValueError(f"Unknown norm {self.norm_kind!r}; accepted: None, 'batch', 'layer'")

  def max_pool(self, x, window=3, stride=2):
    return hk.max_pool(x, window_shape=(1, window, window, 1), strides=(1, stride, stride, 1),
                       padding="SAME")

  def mean_pool(self, x):
    return jnp.mean(x, axis=tuple(range(1, x.ndim - 1))) if x.ndim > 2 else x

  def flatten(self, x):
    return x.reshape(x.shape[0], -1)

  def dropout(self, x, rate):
    if not self.is_training or rate == 0:
      return x
    return hk.dropout(hk.next_rng_key(), rate, x)


# ---------------------------------------------------------------------------
# Architectures.

def mlp(ops, x, *, depth: int, width: int, num_classes: int, dropout_rate: float = 0.0):
  """Deep vanilla MLP: flatten, ``depth`` x (dense -> act), dense readout."""
  x = ops.flatten(x)
  for i in range(depth):
    x = ops.act(ops.dense(x, width, name=f"dense_{i}"))
  x = ops.dropout(x, dropout_rate)
  return ops.dense(x, num_classes, name="logits")


def convnet(ops, x, *, depth: int, width: int, num_classes: int, downsample_every: int = 0,
            dropout_rate: float = 0.0):
  """Deep vanilla conv net: ``depth`` x (3x3 conv -> act), mean pool, dense.

  With ``downsample_every = k > 0`` every k-th conv has stride 2 and the
  channel count doubles there.
  """
  channels = width
  for i in range(depth):
    stride = 2 if downsample_every and i > 0 and i % downsample_every == 0 else 1
    channels = channels * 2 if stride == 2 else channels
    x = ops.act(ops.conv(x, channels, 3, stride, name=f"conv_{i}"))
  x = ops.dropout(ops.mean_pool(x), dropout_rate)
  return ops.dense(x, num_classes, name="logits")


RESNET_CONFIGS = {
    18: dict(blocks=(2, 2, 2, 2), bottleneck=False, channels=(64, 128, 256, 512),
             projection=(False, True, True, True)),
    34: dict(blocks=(3, 4, 6, 3), bottleneck=False, channels=(64, 128, 256, 512),
             projection=(False, True, True, True)),
    50: dict(blocks=(3, 4, 6, 3), bottleneck=True, channels=(256, 512, 1024, 2048),
             projection=(True, True, True, True)),
    101: dict(blocks=(3, 4, 23, 3), bottleneck=True, channels=(256, 512, 1024, 2048),
              projection=(True, True, True, True)),
    152: dict(blocks=(3, 8, 36, 3), bottleneck=True, channels=(256, 512, 1024, 2048),
              projection=(True, True, True, True)),
    200: dict(blocks=(3, 24, 36, 3), bottleneck=True, channels=(256, 512, 1024, 2048),
              projection=(True, True, True, True)),
}


def _check_shortcut_weight(shortcut_weight):
  if shortcut_weight is not None and not -1.0 <= shortcut_weight <= 1.0:
    raise ValueError(f"shortcut_weight must be in [-1, 1] (eq. 6) or None (standard sum); "
                     f"got {shortcut_weight}")


def resnet_v2_block(ops, x, *, channels, stride, bottleneck, projection, shortcut_weight,
                    name):
  """Pre-activation (v2) block: norm -> act shared by the projection and the branch.

  shortcut_weight None: standard sum x + R(x); w: w x + sqrt(1-w^2) R(x) (eq. 6);
  w = 0: no shortcut at all (vanilla network).
  """
  pre = ops.act(ops.norm(x, name=f"{name}_norm_0"))
  if bottleneck:
    r = ops.conv(pre, channels // 4, 1, 1, name=f"{name}_conv_0")
    r = ops.act(ops.norm(r, name=f"{name}_norm_1"))
    r = ops.conv(r, channels // 4, 3, stride, name=f"{name}_conv_1")
    r = ops.act(ops.norm(r, name=f"{name}_norm_2"))
    r = ops.conv(r, channels, 1, 1, name=f"{name}_conv_2")
  else:
    r = ops.conv(pre, channels, 3, stride, name=f"{name}_conv_0")
    r = ops.act(ops.norm(r, name=f"{name}_norm_1"))
    r = ops.conv(r, channels, 3, 1, name=f"{name}_conv_1")
  if shortcut_weight == 0:
    return r
  shortcut = ops.conv(pre, channels, 1, stride, name=f"{name}_proj") if projection else x
  if shortcut_weight is None:
    return ops.add([(1.0, shortcut), (1.0, r)])
  return ops.add([(shortcut_weight, shortcut), (math.sqrt(1 - shortcut_weight ** 2), r)])


def resnet_v2(ops, x, *, depth: int, num_classes: int, shortcut_weight: Optional[float] = None,
              width_multiplier: float = 1.0, dropout_rate: float = 0.0,
              stem_channels: int = 64, small_inputs: bool = False,
              channels: Optional[Sequence[int]] = None):
  """ResNet v2 (He et al. 2016b) as in the TAT paper's appendix F.1 topology.

  Stem: 7x7/2 conv + 3x3/2 max pool (``small_inputs``: 3x3/1 conv, no pool).
  Groups of blocks (RESNET_CONFIGS), projection in the first block of each
  group where configured, stride 2 in groups 2-4, final norm -> act -> mean
  pool -> dropout -> dense.
  """
  if depth not in RESNET_CONFIGS:
    raise ValueError(f"resnet_v2 depth must be one of {sorted(RESNET_CONFIGS)}, got {depth}")
  _check_shortcut_weight(shortcut_weight)
  cfg = RESNET_CONFIGS[depth]
  wm = width_multiplier
  if small_inputs:
    x = ops.conv(x, int(stem_channels * wm), 3, 1, name="stem_conv")
  else:
    x = ops.max_pool(ops.conv(x, int(stem_channels * wm), 7, 2, name="stem_conv"), 3, 2)
  group_channels = cfg["channels"] if channels is None else tuple(channels)
  if len(group_channels) != 4:
    raise ValueError(f"resnet_v2 channels must list 4 group widths, got {channels}")
  for g, (nblocks, ch) in enumerate(zip(cfg["blocks"], group_channels)):
    for b in range(nblocks):
      x = resnet_v2_block(ops, x, channels=int(ch * wm), stride=2 if (b == 0 and g > 0) else 1,
                          bottleneck=cfg["bottleneck"], projection=(b == 0 and cfg["projection"][g]),
                          shortcut_weight=shortcut_weight, name=f"g{g}_b{b}")
  x = ops.act(ops.norm(x, name="final_norm"))
  x = ops.dropout(ops.mean_pool(x), dropout_rate)
  return ops.dense(x, num_classes, name="logits")


def wide_resnet(ops, x, *, depth: int, num_classes: int, widening_factor: int = 2,
                shortcut_weight: Optional[float] = 0.0, dropout_rate: float = 0.0):
  """CIFAR Wide-ResNet-d-k (Zagoruyko & Komodakis 2016), pre-activation blocks.

  (depth - 4) / 6 basic blocks per group, channels 16k, 32k, 64k, stem 3x3
  conv with 16 channels. The default shortcut_weight 0 gives the vanilla
  networks of figure 5 (no shortcuts); normalization is whatever ``ops.norm`` does.
  """
  if (depth - 4) % 6 or depth < 10:
    raise ValueError(f"wide_resnet depth must be 6n + 4 with n >= 1, got {depth}")
  _check_shortcut_weight(shortcut_weight)
  n = (depth - 4) // 6
  x = ops.conv(x, 16, 3, 1, name="stem_conv")
  for g, ch in enumerate((16 * widening_factor, 32 * widening_factor, 64 * widening_factor)):
    for b in range(n):
      x = resnet_v2_block(ops, x, channels=ch, stride=2 if (b == 0 and g > 0) else 1,
                          bottleneck=False, projection=(b == 0), shortcut_weight=shortcut_weight,
                          name=f"g{g}_b{b}")
  x = ops.act(ops.norm(x, name="final_norm"))
  x = ops.dropout(ops.mean_pool(x), dropout_rate)
  return ops.dense(x, num_classes, name="logits")


ARCHITECTURES = {"mlp": mlp, "convnet": convnet, "resnet_v2": resnet_v2,
                 "wide_resnet": wide_resnet}


def get_architecture(name: str, **kwargs) -> Callable:
  """``arch(ops, x)`` for a registered architecture with its hyperparameters bound."""
  if name not in ARCHITECTURES:
    raise ValueError(f"Unknown architecture {name!r}; accepted: {', '.join(ARCHITECTURES)}")
  fn = ARCHITECTURES[name]
  return lambda ops, x: fn(ops, x, **kwargs)
