"""Weight initializations of appendix D (Haiku initializers).

* :class:`ScaleCorrectedOrthogonal` (SUO, Martens et al. 2021): for an m x k
  matrix (k = input dimension) ``(X X^T)^{-1/2} X`` with X iid N(0, 1) (the
  transpose construction when m > k), times ``max(sqrt(m/k), 1)`` and an extra
  multiplier sigma_w. ``(X X^T)^{-1/2} X`` is a Haar-distributed matrix with
  orthonormal rows, which we sample as the sign-corrected QR factor of X^T.
* :class:`OrthogonalDelta`: convolution kernels that are zero except at the
  centre tap, which holds an SUO matrix (odd kernel sizes only).
* :class:`GaussianFanIn`: N(0, sigma_w^2 / fan_in) (eq. 1's N(0, 1/d_l) for sigma_w = 1).

Haiku stores dense weights as [in, out] and conv weights as [kh, kw, in, out].
"""

from __future__ import annotations

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np


def suo_matrix(key, fan_in: int, fan_out: int, dtype=jnp.float32) -> jnp.ndarray:
  """An SUO sample with Haiku's [in, out] layout, scale max(sqrt(out/in), 1)."""
  big, small = max(fan_in, fan_out), min(fan_in, fan_out)
  x = jax.random.normal(key, (big, small), jnp.float32)
  q, r = jnp.linalg.qr(x)  # q: [big, small] with orthonormal columns
  q = q * jnp.where(jnp.diagonal(r) < 0, -1.0, 1.0)[None, :]  # Haar measure
  w = q if fan_in >= fan_out else q.T  # [in, out]
  scale = max(np.sqrt(fan_out / fan_in), 1.0)
  return (scale * w).astype(dtype)


class ScaleCorrectedOrthogonal(hk.initializers.Initializer):
  """SUO initializer for dense weights [in, out], times ``scale`` (sigma_w)."""

  def __init__(self, scale: float = 1.0):
    self.scale = scale

  def __call__(self, shape, dtype):
    if len(shape) != 2:
      raise ValueError(f"ScaleCorrectedOrthogonal needs a 2-d [in, out] shape, got {shape}")
    return self.scale * suo_matrix(hk.next_rng_key(), shape[0], shape[1], dtype)


class OrthogonalDelta(hk.initializers.Initializer):
  """Orthogonal Delta initializer for conv kernels [*spatial, in, out]."""

  def __init__(self, scale: float = 1.0):
    self.scale = scale

  def __call__(self, shape, dtype):
    spatial = shape[:-2]
    if any(k % 2 == 0 for k in spatial):
      raise ValueError(f"OrthogonalDelta needs odd kernel sizes (a centre tap), got {shape}")
    centre = tuple(k // 2 for k in spatial)
    w = jnp.zeros(shape, dtype)
    return w.at[centre].set(self.scale * suo_matrix(hk.next_rng_key(), shape[-2], shape[-1],
                                                    dtype))


class GaussianFanIn(hk.initializers.Initializer):
  """N(0, scale^2 / fan_in), fan_in = product of all but the last dimension."""

  def __init__(self, scale: float = 1.0):
    self.scale = scale

  def __call__(self, shape, dtype):
    fan_in = int(np.prod(shape[:-1]))
    return (self.scale / np.sqrt(fan_in)) * jax.random.normal(hk.next_rng_key(), shape, dtype)


INITS = ("orthogonal", "gaussian")


def weight_init(kind: str, scale: float, conv: bool) -> hk.initializers.Initializer:
  """The weight initializer ``kind`` ('orthogonal' = SUO / Orthogonal Delta, 'gaussian')."""
  if kind == "orthogonal":
    return OrthogonalDelta(scale) if conv else ScaleCorrectedOrthogonal(scale)
  if kind == "gaussian":
    return GaussianFanIn(scale)
  raise ValueError(f"Unknown init {kind!r}; accepted: {', '.join(INITS)}")


def bias_init(sigma_b: float) -> hk.initializers.Initializer:
  """Biases iid N(0, sigma_b^2) (zeros when sigma_b = 0)."""
  if sigma_b == 0:
    return hk.initializers.Constant(0.0)
  return hk.initializers.RandomNormal(stddev=sigma_b)
