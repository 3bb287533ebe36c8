"""Haiku network builders whose every activation is a gated unit (section 4).

Each builder takes its hyperparameters explicitly and returns
`forward(inputs, *, is_training, step) -> dict` (experiments/API.md): the
prediction under "output", the structural risk (eq. 13) under "penalty" and
the gate statistics (and the toy model's scalar weight) under "stats".

Shared keyword arguments:
  activation: variant name, see `transfer.VARIANTS` (sin, resin, tanh, relu,
    copy, line, bern, resin_to_sin, tanh_to_sin, relu_to_sin).
  train_steps: training length; needed by copy / line / bern.
  granularity, gamma, beta, xi, zeta, log_alpha_init_mean, log_alpha_init_std,
    gate_init_space, gate_noise, gate_lr_multiplier, gate_weight_decay: see
    `transfer.GateConfig`.
  init_scheme: paper | phase | torch, see `transfer.weight_init` / `bias_init`.
"""

from __future__ import annotations

from typing import Sequence

import haiku as hk
import jax.numpy as jnp

from softtransfer import gates
from softtransfer.transfer import GateConfig, Transfer


_DEFAULTS = dict(train_steps=None, granularity="neuron", gamma=1e-2, beta=gates.BETA, xi=gates.XI,
                 zeta=gates.ZETA, log_alpha_init_mean=gates.LOG_ALPHA_INIT_MEAN,
                 log_alpha_init_std=gates.LOG_ALPHA_INIT_STD, gate_init_space="log_alpha",
                 gate_noise="example", gate_lr_multiplier=1.0, gate_weight_decay=0.0,
                 init_scheme="paper")


def _split_gate_kwargs(activation: str, kwargs: dict):
  """Validates the gate/transfer arguments; returns (is_training, step) -> Transfer."""
  unknown = set(kwargs) - set(_DEFAULTS)
  if unknown:
    raise ValueError(f"unknown model arguments {sorted(unknown)}; gate/transfer arguments are "
                     f"{sorted(_DEFAULTS)}")
  merged = dict(_DEFAULTS, **kwargs)
  train_steps = merged.pop("train_steps")
  init_scheme = merged.pop("init_scheme")
  cfg = GateConfig(noise=merged.pop("gate_noise"), init_space=merged.pop("gate_init_space"),
                   lr_multiplier=merged.pop("gate_lr_multiplier"),
                   weight_decay=merged.pop("gate_weight_decay"), **merged)
  # Validate the variant (and train_steps for the baselines) when the model is built.
  Transfer(activation, is_training=False, step=0, train_steps=train_steps, gate_config=cfg,
           init_scheme=init_scheme)
  return lambda is_training, step: Transfer(activation, is_training=is_training, step=step,
                                            train_steps=train_steps, gate_config=cfg,
                                            init_scheme=init_scheme)


def one_neuron(*, activation: str = "resin_to_sin", weight_init: float = 6.0, copies: int = 1,
               **gate_kwargs):
  """The toy model of figure 1: y = sigma_z(w x), one neuron, scalar weight w (init 6).

  Inputs [B, 1]; stats report the weight as `weight`. The weight's leaf name
  is `weight`, so the framework's default weight decay (leaf name `w`) skips it.

  `copies` > 1 trains that many independent toy neurons side by side: weight
  [copies], one gate each (granularity `neuron`), output [B, copies]; with the
  loss summed over outputs (`loss.sum_over_features`) every copy gets exactly
  its own gradient, so one run gives `copies` draws of the gate's
  initialisation and noise. `weight` is then the mean over copies.
  """
  if int(copies) < 1:
    raise ValueError(f"one_neuron copies must be an integer >= 1, got {copies}")
  if int(copies) > 1 and gate_kwargs.get("granularity", "neuron") != "neuron":
    raise ValueError("one_neuron with copies > 1 needs granularity 'neuron' (one gate per copy), got "
                     f"{gate_kwargs['granularity']!r}")
  make = _split_gate_kwargs(activation, gate_kwargs)
  shape = () if int(copies) == 1 else (int(copies),)

  def forward(inputs, *, is_training: bool, step):
    t = make(is_training, step)
    w = hk.get_parameter("weight", shape, jnp.float32, init=hk.initializers.Constant(weight_init))
    return t.outputs(t(w * inputs), {"weight": jnp.mean(w)})

  return forward


def mlp(*, activation: str = "resin_to_sin", hidden_sizes: Sequence[int] = (400, 400, 400),
        output_size: int = 1, **gate_kwargs):
  """Fully connected network (400x400x400 for the Bessel experiment, section 4.3).

  Hidden layers use the variant's initialisation (`init_scheme` paper: sin
  W ~ N(0, 0.1^2), b ~ U(-pi, pi); others Kaiming, b = 0); the linear read-out
  has the variant's weight initialisation and a zero bias (its bias is no
  phase; torch's U(-1/sqrt(fan_in), 1/sqrt(fan_in)) under `init_scheme="torch"`).
  """
  make = _split_gate_kwargs(activation, gate_kwargs)
  if not hidden_sizes or any(int(h) <= 0 for h in hidden_sizes):
    raise ValueError(f"hidden_sizes must be positive integers, got {hidden_sizes}")

  def forward(inputs, *, is_training: bool, step):
    t = make(is_training, step)
    h = inputs.reshape(inputs.shape[0], -1)
    for i, size in enumerate(hidden_sizes):
      h = t(hk.Linear(int(size), w_init=t.w_init(), b_init=t.b_init(h.shape[-1]), name=f"linear_{i}")(h))
    out = hk.Linear(output_size, w_init=t.w_init(), b_init=t.b_init(h.shape[-1], hidden=False),
                    name="readout")(h)
    return t.outputs(out)

  return forward


def lenet5(*, activation: str = "resin_to_sin", num_classes: int = 10, **gate_kwargs):
  """LeNet-5 (LeCun et al. 1998) for 28x28 inputs with gated units (section 4.4).

  conv 6@5x5 (same) - act - maxpool 2 - conv 16@5x5 (valid) - act - maxpool 2 -
  fc 120 - act - fc 84 - act - fc num_classes.
  """
  make = _split_gate_kwargs(activation, gate_kwargs)

  def forward(inputs, *, is_training: bool, step):
    t = make(is_training, step)
    pool = lambda h: hk.max_pool(h, window_shape=(1, 2, 2, 1), strides=(1, 2, 2, 1), padding="VALID")
    conv = lambda c, pad, name, h: hk.Conv2D(c, 5, padding=pad, w_init=t.w_init(),
                                             b_init=t.b_init(25 * h.shape[-1]), name=name)(h)
    dense = lambda n, name, h, hidden=True: hk.Linear(n, w_init=t.w_init(),
                                                      b_init=t.b_init(h.shape[-1], hidden), name=name)(h)
    h = inputs
    h = pool(t(conv(6, "SAME", "conv1", h)))
    h = pool(t(conv(16, "VALID", "conv2", h)))
    h = h.reshape(h.shape[0], -1)
    h = t(dense(120, "fc1", h))
    h = t(dense(84, "fc2", h))
    return t.outputs(dense(num_classes, "logits", h, hidden=False))

  return forward


def _bn(name):
  return hk.BatchNorm(create_scale=True, create_offset=True, decay_rate=0.9, eps=1e-5, name=name)


def resnet(*, depth: int = 20, activation: str = "relu_to_sin", num_classes: int = 10,
           width: int = 16, **gate_kwargs):
  """CIFAR ResNet-(6n+2) of He et al. (2016), section 4.2, with gated units.

  conv3x3(16)-BN-act, three stages of n basic blocks (16/32/64 channels, stride
  2 at the start of stages 2 and 3), global average pool, linear. A basic block
  is conv3x3-BN-act-conv3x3-BN, added to the shortcut, then act; the shortcut
  is the identity, or option A (stride-2 subsampling and zero-padded channels)
  where the shape changes. Every activation is a gated unit.
  """
  if depth < 8 or (depth - 2) % 6:
    raise ValueError(f"CIFAR ResNet depth must be 6n+2 >= 8 (20, 32, 56, 110, ...), got {depth}")
  n = (depth - 2) // 6
  make = _split_gate_kwargs(activation, gate_kwargs)

  def forward(inputs, *, is_training: bool, step):
    t = make(is_training, step)
    conv = lambda c, s, name: hk.Conv2D(c, 3, stride=s, padding="SAME", with_bias=False,
                                        w_init=t.w_init(), name=name)
    h = t(_bn("bn0")(conv(width, 1, "conv0")(inputs), is_training))
    for stage in range(3):
      channels = width * 2 ** stage
      for block in range(n):
        stride = 2 if (stage > 0 and block == 0) else 1
        name = f"stage{stage}_block{block}"
        r = t(_bn(f"{name}_bn1")(conv(channels, stride, f"{name}_conv1")(h), is_training))
        r = _bn(f"{name}_bn2")(conv(channels, 1, f"{name}_conv2")(r), is_training)
        shortcut = h
        if stride != 1 or h.shape[-1] != channels:
          shortcut = h[:, ::stride, ::stride, :]
          pad = channels - shortcut.shape[-1]
          shortcut = jnp.pad(shortcut, ((0, 0), (0, 0), (0, 0), (pad // 2, pad - pad // 2)))
        h = t(r + shortcut)
    h = jnp.mean(h, axis=(1, 2))
    return t.outputs(hk.Linear(num_classes, w_init=t.w_init(), b_init=t.b_init(h.shape[-1], hidden=False),
                               name="logits")(h))

  return forward
