"""Rectified (hard) concrete gates of the soft-transfer paper (section 3.3).

Pure JAX functions of arrays: jit-able, vmap-able and differentiable in
`log_alpha`. Every gate has parameters phi = (log_alpha, beta); log_alpha is
the location of the binary concrete distribution, beta its temperature; the
concrete variable is stretched to (xi, zeta) and clipped to [0, 1] (eq. 12).

Defaults follow section 4.2: beta = 2/3, xi = -0.1, zeta = 1.1.

Initialisation ("alpha is initialized by sampling from N(8, 1)", section 4.2)
is read as **log alpha ~ N(8, 1)**, see `LOG_ALPHA_INIT_MEAN`: the paper
initialises "all gates z in a network to 1" (section 3.1). With log alpha = 8
the test-time gate (eq. 16) is exactly 1 and a training sample (eq. 15) is
exactly 1 with probability 1 - sigmoid(beta*logit(11/12) - 8) ~ 0.998. Reading
it as alpha ~ N(8, 1) instead gives log alpha ~ 2.1, a test gate of 0.967 and
P(z = 1) ~ 0.62, i.e. gates that do not start at 1 (and alpha itself could be
sampled negative, where log alpha is undefined). The L0 reference code clamps
log alpha to +-4.6; we do not clamp, since the initial 8 would be cut to 4.6.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

BETA = 2.0 / 3.0
XI = -0.1
ZETA = 1.1
LOG_ALPHA_INIT_MEAN = 8.0
LOG_ALPHA_INIT_STD = 1.0
NOISE_EPS = 1e-6  # uniform noise is clipped to [eps, 1 - eps] (L0 reference code)


def check_gate_hyperparameters(beta: float, xi: float, zeta: float) -> None:
  """Raises ValueError unless 0 < beta, xi <= 0 and zeta >= 1 (section 3.3)."""
  if not beta > 0:
    raise ValueError(f"gate temperature beta must be > 0 (paper: 0 < beta < 1), got {beta}")
  if not xi <= 0:
    raise ValueError(f"gate stretch xi must be <= 0, got {xi}")
  if not zeta >= 1:
    raise ValueError(f"gate stretch zeta must be >= 1, got {zeta}")


def sample_gate(rng: jax.Array, log_alpha: jnp.ndarray, shape=None, *, beta: float = BETA,
                xi: float = XI, zeta: float = ZETA) -> jnp.ndarray:
  """Training-time sample of the rectified concrete gate z (eq. 15).

  eps ~ U(0, 1) clipped to [1e-6, 1 - 1e-6];
  v = sigmoid((log alpha + log(eps / (1 - eps))) / beta);
  z = min(1, max(0, v (zeta - xi) + xi)).
  Reparameterised: the sample is differentiable in `log_alpha`.

  Args:
    rng: PRNG key for the uniform noise.
    log_alpha: gate locations; broadcast against `shape`.
    shape: shape of the sample (default: `log_alpha.shape`).
  """
  shape = jnp.shape(log_alpha) if shape is None else tuple(shape)
  eps = jax.random.uniform(rng, shape, jnp.float32)
  eps = jnp.clip(eps, NOISE_EPS, 1.0 - NOISE_EPS)
  v = jax.nn.sigmoid((log_alpha + jnp.log(eps) - jnp.log1p(-eps)) / beta)
  return jnp.clip(v * (zeta - xi) + xi, 0.0, 1.0)


def test_gate(log_alpha: jnp.ndarray, *, xi: float = XI, zeta: float = ZETA) -> jnp.ndarray:
  """Deterministic test-time estimator z_bar (eq. 16).

  z_bar = min(1, max(0, sigmoid(log alpha) (zeta - xi) + xi)); exactly 0 for
  log alpha <= logit(-xi / (zeta - xi)) and exactly 1 for
  log alpha >= logit((1 - xi) / (zeta - xi)).
  """
  return jnp.clip(jax.nn.sigmoid(log_alpha) * (zeta - xi) + xi, 0.0, 1.0)


def stretched_cdf(t: jnp.ndarray, log_alpha: jnp.ndarray, *, beta: float = BETA,
                  xi: float = XI, zeta: float = ZETA) -> jnp.ndarray:
  """Q_vcheck(t | phi): CDF of the stretched concrete v (zeta - xi) + xi at t (eqs. 11-12).

  Q_v(v) = sigmoid(beta * logit(v) - log alpha), evaluated at
  v = (t - xi) / (zeta - xi); valid for xi < t < zeta.
  """
  v = (t - xi) / (zeta - xi)
  return jax.nn.sigmoid(beta * (jnp.log(v) - jnp.log1p(-v)) - log_alpha)


def prob_nonzero(log_alpha: jnp.ndarray, *, beta: float = BETA, xi: float = XI,
                 zeta: float = ZETA) -> jnp.ndarray:
  """q(z != 0 | phi) = 1 - Q_vcheck(0 | phi) = sigmoid(log alpha - beta log(-xi / zeta)) (eq. 14)."""
  return jax.nn.sigmoid(log_alpha - beta * jnp.log(-xi / zeta))


def prob_one(log_alpha: jnp.ndarray, *, beta: float = BETA, xi: float = XI,
             zeta: float = ZETA) -> jnp.ndarray:
  """q(z = 1 | phi) = 1 - Q_vcheck(1 | phi): the mass folded onto 1 by the clip of eq. 12."""
  return 1.0 - stretched_cdf(jnp.asarray(1.0), log_alpha, beta=beta, xi=xi, zeta=zeta)


def expected_gate(log_alpha: jnp.ndarray, *, beta: float = BETA, xi: float = XI,
                  zeta: float = ZETA, num_points: int = 256) -> jnp.ndarray:
  """E[z] of the rectified concrete gate, elementwise in `log_alpha`.

  For z in [0, 1], E[z] = int_0^1 P(z > t) dt = int_0^1 (1 - Q_vcheck(t)) dt
  (eqs. 11-12); there is no closed form, so the integral is taken with the
  midpoint rule on `num_points` points (error O(num_points^-2)). This is the
  "degree of transfer E[z]" of figure 3's top row.
  """
  t = (jnp.arange(num_points, dtype=jnp.float32) + 0.5) / num_points
  la = jnp.asarray(log_alpha, jnp.float32)[..., None]
  return jnp.mean(1.0 - stretched_cdf(t, la, beta=beta, xi=xi, zeta=zeta), axis=-1)


def structural_risk(log_alphas, gamma: float, *, beta: float = BETA, xi: float = XI,
                    zeta: float = ZETA) -> jnp.ndarray:
  """gamma * sum_i [1 - Q_vcheck_i(0 | phi_i)] (eq. 13), summed over every gate.

  `log_alphas` is an array or any pytree of arrays (one leaf per gated layer);
  the sum runs over all gate parameters. Non-negative, increasing in each
  log alpha, and at most gamma times the number of gates.
  """
  leaves = jax.tree.leaves(log_alphas)
  total = sum((jnp.sum(prob_nonzero(la, beta=beta, xi=xi, zeta=zeta)) for la in leaves),
              jnp.zeros((), jnp.float32))
  return gamma * total
