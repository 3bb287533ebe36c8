"""optnets kernels: Nesterov coefficients (eqs. 3, 5, 12) and Lemma 1 / table 1."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.special

from optnets import kernels


def test_theta_recursion_and_beta():
  th = np.asarray(kernels.nesterov_thetas(30), np.float64)
  assert th[0] == 1.0
  np.testing.assert_allclose((1 - th[1:]) / th[1:] ** 2, 1 / th[:-1] ** 2, rtol=1e-5)
  assert np.all(np.diff(th) < 0) and np.all(th > 0)
  b = np.asarray(kernels.nesterov_betas(30))
  np.testing.assert_allclose(b[1:], th[1:] * (1 - th[:-1]) / th[:-1], rtol=1e-5)
  assert b[0] == 0 and b[1] == 0 and np.all(b[2:] > 0) and np.all(b < 1)


def test_h_recursion_eq5():
  n = 12
  h, b = np.asarray(kernels.agd_h(n)), np.asarray(kernels.nesterov_betas(n))
  assert h[1, 0] == 1.0 and np.all(h[0] == 0)
  for k in range(1, n):
    np.testing.assert_allclose(h[k + 1, :k - 1], b[k + 1] * h[k, :k - 1], rtol=1e-6)
    np.testing.assert_allclose(h[k + 1, k - 1], b[k + 1] * (h[k, k - 1] - 1), rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(h[k + 1, k], 1 + b[k + 1], rtol=1e-6)
    assert np.all(h[k + 1, k + 1:] == 0)


def test_iteration4_reproduces_iteration3_on_quadratic():
  rng = np.random.default_rng(0)
  q, _ = np.linalg.qr(rng.standard_normal((6, 6)))
  a = (q * np.linspace(0.05, 1.0, 6)) @ q.T  # L = 1, mu = 0.05
  a, bvec = jnp.asarray(a, jnp.float32), jnp.asarray(rng.standard_normal(6), jnp.float32)
  grad = lambda z: a @ z - bvec
  n = 15
  z = kernels.nesterov_iterates(grad, jnp.zeros(6), n)
  betas = kernels.nesterov_betas(n)
  # y_k of iteration (3): y_k = z_k + beta_k (z_k - z_{k-1}), z_{-1} = z_0.
  z_prev = jnp.concatenate([z[:1], z[:-1]])
  y3 = z + betas[:, None] * (z - z_prev)
  y4 = kernels.nesterov_y_iterates_eq4(grad, jnp.zeros(6), n)
  np.testing.assert_allclose(y4, y3, rtol=1e-5, atol=1e-5)
  # and it is Nesterov, not GD: faster than GD on this problem.
  zstar = jnp.linalg.solve(a, bvec)
  zg = jnp.zeros(6)
  for _ in range(n):
    zg = zg - grad(zg)
  assert jnp.linalg.norm(z[-1] - zstar) < jnp.linalg.norm(zg - zstar)


def _spd(dim, seed):
  rng = np.random.default_rng(seed)
  q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
  return jnp.asarray((q * rng.uniform(0.2, 1.5, dim)) @ q.T, jnp.float32)


@pytest.mark.parametrize("name", kernels.ACTIVATIONS)
def test_lemma1_gradient_descent_is_feedforward(name):
  act = kernels.activation(name)
  w = _spd(5, 1)
  u = kernels.spd_sqrt(w)
  np.testing.assert_allclose(u @ u, w, atol=1e-5)
  x = jnp.asarray(np.random.default_rng(2).standard_normal(5) * 1.5, jnp.float32)
  z = u @ x
  f = lambda zz: kernels.objective(zz, u, act)
  # eq. (9): the autodiff gradient of table 1's objective is z - U Phi(U z).
  np.testing.assert_allclose(jax.grad(f)(z), kernels.objective_grad(z, u, act),
                             rtol=2e-4, atol=2e-5)
  # (10): gradient descent on f, mapped back by U^{-1}, is x_{k+1} = Phi(W x_k).
  u_inv = jnp.linalg.inv(u)
  for _ in range(4):
    z_next = z - jax.grad(f)(z)
    np.testing.assert_allclose(u_inv @ z_next, act.phi(w @ x), rtol=2e-3, atol=2e-4)
    z, x = z_next, act.phi(w @ x)


@pytest.mark.parametrize("name", kernels.ACTIVATIONS)
def test_psi_is_antiderivative(name):
  act = kernels.activation(name)
  us = jnp.linspace(-4.0, 4.0, 41) + 0.013  # avoid the kink at 0 exactly
  np.testing.assert_allclose(jax.vmap(jax.grad(act.psi))(us), act.phi(us), rtol=1e-4, atol=1e-5)


def test_table1_closed_forms():
  u = np.linspace(-3, 3, 13)
  # softplus row: Psi = C - polylog(2, -e^u); Li2(x) = spence(1 - x).
  np.testing.assert_allclose(kernels.dilog_neg_exp(jnp.asarray(u)),
                             scipy.special.spence(1 + np.exp(u)), rtol=1e-5, atol=1e-6)
  # softsign row, both branches as printed (with log(1 - u) for u <= 0).
  ss = kernels.activation("softsign").psi(jnp.asarray(u))
  ref = np.where(u > 0, u - np.log(np.maximum(u, 0) + 1), -u - np.log(1 - np.minimum(u, 0)))
  np.testing.assert_allclose(ss, ref, rtol=1e-5, atol=1e-6)


def test_unknown_activation_raises():
  with pytest.raises(ValueError, match="accepted"):
    kernels.activation("gelu")
