"""Haiku structures of the paper: the algorithm-inspired layers (7), (11)-(14),
their relaxed forms (16), (17), (18), (20), and the convolutional HB-Net
(section 6.1, ResNet as beta_2 = 0), AGD-Net (eq. 21, DenseNet as
alpha = 1, beta = 0 with concatenation) and the ADMM two-path network
(eq. 20, DMRNet as alpha = beta = 1/2).

Each architecture is written once; the baselines are settings of the same
code (see the `*_baseline` notes in `optnets.models`).
"""

from __future__ import annotations

from typing import Callable, Sequence

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from optnets import kernels

COEFFICIENT_MODES = ("constant", "algorithm", "learned")
FC_STRUCTURES = ("gd", "hb", "agd", "agd2", "admm",
                 "hb_relaxed", "agd_relaxed", "agd2_relaxed", "admm_relaxed")
ADMM_STARTS = ("input", "zero")  # x'_0 of iteration (14): x_0, or 0


def _check(name, value, accepted):
  if value not in accepted:
    raise ValueError(f"{name}={value!r} is not accepted; choose one of {list(accepted)}.")


def _static(fn, num: int) -> np.ndarray:
  """kernels.fn(num) (theta, beta, h) as numpy constants, also while jit traces the network."""
  with jax.ensure_compile_time_eval():
    return np.asarray(fn(num))


def coefficient(name: str, value, learned: bool) -> jnp.ndarray:
  """A structure coefficient: the constant `value`, or a parameter initialised at it."""
  value = jnp.asarray(value, jnp.float32)
  if not learned:
    return value
  return hk.get_parameter(name, value.shape, jnp.float32, init=lambda *_: value)


# ---------------------------------------------------------------------------
# One step of each relaxed structure, over an arbitrary transform T.


def hb_step(t_out, x_k, x_prev, beta1, beta2):
  """Eq. (16): x_{k+1} = T(x_k) + beta_1 x_k + beta_2 x_{k-1}."""
  return t_out + beta1 * x_k + beta2 * x_prev


def admm_step(t_prime, t_x, xs_prime: Sequence, xs: Sequence, alphas, betas):
  """Eq. (20): both paths add sum_t alpha_t x'_t + sum_t beta_t x_t to their own T."""
  side = sum(a * xp for a, xp in zip(alphas, xs_prime)) + sum(b * x for b, x in zip(betas, xs))
  return t_prime + side, t_x + side


# ---------------------------------------------------------------------------
# Fully connected structures (sections 4, 5, 6 with T(x) = Phi(W x)).
#
# Every structure is one lax.scan over the layers with the per-layer weights
# stacked as [depth, d, d]: the compiled graph is O(1) in depth. (Unrolled
# python loops let XLA duplicate the long elementwise chains of the ADMM
# multiplier and of the AGD2 history sums into every layer's fusion, which made
# those structures 8-19x slower than GD per step and their compiles 20-60 s.)


def _fc_weights(depth: int, width: int, shared: bool, with_bias: bool):
  """W_0..W_{depth-1} as [depth, d, d] (and biases [depth, d] or None).

  Initialised like hk.Linear (truncated normal, stddev 1/sqrt(d)); x @ W_k is
  the layer's linear map. shared=True makes one W (section 5.1), used by every layer.
  """
  w_init = hk.initializers.TruncatedNormal(1.0 / np.sqrt(width))
  lead = () if shared else (depth,)
  with hk.experimental.name_scope("w" if shared else "layers"):
    w = hk.get_parameter("w", [*lead, width, width], jnp.float32, init=w_init)
    b = hk.get_parameter("b", [*lead, width], jnp.float32, init=jnp.zeros) if with_bias else None
  if shared:
    w = jnp.broadcast_to(w, (depth, width, width))
    b = None if b is None else jnp.broadcast_to(b, (depth, width))
  return w, (jnp.zeros((depth, width), jnp.float32) if b is None else b)


def _lower_rows(depth: int, fill) -> np.ndarray:
  """[depth, depth + 1] with row k holding fill(k) (length k + 1) in columns 0..k, zeros after."""
  out = np.zeros((depth, depth + 1), np.float32)
  for k in range(depth):
    out[k, :k + 1] = fill(k)
  return out


def _history_step(buffers, k, news):
  return tuple(lax.dynamic_update_index_in_dim(buf, new, k, 0) for buf, new in zip(buffers, news))


def fc_structure(x0: jnp.ndarray, *, structure: str, depth: int, activation: str = "sigmoid",
                 shared: bool = False, hb_beta: float = 0.3, coefficients: str = "algorithm",
                 beta1: float = 1.0, beta2: float = 0.0, alpha: float = 1.0, beta: float = 0.0,
                 with_bias: bool = False, admm_start: str = "input") -> jnp.ndarray:
  """Runs `depth` layers of an optimization-inspired structure on x0 [B, d].

  structure:
    gd (7) x_{k+1} = Phi(W_k x_k);  hb (11) + hb_beta (x_k - x_{k-1});
    agd (12) x_{k+1} = Phi(W_k (x_k + beta_k (x_k - x_{k-1}))) with Nesterov beta_k;
    agd2 (13) x_{k+1} = sum_j h_{k+1,j} Phi(W_j x_j) + x_k - sum_j h_{k+1,j} x_j;
    admm (14) two paths x', x, both through W_k; output x_depth; the paper does not
    give x'_0: admm_start="input" starts both paths at the input (x'_0 = x_0),
    "zero" starts the x' path at 0;
    hb_relaxed (16), agd_relaxed (17), agd2_relaxed (18), admm_relaxed (20) with
    `coefficients` constant (beta1/beta2, alpha/beta), algorithm (the values of
    (11)/(12)/(13); not defined for (20)) or learned (initialised at the
    algorithm values, or at the constants for (20)).
  With shared=False layer k has its own W_k (section 5.2), else one W.
  x_{-1} = x_0 (the algorithms' usual start, so the first momentum term vanishes).
  Phi(W_j x_j) is computed once, at layer j, and reused by later layers, as the
  algorithm reuses grad f(y_j).

  Exact (13) is evaluated with the two-term recurrence that eq. (5) implies,
  S_{k+1} = sum_j h_{k+1,j} g_j = b_{k+1} (S_k - g_{k-1}) + (1 + b_{k+1}) g_k with
  g_j = x_j - Phi(W_j x_j) and x_{k+1} = x_k - S_{k+1}: the same sum,
  regrouped (it equals the explicit h-sum of agd2_relaxed with 'algorithm'
  coefficients to float32 rounding). The relaxed forms (18)/(20) keep the
  explicit sums over a history buffer (arbitrary coefficients have no recurrence).
  """
  _check("structure", structure, FC_STRUCTURES)
  _check("coefficients", coefficients, COEFFICIENT_MODES)
  _check("admm_start", admm_start, ADMM_STARTS)
  if depth < 1:
    raise ValueError(f"depth must be >= 1, got {depth}.")
  if structure == "admm_relaxed" and coefficients == "algorithm":
    raise ValueError("admm_relaxed has no 'algorithm' coefficients; use structure='admm' "
                     "for iteration (14), or coefficients in ('constant', 'learned').")
  phi = kernels.activation(activation).phi
  width = x0.shape[-1]
  ws, bs = _fc_weights(depth, width, shared, with_bias)
  t = lambda x, w, b: phi(x @ w + b)
  learned = coefficients == "learned"
  nb = _static(kernels.nesterov_betas, depth)
  h = _static(kernels.agd_h, depth)
  ones = np.ones(depth, np.float32)

  if structure in ("gd", "hb", "hb_relaxed", "agd", "agd_relaxed"):
    if structure == "gd":
      b1, b2 = 0.0 * ones, 0.0 * ones
    elif structure == "hb" or (structure == "hb_relaxed" and coefficients != "constant"):
      b1, b2 = hb_beta * ones, -hb_beta * ones
    elif structure == "agd" or (structure == "agd_relaxed" and coefficients != "constant"):
      b1, b2 = 1.0 + nb[:depth], -nb[:depth]
    else:
      b1, b2 = beta1 * ones, beta2 * ones
    relaxed = structure.endswith("relaxed")
    b1 = coefficient("beta1", b1, learned and relaxed)
    b2 = coefficient("beta2", b2, learned and relaxed)
    if structure.startswith("agd"):  # eq. (17): x_{k+1} = T(beta_1 x_k + beta_2 x_{k-1})
      body = lambda x, xp, w, b, c1, c2: t(c1 * x + c2 * xp, w, b)
    else:  # eq. (16): x_{k+1} = T(x_k) + beta_1 x_k + beta_2 x_{k-1}
      body = lambda x, xp, w, b, c1, c2: hb_step(t(x, w, b), x, xp, c1, c2)

    def layer(carry, inp):
      x_prev, x = carry
      return (x, body(x, x_prev, *inp)), None

    (_, x), _ = lax.scan(layer, (x0, x0), (ws, bs, b1, b2))
    return x

  if structure == "agd2":
    def layer(carry, inp):
      x, s, g_prev = carry
      w, b, bk = inp
      g = x - t(x, w, b)  # grad f(y_k) in x-coordinates
      s = bk * (s - g_prev) + (1.0 + bk) * g
      return (x - s, s, g), None

    zeros = jnp.zeros_like(x0)
    (x, _, _), _ = lax.scan(layer, (x0, zeros, zeros), (ws, bs, nb[1:depth + 1]))
    return x

  if structure == "agd2_relaxed":
    hrows = _lower_rows(depth, lambda k: h[k + 1, :k + 1])
    delta = _lower_rows(depth, lambda k: np.eye(k + 1)[k])
    if coefficients == "constant":  # eq. (21) form
      al, be = _lower_rows(depth, lambda k: np.full(k + 1, alpha)), beta * (delta - hrows)
    else:
      al, be = hrows, delta - hrows
    mask = _lower_rows(depth, lambda k: np.ones(k + 1))
    al = coefficient("alpha", al, learned) * mask
    be = coefficient("beta", be, learned) * mask

    def layer(carry, inp):
      xbuf, tbuf = carry
      w, b, a_row, b_row, k = inp
      (tbuf,) = _history_step((tbuf,), k, (t(xbuf[k], w, b),))
      # eq. (18): sum_j alpha^j T(x_j) + sum_j beta^j x_j over the history
      x_new = jnp.tensordot(a_row, tbuf, 1) + jnp.tensordot(b_row, xbuf, 1)
      return (_history_step((xbuf,), k + 1, (x_new,))[0], tbuf), None

    xbuf = jnp.zeros((depth + 1,) + x0.shape, x0.dtype).at[0].set(x0)
    (xbuf, _), _ = lax.scan(layer, (xbuf, jnp.zeros_like(xbuf)),
                            (ws, bs, al, be, jnp.arange(depth)))
    return xbuf[depth]

  if structure == "admm":
    def layer(carry, inp):
      xp, x, lam = carry  # lam = sum_{t=1..k} (x'_t - x_t), the multiplier of (6)
      w, b = inp
      xp_new = 0.5 * (t(xp, w, b) + x - lam)
      x_new = 0.5 * (t(x, w, b) + xp_new + lam)
      return (xp_new, x_new, lam + (xp_new - x_new)), None

    xp0 = x0 if admm_start == "input" else jnp.zeros_like(x0)
    (_, x, _), _ = lax.scan(layer, (xp0, x0, jnp.zeros_like(x0)), (ws, bs))
    return x

  # admm_relaxed, eq. (20)
  mask = _lower_rows(depth, lambda k: np.ones(k + 1))
  al = coefficient("alpha", _lower_rows(depth, lambda k: np.eye(k + 1)[k] * alpha), learned) * mask
  be = coefficient("beta", _lower_rows(depth, lambda k: np.eye(k + 1)[k] * beta), learned) * mask

  def layer(carry, inp):
    pbuf, xbuf = carry
    w, b, a_row, b_row, k = inp
    side = jnp.tensordot(a_row, pbuf, 1) + jnp.tensordot(b_row, xbuf, 1)
    xp_new, x_new = t(pbuf[k], w, b) + side, t(xbuf[k], w, b) + side
    return _history_step((pbuf, xbuf), k + 1, (xp_new, x_new)), None

  buf = jnp.zeros((depth + 1,) + x0.shape, x0.dtype).at[0].set(x0)
  (_, xbuf), _ = lax.scan(layer, (buf, buf), (ws, bs, al, be, jnp.arange(depth)))
  return xbuf[depth]


# ---------------------------------------------------------------------------
# Convolutional pieces.


def _bn(name=None):
  return hk.BatchNorm(create_scale=True, create_offset=True, decay_rate=0.9, name=name)


def _conv(ch, k, stride=1, name=None):
  return hk.Conv2D(ch, k, stride=stride, with_bias=False, padding="SAME",
                   w_init=hk.initializers.VarianceScaling(2.0, "fan_out", "normal"), name=name)


def _head(x, num_classes):
  x = jnp.mean(x, axis=(1, 2))
  return hk.Linear(num_classes, w_init=hk.initializers.VarianceScaling(1.0, "fan_avg", "uniform"),
                   name="logits")(x)


class BasicT(hk.Module):
  """T of section 6.1: conv-BN-ReLU-conv-BN (stride 2 in the first conv when down-sampling)."""

  def __init__(self, channels, stride=1, name=None):
    super().__init__(name=name)
    self.channels, self.stride = channels, stride

  def __call__(self, x, is_training):
    y = _conv(self.channels, 3, self.stride, name="conv1")(x)
    y = jax.nn.relu(_bn("bn1")(y, is_training))
    y = _conv(self.channels, 3, name="conv2")(y)
    return _bn("bn2")(y, is_training)


def _make_shortcut(kind, channels, stride):
  """Maps x_k (and x_{k-1}) to the new shape at a down-sampling layer.

  kind 'A' (CIFAR ResNet): stride-2 subsampling and zero-padded channels;
  'B' (ImageNet ResNet): 1x1 convolution with stride + BN, one module applied
  to both x_k and x_{k-1} so HB's momentum term uses the same map.
  """
  if kind == "A":
    def f(x, is_training):
      del is_training
      x = x[:, ::stride, ::stride, :]
      pad = channels - x.shape[-1]
      return jnp.pad(x, ((0, 0), (0, 0), (0, 0), (pad // 2, pad - pad // 2)))
    return f
  conv = _conv(channels, 1, stride, name="proj_conv")
  bn = _bn("proj_bn")
  return lambda x, is_training: bn(conv(x), is_training)


def hb_net(images, is_training, *, stage_blocks: Sequence[int], stage_channels: Sequence[int],
           num_classes: int, stem: str = "cifar", shortcut: str = "A", beta1: float = 1.0,
           beta2: float = -1.0, coefficients: str = "constant", post_activation: bool = True):
  """HB-Net (section 6.1) / ResNet: x_{k+1} = relu(T(x_k) + beta_1 x_k + beta_2 x_{k-1}).

  beta_1 = 1, beta_2 = -1 is HB-Net (eq. 2 with beta = 1); beta_2 = 0 is ResNet
  (table 3). The first layer of each stage down-samples (T's first conv has
  stride 2; x_k and x_{k-1} pass the shortcut map). x_{-1} = x_0 (stem
  output), as in the heavy-ball start. coefficients='learned' makes beta_1,
  beta_2 per-layer parameters initialised at the given values.
  """
  _check("coefficients", coefficients, ("constant", "learned"))
  _check("stem", stem, ("cifar", "imagenet"))
  _check("shortcut", shortcut, ("A", "B"))
  learned = coefficients == "learned"
  if stem == "cifar":
    x = jax.nn.relu(_bn("stem_bn")(_conv(stage_channels[0], 3, name="stem_conv")(images),
                                   is_training))
  else:
    x = jax.nn.relu(_bn("stem_bn")(_conv(64, 7, 2, name="stem_conv")(images), is_training))
    x = hk.max_pool(x, (1, 3, 3, 1), (1, 2, 2, 1), "SAME")
  x_prev = x
  layer = 0
  for s, (blocks, ch) in enumerate(zip(stage_blocks, stage_channels)):
    for b in range(blocks):
      stride = 2 if (b == 0 and s > 0) else 1
      with hk.experimental.name_scope(f"layer_{layer}"):
        t_out = BasicT(ch, stride, name="t")(x, is_training)
        if stride != 1 or x.shape[-1] != ch:
          sc = _make_shortcut(shortcut, ch, stride)
          xs, xps = sc(x, is_training), sc(x_prev, is_training)
        else:
          xs, xps = x, x_prev
        b1 = coefficient("beta1", beta1, learned)
        b2 = coefficient("beta2", beta2, learned)
        new = hb_step(t_out, xs, xps, b1, b2)
      x_prev, x = xs, (jax.nn.relu(new) if post_activation else new)
      layer += 1
  return _head(x, num_classes)


class DenseLayer(hk.Module):
  """Layer k+1 of a dense block, concat (DenseNet, eq. 19) or sum (AGD-Net, eq. 21) form.

  concat: z_{k+1} = T([z_0..z_k]) with T = BN-ReLU-conv3x3, or with a bottleneck
  BN-ReLU-conv1x1(4g)-BN-ReLU-conv3x3(g).
  sum: the first BN-ReLU-conv acts on each z_j separately with its own
  parameters, the results are weighted by alpha^j_{k+1} and summed (the rest
  of a bottleneck T then acts on the sum). Since BN and ReLU are per-channel
  and a convolution of a concatenation is the sum of the per-part
  convolutions, alpha = 1 gives exactly DenseNet (parts mapped across).
  """

  def __init__(self, growth, bottleneck, combine, name=None):
    super().__init__(name=name)
    self.growth, self.bottleneck, self.combine = growth, bottleneck, combine

  def __call__(self, zs, is_training, alphas=None):
    ch = 4 * self.growth if self.bottleneck else self.growth
    k_size = 1 if self.bottleneck else 3
    if self.combine == "concat":
      u = _conv(ch, k_size, name="conv1")(jax.nn.relu(_bn("bn1")(jnp.concatenate(zs, -1),
                                                                 is_training)))
    else:
      u = 0.0
      for j, z in enumerate(zs):
        part = _conv(ch, k_size, name=f"conv1_{j}")(jax.nn.relu(_bn(f"bn1_{j}")(z, is_training)))
        u = u + alphas[j] * part
    if self.bottleneck:
      u = _conv(self.growth, 3, name="conv2")(jax.nn.relu(_bn("bn2")(u, is_training)))
    return u


def agd_net(images, is_training, *, block_layers: Sequence[int], growth: int, num_classes: int,
            combine: str = "sum", bottleneck: bool = False, compression: float = 1.0,
            stem: str = "cifar", stem_channels: int | None = None, beta: float = 0.1,
            alpha_mode: str = "learned"):
  """AGD-Net (eq. 21) / DenseNet (eq. 19) with dense blocks and transitions.

  z_{k+1} = sum_j alpha^j_{k+1} T(z_j) + beta (z_k - sum_{j>=1} h_{k+1,j} z_j), h from
  eq. (5), alpha learned (initialised at 1), beta = 0.1 (section 6.2). The
  j = 0 term of the beta part is dropped because the block input z_0 has a
  different channel count; for the first layer the beta term is
  beta (z_0 - h_{1,0} z_0) = 0 exactly (h_{1,0} = 1). combine='concat', beta = 0
  is DenseNet. Block output: [z_0, ..., z_K]; transitions BN-ReLU-conv1x1
  (compression) - 2x2 average pool; head BN-ReLU-global pool-linear.
  """
  _check("combine", combine, ("sum", "concat"))
  _check("alpha_mode", alpha_mode, ("constant", "learned"))
  _check("stem", stem, ("cifar", "imagenet"))
  if combine == "concat" and beta != 0.0:
    raise ValueError("combine='concat' (DenseNet) needs beta=0; the beta term is AGD-Net's.")
  stem_channels = stem_channels or 2 * growth
  if stem == "cifar":
    x = _conv(stem_channels, 3, name="stem_conv")(images)
  else:
    x = jax.nn.relu(_bn("stem_bn")(_conv(stem_channels, 7, 2, name="stem_conv")(images),
                                   is_training))
    x = hk.max_pool(x, (1, 3, 3, 1), (1, 2, 2, 1), "SAME")
  for b, n_layers in enumerate(block_layers):
    h = _static(kernels.agd_h, n_layers)
    zs = [x]
    for k in range(n_layers):
      with hk.experimental.name_scope(f"block{b}_layer{k}"):
        alphas = None
        if combine == "sum":
          alphas = coefficient("alpha", np.ones(k + 1), alpha_mode == "learned")
        z = DenseLayer(growth, bottleneck, combine, name="t")(zs, is_training, alphas)
        if beta and k >= 1:
          z = z + beta * (zs[k] - sum(h[k + 1, j] * zs[j] for j in range(1, k + 1)))
      zs.append(z)
    x = jnp.concatenate(zs, -1)
    if b + 1 < len(block_layers):
      with hk.experimental.name_scope(f"transition_{b}"):
        ch = int(np.floor(x.shape[-1] * compression))
        x = _conv(ch, 1, name="conv")(jax.nn.relu(_bn("bn")(x, is_training)))
        x = hk.avg_pool(x, (1, 2, 2, 1), (1, 2, 2, 1), "VALID")
  x = jax.nn.relu(_bn("final_bn")(x, is_training))
  return _head(x, num_classes)


def admm_net(images, is_training, *, stage_blocks: Sequence[int], stage_channels: Sequence[int],
             num_classes: int, alpha: float = 0.5, beta: float = 0.5,
             coefficients: str = "constant", post_activation: bool = True):
  """ADMM-inspired two-path network (eq. 20) for CIFAR; DMRNet at alpha = beta = 1/2.

  x'_{k+1} = T'(x'_k) + sum_t alpha_{k,t} x'_t + sum_t beta_{k,t} x_t and
  x_{k+1} = T(x_k) + the same sums, t over the layers of the current stage
  (the stage input, passed through the option-A shortcut, is t = 0).
  'constant' puts alpha, beta on t = k only (DMRNet's merge-and-run:
  x'_k/2 + x_k/2); 'learned' makes the whole rows parameters initialised there.
  Output: (x + x') / 2 into the head.
  """
  _check("coefficients", coefficients, ("constant", "learned"))
  learned = coefficients == "learned"
  x = jax.nn.relu(_bn("stem_bn")(_conv(stage_channels[0], 3, name="stem_conv")(images),
                                 is_training))
  xp = x
  layer = 0
  for s, (blocks, ch) in enumerate(zip(stage_blocks, stage_channels)):
    xs, xps = [x], [xp]
    for b in range(blocks):
      stride = 2 if (b == 0 and s > 0) else 1
      with hk.experimental.name_scope(f"layer_{layer}"):
        tp = BasicT(ch, stride, name="t_prime")(xps[-1], is_training)
        tx = BasicT(ch, stride, name="t")(xs[-1], is_training)
        if stride != 1 or xs[-1].shape[-1] != ch:
          sc = _make_shortcut("A", ch, stride)
          xs, xps = [sc(v, is_training) for v in xs], [sc(v, is_training) for v in xps]
        n = len(xs)
        al = coefficient("alpha", np.eye(n)[n - 1] * alpha, learned)
        be = coefficient("beta", np.eye(n)[n - 1] * beta, learned)
        new_p, new_x = admm_step(tp, tx, xps, xs, al, be)
      if post_activation:
        new_p, new_x = jax.nn.relu(new_p), jax.nn.relu(new_x)
      xps.append(new_p)
      xs.append(new_x)
      layer += 1
    x, xp = xs[-1], xps[-1]
  return _head(0.5 * (x + xp), num_classes)
