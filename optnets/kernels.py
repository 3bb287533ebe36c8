"""Pure math of Li, Yang, Chen & Lin, "Optimization algorithm inspired deep
neural network structure design" (2018): Nesterov coefficients and the table-1
objectives whose gradient descent is the feedforward propagation (Lemma 1).

Everything here is a pure JAX function of arrays (jit- and vmap-able); the
Haiku structures in `optnets.nets` take their coefficients from here.
"""

from __future__ import annotations

import functools
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
from jax import lax
from jax.scipy.special import spence


# ---------------------------------------------------------------------------
# Nesterov's accelerated gradient: theta_k, beta_k (eq. 3 / 12), h_{k+1,j} (eq. 5)


def nesterov_thetas(num: int) -> jnp.ndarray:
  """theta_0..theta_num with theta_0 = 1 and (1 - theta_k)/theta_k^2 = 1/theta_{k-1}^2 (eq. 3).

  Solving the quadratic theta_k^2 + t^2 theta_k - t^2 = 0 (t = theta_{k-1}) for
  its positive root: theta_k = (sqrt(t^4 + 4 t^2) - t^2) / 2.
  """
  if num < 0:
    raise ValueError(f"num must be >= 0, got {num}.")

  def step(t, _):
    t2 = t * t
    nxt = 0.5 * (jnp.sqrt(t2 * t2 + 4.0 * t2) - t2)
    return nxt, nxt

  _, rest = lax.scan(step, jnp.asarray(1.0, jnp.float32), None, length=num)
  return jnp.concatenate([jnp.ones((1,), jnp.float32), rest])


def nesterov_betas(num: int) -> jnp.ndarray:
  """beta_0..beta_num, beta_k = theta_k (1 - theta_{k-1}) / theta_{k-1} (eqs. 3, 12).

  beta_0 multiplies z_0 - z_{-1}; with the usual z_{-1} = z_0 it is irrelevant
  and set to 0. beta_1 = 0 as well since theta_0 = 1.
  """
  th = nesterov_thetas(num)
  rest = th[1:] * (1.0 - th[:-1]) / th[:-1]
  return jnp.concatenate([jnp.zeros((1,), th.dtype), rest])


def agd_h(num: int) -> jnp.ndarray:
  """Matrix H of shape [num + 1, num + 1] with H[k + 1, j] = h_{k+1,j} of eq. (5).

  Row 0 is zero (y_0 has no gradient terms); H[k + 1, j] = 0 for j > k.
  h_{1,0} = 1 + beta_1 = 1 and, with b = beta_{k+1} = theta_{k+1}(1-theta_k)/theta_k,
  h_{k+1,j} = b h_{k,j} (j <= k-2), b (h_{k,k-1} - 1) (j = k-1), 1 + b (j = k).
  With these, iteration (4) y_{k+1} = y_k - sum_j h_{k+1,j} grad f(y_j)
  reproduces iteration (3).
  """
  betas = nesterov_betas(num)
  n = num + 1

  def row(prev_row, k):  # prev_row = H[k], returns H[k + 1]
    b = betas[k + 1]
    idx = jnp.arange(n)
    base = b * prev_row
    base = jnp.where(idx == k - 1, b * (prev_row - 1.0), base)
    base = jnp.where(idx == k, 1.0 + b, base)
    base = jnp.where(idx > k, 0.0, base)
    return base, base

  _, rows = lax.scan(row, jnp.zeros((n,), betas.dtype), jnp.arange(num))
  return jnp.concatenate([jnp.zeros((1, n), betas.dtype), rows], axis=0)


def nesterov_iterates(grad_f: Callable, z0: jnp.ndarray, num: int) -> jnp.ndarray:
  """Iteration (3): the z_0..z_num of Nesterov's method with unit stepsize."""
  betas = nesterov_betas(num)
  zs = [z0]
  z_prev = z0
  for k in range(num):
    y = zs[-1] + betas[k] * (zs[-1] - z_prev)
    z_prev = zs[-1]
    zs.append(y - grad_f(y))
  return jnp.stack(zs)


def nesterov_y_iterates_eq4(grad_f: Callable, y0: jnp.ndarray, num: int) -> jnp.ndarray:
  """Iteration (4): y_{k+1} = y_k - sum_j h_{k+1,j} grad f(y_j); returns y_0..y_num."""
  h = agd_h(num)
  ys, grads = [y0], []
  for k in range(num):
    grads.append(grad_f(ys[-1]))
    g = sum(h[k + 1, j] * grads[j] for j in range(k + 1))
    ys.append(ys[-1] - g)
  return jnp.stack(ys)


# ---------------------------------------------------------------------------
# Table 1: activations Phi with antiderivatives Psi (Psi' = Phi)


@jax.custom_jvp
def dilog_neg_exp(u):
  """polylog(2, -e^u) = Li_2(-e^u), with d/du = -log(1 + e^u) = -softplus(u).

  Computed as spence(1 + e^u) (scipy's convention spence(z) = Li_2(1 - z));
  the derivative is supplied in closed form (jax's spence has no usable gradient).
  """
  return spence(1.0 + jnp.exp(u))


@dilog_neg_exp.defjvp
def _dilog_neg_exp_jvp(primals, tangents):
  (u,), (du,) = primals, tangents
  return dilog_neg_exp(u), -jax.nn.softplus(u) * du


class Activation(NamedTuple):
  phi: Callable[[jnp.ndarray], jnp.ndarray]
  psi: Callable[[jnp.ndarray], jnp.ndarray]  # Psi' = phi, as written in table 1


def _softsign_psi(u):
  a = jnp.abs(u)
  return a - jnp.log1p(a)  # table 1: u - log(u+1) for u > 0, -u - log(1-u) otherwise


def _relu_psi(u):
  return jnp.where(u > 0, 0.5 * u * u, 0.0)


def _leaky_relu_psi(u, negative_slope):
  return jnp.where(u > 0, 0.5 * u * u, 0.5 * negative_slope * u * u)


def _elu_psi(u, a):
  # table 1: u^2/2 for u > 0, a (e^u - u) otherwise; the two pieces differ by a
  # constant at 0 (0 vs a), immaterial for the gradient.
  return jnp.where(u > 0, 0.5 * u * u, a * (jnp.exp(jnp.minimum(u, 0.0)) - u))


def _swish_psi(u):
  # table 1: u^2/2 + u log(e^{-u} + 1) - polylog(2, -e^{-u})
  return 0.5 * u * u + u * jax.nn.softplus(-u) - dilog_neg_exp(-u)


def activation(name: str, negative_slope: float = 0.01, elu_alpha: float = 1.0) -> Activation:
  """The table-1 pair (Phi, Psi) for `name`."""
  table = {
      "sigmoid": Activation(jax.nn.sigmoid, lambda u: u + jax.nn.softplus(-u)),
      "tanh": Activation(jnp.tanh, lambda u: u + jax.nn.softplus(-2.0 * u)),
      "softplus": Activation(jax.nn.softplus, lambda u: -dilog_neg_exp(u)),  # C = 0
      "softsign": Activation(jax.nn.soft_sign, _softsign_psi),
      "relu": Activation(jax.nn.relu, _relu_psi),
      "leaky_relu": Activation(
          lambda u: jnp.where(u > 0, u, negative_slope * u),
          functools.partial(_leaky_relu_psi, negative_slope=negative_slope)),
      "elu": Activation(
          lambda u: jnp.where(u > 0, u, elu_alpha * jnp.expm1(jnp.minimum(u, 0.0))),
          functools.partial(_elu_psi, a=elu_alpha)),
      "swish": Activation(jax.nn.swish, _swish_psi),
  }
  if name not in table:
    raise ValueError(f"unknown activation {name!r}; accepted: {sorted(table)}.")
  return table[name]


ACTIVATIONS = ("sigmoid", "tanh", "softplus", "softsign", "relu", "leaky_relu", "elu", "swish")


def objective(z: jnp.ndarray, u_mat: jnp.ndarray, act: Activation) -> jnp.ndarray:
  """Eq. (8): f(z) = ||z||^2 / 2 - sum_i Psi(U_i^T z), U_i the i-th column of U."""
  return 0.5 * jnp.sum(z * z) - jnp.sum(act.psi(u_mat.T @ z))


def objective_grad(z: jnp.ndarray, u_mat: jnp.ndarray, act: Activation) -> jnp.ndarray:
  """Eq. (9) for symmetric U: grad f(z) = z - U Phi(U z) (U Phi(U^T z) in general)."""
  return z - u_mat @ act.phi(u_mat.T @ z)


def spd_sqrt(w: jnp.ndarray) -> jnp.ndarray:
  """U = sqrt(W) for a symmetric positive definite W (Lemma 1), by eigendecomposition."""
  evals, evecs = jnp.linalg.eigh(w)
  return (evecs * jnp.sqrt(evals)) @ evecs.T
