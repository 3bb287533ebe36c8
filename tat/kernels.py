"""Local Q/C maps (TAT paper, section 2.2 and appendix A), pure JAX.

Everything here is a pure function of arrays: jit-able, vmap-able and
differentiable. Precision follows the caller: the solvers evaluate these maps
under ``jax.enable_x64(True)`` (see :func:`x64`) so that quadrature reaches
1e-8 and better; in float32 they are accurate to about 1e-6.

Notation (paper): for an elementwise activation ``phi`` and z ~ N(0, 1)

* local Q map (eq. 4):   Q(q) = E[phi(sqrt(q) z)^2]
* local C map (eq. 5):   C(c, q1, q2) = E[phi(u1) phi(u2)] / sqrt(Q(q1) Q(q2)),
  (u1, u2) ~ N(0, [[q1, sqrt(q1 q2) c], [sqrt(q1 q2) c, q2]])
* derivatives at q = 1 (eq. 16, 19): C^(i)(c) = E[phi^(i)(u1) phi^(i)(u2)] / Q(1),
  so C'(1) = E[phi'(z)^2] / Q(1), C''(1) = E[phi''(z)^2] / Q(1),
  C(0) = E[phi(z)]^2 / Q(1) and Q'(1) = E[phi(z) phi'(z) z].
* Leaky ReLU closed forms (eq. 9, 24 and Lemma 1).

Gaussian expectations use Gauss-Legendre panels on [-10, 10] split at the
activation's kink (the point where its input crosses 0), which is exact to
machine precision for smooth activations and for piecewise-smooth ones
(ReLU family, ELU, SELU) alike; :func:`gauss_hermite_mean` is the plain
Gauss-Hermite rule for smooth integrands.
"""

from __future__ import annotations

import contextlib
import math
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import scipy.special

Array = jnp.ndarray
Fn = Callable[[Array], Array]

_LIMIT = 10.0
_GL_ORDER = 96
_GL_NODES, _GL_WEIGHTS = np.polynomial.legendre.leggauss(_GL_ORDER)
_GH_ORDER = 80
_GH_NODES, _GH_WEIGHTS = np.polynomial.hermite.hermgauss(_GH_ORDER)


@contextlib.contextmanager
def x64():
  """Context in which jnp defaults to float64 (for high-precision solves)."""
  with jax.enable_x64(True):
    yield


# ---------------------------------------------------------------------------
# Activations (untransformed), with the location of their kink (None = smooth).

def _selu(x):
  return 1.0507009873554805 * jax.nn.elu(x, 1.6732632423543772)


def _gelu_tanh(x):
  return jax.nn.gelu(x, approximate=True)


def _gelu_exact(x):
  return jax.nn.gelu(x, approximate=False)


def _bentid(x):
  return x + (jnp.sqrt(x * x + 1.0) - 1.0) / 2.0


ACTIVATIONS: dict[str, Fn] = {
    "relu": jax.nn.relu,
    "leaky_relu": jax.nn.leaky_relu,  # negative_slope as keyword
    "softplus": jax.nn.softplus,
    "tanh": jnp.tanh,
    "swish": jax.nn.swish,
    "gelu": _gelu_tanh,
    "gelu_exact": _gelu_exact,
    "elu": jax.nn.elu,
    "selu": _selu,
    "sigmoid": jax.nn.sigmoid,
    "erf": jax.scipy.special.erf,
    "atan": jnp.arctan,
    "asinh": jnp.arcsinh,
    "softsign": jax.nn.soft_sign,
    "bentid": _bentid,
}
# Points where the activation (or a derivative used by the maps) is not smooth.
KINKS: dict[str, Optional[float]] = {
    "relu": 0.0, "leaky_relu": 0.0, "elu": 0.0, "selu": 0.0, "softsign": 0.0}
RELU_FAMILY = ("relu", "leaky_relu")


# (phi, phi', phi'') of the named activations in numpy float64, for the solvers'
# root searches (hundreds of evaluations on a few hundred points, where a jitted
# JAX function would cost more to compile than the whole solve). These are the
# derivatives of the JAX definitions above, written out; tests/test_tat_kernels.py
# checks each against jax.grad of ``ACTIVATIONS[name]``.

def _np_sigmoid(x):
  return scipy.special.expit(x)


def _np_softplus(x):
  s = _np_sigmoid(x)
  return np.logaddexp(x, 0.0), s, s * (1.0 - s)


def _np_tanh(x):
  t = np.tanh(x)
  d = 1.0 - t * t
  return t, d, -2.0 * t * d


def _np_swish(x):
  s = _np_sigmoid(x)
  ds = s * (1.0 - s)
  return x * s, s + x * ds, ds * (2.0 + x * (1.0 - 2.0 * s))


_GELU_K = math.sqrt(2.0 / math.pi)


def _np_gelu_tanh(x):
  u = _GELU_K * (x + 0.044715 * x ** 3)
  du = _GELU_K * (1.0 + 3 * 0.044715 * x * x)
  d2u = _GELU_K * 6 * 0.044715 * x
  t = np.tanh(u)
  dt = 1.0 - t * t
  return (0.5 * x * (1.0 + t), 0.5 * (1.0 + t) + 0.5 * x * dt * du,
          dt * (du + 0.5 * x * (d2u - 2.0 * t * du * du)))


def _np_gelu_exact(x):
  pdf = np.exp(-x * x / 2) / math.sqrt(2 * math.pi)
  cdf = scipy.special.ndtr(x)
  return x * cdf, cdf + x * pdf, pdf * (2.0 - x * x)


def _np_elu(x, alpha=1.0, scale=1.0):
  neg = x <= 0  # jax.nn.elu takes the exponential branch at 0
  e = np.exp(np.minimum(x, 0.0))
  return (scale * np.where(neg, alpha * np.expm1(np.minimum(x, 0.0)), x),
          scale * np.where(neg, alpha * e, 1.0), scale * np.where(neg, alpha * e, 0.0))


def _np_selu(x):
  return _np_elu(x, 1.6732632423543772, 1.0507009873554805)


def _np_sigmoid3(x):
  s = _np_sigmoid(x)
  ds = s * (1.0 - s)
  return s, ds, ds * (1.0 - 2.0 * s)


def _np_erf(x):
  g = 2.0 / math.sqrt(math.pi) * np.exp(-x * x)
  return scipy.special.erf(x), g, -2.0 * x * g


def _np_atan(x):
  r = 1.0 / (1.0 + x * x)
  return np.arctan(x), r, -2.0 * x * r * r


def _np_asinh(x):
  r = 1.0 / np.sqrt(1.0 + x * x)
  return np.arcsinh(x), r, -x * r ** 3


def _np_softsign(x):
  r = 1.0 / (1.0 + np.abs(x))
  return x * r, r * r, -2.0 * np.sign(x) * r ** 3


def _np_bentid(x):
  s = np.sqrt(x * x + 1.0)
  return x + (s - 1.0) / 2.0, 1.0 + x / (2.0 * s), 0.5 / s ** 3


NUMPY_DERIVATIVES: dict[str, Callable] = {
    "softplus": _np_softplus, "tanh": _np_tanh, "swish": _np_swish, "gelu": _np_gelu_tanh,
    "gelu_exact": _np_gelu_exact, "elu": _np_elu, "selu": _np_selu, "sigmoid": _np_sigmoid3,
    "erf": _np_erf, "atan": _np_atan, "asinh": _np_asinh, "softsign": _np_softsign,
    "bentid": _np_bentid,
}


def numpy_derivatives(phi: Fn) -> Optional[Callable]:
  """numpy (phi, phi', phi'') for a function of ACTIVATIONS (by identity), else None."""
  for name, fn in ACTIVATIONS.items():
    if fn is phi:
      return NUMPY_DERIVATIVES.get(name)
  return None


def get_activation(name: str) -> Fn:
  """The untransformed JAX activation ``name`` (see ACTIVATIONS)."""
  if name not in ACTIVATIONS:
    raise ValueError(f"Unknown activation {name!r}; accepted: {', '.join(sorted(ACTIVATIONS))}"
                     " (or pass a callable)")
  return ACTIVATIONS[name]


def derivative(fn: Fn, order: int = 1) -> Fn:
  """Elementwise derivative of an elementwise function (any array shape)."""
  for _ in range(order):
    fn = (lambda f: lambda x: jax.grad(lambda y: jnp.sum(f(y)))(x))(fn)
  return fn


# ---------------------------------------------------------------------------
# Gaussian quadrature.

def gaussian_mean(fn: Fn, kink=0.0) -> Array:
  """E[fn(z)], z ~ N(0,1), by two Gauss-Legendre panels split at ``kink``.

  ``fn`` must be elementwise (vectorized over its argument). ``kink`` may be a
  traced scalar; for smooth fn any value works (0 by default).
  """
  nodes = jnp.asarray(_GL_NODES)
  weights = jnp.asarray(_GL_WEIGHTS)
  t = jnp.clip(jnp.asarray(kink, nodes.dtype), -_LIMIT + 1e-3, _LIMIT - 1e-3)
  h1, m1 = (t + _LIMIT) / 2, (t - _LIMIT) / 2
  h2, m2 = (_LIMIT - t) / 2, (_LIMIT + t) / 2
  x = jnp.concatenate([h1 * nodes + m1, h2 * nodes + m2])
  w = jnp.concatenate([h1 * weights, h2 * weights])
  dens = jnp.exp(-x * x / 2) / math.sqrt(2 * math.pi)
  return jnp.sum(w * dens * fn(x))


def gauss_hermite_mean(fn: Fn, order: int = _GH_ORDER) -> Array:
  """E[fn(z)], z ~ N(0,1), by the Gauss-Hermite rule (smooth fn only)."""
  x, w = np.polynomial.hermite.hermgauss(order)
  return jnp.sum(jnp.asarray(w) * fn(jnp.asarray(x) * math.sqrt(2.0))) / math.sqrt(math.pi)


def bivariate_mean(f1: Fn, f2: Fn, c, q1=1.0, q2=1.0, kink1=0.0, kink2=0.0) -> Array:
  """E[f1(u1) f2(u2)] for (u1, u2) centred Gaussian, variances q1, q2, correlation c.

  Written as u1 = sqrt(q1) z1, u2 = sqrt(q2) (c z1 + sqrt(1-c^2) z2); the outer
  integral over z1 is split where u1 crosses kink1, the inner one over z2
  where u2 crosses kink2, so piecewise-smooth activations stay accurate.
  """
  c = jnp.asarray(c)
  s = jnp.sqrt(jnp.maximum(1.0 - c * c, 0.0))
  sq1, sq2 = jnp.sqrt(q1), jnp.sqrt(q2)

  def inner(z1):
    # E_{z2}[f2(sqrt(q2)(c z1 + s z2))]; kink at z2 = (kink2/sqrt(q2) - c z1)/s.
    k = jnp.where(s > 1e-12, (kink2 / sq2 - c * z1) / jnp.maximum(s, 1e-12), 0.0)
    return gaussian_mean(lambda z2: f2(sq2 * (c * z1 + s * z2)), k)

  return gaussian_mean(lambda z1: f1(sq1 * z1) * jax.vmap(inner)(z1), kink1 / sq1)


# ---------------------------------------------------------------------------
# Local maps for an arbitrary activation (eq. 4, 5, 16, 19).

def q_map(phi: Fn, q=1.0, kink=0.0) -> Array:
  """Local Q map, eq. 4: Q(q) = E[phi(sqrt(q) z)^2]."""
  sq = jnp.sqrt(q)
  return gaussian_mean(lambda z: phi(sq * z) ** 2, kink / sq)


def q_map_slope(phi: Fn, q=1.0, kink=0.0) -> Array:
  """Q'(q) = E[phi(sqrt(q) z) phi'(sqrt(q) z) z] / sqrt(q) (eq. 16 at q = 1)."""
  sq = jnp.sqrt(q)
  d = derivative(phi)
  return gaussian_mean(lambda z: phi(sq * z) * d(sq * z) * z, kink / sq) / sq


def c_map(phi: Fn, c, q1=1.0, q2=1.0, kink=0.0) -> Array:
  """Local C map, eq. 5: E[phi(u1) phi(u2)] / sqrt(Q(q1) Q(q2))."""
  num = bivariate_mean(phi, phi, c, q1, q2, kink, kink)
  return num / jnp.sqrt(q_map(phi, q1, kink) * q_map(phi, q2, kink))


def c_map_derivative(phi: Fn, c, order: int = 1, q_output=None, kink=0.0) -> Array:
  """d^order C / dc^order at c for input q values 1 (eq. 19 generalised).

  C^(i)(c) = E[phi^(i)(u1) phi^(i)(u2)] / Q(1); at c = 0 and c = 1 this is a
  one dimensional integral (used by the solvers).
  """
  d = derivative(phi, order)
  if q_output is None:
    q_output = q_map(phi, 1.0, kink)
  return bivariate_mean(d, d, c, 1.0, 1.0, kink, kink) / q_output


def c_slope_1(phi: Fn, q_output=None, kink=0.0) -> Array:
  """C'(1) = E[phi'(z)^2] / Q(1)."""
  d = derivative(phi)
  q_output = q_map(phi, 1.0, kink) if q_output is None else q_output
  return gaussian_mean(lambda z: d(z) ** 2, kink) / q_output


def c_curv_1(phi: Fn, q_output=None, kink=0.0) -> Array:
  """C''(1) = E[phi''(z)^2] / Q(1) (eq. 16)."""
  d2 = derivative(phi, 2)
  q_output = q_map(phi, 1.0, kink) if q_output is None else q_output
  return gaussian_mean(lambda z: d2(z) ** 2, kink) / q_output


def c_value_0(phi: Fn, q_output=None, kink=0.0) -> Array:
  """C(0) = E[phi(z)]^2 / Q(1) (eq. 19 with i = 0)."""
  q_output = q_map(phi, 1.0, kink) if q_output is None else q_output
  return gaussian_mean(phi, kink) ** 2 / q_output


def q_slope_1(phi: Fn, kink=0.0) -> Array:
  """Q'(1) = E[phi(z) phi'(z) z] (eq. 16)."""
  return q_map_slope(phi, 1.0, kink)


# ---------------------------------------------------------------------------
# Closed forms for the ReLU family (eq. 9, 24, Lemma 1).

def _xp(*xs):
  """numpy for numpy/Python inputs (fast scalar solves), jax.numpy otherwise."""
  return jnp if any(isinstance(x, jax.Array) or isinstance(x, jax.core.Tracer) for x in xs) else np


def relu_c_map(c) -> Array:
  """Eq. 24: C map of ReLU, (sqrt(1-c^2) + (pi - arccos c) c) / pi."""
  xp = _xp(c)
  c = xp.clip(c, -1.0, 1.0)
  return (xp.sqrt(1.0 - c * c) + (np.pi - xp.arccos(c)) * c) / np.pi


def leaky_relu_c_map(c, negative_slope) -> Array:
  """Eq. 9: C map of (T)ReLU with negative slope a (scale-invariant).

  C(c) = c + (1-a)^2 / (pi (1+a^2)) * (sqrt(1-c^2) - c arccos c).
  """
  xp = _xp(c, negative_slope)
  c = xp.minimum(xp.maximum(c, -1.0), 1.0)  # clip (np.clip costs more on small arrays)
  k = (1.0 - negative_slope) ** 2 / (np.pi * (1.0 + negative_slope ** 2))
  return c + k * (xp.sqrt(1.0 - c * c) - c * xp.arccos(c))


def leaky_relu_c_slope(c, negative_slope) -> Array:
  """C'(c) of eq. 9: 1 - (1-a)^2 / (pi (1+a^2)) * arccos c."""
  xp = _xp(c, negative_slope)
  c = xp.clip(c, -1.0, 1.0)
  k = (1.0 - negative_slope) ** 2 / (np.pi * (1.0 + negative_slope ** 2))
  return 1.0 - k * xp.arccos(c)


def leaky_relu_c_curv(c, negative_slope) -> Array:
  """C''(c) of eq. 9: (1-a)^2 / (pi (1+a^2)) / sqrt(1-c^2) (infinite at c = 1)."""
  xp = _xp(c, negative_slope)
  k = (1.0 - negative_slope) ** 2 / (np.pi * (1.0 + negative_slope ** 2))
  return k / xp.sqrt(1.0 - c * c)


def leaky_relu_q_map(q, negative_slope) -> Array:
  """Lemma 1: Q map of the untransformed leaky ReLU, (1 + a^2) q / 2."""
  return (1.0 + negative_slope ** 2) * q / 2.0


def trelu_scale(negative_slope) -> Array:
  """Output scale sqrt(2 / (1 + a^2)) of TReLU (section 4), giving Q(q) = q."""
  return _xp(negative_slope).sqrt(2.0 / (1.0 + negative_slope ** 2))


# ---------------------------------------------------------------------------
# Transformed activations phi_hat(x) = g (phi(a x + b) + d).

def transform(phi: Fn, input_scale=1.0, input_shift=0.0, output_shift=0.0,
              output_scale=1.0) -> Fn:
  """phi_hat(x) = output_scale * (phi(input_scale * x + input_shift) + output_shift)."""
  def phi_hat(x):
    return output_scale * (phi(input_scale * x + input_shift) + output_shift)
  return phi_hat


def transformed_kink(kink: Optional[float], input_scale, input_shift):
  """Location in x of phi's kink after x -> input_scale x + input_shift."""
  base = 0.0 if kink is None else kink
  return jnp.where(jnp.abs(input_scale) > 1e-12,
                   (base - input_shift) / jnp.where(jnp.abs(input_scale) > 1e-12,
                                                    input_scale, 1.0), 0.0)
