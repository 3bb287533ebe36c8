"""Evaluation metrics of the DAB paper as pure JAX functions.

- `ms_ssim`: multi-scale structural similarity [34] (figures 4-5, left).
- `linear_probe_accuracy`: linear classification of latent codes (figures 4-5,
  middle), a closed-form ridge-regression classifier on one-hot targets.
- `emd_1d`: empirical earth mover's (Wasserstein-1) distance between the
  values entering and leaving the hard function (figure 6, middle).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

# Wang et al. [34] scale weights for 5 scales.
MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def _gaussian_window(size: int, sigma: float) -> jnp.ndarray:
  r = jnp.arange(size, dtype=jnp.float32) - (size - 1) / 2.0
  g = jnp.exp(-0.5 * (r / sigma) ** 2)
  return g / g.sum()


def _filter(x: jnp.ndarray, window: jnp.ndarray) -> jnp.ndarray:
  """Separable valid Gaussian filtering of [B, H, W, C] per channel."""
  c = x.shape[-1]
  k = window.shape[0]
  kh = jnp.tile(window.reshape(k, 1, 1, 1), (1, 1, 1, c))
  kw = jnp.tile(window.reshape(1, k, 1, 1), (1, 1, 1, c))
  dn = ("NHWC", "HWIO", "NHWC")
  x = jax.lax.conv_general_dilated(x, kh, (1, 1), "VALID", dimension_numbers=dn, feature_group_count=c)
  return jax.lax.conv_general_dilated(x, kw, (1, 1), "VALID", dimension_numbers=dn, feature_group_count=c)


def _ssim_terms(x, y, window, max_val, k1=0.01, k2=0.03):
  c1, c2 = (k1 * max_val) ** 2, (k2 * max_val) ** 2
  mx, my = _filter(x, window), _filter(y, window)
  sxx = _filter(x * x, window) - mx * mx
  syy = _filter(y * y, window) - my * my
  sxy = _filter(x * y, window) - mx * my
  luminance = (2 * mx * my + c1) / (mx * mx + my * my + c1)
  cs = (2 * sxy + c2) / (sxx + syy + c2)
  axes = (1, 2, 3)
  return jnp.mean(luminance * cs, axis=axes), jnp.mean(cs, axis=axes)


def ms_ssim(x: jnp.ndarray, y: jnp.ndarray, max_val: float = 1.0, filter_size: int = 11,
            sigma: float = 1.5, weights=MS_SSIM_WEIGHTS) -> jnp.ndarray:
  """Per-example MS-SSIM of images [B, H, W, C], shape [B].

  Follows Wang et al.: contrast-structure terms at every scale but the last,
  SSIM at the last, combined as a weighted geometric mean; 2x average pooling
  between scales. Small images (28x28) cannot hold 5 scales of an 11-tap
  window, so the scales are truncated to those whose side is at least
  `filter_size` (the window shrinks to the image side if needed) and the
  remaining weights are renormalised to sum to one. Negative terms are
  clipped at 0 before the powers (as tf.image.ssim_multiscale's relu).
  """
  if x.shape != y.shape or x.ndim != 4:
    raise ValueError(f"ms_ssim needs two image batches [B, H, W, C] of equal shape, got {x.shape}, {y.shape}")
  x = x.astype(jnp.float32)
  y = y.astype(jnp.float32)
  side = min(x.shape[1], x.shape[2])
  size = min(filter_size, side)
  scales = 1
  while scales < len(weights) and side // (2 ** scales) >= size:
    scales += 1
  w = jnp.asarray(weights[:scales], jnp.float32)
  w = w / w.sum()
  window = _gaussian_window(size, sigma)
  values = []
  for s in range(scales):
    ssim, cs = _ssim_terms(x, y, window, max_val)
    values.append(jax.nn.relu(cs if s < scales - 1 else ssim))
    if s < scales - 1:
      pool = lambda z: jax.lax.reduce_window(z, 0.0, jax.lax.add, (1, 2, 2, 1), (1, 2, 2, 1), "VALID") / 4.0
      x, y = pool(x), pool(y)
  stacked = jnp.stack(values, axis=-1)  # [B, scales]
  return jnp.prod(stacked ** w, axis=-1)


def linear_probe_accuracy(train_z: jnp.ndarray, train_y: jnp.ndarray, test_z: jnp.ndarray,
                          test_y: jnp.ndarray, num_classes: int, l2: float = 1e-3) -> jnp.ndarray:
  """Test accuracy of a linear classifier fit on latent codes (figures 4-5, middle).

  The classifier is ridge regression onto one-hot labels with a bias, solved
  in closed form: W = (Z^T Z + l2 * n * I)^-1 Z^T Y; predictions argmax(Z W).
  Codes are flattened per example. Purely unsupervised models are probed after
  training, as the paper does (footnote 5: the encoded posterior is the input).
  """
  if train_z.shape[0] != train_y.shape[0] or test_z.shape[0] != test_y.shape[0]:
    raise ValueError("linear_probe_accuracy: codes and labels need the same number of examples")
  def design(z):
    z = z.reshape(z.shape[0], -1).astype(jnp.float32)
    return jnp.concatenate([z, jnp.ones((z.shape[0], 1), z.dtype)], axis=1)
  a = design(train_z)
  targets = jax.nn.one_hot(train_y, num_classes)
  gram = a.T @ a + l2 * a.shape[0] * jnp.eye(a.shape[1])
  w = jnp.linalg.solve(gram, a.T @ targets)
  pred = jnp.argmax(design(test_z) @ w, axis=-1)
  return jnp.mean((pred == test_y).astype(jnp.float32))


def emd_1d(a: jnp.ndarray, b: jnp.ndarray) -> jnp.ndarray:
  """Per-example Wasserstein-1 distance between the empirical value distributions, [B].

  a [B, ...] and b [B, ...] may hold different numbers of values per example
  (the row/column sort doubles them). Exact: W1 = integral over q of
  |F_a^-1(q) - F_b^-1(q)|, evaluated on the union of both quantile grids.
  """
  fa = jnp.sort(a.reshape(a.shape[0], -1).astype(jnp.float32), axis=1)
  fb = jnp.sort(b.reshape(b.shape[0], -1).astype(jnp.float32), axis=1)
  na, nb = fa.shape[1], fb.shape[1]
  grid = jnp.sort(jnp.concatenate([jnp.arange(na + 1) / na, jnp.arange(nb + 1) / nb]))
  widths = jnp.diff(grid)
  mids = 0.5 * (grid[1:] + grid[:-1])
  ia = jnp.clip(jnp.floor(mids * na).astype(jnp.int32), 0, na - 1)
  ib = jnp.clip(jnp.floor(mids * nb).astype(jnp.int32), 0, nb - 1)
  return jnp.sum(jnp.abs(fa[:, ia] - fb[:, ib]) * widths, axis=1)
