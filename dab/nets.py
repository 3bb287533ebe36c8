"""Haiku approximators, the DAB layer and the paper's networks.

`hard_layer` is the one place where a network applies a hard function with a
chosen gradient: `dab` (bridge + approximator trained by the gamma-weighted
regularizer), `ste`, `none` or `smooth` (the hard function is left out).
The approximator is an ordinary Haiku MLP lifted into the enclosing
transform (`hk.lift`), so its parameters live in the model's params, but it is
applied as a pure function of explicit parameters inside `jax.custom_vjp`.

Models (builders return `forward(inputs, *, is_training, step)` per
experiments/API.md, output dict with "output", "penalty", "metrics"):
- `sort_dense`, `sort_lstm`: section 5.1, figure 2.
- `autoencoder`: section 5.2 (dab-binary / dab-signum / dab-bernoulli,
  Bernoulli and Gumbel-softmax VAEs, threshold baseline).
- `cifar_resnet18`: section 5.3, hard function after residual block k.
"""

from __future__ import annotations

import math
from typing import Sequence

import haiku as hk
import jax
import jax.numpy as jnp

from dab import bridge as bridge_lib
from dab import hard as hard_lib
from dab import metrics as metrics_lib

ACTIVATIONS = {"tanh": jnp.tanh, "elu": jax.nn.elu, "relu": jax.nn.relu}
APPROXIMATORS = ("dense", "per_element")
INITS = ("haiku", "pytorch")


def _activation(name: str):
  if name not in ACTIVATIONS:
    raise ValueError(f"unknown activation {name!r}; expected one of {sorted(ACTIVATIONS)}")
  return ACTIVATIONS[name]


def check_init(init: str) -> str:
  if init not in INITS:
    raise ValueError(f"unknown model.init {init!r}; expected one of {INITS}")
  return init


def linear(x: jnp.ndarray, width: int, name: str, init: str = "haiku") -> jnp.ndarray:
  """hk.Linear on the last axis of x with the chosen initialization.

  `haiku`: Haiku's default, weights truncated normal (std 1/sqrt(fan_in) before
  truncation at 2 std, about 0.88/sqrt(fan_in) after), biases zero.
  `pytorch`: torch.nn.Linear's default, weights and biases U(-1/sqrt(fan_in),
  1/sqrt(fan_in)) (kaiming_uniform with a=sqrt(5)), so weight std 1/sqrt(3 fan_in),
  about 1.5x smaller than Haiku's, and nonzero biases.
  """
  if check_init(init) == "haiku":
    return hk.Linear(width, name=name)(x)
  bound = 1.0 / math.sqrt(x.shape[-1])
  uniform = hk.initializers.RandomUniform(-bound, bound)
  return hk.Linear(width, w_init=uniform, b_init=uniform, name=name)(x)


# ---------------------------------------------------------------------------
# Approximators (pure functions of explicit params once transformed).


def approximator_fn(kind: str, in_shape: Sequence[int], out_shape: Sequence[int],
                    hidden: Sequence[int] = (256,), activation: str = "tanh",
                    init: str = "haiku"):
  """Haiku function z -> approx(z) for per-example shapes in_shape -> out_shape.

  `dense`: an MLP over the flattened vector, output reshaped to out_shape.
  `per_element`: an MLP over the last (channel) axis shared across all other
  positions; for vectors every scalar is a position. It needs the hard output
  to keep the positions: out_shape[:-1] == in_shape[:-1] for maps (channels
  may change, e.g. sort doubles them) or out_shape == in_shape for vectors.
  `init`: see `linear`.
  """
  act = _activation(activation)
  check_init(init)
  in_shape, out_shape = tuple(in_shape), tuple(out_shape)
  if kind == "dense":
    def fn(z):
      h = z.reshape(z.shape[0], -1)
      for i, width in enumerate(hidden):
        h = act(linear(h, width, f"hidden_{i}", init))
      out = linear(h, math.prod(out_shape), "out", init)
      return out.reshape((z.shape[0],) + out_shape)
    return fn
  if kind == "per_element":
    vector = len(in_shape) == 1
    if vector and out_shape != in_shape or not vector and out_shape[:-1] != in_shape[:-1]:
      raise ValueError(f"per_element approximator needs a hard function that keeps positions; "
                       f"it maps {in_shape} -> {out_shape}. Use approximator='dense'.")
    out_channels = 1 if vector else out_shape[-1]

    def fn(z):
      h = z[..., None] if vector else z
      for i, width in enumerate(hidden):
        h = act(linear(h, width, f"hidden_{i}", init))
      out = linear(h, out_channels, "out", init)
      return out[..., 0] if vector else out
    return fn
  raise ValueError(f"unknown approximator {kind!r}; expected one of {APPROXIMATORS}")


def hard_layer(x: jnp.ndarray, hard: str, *, gradient: str = "dab", is_training: bool = True,
               approximator: str = "dense", approx_hidden: Sequence[int] = (256,),
               approx_activation: str = "tanh", gamma: float = 10.0, dab_loss: str = "l2",
               hard_kwargs: dict | None = None, init: str = "haiku", name: str = "dab"):
  """Applies hard function `hard` to x with the chosen gradient; returns (y, penalty).

  gradient: `dab` (penalty = gamma * approximator loss), `ste`, `none`, or
  `smooth` (returns x unchanged: the model without the hard function).
  `init` initializes the approximator (see `linear`).
  Bernoulli sampling draws noise with hk.next_rng_key() while training and
  thresholds at 0.5 probability at evaluation.
  """
  if gradient not in bridge_lib.GRADIENTS:
    raise ValueError(f"unknown gradient {gradient!r}; expected one of {bridge_lib.GRADIENTS}")
  zero = jnp.zeros((), jnp.float32)
  if gradient == "smooth":
    return x, zero
  hard_fn = hard_lib.get_hard_fn(hard, **(hard_kwargs or {}))
  hard_args = ()
  if hard in hard_lib.STOCHASTIC:
    noise = (jax.random.uniform(hk.next_rng_key(), x.shape, x.dtype) if is_training
             else jnp.full(x.shape, 0.5, x.dtype))
    hard_args = (noise,)
  if gradient == "ste":
    return bridge_lib.straight_through(hard_fn, x, *hard_args), zero
  if gradient == "none":
    return bridge_lib.no_gradient(hard_fn, x, *hard_args), zero
  out_shape = jax.eval_shape(lambda z, *a: hard_fn(z, *a), x, *hard_args).shape[1:]
  approx = hk.without_apply_rng(hk.transform(
      approximator_fn(approximator, x.shape[1:], out_shape, approx_hidden, approx_activation,
                      init)))
  init_key = hk.next_rng_key() if hk.running_init() else None
  params = hk.lift(approx.init, name=f"{name}_approximator")(init_key, x)
  y, penalty = bridge_lib.dab(hard_fn, approx.apply, x, params, *hard_args, gamma=gamma,
                              loss=dab_loss)
  return y.astype(x.dtype), penalty


def _dab_kwargs(**kw):
  keys = ("gradient", "approximator", "approx_hidden", "approx_activation", "gamma", "dab_loss",
          "init")
  return {k: kw[k] for k in keys}


# ---------------------------------------------------------------------------
# Section 5.1: sorting.


def _hard_kwargs(hard: str, margin: float, k: int, kmeans_iterations: int) -> dict:
  if hard == "signum":
    return {"margin": margin}
  if hard == "topk":
    return {"k": k}
  if hard == "kmeans":
    return {"k": k, "iterations": kmeans_iterations}
  return {}


def sort_dense(seq_len: int, hidden: Sequence[int] = (128, 128, 256), activation: str = "tanh",
               hard: str = "signum", margin: float = 0.5, gradient: str = "dab",
               approximator: str = "dense", approx_hidden: Sequence[int] = (256,),
               approx_activation: str = "tanh", gamma: float = 10.0, dab_loss: str = "l2",
               k: int = 10, kmeans_iterations: int = 10, init: str = "haiku"):
  """Figure 2 left: x [B, T] -> 128 -> 128 -> 256 (tanh) -> hard (DAB) -> T*T logits [B, T, T].

  Logits [b, t, :] score which input index holds the t-th smallest value
  (labels argsort(x)). gradient='smooth' with activation='elu' is the
  ELU-Dense baseline of table 1. `init` (haiku | pytorch, see `linear`) applies to
  every linear layer, the approximator's included.
  """
  if seq_len < 2:
    raise ValueError(f"seq_len must be >= 2, got {seq_len}")
  check_init(init)
  act = _activation(activation)
  dab_kw = _dab_kwargs(**locals())
  hard_kw = _hard_kwargs(hard, margin, k, kmeans_iterations)

  def forward(inputs, *, is_training: bool, step=None):
    h = inputs.reshape(inputs.shape[0], -1)
    for i, width in enumerate(hidden):
      h = act(linear(h, width, f"dense_{i}", init))
    z, penalty = hard_layer(h, hard, is_training=is_training, hard_kwargs=hard_kw, **dab_kw)
    logits = linear(z.reshape(z.shape[0], -1), seq_len * seq_len, "logits", init)
    return {"output": logits.reshape(-1, seq_len, seq_len), "penalty": penalty,
            "metrics": {"dab_penalty": penalty}}
  return forward


def sort_lstm(seq_len: int, lstm_size: int = 256, ponder_steps: int = 5, dense: int = 256,
              activation: str = "tanh", hard: str = "signum", margin: float = 0.5,
              gradient: str = "dab", approximator: str = "dense",
              approx_hidden: Sequence[int] = (256,), approx_activation: str = "tanh",
              gamma: float = 10.0, dab_loss: str = "l2", init: str = "haiku"):
  """Figure 2 right: an LSTM reads x_1..x_T, then ponders `ponder_steps` steps on zero
  inputs (section 5.1.1); its last output -> Dense(256, tanh) -> hard (DAB) -> T*T logits.
  Haiku's initialization only (`init='pytorch'` is implemented for the dense model).
  """
  if seq_len < 2 or ponder_steps < 0:
    raise ValueError(f"need seq_len >= 2 and ponder_steps >= 0, got {seq_len}, {ponder_steps}")
  if check_init(init) != "haiku":
    raise ValueError(f"model.init={init!r} is implemented for model.arch='dense' only; "
                     "the LSTM uses 'haiku'")
  act = _activation(activation)
  dab_kw = _dab_kwargs(**locals())

  def forward(inputs, *, is_training: bool, step=None):
    x = inputs.reshape(inputs.shape[0], -1)
    seq = jnp.concatenate([x.T[..., None], jnp.zeros((ponder_steps, x.shape[0], 1), x.dtype)], 0)
    core = hk.LSTM(lstm_size, name="lstm")
    outs, _ = hk.dynamic_unroll(core, seq, core.initial_state(x.shape[0]))
    h = act(hk.Linear(dense, name="dense")(outs[-1]))
    z, penalty = hard_layer(h, hard, is_training=is_training,
                            hard_kwargs=_hard_kwargs(hard, margin, 10, 10), **dab_kw)
    logits = hk.Linear(seq_len * seq_len, name="logits")(z)
    return {"output": logits.reshape(-1, seq_len, seq_len), "penalty": penalty,
            "metrics": {"dab_penalty": penalty}}
  return forward


def sort_model(arch: str = "dense", seq_len: int = 5, ponder_steps: int = 5, **kwargs):
  """`arch`='dense' -> `sort_dense`, 'lstm' -> `sort_lstm` (ponder_steps used by lstm only)."""
  if arch == "dense":
    return sort_dense(seq_len, **kwargs)
  if arch == "lstm":
    return sort_lstm(seq_len, ponder_steps=ponder_steps, **kwargs)
  raise ValueError(f"unknown sorting architecture {arch!r}; expected 'dense' or 'lstm'")


# ---------------------------------------------------------------------------
# Section 5.2: autoencoders with discrete latents.

AUTOENCODER_VARIANTS = ("dab_binary", "dab_signum", "dab_bernoulli", "bernoulli_vae",
                        "gumbel_vae", "threshold")


def latent_size(variant: str, bits: int, categories: int = 4) -> int:
  """Latent units for a bit budget: bits for binary codes, bits/log2(3) for the
  trinary signum (figure 4 caption), bits/log2(K) K-way Gumbel variables."""
  if variant == "dab_signum":
    return max(int(round(bits / math.log2(3))), 1)
  if variant == "gumbel_vae":
    return max(int(round(bits / math.log2(categories))), 1)
  return max(int(bits), 1)


def autoencoder(variant: str = "dab_binary", bpp: float = 0.1, hidden: Sequence[int] = (512, 256),
                activation: str = "elu", gamma: float = 10.0, approximator: str = "dense",
                approx_hidden: Sequence[int] = (256,), dab_loss: str = "l2",
                temperature: float = 0.5, categories: int = 4, kl_weight: float = 1.0,
                threshold: float = 0.5, gradient: str = "dab"):
  """MLP encoder -> discrete latent of bpp * H * W bits -> MLP decoder -> sigmoid image.

  variant: dab_binary (x >= mean(x)), dab_signum (tanh then eq. 11), dab_bernoulli
  (z ~ Bern(sigmoid(logits)), not reparameterised), bernoulli_vae (relaxed
  Bernoulli [24,18] with KL to Bern(0.5), hard codes at evaluation), gumbel_vae
  (Gumbel-softmax, K=`categories` per variable, KL to uniform), threshold
  (bilinear downsample to the bit budget, threshold at `threshold`, learned
  decoder). `gradient` applies to the dab_* variants (dab, ste or none).
  Metrics: MS-SSIM of the reconstruction (`ms_ssim`); stats: `latent_bits`.
  """
  if variant not in AUTOENCODER_VARIANTS:
    raise ValueError(f"unknown autoencoder variant {variant!r}; expected one of {AUTOENCODER_VARIANTS}")
  if bpp <= 0:
    raise ValueError(f"bpp must be positive, got {bpp}")
  act = _activation(activation)

  def decode(z, image_shape):
    h = z.reshape(z.shape[0], -1)
    for i, width in enumerate(reversed(hidden)):
      h = act(hk.Linear(width, name=f"dec_{i}")(h))
    out = hk.Linear(math.prod(image_shape), name="dec_out")(h)
    return jax.nn.sigmoid(out).reshape((-1,) + image_shape)

  def forward(inputs, *, is_training: bool, step=None):
    image_shape = tuple(inputs.shape[1:])
    bits = max(int(round(bpp * image_shape[0] * image_shape[1])), 1)
    n = latent_size(variant, bits, categories)
    penalty = jnp.zeros((), jnp.float32)
    if variant == "threshold":
      side = max(int(round(math.sqrt(bits))), 1)
      small = jax.image.resize(inputs, (inputs.shape[0], side, side, image_shape[2]), "bilinear")
      z = (small.mean(-1) > threshold).astype(inputs.dtype)
    else:
      h = inputs.reshape(inputs.shape[0], -1)
      for i, width in enumerate(hidden):
        h = act(hk.Linear(width, name=f"enc_{i}")(h))
      if variant == "gumbel_vae":
        logits = hk.Linear(n * categories, name="enc_out")(h).reshape(-1, n, categories)
        logq = jax.nn.log_softmax(logits)
        if is_training:
          g = jax.random.gumbel(hk.next_rng_key(), logits.shape)
          z = jax.nn.softmax((logits + g) / temperature)
        else:
          z = jax.nn.one_hot(jnp.argmax(logits, -1), categories)
        kl = jnp.sum(jnp.exp(logq) * (logq + math.log(categories)), axis=(1, 2))
        penalty = kl_weight * jnp.mean(kl)
      else:
        logits = hk.Linear(n, name="enc_out")(h)
        if variant == "bernoulli_vae":
          if is_training:
            u = jax.random.uniform(hk.next_rng_key(), logits.shape, minval=1e-6, maxval=1 - 1e-6)
            z = jax.nn.sigmoid((logits + jnp.log(u) - jnp.log1p(-u)) / temperature)
          else:
            z = (logits > 0).astype(logits.dtype)
          p = jax.nn.sigmoid(logits)
          kl = jnp.sum(p * (jax.nn.log_sigmoid(logits) + math.log(2))
                       + (1 - p) * (jax.nn.log_sigmoid(-logits) + math.log(2)), axis=1)
          penalty = kl_weight * jnp.mean(kl)
        else:
          hard = variant[len("dab_"):]
          pre = jnp.tanh(logits) if hard == "signum" else logits
          z, penalty = hard_layer(pre, hard, gradient=gradient, is_training=is_training,
                                  approximator=approximator, approx_hidden=approx_hidden,
                                  gamma=gamma, dab_loss=dab_loss, name="latent")
    recon = decode(z, image_shape)
    return {"output": recon, "penalty": penalty,
            "metrics": {"ms_ssim": jnp.mean(metrics_lib.ms_ssim(inputs, recon))},
            "stats": {"latent_bits": jnp.asarray(float(bits))}}
  return forward


def encode_fn(variant: str = "dab_binary", **kwargs):
  """The latent codes of `autoencoder(variant, **kwargs)` (evaluation mode), for linear probes.

  Returns forward(inputs) -> codes [B, ...]; use with the trained model's params.
  """
  model = autoencoder(variant, **kwargs)

  def codes(inputs):
    captured = {}

    def interceptor(next_f, args, kw, context):
      out = next_f(*args, **kw)
      if context.module.module_name.endswith("dec_0"):
        captured["z"] = args[0]
      return out
    with hk.intercept_methods(interceptor):
      model(inputs, is_training=False)
    return captured["z"]
  return codes


# ---------------------------------------------------------------------------
# Section 5.3: CIFAR-10 ResNet-18 with a hard function after block k.


class _BasicBlock(hk.Module):

  def __init__(self, channels: int, stride: int, name=None):
    super().__init__(name=name)
    self.channels, self.stride = channels, stride

  def __call__(self, x, is_training):
    bn = lambda n: hk.BatchNorm(True, True, 0.9, name=n)
    h = hk.Conv2D(self.channels, 3, self.stride, with_bias=False, name="conv_0")(x)
    h = jax.nn.relu(bn("bn_0")(h, is_training))
    h = hk.Conv2D(self.channels, 3, 1, with_bias=False, name="conv_1")(h)
    h = bn("bn_1")(h, is_training)
    if self.stride != 1 or x.shape[-1] != self.channels:
      x = hk.Conv2D(self.channels, 1, self.stride, with_bias=False, name="proj")(x)
      x = bn("bn_proj")(x, is_training)
    return jax.nn.relu(h + x)


def cifar_resnet18(num_classes: int = 10, width: int = 64, blocks: Sequence[int] = (2, 2, 2, 2),
                   hard: str = "sort", placement: int = 4, gradient: str = "dab",
                   approximator: str = "per_element", approx_hidden: Sequence[int] = (64,),
                   approx_activation: str = "tanh", gamma: float = 10.0, dab_loss: str = "l2",
                   margin: float = 0.5, k: int = 10, kmeans_iterations: int = 10):
  """CIFAR ResNet-18 (3x3 stem, four groups of basic blocks, widths w, 2w, 4w, 8w) with
  the hard function applied to the output of residual group `placement` (1-4; 0 = none).

  Metric `emd`: Wasserstein-1 between the hard function's input and output
  values (figure 6 middle). gradient='smooth' is the Identity(x) baseline.
  """
  if not 0 <= placement <= len(blocks):
    raise ValueError(f"placement must be in 0..{len(blocks)}, got {placement}")
  dab_kw = dict(gradient=gradient, approximator=approximator, approx_hidden=approx_hidden,
                approx_activation=approx_activation, gamma=gamma, dab_loss=dab_loss)
  hard_kw = _hard_kwargs(hard, margin, k, kmeans_iterations)

  def forward(inputs, *, is_training: bool, step=None):
    h = hk.Conv2D(width, 3, 1, with_bias=False, name="stem")(inputs)
    h = jax.nn.relu(hk.BatchNorm(True, True, 0.9, name="stem_bn")(h, is_training))
    penalty = jnp.zeros((), jnp.float32)
    metrics = {}
    for g, n in enumerate(blocks):
      for b in range(n):
        stride = 2 if g > 0 and b == 0 else 1
        h = _BasicBlock(width * 2 ** g, stride, name=f"group_{g}_block_{b}")(h, is_training)
      if g + 1 == placement:
        z, penalty = hard_layer(h, hard, is_training=is_training, hard_kwargs=hard_kw,
                                name="hard", **dab_kw)
        metrics["emd"] = jnp.mean(metrics_lib.emd_1d(h, z))
        metrics["dab_penalty"] = penalty
        h = z
    h = jnp.mean(h, axis=(1, 2)) if h.ndim == 4 else h
    logits = hk.Linear(num_classes, name="logits")(h)
    return {"output": logits, "penalty": penalty, "metrics": metrics}
  return forward
