"""Model builders for the framework (``config.model.name = "tat.<key>"``).

Every builder solves its activation transformation at build time, in plain
Python/JAX outside the traced forward, from the same architecture function
(:mod:`tat.arch`) that the returned forward evaluates with Haiku.

Common keyword arguments:
  activation: 'relu', 'leaky_relu', 'softplus', 'tanh', 'swish', 'gelu', 'elu',
    'selu', 'sigmoid', 'erf', ... (tat.kernels.ACTIVATIONS).
  method: 'tat' | 'dks' | 'eoc' | 'untransformed' | 'prelu'. For 'tat', relu and
    leaky_relu give TReLU (eta), the others smooth TAT (tau).
  eta: TAT leaky-ReLU target C_f(0) (0.9). tau: TAT smooth target C''_f(1) (0.3).
  zeta: DKS target C'_f(1) (1.5). negative_slope: PReLU init (0.25) / untransformed
    leaky ReLU slope. sigma_w, sigma_b: override the method's init scales.
  init: 'orthogonal' (SUO / Orthogonal Delta) or 'gaussian' (fan-in).
  dropout_rate: dropout before the classifier.
"""

from __future__ import annotations

import functools
import math
from typing import Callable, Optional

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from tat import arch as tat_arch
from tat import init as tat_init
from tat import solver
from tat import trace


class PReLU(hk.Module):
  """Leaky ReLU with a trainable negative slope (one scalar per layer)."""

  def __init__(self, init_slope: float, name: Optional[str] = None):
    super().__init__(name=name)
    self.init_slope = init_slope

  def __call__(self, x):
    a = hk.get_parameter("negative_slope", [], x.dtype,
                         init=hk.initializers.Constant(self.init_slope))
    return jnp.where(x >= 0, x, a * x)


def _solve(arch: Callable, *, activation: str, method: str, eta: float, tau: float,
           zeta: float, negative_slope=None, sigma_w=None, sigma_b=None):
  """(spec, act, act_is_factory) for ``arch`` (an ``arch`` function or a traced network)."""
  spec = solver.get_spec(arch, activation, method, eta=eta, tau=tau, zeta=zeta,
                         negative_slope=negative_slope, sigma_w=sigma_w, sigma_b=sigma_b)
  if spec.method == "prelu":
    a0 = spec.params["negative_slope"]
    return spec, (lambda: PReLU(a0)), True
  return spec, spec.fn(), False


def _make_forward(arch: Callable, *, activation: str, method: str, eta: float, tau: float,
                  zeta: float, init: str, negative_slope=None, sigma_w=None, sigma_b=None,
                  norm: Optional[str] = None):
  spec, act, factory = _solve(arch, activation=activation, method=method, eta=eta, tau=tau,
                              zeta=zeta, negative_slope=negative_slope, sigma_w=sigma_w,
                              sigma_b=sigma_b)

  norm = norm or None  # '' (config default) = no normalization

  def forward(inputs, *, is_training: bool, step=None):
    del step
    ops = tat_arch.HaikuOps(act, init=init, sigma_w=spec.sigma_w, sigma_b=spec.sigma_b,
                            is_training=is_training, norm_kind=norm,
                            activation_is_factory=factory)
    return arch(ops, inputs)

  forward.spec = spec  # for inspection (tests, notebooks)
  forward.arch = arch
  return forward


def mlp(depth: int = 20, width: int = 256, num_classes: int = 10, activation: str = "relu",
        method: str = "tat", eta: float = 0.9, tau: float = 0.3, zeta: float = 1.5,
        init: str = "orthogonal", dropout_rate: float = 0.0, negative_slope=None,
        sigma_w=None, sigma_b=None, train_steps=None):
  """Deep vanilla MLP: ``depth`` nonlinear layers of ``width`` units, no shortcuts/norm."""
  del train_steps
  if depth < 1 or width < 1:
    raise ValueError(f"mlp needs depth >= 1 and width >= 1, got depth={depth}, width={width}")
  arch = functools.partial(tat_arch.mlp, depth=depth, width=width, num_classes=num_classes,
                           dropout_rate=dropout_rate)
  return _make_forward(arch, activation=activation, method=method, eta=eta, tau=tau, zeta=zeta,
                       init=init, negative_slope=negative_slope, sigma_w=sigma_w,
                       sigma_b=sigma_b)


def convnet(depth: int = 20, width: int = 32, num_classes: int = 10, activation: str = "relu",
            method: str = "tat", eta: float = 0.9, tau: float = 0.3, zeta: float = 1.5,
            init: str = "orthogonal", dropout_rate: float = 0.0, downsample_every: int = 0,
            negative_slope=None, sigma_w=None, sigma_b=None, train_steps=None):
  """Deep vanilla conv net (3x3 convs, delta init), mean pool, linear readout."""
  del train_steps
  arch = functools.partial(tat_arch.convnet, depth=depth, width=width, num_classes=num_classes,
                           downsample_every=downsample_every, dropout_rate=dropout_rate)
  return _make_forward(arch, activation=activation, method=method, eta=eta, tau=tau, zeta=zeta,
                       init=init, negative_slope=negative_slope, sigma_w=sigma_w,
                       sigma_b=sigma_b)


def resnet_v2(depth: int = 50, num_classes: int = 1000, variant: str = "vanilla",
              shortcut_weight: float = 0.8, activation: str = "relu", method: str = "tat",
              eta: float = 0.9, tau: float = 0.3, zeta: float = 1.5, init: str = "orthogonal",
              width_multiplier: float = 1.0, dropout_rate: float = 0.0, norm=None,
              negative_slope=None, sigma_w=None, sigma_b=None, small_inputs: bool = False,
              stem_channels: int = 64, channels=None, train_steps=None):
  """ResNet v2 family (depths 18-200).

  variant: 'standard' (batch norm, plain shortcuts, ReLU, sigma_w sqrt 2 by default),
  'rescaled' (no norm, w x + sqrt(1-w^2) R(x) with ``shortcut_weight``) or 'vanilla'
  (no shortcuts; ``norm`` may add 'batch'/'layer' normalization, table 3).
  """
  del train_steps
  w, norm, sigma_w = _resnet_variant(variant, shortcut_weight, method, norm, sigma_w)
  arch = functools.partial(tat_arch.resnet_v2, depth=depth, num_classes=num_classes,
                           shortcut_weight=w, width_multiplier=width_multiplier,
                           dropout_rate=dropout_rate, small_inputs=small_inputs,
                           stem_channels=stem_channels, channels=channels)
  return _make_forward(arch, activation=activation, method=method, eta=eta, tau=tau, zeta=zeta,
                       init=init, negative_slope=negative_slope, sigma_w=sigma_w,
                       sigma_b=sigma_b, norm=norm)


def _resnet_variant(variant, shortcut_weight, method, norm, sigma_w):
  """(shortcut weight, norm, sigma_w) of a ResNet v2 variant (see :func:`resnet_v2`)."""
  variants = ("standard", "rescaled", "vanilla")
  if variant not in variants:
    raise ValueError(f"Unknown resnet_v2 variant {variant!r}; accepted: {', '.join(variants)}")
  if variant == "standard":
    if method != "untransformed":
      raise ValueError("standard ResNets use method='untransformed' (BN makes the Q/C analysis "
                       "inapplicable); use variant 'rescaled' or 'vanilla' for tat/dks/eoc")
    return None, norm or "batch", 2 ** 0.5 if sigma_w is None else sigma_w
  return (0.0 if variant == "vanilla" else shortcut_weight), norm, sigma_w


def plain_resnet_v2(x, act, *, depth: int, num_classes: int, is_training: bool,
                    shortcut_weight: Optional[float] = None, init: str = "orthogonal",
                    sigma_w: float = 1.0, sigma_b: float = 0.0, norm: Optional[str] = None,
                    width_multiplier: float = 1.0, dropout_rate: float = 0.0,
                    stem_channels: int = 64, small_inputs: bool = False, channels=None):
  """ResNet v2 written in plain Haiku, as a user would (no ``tat.arch``): ``net(x, act)``.

  The topology of :func:`tat.arch.resnet_v2` (appendix F.1; shortcut_weight None:
  x + R(x), w: w x + sqrt(1 - w^2) R(x), 0: no shortcut), so that the traced
  kernel maps can be checked against the hand-written ones. ``act`` is the
  nonlinearity: the traced network is given a marker, the trained one the
  solved transformed activation.
  """
  cfg = tat_arch.RESNET_CONFIGS[depth]
  conv_init = tat_init.weight_init(init, sigma_w, True)
  b_init = tat_init.bias_init(sigma_b)

  def conv(h, ch, k, stride, name):
    return hk.Conv2D(ch, k, stride=stride, padding="SAME", w_init=conv_init, b_init=b_init,
                     name=name)(h)

  def normalize(h, name):
    if norm == "batch":
      return hk.BatchNorm(True, True, decay_rate=0.9, name=name)(h, is_training=is_training)
    if norm == "layer":
      return hk.LayerNorm(-1, True, True, name=name)(h)
    return h

  h = conv(x, int(stem_channels * width_multiplier), 3 if small_inputs else 7,
           1 if small_inputs else 2, "stem_conv")
  if not small_inputs:
    h = hk.max_pool(h, (1, 3, 3, 1), (1, 2, 2, 1), "SAME")
  group_channels = cfg["channels"] if channels is None else tuple(channels)
  for g, (nblocks, ch) in enumerate(zip(cfg["blocks"], group_channels)):
    ch = int(ch * width_multiplier)
    for b in range(nblocks):
      stride, name = (2 if (b == 0 and g > 0) else 1), f"g{g}_b{b}"
      pre = act(normalize(h, f"{name}_norm_0"))
      if cfg["bottleneck"]:
        r = conv(pre, ch // 4, 1, 1, f"{name}_conv_0")
        r = conv(act(normalize(r, f"{name}_norm_1")), ch // 4, 3, stride, f"{name}_conv_1")
        r = conv(act(normalize(r, f"{name}_norm_2")), ch, 1, 1, f"{name}_conv_2")
      else:
        r = conv(pre, ch, 3, stride, f"{name}_conv_0")
        r = conv(act(normalize(r, f"{name}_norm_1")), ch, 3, 1, f"{name}_conv_1")
      if shortcut_weight == 0:
        h = r
        continue
      short = conv(pre, ch, 1, stride, f"{name}_proj") if (b == 0 and cfg["projection"][g]) else h
      if shortcut_weight is None:
        h = short + r
      else:
        h = shortcut_weight * short + math.sqrt(1 - shortcut_weight ** 2) * r
  h = jnp.mean(act(normalize(h, "final_norm")), axis=(1, 2))
  if is_training and dropout_rate:
    h = hk.dropout(hk.next_rng_key(), dropout_rate, h)
  return hk.Linear(num_classes, w_init=tat_init.weight_init(init, sigma_w, False), b_init=b_init,
                   name="logits")(h)


def traced_resnet_v2(depth: int = 50, num_classes: int = 1000, variant: str = "vanilla",
                     shortcut_weight: float = 0.8, activation: str = "relu", method: str = "tat",
                     eta: float = 0.9, tau: float = 0.3, zeta: float = 1.5,
                     init: str = "orthogonal", width_multiplier: float = 1.0,
                     dropout_rate: float = 0.0, norm=None, negative_slope=None, sigma_w=None,
                     sigma_b=None, small_inputs: bool = False, stem_channels: int = 64,
                     channels=None, trace_input_shape=(32, 32, 3), train_steps=None):
  """:func:`resnet_v2`'s twin: the plain-Haiku :func:`plain_resnet_v2`, TAT/DKS solved on its trace.

  Same keyword arguments and the same network as ``resnet_v2``; the activation
  transformation is solved on ``trace.from_haiku`` of the Haiku code (traced once,
  at build time, on a zero input of ``trace_input_shape``) instead of on ``tat.arch``.
  """
  del train_steps
  w, norm, sigma_w = _resnet_variant(variant, shortcut_weight, method, norm or None, sigma_w)
  if depth not in tat_arch.RESNET_CONFIGS:
    raise ValueError(f"resnet_v2 depth must be one of {sorted(tat_arch.RESNET_CONFIGS)}, "
                     f"got {depth}")
  if channels is not None and len(channels) != 4:
    raise ValueError(f"resnet_v2 channels must list 4 group widths, got {channels}")
  net = functools.partial(plain_resnet_v2, depth=depth, num_classes=num_classes,
                          shortcut_weight=w, init=init, norm=norm,
                          width_multiplier=width_multiplier, dropout_rate=dropout_rate,
                          stem_channels=stem_channels, small_inputs=small_inputs,
                          channels=channels)
  example = np.zeros((2,) + tuple(trace_input_shape), np.float32)
  traced = trace.from_haiku(functools.partial(net, is_training=True), example)
  spec, act, factory = _solve(traced, activation=activation, method=method, eta=eta, tau=tau,
                              zeta=zeta, negative_slope=negative_slope, sigma_w=sigma_w,
                              sigma_b=sigma_b)
  layer_act = (lambda h: act()(h)) if factory else act

  def forward(inputs, *, is_training: bool, step=None):
    del step
    return net(inputs, layer_act, is_training=is_training, sigma_w=spec.sigma_w,
               sigma_b=spec.sigma_b)

  forward.spec = spec
  forward.traced = traced
  return forward


def wide_resnet(depth: int = 100, num_classes: int = 10, widening_factor: int = 2,
                shortcut_weight: float = 0.0, activation: str = "relu", method: str = "tat",
                eta: float = 0.9, tau: float = 0.3, zeta: float = 1.5, init: str = "orthogonal",
                dropout_rate: float = 0.0, norm=None, negative_slope=None, sigma_w=None,
                sigma_b=None, train_steps=None):
  """CIFAR WRN-derived nets (figure 5): vanilla by default (shortcut_weight 0, no norm)."""
  del train_steps
  arch = functools.partial(tat_arch.wide_resnet, depth=depth, num_classes=num_classes,
                           widening_factor=widening_factor, shortcut_weight=shortcut_weight,
                           dropout_rate=dropout_rate)
  return _make_forward(arch, activation=activation, method=method, eta=eta, tau=tau, zeta=zeta,
                       init=init, negative_slope=negative_slope, sigma_w=sigma_w,
                       sigma_b=sigma_b, norm=norm)


MODELS = {"mlp": mlp, "convnet": convnet, "resnet_v2": resnet_v2, "wide_resnet": wide_resnet,
          "traced_resnet_v2": traced_resnet_v2}
