"""tat kernels: closed forms vs quadrature, Lemma 1, Proposition 1, Theorems 1 and 2."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.integrate

from tat import arch as tat_arch
from tat import kernels


def test_gaussian_mean_smooth_matches_scipy_to_1e8():
  with kernels.x64():
    got = float(kernels.gaussian_mean(lambda z: jnp.tanh(0.7 * z + 0.3) ** 2))
    gh = float(kernels.gauss_hermite_mean(lambda z: jnp.tanh(0.7 * z + 0.3) ** 2, order=120))
  ref, _ = scipy.integrate.quad(
      lambda z: math.tanh(0.7 * z + 0.3) ** 2 * math.exp(-z * z / 2) / math.sqrt(2 * math.pi),
      -np.inf, np.inf, epsabs=1e-14, epsrel=1e-14)
  assert abs(got - ref) < 1e-10
  assert abs(gh - ref) < 1e-8


def test_relu_family_closed_forms_match_quadrature():
  """Eq. 9 and eq. 24 vs the general eq. 5 by quadrature (split at the kink)."""
  with kernels.x64():
    for a in (0.0, 0.2, 0.6):
      phi = lambda x, a=a: jax.nn.leaky_relu(x, a)
      for c in (-0.9, -0.3, 0.0, 0.5, 0.95):
        quad = float(kernels.c_map(phi, c))
        assert abs(quad - float(kernels.leaky_relu_c_map(c, a))) < 1e-9, (a, c)
      # Lemma 1: Q(q) = (1 + a^2) q / 2.
      for q in (0.3, 1.0, 2.5):
        assert abs(float(kernels.q_map(phi, q)) - (1 + a * a) * q / 2) < 1e-10
    for c in (-0.5, 0.0, 0.7):
      assert abs(float(kernels.c_map(jax.nn.relu, c)) - float(kernels.relu_c_map(c))) < 1e-9
    # C'(c) of eq. 9 vs the derivative formula E[phi'(u1) phi'(u2)] / Q(1).
    a, c = 0.3, 0.4
    phi = lambda x: jax.nn.leaky_relu(x, a)
    got = float(kernels.c_map_derivative(phi, c, order=1))
    assert abs(got - float(kernels.leaky_relu_c_slope(c, a))) < 1e-8


def test_c_map_erf_closed_form_with_unequal_q():
  """Eq. 5 for inputs q1 != q2 vs the arcsine kernel of erf (Williams 1997)."""
  with kernels.x64():
    for q1, q2, c in ((1.0, 1.0, 0.3), (0.5, 2.0, -0.6), (1.7, 0.4, 0.9)):
      num = 2 / np.pi * np.arcsin(2 * c * np.sqrt(q1 * q2) / np.sqrt((1 + 2 * q1) * (1 + 2 * q2)))
      qq = lambda q: 2 / np.pi * np.arcsin(2 * q / (1 + 2 * q))
      ref = num / np.sqrt(qq(q1) * qq(q2))
      got = float(kernels.c_map(jax.scipy.special.erf, c, q1, q2, kink=0.0))
      assert abs(got - ref) < 1e-10, (q1, q2, c)
      assert abs(float(kernels.q_map(jax.scipy.special.erf, q1)) - qq(q1)) < 1e-12


def test_derivatives_agree_with_autodiff():
  """C'(c), C''(c) (eq. 19 generalised) and Q'(q) vs jax.grad of the maps."""
  phi = jax.nn.softplus
  with kernels.x64():
    q1 = float(kernels.q_map(phi, 1.0))
    cmap = lambda c: kernels.c_map(phi, c)
    deriv = jax.jit(lambda c: jnp.stack([kernels.c_map_derivative(phi, c, 1),
                                         kernels.c_map_derivative(phi, c, 2),
                                         jax.grad(cmap)(c), jax.grad(jax.grad(cmap))(c)]))
    for c in (0.2, 0.7):
      d1, d2, g1, g2 = np.asarray(deriv(c))
      assert abs(d1 - g1) < 1e-8
      assert abs(d2 - g2) < 1e-7
    assert abs(float(kernels.c_slope_1(phi)) - float(kernels.c_map_derivative(phi, 1.0, 1))) < 1e-9
    assert abs(float(kernels.c_value_0(phi)) - float(kernels.c_map(phi, 0.0))) < 1e-9
    for q in (0.5, 1.0, 2.0):
      grad = jax.grad(lambda q: kernels.q_map(phi, q))(q)
      assert abs(float(kernels.q_map_slope(phi, q)) - float(grad)) < 1e-9
    assert q1 > 0


@pytest.mark.parametrize("name", sorted(kernels.NUMPY_DERIVATIVES))
def test_numpy_derivatives_are_those_of_the_jax_activation(name):
  """The solvers' closed-form (phi, phi', phi'') match jax.grad of ACTIVATIONS[name]."""
  phi = kernels.ACTIVATIONS[name]
  assert kernels.numpy_derivatives(phi) is kernels.NUMPY_DERIVATIVES[name]
  xs = np.linspace(-12.0, 12.0, 2401)
  xs = xs[np.abs(xs) > 1e-6]  # kinks (ELU, SELU, softsign) sit at 0
  with kernels.x64():
    ref = [np.asarray(f(jnp.asarray(xs))) for f in
           (phi, kernels.derivative(phi), kernels.derivative(phi, 2))]
  for order, (got, want) in enumerate(zip(kernels.NUMPY_DERIVATIVES[name](xs), ref)):
    assert np.max(np.abs(got - want) / (1.0 + np.abs(want))) < 1e-12, (name, order)


def test_numpy_derivatives_only_for_registered_functions():
  assert kernels.numpy_derivatives(lambda x: jnp.tanh(x)) is None
  assert kernels.numpy_derivatives(jax.nn.relu) is None  # ReLU family: closed-form maps instead


def _rescaled_mlp_resnet(depth, w):
  """Rescaled ResNet whose branch is a combined layer followed by an affine layer."""
  def arch(ops, x):
    for _ in range(depth):
      r = ops.dense(ops.act(ops.dense(x, 8)), 8)
      x = ops.add([(w, x), (math.sqrt(1 - w * w), r)])
    return x
  return arch


def test_proposition_1_trelu_mlp_equals_rescaled_relu_resnet():
  """Prop. 1; the shortcut weight that makes the two maps equal is sqrt(2a / (1 + a^2))."""
  a, depth = 0.3, 7
  mlp = tat_arch.get_architecture("mlp", depth=depth, width=8, num_classes=2)
  res = _rescaled_mlp_resnet(depth, math.sqrt(2 * a / (1 + a * a)))
  cs = np.linspace(-1, 1, 41)
  c_mlp = tat_arch.global_map(mlp, cs, lambda c: kernels.leaky_relu_c_map(c, a))
  c_res = tat_arch.global_map(res, cs, kernels.relu_c_map)
  np.testing.assert_allclose(c_mlp, c_res, atol=1e-12)


def test_theorem_1_bounds_on_random_networks():
  rng = np.random.default_rng(0)
  cs = np.linspace(-1, 1, 2001)
  for _ in range(20):
    depth = int(rng.integers(1, 40))
    a = float(rng.uniform(0, 1))
    w = float(rng.uniform(0, 0.99))
    arch = (_rescaled_mlp_resnet(depth, w) if rng.uniform() < 0.5 else
            tat_arch.get_architecture("mlp", depth=depth, width=4, num_classes=1))
    cf = tat_arch.global_map(arch, cs, lambda c: kernels.leaky_relu_c_map(c, a))
    c0 = float(tat_arch.global_map(arch, 0.0, lambda c: kernels.leaky_relu_c_map(c, a)))
    assert np.max(np.abs(cf - cs)) <= min(4 * c0, 1 + c0) + 1e-12
    slope = np.gradient(cf, cs)[1:-1]
    assert np.max(np.abs(slope - 1)) <= min(4 * c0, 1) + 1e-3
    assert np.all(np.diff(cf) >= -1e-12)  # non-decreasing


def test_theorem_2_bound_for_smooth_activation():
  """max |C_f(c) - c| <= 2 C''_f(1) for a transformed softplus MLP (Q(1) = 1, C'(1) = 1)."""
  from tat import solver
  arch = tat_arch.get_architecture("mlp", depth=3, width=4, num_classes=1)
  spec = solver.solve_tat_smooth(arch, "softplus", tau=0.5)
  phi = spec.fn()
  with kernels.x64():
    cs = jnp.linspace(-0.99, 0.99, 9)
    local = lambda c: kernels.c_map(phi, c)
    cf = np.asarray(jax.jit(jax.vmap(lambda c: tat_arch.global_map(arch, c, local)))(cs))
    curv = float(kernels.c_curv_1(phi))
    slope = float(kernels.c_slope_1(phi))
  assert abs(slope - 1) < 1e-8
  # C''_f(1) of a composition of maps with C'(1) = 1 is the sum of local curvatures.
  assert abs(3 * curv - 0.5) < 1e-6
  dev = np.max(np.abs(cf - np.asarray(cs)))
  assert 0.01 < dev <= 2 * 0.5


def test_global_map_of_resnet_matches_paper_appendix_f1_code():
  """Our kernel interpretation of resnet_v2 vs the paper's hand-written global_cmap_fn."""
  blocks = (3, 4, 6, 3)
  a, w = 0.2, 0.6
  local = lambda c: kernels.leaky_relu_c_map(c, a)

  def paper_global_cmap(c):  # transcription of appendix F.1 for comparison only
    for i in range(4):
      for j in range(blocks[i]):
        main_c = local(local(local(c)))
        res_c = local(c) if j == 0 else c
        c = w ** 2 * res_c + (1 - w ** 2) * main_c
    return local(c)

  arch = tat_arch.get_architecture("resnet_v2", depth=50, num_classes=1, shortcut_weight=w)
  cs = np.linspace(-1, 1, 11)
  np.testing.assert_allclose(tat_arch.global_map(arch, cs, local), paper_global_cmap(cs),
                             atol=1e-13)
  assert tat_arch.count_nonlinear_layers(arch) == 49
