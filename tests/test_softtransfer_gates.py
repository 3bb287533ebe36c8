"""Kernels of softtransfer: activations (eqs. 1-2) and rectified concrete gates (eqs. 10-16)."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate

from softtransfer import activations as acts
from softtransfer import gates

B, XI, ZETA = 2.0 / 3.0, -0.1, 1.1
N_MC = 400_000


def _sigmoid(x):
  return 1.0 / (1.0 + np.exp(-x))


def test_defaults_are_the_papers():
  assert (gates.BETA, gates.XI, gates.ZETA) == pytest.approx((B, XI, ZETA))
  assert (gates.LOG_ALPHA_INIT_MEAN, gates.LOG_ALPHA_INIT_STD) == (8.0, 1.0)


def test_resin_matches_eq2():
  x = jnp.array([-10.0, -math.pi / 2, -1.0, 0.0, 0.3, math.pi / 2, 2.0, 7.0])
  expected = np.array([-1.0, -1.0, math.sin(-1.0), 0.0, math.sin(0.3), 1.0, 1.0, 1.0])
  np.testing.assert_allclose(acts.resin(x), expected, atol=1e-6)
  # Monotonic (non-decreasing) everywhere, unlike sin.
  grid = jnp.linspace(-20, 20, 2001)
  assert np.all(np.diff(np.asarray(acts.resin(grid))) >= 0)
  assert np.any(np.diff(np.asarray(acts.sin(grid))) < 0)


def test_gated_unit_endpoints_and_mixture():
  x = jnp.linspace(-5, 5, 11)
  np.testing.assert_allclose(acts.gated_unit(x, 1.0, acts.relu, acts.sin), acts.relu(x))
  np.testing.assert_allclose(acts.gated_unit(x, 0.0, acts.relu, acts.sin), jnp.sin(x))
  np.testing.assert_allclose(acts.gated_unit(x, 0.25), 0.25 * acts.resin(x) + 0.75 * jnp.sin(x),
                             rtol=1e-6)
  # z broadcasts per unit (last axis).
  xs = jnp.ones((3, 2)) * 2.0
  out = acts.gated_unit(xs, jnp.array([1.0, 0.0]), acts.tanh, acts.sin)
  np.testing.assert_allclose(out[:, 0], np.tanh(2.0), rtol=1e-6)
  np.testing.assert_allclose(out[:, 1], np.sin(2.0), rtol=1e-6)


def test_get_activation_rejects_unknown():
  with pytest.raises(ValueError, match="accepted"):
    acts.get_activation("swish")


def test_test_gate_closed_form():
  la = jnp.array([-8.0, -3.0, 0.0, 1.0, 3.0, 8.0])
  expected = np.clip(_sigmoid(np.asarray(la)) * (ZETA - XI) + XI, 0, 1)
  np.testing.assert_allclose(gates.test_gate(la), expected, rtol=1e-6)
  assert gates.test_gate(jnp.array(-3.0)) == 0.0  # exactly zero: a pure sin unit
  assert gates.test_gate(jnp.array(8.0)) == 1.0   # exactly one: the N(8, 1) init is monotonic
  assert gates.test_gate(jnp.array(0.0)) == pytest.approx(0.5)


def test_prob_nonzero_closed_form_eq14():
  la = np.array([-3.0, 0.0, 2.0, 8.0])
  expected = _sigmoid(la - B * np.log(-XI / ZETA))
  np.testing.assert_allclose(gates.prob_nonzero(jnp.asarray(la)), expected, rtol=1e-6)
  # 1 - Q(0) with Q from eq. 11-12 evaluated at the stretched point t = 0.
  np.testing.assert_allclose(1 - gates.stretched_cdf(jnp.asarray(0.0), jnp.asarray(la)), expected,
                             rtol=1e-5)


def _mc_samples(log_alpha, seed=0):
  return np.asarray(gates.sample_gate(jax.random.PRNGKey(seed), jnp.float32(log_alpha), (N_MC,)))


@pytest.mark.parametrize("log_alpha", [-2.0, 0.0, 1.5, 4.0])
def test_monte_carlo_matches_analytic(log_alpha):
  z = _mc_samples(log_alpha)
  assert z.min() >= 0.0 and z.max() <= 1.0
  se = lambda p: 5 * math.sqrt(p * (1 - p) / N_MC) + 1e-4
  p_nonzero = float(gates.prob_nonzero(jnp.float32(log_alpha)))
  assert np.mean(z > 0) == pytest.approx(p_nonzero, abs=se(p_nonzero))
  p_one = float(gates.prob_one(jnp.float32(log_alpha)))
  assert np.mean(z == 1) == pytest.approx(p_one, abs=se(p_one))
  # E[z] by quadrature vs the sample mean (z in [0,1]: std <= 0.5).
  ez = float(gates.expected_gate(jnp.float32(log_alpha)))
  assert np.mean(z) == pytest.approx(ez, abs=5 * 0.5 / math.sqrt(N_MC))
  # Independent check of E[z]: integrate the density of eq. 11 pushed through eq. 12 with scipy.
  alpha = math.exp(log_alpha)
  dens = lambda v: alpha * B * v ** (-B - 1) * (1 - v) ** (-B - 1) / (alpha * v ** -B + (1 - v) ** -B) ** 2
  v0, v1 = -XI / (ZETA - XI), (1 - XI) / (ZETA - XI)
  interior = scipy.integrate.quad(lambda v: (v * (ZETA - XI) + XI) * dens(v), v0, v1)[0]
  assert ez == pytest.approx(interior + p_one, abs=2e-4)


def test_concrete_cdf_matches_samples_eq11():
  la = 0.7
  z = _mc_samples(la, seed=3)
  for t in (0.1, 0.4, 0.8):
    q = float(gates.stretched_cdf(jnp.float32(t), jnp.float32(la)))
    assert np.mean(z <= t) == pytest.approx(q, abs=5 * math.sqrt(q * (1 - q) / N_MC))


def test_sample_is_finite_and_clipped_for_extreme_log_alpha():
  for la in (-60.0, 60.0):
    z = np.asarray(gates.sample_gate(jax.random.PRNGKey(0), jnp.float32(la), (10_000,)))
    assert np.all(np.isfinite(z)) and z.min() >= 0 and z.max() <= 1
  assert np.all(np.asarray(gates.sample_gate(jax.random.PRNGKey(0), jnp.float32(60.0), (100,))) == 1)


def test_init_n81_gives_monotonic_gates():
  # log alpha = 8: test gate exactly 1 and a training sample is 1 with prob ~0.998.
  assert float(gates.test_gate(jnp.float32(8.0))) == 1.0
  assert float(gates.prob_one(jnp.float32(8.0))) > 0.997
  assert float(gates.expected_gate(jnp.float32(8.0))) > 0.99


def test_gradient_reaches_log_alpha():
  g = jax.grad(lambda la: jnp.mean(gates.sample_gate(jax.random.PRNGKey(1), la, (1000,))))(0.0)
  assert float(g) > 0.05  # a larger location gives larger gates
  gr = jax.grad(lambda la: gates.structural_risk(la, 2.0))(jnp.array([0.0, 8.0]))
  p = _sigmoid(np.array([0.0, 8.0]) - B * np.log(-XI / ZETA))
  np.testing.assert_allclose(gr, 2.0 * p * (1 - p), rtol=1e-3)  # float32 1 - p near p = 1


def test_structural_risk_sign_and_scale_eq13():
  tree = {"a": jnp.full((5,), 8.0), "b": jnp.array(-1.0)}
  p8 = _sigmoid(8.0 - B * np.log(-XI / ZETA))
  pm1 = _sigmoid(-1.0 - B * np.log(-XI / ZETA))
  assert float(gates.structural_risk(tree, 0.1)) == pytest.approx(0.1 * (5 * p8 + pm1), rel=1e-5)
  assert float(gates.structural_risk(tree, 0.0)) == 0.0
  assert float(gates.structural_risk(jnp.full((7,), -30.0), 1.0)) < 1e-9
  assert float(gates.structural_risk(jnp.full((7,), 30.0), 1.0)) == pytest.approx(7.0)


def test_kernels_jit_and_vmap():
  la = jnp.linspace(-3, 3, 4)
  keys = jax.random.split(jax.random.PRNGKey(0), 4)
  z = jax.jit(jax.vmap(lambda k, a: gates.sample_gate(k, a, (3,))))(keys, la)
  assert z.shape == (4, 3)
  np.testing.assert_allclose(jax.jit(jax.vmap(gates.expected_gate))(la), gates.expected_gate(la),
                             rtol=1e-6)


def test_bad_hyperparameters_raise():
  with pytest.raises(ValueError, match="beta"):
    gates.check_gate_hyperparameters(0.0, XI, ZETA)
  with pytest.raises(ValueError, match="xi"):
    gates.check_gate_hyperparameters(B, 0.1, ZETA)
  with pytest.raises(ValueError, match="zeta"):
    gates.check_gate_hyperparameters(B, XI, 0.9)
