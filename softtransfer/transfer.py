"""Haiku side of the soft transfer: gate parameters, baselines and initialisers.

A `Transfer` is created once per forward pass from the variant name and the
gate hyperparameters; every activation of the network is `transfer(x)`. It
creates the gate parameters (named `log_alpha`), samples or estimates the
gates, and collects the structural risk (eq. 13) and the gate statistics.

Variants (section 4.1):

* `sin`, `resin`, `tanh`, `relu`: a fixed activation, no gates.
* `<mono>_to_<periodic>` (`resin_to_sin`, `tanh_to_sin`, `relu_to_sin`, or any
  pair of names in `activations.ACTIVATIONS`): the soft transfer, sigma_z with
  rectified concrete gates (eqs. 1, 13-16).
* `copy`: resin while step < train_steps // 2, sin afterwards with the same
  parameters (the copy of resin's solution into the sin network is implicit).
* `line`: deterministic z = max(0, 1 - step / train_steps), shared by all units.
* `bern`: z ~ Bernoulli(p), p = max(0, 1 - step / train_steps), drawn
  independently per gate (same granularity as the soft gates) and per example
  at every training step; evaluation uses the mean z = p (as dropout does), so
  it is deterministic. A stochastic version of `line` with no learnable gate
  parameters: the naive random switch the paper contrasts with the learned
  concrete gate. The baselines all go from resin to sin.

Gate granularity (section 3.4): `neuron` (one log alpha per unit / channel,
the last axis of the activation), `layer` (one per activation layer) or
`shared` (one for the whole network). The structural risk sums over distinct
gate parameters.

Initialisation schemes (`INIT_SCHEMES`, see `weight_init` / `bias_init`):
`paper` (section 4.2: sin N(0, 0.1^2) weights and U(-pi, pi) biases, Kaiming
normal weights and zero biases otherwise), `phase` (the same weights, every
hidden bias U(-pi, pi): a uniform phase over one period for every variant) and
`torch` (PyTorch's default for `nn.Linear` / `nn.Conv2d`, which the authors'
framework applies unless told otherwise: weights and biases
U(-1/sqrt(fan_in), 1/sqrt(fan_in))).
"""

from __future__ import annotations

import dataclasses
import functools
import math
from typing import Optional

import haiku as hk
import jax
import jax.numpy as jnp

from softtransfer import activations as acts
from softtransfer import gates

FIXED = ("sin", "resin", "tanh", "relu")
SOFT = ("resin_to_sin", "tanh_to_sin", "relu_to_sin")
BASELINES = ("copy", "line", "bern")
VARIANTS = FIXED + BASELINES + SOFT
GRANULARITIES = ("neuron", "layer", "shared")
NOISE = ("example", "batch")
INIT_SPACES = ("log_alpha", "alpha")
INIT_SCHEMES = ("paper", "phase", "torch")


@dataclasses.dataclass(frozen=True)
class GateConfig:
  """Hyperparameters of the rectified concrete gates (defaults: section 4.2).

  `gamma` weights the structural risk (eq. 13); `log_alpha_init_*` give the
  N(8, 1) initialisation; `init_space="log_alpha"` draws log alpha ~ N(mean, std)
  (our reading, see `gates`), `"alpha"` draws alpha ~ N(mean, std) and takes its
  log (the literal reading: log alpha ~ log 8 = 2.08, std ~ 1/8);
  `noise="example"` draws independent gate noise for every example of the
  batch (the L0 reference code's `local_rep=True`), `"batch"` one draw per
  gate and step, shared by the batch (that code's default, `local_rep=False`).
  `lr_multiplier` scales the gradient that reaches log alpha (with SGD, the
  optimiser of these configs, that is a learning rate of lr_multiplier x lr
  for the gates, as a PyTorch parameter group would give); `weight_decay` adds
  weight_decay / 2 * sum(log alpha^2) to the penalty, i.e. PyTorch's
  `weight_decay` applied to the gate parameters (it pulls log alpha towards
  0, the middle of the gate's range, independently of gamma).
  """
  granularity: str = "neuron"
  gamma: float = 1e-2
  beta: float = gates.BETA
  xi: float = gates.XI
  zeta: float = gates.ZETA
  log_alpha_init_mean: float = gates.LOG_ALPHA_INIT_MEAN
  log_alpha_init_std: float = gates.LOG_ALPHA_INIT_STD
  init_space: str = "log_alpha"
  noise: str = "example"
  lr_multiplier: float = 1.0
  weight_decay: float = 0.0

  def __post_init__(self):
    if self.granularity not in GRANULARITIES:
      raise ValueError(f"gate granularity {self.granularity!r} not in {GRANULARITIES}")
    if self.init_space not in INIT_SPACES:
      raise ValueError(f"gate init_space {self.init_space!r} not in {INIT_SPACES}")
    if self.init_space == "alpha" and not self.log_alpha_init_mean > 0:
      raise ValueError("gate init_space 'alpha' needs log_alpha_init_mean (the mean of alpha) > 0, "
                       f"got {self.log_alpha_init_mean}")
    if self.noise not in NOISE:
      raise ValueError(f"gate noise {self.noise!r} not in {NOISE}")
    if not self.gamma >= 0:
      raise ValueError(f"structural risk weight gamma must be >= 0, got {self.gamma}")
    if not 0 <= self.lr_multiplier < math.inf:
      raise ValueError(f"gate_lr_multiplier must be a finite number >= 0, got {self.lr_multiplier}")
    if not 0 <= self.weight_decay < math.inf:
      raise ValueError(f"gate_weight_decay must be a finite number >= 0, got {self.weight_decay}")
    gates.check_gate_hyperparameters(self.beta, self.xi, self.zeta)


def parse_variant(variant: str) -> tuple[str, Optional[str], Optional[str]]:
  """variant -> (mode, monotonic, non_monotonic), mode in fixed/soft/copy/line/bern."""
  if variant in FIXED:
    return "fixed", variant, None
  if variant in BASELINES:
    return variant, "resin", "sin"
  mono, sep, periodic = variant.partition("_to_")
  if sep and mono in acts.ACTIVATIONS and periodic in acts.ACTIVATIONS:
    return "soft", mono, periodic
  raise ValueError(f"unknown activation variant {variant!r}; accepted: {list(VARIANTS)} "
                   f"or '<a>_to_<b>' with a, b in {sorted(acts.ACTIVATIONS)}")


def check_init_scheme(init_scheme: str) -> None:
  if init_scheme not in INIT_SCHEMES:
    raise ValueError(f"init_scheme {init_scheme!r} not in {INIT_SCHEMES}")


def weight_init(variant: str, init_scheme: str = "paper", fan_in_axes=None) -> hk.initializers.Initializer:
  """Weights: N(0, 0.1^2) for the sin network, Kaiming (He) normal otherwise (section 4.2).

  0.1 is read as the standard deviation: the authors used PyTorch, whose
  `normal_(mean, std)` takes the standard deviation, and with std 0.1 a
  400-wide sin layer has pre-activation variance 400 * 0.01 * E[sin^2] ~ 2
  (std 1.4, about a quarter period), whereas variance 0.1 (std 0.32) would
  give std 4.5, i.e. phases spread over more than a full period per layer.
  `init_scheme="torch"`: U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for every variant
  (PyTorch's default, kaiming_uniform_ with a = sqrt(5)); "phase" keeps the
  paper's weights.
  """
  check_init_scheme(init_scheme)
  if init_scheme == "torch":
    return hk.initializers.VarianceScaling(1.0 / 3.0, "fan_in", "uniform", fan_in_axes=fan_in_axes)
  if variant == "sin":
    return hk.initializers.RandomNormal(stddev=0.1)
  return hk.initializers.VarianceScaling(2.0, "fan_in", "normal", fan_in_axes=fan_in_axes)


def bias_init(variant: str, init_scheme: str = "paper", fan_in: Optional[int] = None,
              hidden: bool = True) -> hk.initializers.Initializer:
  """Biases of a layer with `fan_in` inputs; `hidden` False for the linear read-out.

  paper: U(-pi, pi) (random phases) for the sin network's hidden layers, zero
  otherwise; phase: U(-pi, pi) for every hidden layer of every variant (the
  bias is the unit's phase: with zero biases and odd activations such as sin
  and resin the whole network is an odd function of its input); torch:
  U(-1/sqrt(fan_in), 1/sqrt(fan_in)) for every layer, read-out included.
  """
  check_init_scheme(init_scheme)
  if init_scheme == "torch":
    if fan_in is None or fan_in <= 0:
      raise ValueError(f"init_scheme 'torch' needs the layer's fan_in > 0 for its biases, got {fan_in}")
    bound = 1.0 / math.sqrt(fan_in)
    return hk.initializers.RandomUniform(-bound, bound)
  if hidden and (variant == "sin" or init_scheme == "phase"):
    return hk.initializers.RandomUniform(-math.pi, math.pi)
  return hk.initializers.Constant(0.0)


@functools.partial(jax.custom_vjp, nondiff_argnums=(1,))
def scale_gradient(x: jnp.ndarray, scale: float) -> jnp.ndarray:
  """Identity in the forward pass; multiplies the incoming gradient by `scale`."""
  return x


def _scale_gradient_fwd(x, scale):
  return x, None


def _scale_gradient_bwd(scale, _, g):
  return (g * scale,)


scale_gradient.defvjp(_scale_gradient_fwd, _scale_gradient_bwd)


def schedule_value(mode: str, step: jnp.ndarray, train_steps: int) -> jnp.ndarray:
  """z (copy, line) or the Bernoulli mean p (bern) of the baselines at `step`."""
  step = jnp.asarray(step, jnp.float32)
  if mode == "copy":
    return jnp.where(step < (train_steps // 2), 1.0, 0.0)
  if mode in ("line", "bern"):
    return jnp.clip(1.0 - step / train_steps, 0.0, 1.0)
  raise ValueError(f"no schedule for mode {mode!r}")


class _Gate(hk.Module):
  """Holds one layer's `log_alpha` (shape [C] per neuron, [] per layer)."""

  def __call__(self, shape, cfg: GateConfig):
    init = hk.initializers.RandomNormal(cfg.log_alpha_init_std, cfg.log_alpha_init_mean)
    if cfg.init_space == "alpha":  # alpha ~ N(mean, std), kept positive, then log alpha
      init = lambda s, d, normal=init: jnp.log(jnp.maximum(normal(s, d), 1e-3))
    log_alpha = hk.get_parameter("log_alpha", shape, jnp.float32, init=init)
    if cfg.lr_multiplier != 1.0:
      log_alpha = scale_gradient(log_alpha, float(cfg.lr_multiplier))
    return log_alpha


class Transfer:
  """Activation factory for one forward pass of a network with `variant` units."""

  def __init__(self, variant: str, *, is_training: bool, step, train_steps: Optional[int] = None,
               gate_config: Optional[GateConfig] = None, init_scheme: str = "paper"):
    check_init_scheme(init_scheme)
    self.init_scheme = init_scheme
    self.variant = variant
    self.mode, mono, periodic = parse_variant(variant)
    self.monotonic = acts.get_activation(mono)
    self.non_monotonic = acts.get_activation(periodic) if periodic else None
    self.cfg = gate_config or GateConfig()
    self.is_training = is_training
    self.step = step
    if self.mode in BASELINES:
      if train_steps is None or int(train_steps) <= 0:
        raise ValueError(f"variant {variant!r} needs train_steps > 0 (got {train_steps}); link "
                         "config.model.train_steps = config.get_ref('train_steps')")
      self.train_steps = int(train_steps)
      self.schedule = schedule_value(self.mode, step, self.train_steps)
    self._log_alphas = []
    self._shared = None  # created by the first gated activation with granularity "shared"

  def w_init(self, fan_in_axes=None):
    return weight_init(self.variant, self.init_scheme, fan_in_axes)

  def b_init(self, fan_in: int, hidden: bool = True):
    return bias_init(self.variant, self.init_scheme, fan_in, hidden)

  def _noise_shape(self, x, gate_shape):
    if self.cfg.noise == "batch":
      return tuple(gate_shape)
    return (x.shape[0],) + (1,) * (x.ndim - 2) + (tuple(gate_shape) or (1,))

  def _gate_shape(self, x):
    return (x.shape[-1],) if self.cfg.granularity == "neuron" else ()

  def __call__(self, x: jnp.ndarray) -> jnp.ndarray:
    if self.mode == "fixed":
      return self.monotonic(x)
    if self.mode == "soft":
      if self.cfg.granularity == "shared":
        if self._shared is None:
          self._shared = _Gate(name="shared_gate")((), self.cfg)
        log_alpha = self._shared
      else:
        log_alpha = _Gate(name="gate")(self._gate_shape(x), self.cfg)
        self._log_alphas.append(log_alpha)
      c = self.cfg
      if self.is_training:
        z = gates.sample_gate(hk.next_rng_key(), log_alpha, self._noise_shape(x, jnp.shape(log_alpha)),
                              beta=c.beta, xi=c.xi, zeta=c.zeta)
      else:
        z = gates.test_gate(log_alpha, xi=c.xi, zeta=c.zeta)
    elif self.mode == "bern" and self.is_training:
      z = jax.random.bernoulli(hk.next_rng_key(), self.schedule,
                               self._noise_shape(x, self._gate_shape(x))).astype(x.dtype)
    else:  # copy, line, bern at evaluation
      z = self.schedule
    return acts.gated_unit(x, z, self.monotonic, self.non_monotonic)

  def all_log_alphas(self) -> list:
    return [self._shared] if self._shared is not None else list(self._log_alphas)

  def penalty(self) -> jnp.ndarray:
    """Structural risk gamma * sum_i P(z_i != 0) (eq. 13), plus the gates' weight decay
    weight_decay / 2 * sum_i log alpha_i^2 when set; 0 without learned gates."""
    if self.mode != "soft":
      return jnp.zeros((), jnp.float32)
    c = self.cfg
    las = self.all_log_alphas()
    risk = gates.structural_risk(las, c.gamma, beta=c.beta, xi=c.xi, zeta=c.zeta)
    if c.weight_decay:
      risk = risk + 0.5 * c.weight_decay * sum(jnp.sum(jnp.square(la)) for la in las)
    return risk

  def stats(self) -> dict:
    """Data-independent gate statistics (figure 3, top row).

    gate_expectation: E[z] averaged over gates (for the baselines: their z or p);
    gate_zero_fraction: fraction of test-time gates (eq. 16) that are exactly 0;
    for the soft transfer also gate_nonzero_prob (mean of eq. 14) and
    gate_test_mean (mean test-time gate).
    """
    if self.mode == "fixed":
      return {}
    if self.mode != "soft":
      return {"gate_expectation": self.schedule,
              "gate_zero_fraction": (self.schedule == 0).astype(jnp.float32)}
    c = self.cfg
    la = jnp.concatenate([jnp.ravel(a) for a in self.all_log_alphas()])
    zbar = gates.test_gate(la, xi=c.xi, zeta=c.zeta)
    return {"gate_expectation": jnp.mean(gates.expected_gate(la, beta=c.beta, xi=c.xi, zeta=c.zeta)),
            "gate_zero_fraction": jnp.mean((zbar == 0).astype(jnp.float32)),
            "gate_nonzero_prob": jnp.mean(gates.prob_nonzero(la, beta=c.beta, xi=c.xi, zeta=c.zeta)),
            "gate_test_mean": jnp.mean(zbar)}

  def outputs(self, output: jnp.ndarray, extra_stats: Optional[dict] = None) -> dict:
    """The model output dict of experiments/API.md: output, penalty, stats."""
    stats = dict(self.stats())
    stats.update(extra_stats or {})
    out = {"output": output, "penalty": self.penalty()}
    if stats:
      out["stats"] = stats
    return out
