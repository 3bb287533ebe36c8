"""Non-differentiable ("hard") functions used in the DAB paper (pure JAX).

Every function here maps a batch `x` of shape [B, ...] to a batch [B, ...']
and is jit- and vmap-able. Some change the per-example shape (`sort_rows_cols`
doubles the channel axis, `topk` keeps k values): the straight-through
estimator cannot be used with those (paper, section 2), DAB can.

Paper references (dab.txt): eq. 11 (epsilon-margin signum), section 5.2 table
(binary: x >= mean(x); Bernoulli sampling), table 2 (sort-row (+) sort-col,
top-k, k-means with k=10) and section 5.3.1 (sort-1D: flatten and sort).
"""

from __future__ import annotations

import functools
from typing import Callable

import jax
import jax.numpy as jnp


def signum(x: jnp.ndarray, margin: float = 0.5) -> jnp.ndarray:
  """Epsilon-margin signum, eq. 11: -1 for x < -eps, 0 on [-eps, eps], +1 for x > eps."""
  if margin < 0:
    raise ValueError(f"signum margin must be >= 0, got {margin}")
  return jnp.where(x > margin, 1.0, jnp.where(x < -margin, -1.0, 0.0)).astype(x.dtype)


def binary(x: jnp.ndarray) -> jnp.ndarray:
  """dab-binary (section 5.2): 1 where x >= mean(x) over each example's features, else 0."""
  axes = tuple(range(1, x.ndim))
  mean = jnp.mean(x, axis=axes, keepdims=True)
  return (x >= mean).astype(x.dtype)


def bernoulli(x: jnp.ndarray, uniform: jnp.ndarray) -> jnp.ndarray:
  """dab-bernoulli (section 5.2): z ~ Bern(sigmoid(x)) with the given U(0, 1) noise.

  The noise is an explicit argument (not a PRNG key) so the function stays a
  pure map of arrays and the bridge can return a zero cotangent for it.
  """
  if uniform.shape != x.shape:
    raise ValueError(f"bernoulli: noise shape {uniform.shape} must equal input shape {x.shape}")
  return (uniform < jax.nn.sigmoid(x)).astype(x.dtype)


def sort_rows_cols(x: jnp.ndarray) -> jnp.ndarray:
  """Table 2 "Sort": sort-row(x) (+) sort-col(x) for feature maps [B, H, W, C].

  Rows (axis W) and columns (axis H) of every channel are sorted ascending and
  the two results are concatenated on the channel axis: [B, H, W, 2C].
  """
  if x.ndim != 4:
    raise ValueError(f"sort_rows_cols needs feature maps [B, H, W, C], got shape {x.shape}")
  return jnp.concatenate([jnp.sort(x, axis=2), jnp.sort(x, axis=1)], axis=-1)


def sort_1d(x: jnp.ndarray) -> jnp.ndarray:
  """Section 5.3.1 "Sort-1D": flatten each example, sort ascending, restore the shape."""
  flat = x.reshape(x.shape[0], -1)
  return jnp.sort(flat, axis=-1).reshape(x.shape)


def topk(x: jnp.ndarray, k: int) -> jnp.ndarray:
  """Table 2 "Topk": (sort-row(x) (+) sort-col(x))[0:k] for maps, the k largest for vectors.

  For feature maps [B, H, W, C] the row/column sort is taken first and the k
  largest entries of the result are kept, in descending order: [B, k]. For
  vectors [B, D] the k largest entries: [B, k].
  """
  if k < 1:
    raise ValueError(f"topk needs k >= 1, got {k}")
  if x.ndim == 4:
    x = sort_rows_cols(x)
  flat = x.reshape(x.shape[0], -1)
  if k > flat.shape[1]:
    raise ValueError(f"topk k={k} exceeds the {flat.shape[1]} features per example")
  return jax.lax.top_k(flat, k)[0]


def _points(x: jnp.ndarray) -> jnp.ndarray:
  """[B, ..., C] -> [B, N, C] points (positions x channels); vectors -> scalar points."""
  if x.ndim <= 2:
    return x.reshape(x.shape[0], -1, 1)
  return x.reshape(x.shape[0], -1, x.shape[-1])


def kmeans(x: jnp.ndarray, k: int = 10, iterations: int = 10,
           output: str = "values") -> jnp.ndarray:
  """Table 2 "K-Means": Lloyd's algorithm per example with a fixed iteration count.

  Points are the feature vectors at each spatial position ([B, H, W, C] ->
  H*W points in R^C); for vectors [B, D] the D scalars. Centroids start at k
  evenly spaced points (deterministic). `output="values"` replaces every point
  by its centroid (same shape as x, as the paper uses it as an activation);
  `output="assignments"` returns the int32 cluster index per point [B, N].
  """
  if k < 1 or iterations < 0:
    raise ValueError(f"kmeans needs k >= 1 and iterations >= 0, got k={k}, iterations={iterations}")
  if output not in ("values", "assignments"):
    raise ValueError(f"kmeans output must be 'values' or 'assignments', got {output!r}")
  pts = _points(x)
  n = pts.shape[1]
  if k > n:
    raise ValueError(f"kmeans k={k} exceeds the {n} points per example")
  init_idx = jnp.round(jnp.linspace(0, n - 1, k)).astype(jnp.int32)

  def one(p):
    def assign(c):
      d = jnp.sum(jnp.square(p[:, None, :] - c[None, :, :]), axis=-1)  # [N, k]
      return jnp.argmin(d, axis=-1)

    def body(c, _):
      a = assign(c)
      onehot = jax.nn.one_hot(a, k, dtype=p.dtype)  # [N, k]
      counts = onehot.sum(0)
      sums = onehot.T @ p
      c_new = jnp.where(counts[:, None] > 0, sums / jnp.maximum(counts[:, None], 1), c)
      return c_new, None

    c, _ = jax.lax.scan(body, p[init_idx], None, length=iterations)
    a = assign(c)
    return a, c[a]

  assignments, values = jax.vmap(one)(pts)
  if output == "assignments":
    return assignments.astype(jnp.int32)
  return values.reshape(x.shape)


def identity(x: jnp.ndarray) -> jnp.ndarray:
  """The smooth baseline's "hard" function (table 2 Baseline: Identity(x))."""
  return x


HARD_FUNCTIONS: dict[str, Callable[..., jnp.ndarray]] = {
    "signum": signum,
    "binary": binary,
    "bernoulli": bernoulli,
    "sort": sort_rows_cols,
    "sort_1d": sort_1d,
    "topk": topk,
    "kmeans": kmeans,
    "identity": identity,
}

# Functions that need U(0, 1) noise of the input's shape as a second argument.
STOCHASTIC = ("bernoulli",)


def get_hard_fn(name: str, **kwargs) -> Callable[..., jnp.ndarray]:
  """Looks up a hard function by name and binds its hyperparameters (margin, k, ...)."""
  if name not in HARD_FUNCTIONS:
    raise ValueError(f"unknown hard function {name!r}; expected one of {sorted(HARD_FUNCTIONS)}")
  return functools.partial(HARD_FUNCTIONS[name], **kwargs) if kwargs else HARD_FUNCTIONS[name]
