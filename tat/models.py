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
from typing import Callable, Optional

import haiku as hk
import jax
import jax.numpy as jnp

from tat import arch as tat_arch
from tat import solver


class PReLU(hk.Module):
  """Leaky ReLU with a trainable negative slope (one scalar per layer)."""

  def __init__(self, init_slope: float, name: Optional[str] = None):
    super().__init__(name=name)
    self.init_slope = init_slope

  def __call__(self, x):
    a = hk.get_parameter("negative_slope", [], x.dtype,
                         init=hk.initializers.Constant(self.init_slope))
    return jnp.where(x >= 0, x, a * x)


def _make_forward(arch: Callable, *, activation: str, method: str, eta: float, tau: float,
                  zeta: float, init: str, negative_slope=None, sigma_w=None, sigma_b=None,
                  norm: Optional[str] = None):
  spec = solver.get_spec(arch, activation, method, eta=eta, tau=tau, zeta=zeta,
                         negative_slope=negative_slope, sigma_w=sigma_w, sigma_b=sigma_b)
  if spec.method == "prelu":
    a0 = spec.params["negative_slope"]
    act, factory = (lambda: PReLU(a0)), True
  else:
    act, factory = spec.fn(), False

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
  variants = ("standard", "rescaled", "vanilla")
  if variant not in variants:
    raise ValueError(f"Unknown resnet_v2 variant {variant!r}; accepted: {', '.join(variants)}")
  if variant == "standard":
    w, norm = None, norm or "batch"
    if method != "untransformed":
      raise ValueError("standard ResNets use method='untransformed' (BN makes the Q/C analysis "
                       "inapplicable); use variant 'rescaled' or 'vanilla' for tat/dks/eoc")
    sigma_w = 2 ** 0.5 if sigma_w is None else sigma_w
  else:
    w = 0.0 if variant == "vanilla" else shortcut_weight
  arch = functools.partial(tat_arch.resnet_v2, depth=depth, num_classes=num_classes,
                           shortcut_weight=w, width_multiplier=width_multiplier,
                           dropout_rate=dropout_rate, small_inputs=small_inputs,
                           stem_channels=stem_channels, channels=channels)
  return _make_forward(arch, activation=activation, method=method, eta=eta, tau=tau, zeta=zeta,
                       init=init, negative_slope=negative_slope, sigma_w=sigma_w,
                       sigma_b=sigma_b, norm=norm)


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


MODELS = {"mlp": mlp, "convnet": convnet, "resnet_v2": resnet_v2, "wide_resnet": wide_resnet}
