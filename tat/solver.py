"""Activation transformations: TAT (leaky ReLU and smooth), DKS, EOC, PReLU.

All solvers take the network as an architecture function ``arch(ops, x)``
(see :mod:`tat.arch`), the same one that builds the Haiku network, or as the
trace of an ordinary Haiku network (``tat.trace.from_haiku(net, x)``, which is
such a function), and use its subnetwork maximizing function M_{f,r} for the
global conditions:

* TAT, leaky ReLU (section 4, Alg. 1): negative slope a such that
  max_f C_f(0) = eta using the closed form eq. 9; TReLU = sqrt(2/(1+a^2)) LReLU_a.
* TAT, smooth (eq. 14-16, Alg. 2): phi_hat(x) = g (phi(a x + b) + d) with
  Q(1) = 1, Q'(1) = 1, C'(1) = 1 and local C''(1) = k, where k makes the
  maximal curvature M_{f, y -> y + k}(0) = tau (so C''_f(1) = tau).
* DKS (Martens et al. 2021): Q(1) = 1, Q'(1) = 1, C(0) = 0 and local
  C'(1) = s with the maximal slope M_{f, y -> s y}(1) = zeta; for leaky ReLU
  (footnote 3) the unknowns are (negative slope, input shift).
* EOC (section 5.4): (sigma_w, sigma_b) = (sqrt 2, 0) for ReLU (sqrt(2/(1+a^2))
  for leaky ReLU), (1.302, 0.02) for tanh.
* PReLU: trainable negative slope initialized at 0 or 0.25, He-style scale.

Everything numeric runs in float64 numpy. The global searches evaluate the
architecture's kernel interpretation on whole grids of candidate values at
once (the curvature target needs none: it is tau / M(1)). The smooth solvers
are root searches from DKS's starting points (Powell's hybrid method, as
dks.base), on Gauss-Legendre panels split at the activation's kink; phi, phi',
phi'' are closed forms for the named activations (``kernels.NUMPY_DERIVATIVES``)
and jitted JAX autodiff for other callables. A solve costs about 1-60 ms on
any architecture, nothing is compiled for the named activations.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
import warnings
from typing import Any, Callable, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from tat import arch as tat_arch
from tat import kernels

METHODS = ("tat", "dks", "eoc", "untransformed", "prelu")


@dataclasses.dataclass
class ActivationSpec:
  """A solved activation: phi_hat and the initialization scales it goes with."""
  name: str
  method: str
  params: dict  # floats: negative_slope/output_scale or input_scale/.../output_scale
  sigma_w: float = 1.0
  sigma_b: float = 0.0
  base: Optional[Callable] = None  # untransformed phi (None for leaky ReLU forms)

  def fn(self) -> Callable:
    """The transformed activation as a JAX function."""
    p = self.params
    if "negative_slope" in p:
      a, g = p["negative_slope"], p.get("output_scale", 1.0)
      shift = p.get("input_shift", 0.0)
      oshift = p.get("output_shift", 0.0)
      return lambda x: g * (jax.nn.leaky_relu(x + shift, a) + oshift)
    return kernels.transform(self.base, p.get("input_scale", 1.0), p.get("input_shift", 0.0),
                             p.get("output_shift", 0.0), p.get("output_scale", 1.0))

  def to_json(self) -> dict:
    out = {"activation": self.name, "method": self.method}
    if not self.params:  # untransformed smooth activation: the identity transformation
      out.update(input_scale=1.0, input_shift=0.0, output_shift=0.0, output_scale=1.0)
    out.update({k: float(v) for k, v in self.params.items()})
    out.update(sigma_w=float(self.sigma_w), sigma_b=float(self.sigma_b))
    return out


# ---------------------------------------------------------------------------
# Searches on increasing scalar functions (numpy float64, vectorized).

def search_increasing(fn, target: float, lo: float, hi: float, points: int = 256,
                      passes: int = 3) -> float:
  """x in [lo, hi] with fn(x) = target for an increasing, elementwise ``fn``.

  Each pass evaluates ``fn`` on a grid of ``points`` values at once (the kernel
  interpretation is elementwise, so a whole grid costs about one scalar network
  pass: Python overhead dominates) and keeps the bracketing cell: 3 passes of
  256 points shrink [lo, hi] by 255^3 (to ~6e-8), and linear interpolation in
  the last cell (whose end values the last pass computed) leaves an error of
  order cell^2 * f'' / f', far below float64 resolution of the targets.
  """
  for _ in range(passes):
    xs = np.linspace(lo, hi, points)
    vals = np.asarray(fn(xs), np.float64)
    i = int(np.clip(np.searchsorted(vals, target), 1, points - 1))
    lo, hi, v_lo, v_hi = xs[i - 1], xs[i], vals[i - 1], vals[i]
    if hi - lo < 1e-15 * max(1.0, abs(lo)):
      break
  if v_hi == v_lo:
    return float(0.5 * (lo + hi))
  return float(lo + (target - v_lo) * (hi - lo) / (v_hi - v_lo))  # final linear step


def _check_arch(arch):
  if not callable(arch):
    raise ValueError("arch must be an architecture function arch(ops, x) (see tat.arch) or a "
                     "traced Haiku network (tat.trace.from_haiku(net, x))")


def _subnet_max_np(arch, x0, r_fn):
  return tat_arch.subnet_max(arch, x0, r_fn, maximum=np.maximum)


# ---------------------------------------------------------------------------
# TAT for leaky ReLU.

def max_c0_leaky_relu(arch, negative_slope):
  """max over subnetworks of C_f(0) for TReLU with the given negative slope(s) (eq. 9)."""
  a = np.asarray(negative_slope, np.float64)
  return _subnet_max_np(arch, np.zeros_like(a), functools.partial(kernels.leaky_relu_c_map,
                                                                  negative_slope=a))


def solve_tat_leaky_relu(arch: Callable, eta: float = 0.9) -> ActivationSpec:
  """TAT for leaky ReLU (Alg. 1): negative slope with max_f C_f(0) = eta, TReLU scale."""
  _check_arch(arch)
  if not 0.0 < eta < 1.0:
    raise ValueError(f"TAT leaky ReLU needs 0 < eta < 1 (target C_f(0)); got eta={eta}")
  c0_relu = float(max_c0_leaky_relu(arch, 0.0))
  if eta > c0_relu:
    raise ValueError(
        f"eta={eta} is unreachable for this architecture: with a negative slope in [0, 1] "
        f"C_f(0) ranges over [0, {c0_relu:.6f}] (ReLU gives the largest value); "
        f"use eta <= {c0_relu:.6f} or a deeper network")
  a = search_increasing(lambda a: 1.0 - max_c0_leaky_relu(arch, a), 1.0 - eta, 0.0, 1.0)
  return ActivationSpec("leaky_relu", "tat",
                        {"negative_slope": a, "output_scale": math.sqrt(2.0 / (1.0 + a * a))})


# ---------------------------------------------------------------------------
# Per-layer targets from the architecture (max slope / max curvature functions).

def max_curvature(arch: Callable, k):
  """Maximal curvature function M_{f, y -> y + k}(0) (TAT appendix B)."""
  k = np.asarray(k, np.float64)
  return _subnet_max_np(arch, np.zeros_like(k), lambda y: y + k)


def max_slope(arch: Callable, s):
  """Maximal slope function M_{f, y -> s y}(1) (DKS)."""
  s = np.asarray(s, np.float64)
  return _subnet_max_np(arch, np.ones_like(s), lambda y: s * y)


def local_curvature_target(arch: Callable, tau: float) -> float:
  """Local C''(1) = k such that the maximal curvature function equals tau.

  From x = 0 with r(y) = y + k, every value the kernel interpretation forms
  (compositions of r, w^2-weighted averages, identities) is k times its value
  at k = 1, and so is their maximum: M_{f, y -> y + k}(0) = k M_{f, y -> y + 1}(0),
  hence k = tau / M(1) exactly (no search).
  """
  unit = float(max_curvature(arch, 1.0))
  if unit <= 0:
    raise ValueError("architecture has no nonlinear layer; TAT needs at least one")
  return tau / unit


def local_slope_target(arch: Callable, zeta: float) -> float:
  """Local C'(1) = s such that the maximal slope function equals zeta (DKS)."""
  return search_increasing(lambda s: max_slope(arch, s), zeta, 1.0, max(2.0, zeta))


# ---------------------------------------------------------------------------
# Smooth activations: Powell hybrid root finding from DKS's starting points (numpy float64).

_TRY_SCALE = (1.0, 0.1)
_TRY_SHIFT = (0.0, 1.0, -1.0)
_TRY_OSHIFT = (0.0, 1.0, -1.0)
_TRY_SLOPE = (0.0, 0.5)


@functools.lru_cache(maxsize=128)
def _jitted_derivatives(phi):
  """Jitted (phi, phi', phi'') of an elementwise activation by autodiff, in float64."""
  d1 = kernels.derivative(phi)
  d2 = kernels.derivative(phi, 2)
  return jax.jit(lambda x: (phi(x), d1(x), d2(x)))


def _derivatives_fn(phi):
  """numpy (phi, phi', phi'') on float64 arrays for the root searches.

  The named activations use their closed-form derivatives
  (``kernels.NUMPY_DERIVATIVES``; no compilation, a few microseconds per call);
  any other callable is differentiated by JAX autodiff, jitted once and cached.
  """
  table = kernels.numpy_derivatives(phi)
  if table is not None:
    return table
  fn = _jitted_derivatives(phi)

  def derivs(u):
    with kernels.x64():
      return tuple(np.asarray(v, np.float64) for v in fn(u))
  return derivs


def _lrelu_derivatives(slope):
  def fn(u):
    neg = u < 0
    return np.where(neg, slope * u, u), np.where(neg, slope, 1.0), np.zeros_like(u)
  return fn


class _Quadrature:
  """Gauss-Legendre panels on [-limit, t] and [t, limit], Gaussian density folded in."""

  def __init__(self, order=kernels._GL_ORDER, limit=kernels._LIMIT):
    self.nodes, self.weights = np.polynomial.legendre.leggauss(order)
    self.limit = limit
    self.order = order

  def points(self, t: float):
    """Nodes z [2 order] and weights w (w . f(z) = E[f(z)], z ~ N(0, 1)) split at t."""
    lim, n = self.limit, self.order
    t = min(max(float(t), -lim + 1e-3), lim - 1e-3)
    h1, h2 = (t + lim) / 2, (lim - t) / 2
    z = np.empty(2 * n)
    w = np.empty(2 * n)
    np.multiply(self.nodes, h1, out=z[:n])
    z[:n] += (t - lim) / 2
    np.multiply(self.nodes, h2, out=z[n:])
    z[n:] += (lim + t) / 2
    np.multiply(self.weights, h1, out=w[:n])
    np.multiply(self.weights, h2, out=w[n:])
    w *= np.exp(-0.5 * z * z)
    w *= 1.0 / math.sqrt(2 * math.pi)
    return z, w


_QUAD = _Quadrature()


def _residuals(p, method, derivs, kink, target):
  """Residuals of the Q/C conditions (eq. 16) for one parameter vector p.

  phi_hat = g (phi(a z + b) + d); g from Q(1) = 1. 'tat': unknowns (a, b, d),
  residuals Q'(1) - 1, C'(1) - 1, C''(1) - target. 'dks': unknowns (a, b),
  d = -E[phi(a z + b)] (C(0) = 0), residuals Q'(1) - 1, C'(1) - target.
  'dks_lrelu': unknowns (negative slope, b) with a = 1.
  Returns (residuals [m], d, g). This is the inner loop of the root search
  (hundreds of calls per solve), hence scalar Python arithmetic and one
  matrix-vector product for all the Gaussian means.
  """
  if method == "dks_lrelu":
    a, b = 1.0, float(p[1])
    t = -b
  else:
    a, b = float(p[0]), float(p[1])
    t = ((0.0 if kink is None else kink) - b) / (a if abs(a) > 1e-12 else 1e-12)
  z, w = _QUAD.points(t)
  u = a * z + b
  f0, f1, f2 = _lrelu_derivatives(float(p[0]))(u) if method == "dks_lrelu" else derivs(u)
  d = float(p[2]) if method == "tat" else -float(np.dot(w, f0))
  f = f0 + d
  ff, ffz, f11, f22 = np.stack([f * f, f * f1 * z, f1 * f1, f2 * f2]) @ w  # float64 scalars
  g2 = 1.0 / ff
  qslope = g2 * a * ffz
  cslope = g2 * a * a * f11
  if method == "tat":
    res = np.array([qslope - 1.0, cslope - 1.0, g2 * a ** 4 * f22 - target])
  else:
    res = np.array([qslope - 1.0, cslope - target])
  return res, d, math.sqrt(g2) if g2 > 0 else float("nan")


_RANDOM_SEED = 123  # dks.base seeds numpy with this before its random starting points
_SAMPLE_RANGE = {"input_scale": (0.0, 2.0), "input_shift": (-3.0, 3.0),
                 "output_shift": (-3.0, 3.0), "negative_slope": (0.0, 1.0)}
_PARAM_NAMES = {"tat": ("input_scale", "input_shift", "output_shift"),
                "dks": ("input_scale", "input_shift"),
                "dks_lrelu": ("negative_slope", "input_shift")}


def _starting_points(method, num_tries=50):
  """DKS's starting points: a fixed grid, then seeded uniform samples (same order)."""
  grids = {"input_scale": _TRY_SCALE, "input_shift": _TRY_SHIFT, "output_shift": _TRY_OSHIFT,
           "negative_slope": _TRY_SLOPE}
  names = _PARAM_NAMES[method]
  points = list(itertools.product(*(grids[n] for n in names)))
  rng = np.random.RandomState(_RANDOM_SEED)
  for _ in range(num_tries - len(points)):
    points.append(tuple(rng.uniform(*_SAMPLE_RANGE[n]) for n in names))
  return np.array(points, np.float64)


def _solve_smooth(phi, kink, method, target, name, reject=None, tol=1e-9):
  starts = _starting_points(method)
  derivs = None if method == "dks_lrelu" else _derivatives_fn(phi)
  def to_params(p, d, g):
    if method == "dks_lrelu":
      return {"negative_slope": float(p[0]), "input_shift": float(p[1]),
              "output_shift": float(d), "output_scale": float(g)}
    return {"input_scale": float(p[0]), "input_shift": float(p[1]),
            "output_shift": float(d), "output_scale": float(g)}

  # Powell's hybrid method (as dks.base) from DKS's starting points in DKS's order, so
  # that where the conditions have several solutions we pick the same one.
  fun = lambda v: _residuals(v, method, derivs, kink, target)[0]
  rejected = None  # a rejected solution found from the latest starting point
  for start in starts:
    rejected = None
    with np.errstate(all="ignore"):
      sol = scipy.optimize.root(fun, start, method="hybr")
      if not sol.success:
        continue
      res, d, g = _residuals(sol.x, method, derivs, kink, target)
    if not np.all(np.isfinite(res)) or np.max(np.abs(res)) > tol:
      continue
    params = to_params(sol.x, d, g)
    if reject is not None and reject(params):
      rejected = params
      continue
    return params
  if rejected is not None:
    # dks.base ends its loop the same way: when every solution was rejected and the
    # last starting point converged, it returns that solution (e.g. sigmoid on shallow
    # MLPs, where all solutions have input_scale * output_scale >= 2).
    warnings.warn(f"every solution for {name!r} ({method}) has input_scale * output_scale >= 2 "
                  "(rejected as possibly unstable); using the one from the last starting "
                  "point, as dks.base does")
    return rejected
  raise ValueError(f"no solution found for activation {name!r} with method {method!r} "
                   f"(target {target}) from {len(starts)} starting points; the activation may not "
                   "be able to satisfy these Q/C conditions (for TAT it must be smooth with a "
                   "non-zero second derivative, e.g. softplus, tanh, swish, gelu, elu, selu, "
                   "sigmoid, erf)")


def _resolve(activation):
  if callable(activation):
    return getattr(activation, "__name__", "custom"), activation, None
  return activation, kernels.get_activation(activation), kernels.KINKS.get(activation)


def _tat_reject(params):
  # As dks.base: reject solutions with input_scale * output_scale >= 2 (unstable Q maps).
  return params["input_scale"] * params["output_scale"] >= 2.0


def solve_tat_smooth(arch: Callable, activation: Union[str, Callable], tau: float = 0.3
                     ) -> ActivationSpec:
  """TAT for a smooth activation (eq. 14-16): Q(1)=1, Q'(1)=1, C'(1)=1, C''_f(1)=tau."""
  _check_arch(arch)
  if not tau > 0:
    raise ValueError(f"TAT needs tau > 0 (target C''_f(1)); got tau={tau}")
  name, phi, kink = _resolve(activation)
  if name in kernels.RELU_FAMILY:
    raise ValueError(f"{name!r} has C''(1) = infinity; use method 'tat' with leaky_relu "
                     "(TReLU, eta target) instead of a tau target")
  k = local_curvature_target(arch, tau)
  params = _solve_smooth(phi, kink, "tat", k, name, reject=_tat_reject)
  return ActivationSpec(name, "tat", params, base=phi)


def solve_dks(arch: Callable, activation: Union[str, Callable], zeta: float = 1.5
              ) -> ActivationSpec:
  """DKS: Q(1)=1, Q'(1)=1, C(0)=0, max slope C'_f(1)=zeta (leaky ReLU: footnote 3)."""
  _check_arch(arch)
  if not zeta > 1:
    raise ValueError(f"DKS needs zeta > 1 (target C'_f(1)); got zeta={zeta}")
  name, phi, kink = _resolve(activation)
  if name == "relu":
    raise ValueError("DKS is not supported for plain ReLU (one degree of freedom too few); "
                     "use leaky_relu (footnote 3)")
  s = local_slope_target(arch, zeta)
  if name == "leaky_relu":
    params = _solve_smooth(phi, 0.0, "dks_lrelu", s, name)
    return ActivationSpec(name, "dks", params)
  params = _solve_smooth(phi, kink, "dks", s, name)
  return ActivationSpec(name, "dks", params, base=phi)


EOC_SETTINGS = {"relu": (math.sqrt(2.0), 0.0), "tanh": (1.302, 0.02)}


def solve_eoc(activation: str, negative_slope: float = 0.0, sigma_w=None, sigma_b=None
              ) -> ActivationSpec:
  """EOC initialization scales of section 5.4 (untransformed activation)."""
  if activation == "leaky_relu":
    sw, sb = math.sqrt(2.0 / (1.0 + negative_slope ** 2)), 0.0
    spec = ActivationSpec(activation, "eoc", {"negative_slope": negative_slope,
                                              "output_scale": 1.0}, sw, sb)
  elif activation in EOC_SETTINGS:
    sw, sb = EOC_SETTINGS[activation]
    if activation == "relu":
      spec = ActivationSpec(activation, "eoc", {"negative_slope": 0.0, "output_scale": 1.0},
                            sw, sb)
    else:
      spec = ActivationSpec(activation, "eoc", {}, sw, sb, base=kernels.get_activation(activation))
  elif sigma_w is not None:
    spec = ActivationSpec(activation, "eoc", {}, sigma_w, sigma_b or 0.0,
                          base=kernels.get_activation(activation))
  else:
    raise ValueError(f"EOC settings are defined for relu, leaky_relu and tanh (section 5.4); "
                     f"for {activation!r} pass sigma_w (and sigma_b) explicitly")
  if sigma_w is not None:
    spec.sigma_w = sigma_w
  if sigma_b is not None:
    spec.sigma_b = sigma_b
  return spec


def untransformed(activation: str, negative_slope: float = 0.01, sigma_w: float = 1.0,
                  sigma_b: float = 0.0) -> ActivationSpec:
  """The plain activation with the given init scales."""
  if activation in kernels.RELU_FAMILY:
    a = 0.0 if activation == "relu" else negative_slope
    return ActivationSpec(activation, "untransformed", {"negative_slope": a, "output_scale": 1.0},
                          sigma_w, sigma_b)
  return ActivationSpec(activation, "untransformed", {}, sigma_w, sigma_b,
                        base=kernels.get_activation(activation))


def get_spec(arch: Callable, activation: str, method: str, *, eta: float = 0.9,
             tau: float = 0.3, zeta: float = 1.5, negative_slope: Optional[float] = None,
             sigma_w: Optional[float] = None, sigma_b: Optional[float] = None) -> ActivationSpec:
  """Solve the transformation ``method`` for ``activation`` on ``arch``.

  method 'tat': leaky ReLU / ReLU -> TReLU (eta); other activations -> smooth TAT (tau).
  'dks' (zeta), 'eoc' (section 5.4 scales), 'untransformed' (sigma_w default 1),
  'prelu' (trainable slope initialized at negative_slope, default 0.25).
  """
  if method not in METHODS:
    raise ValueError(f"Unknown method {method!r}; accepted: {', '.join(METHODS)}")
  if method == "tat":
    if activation in kernels.RELU_FAMILY:
      spec = solve_tat_leaky_relu(arch, eta)
    else:
      spec = solve_tat_smooth(arch, activation, tau)
  elif method == "dks":
    spec = solve_dks(arch, activation, zeta)
  elif method == "eoc":
    return solve_eoc(activation, negative_slope or 0.0, sigma_w, sigma_b)
  elif method == "prelu":
    a = 0.25 if negative_slope is None else negative_slope
    return ActivationSpec("prelu", "prelu", {"negative_slope": a, "output_scale": 1.0},
                          math.sqrt(2.0 / (1.0 + a * a)) if sigma_w is None else sigma_w,
                          sigma_b or 0.0)
  else:
    return untransformed(activation, 0.01 if negative_slope is None else negative_slope,
                         1.0 if sigma_w is None else sigma_w, sigma_b or 0.0)
  if sigma_w is not None:
    spec.sigma_w = sigma_w
  if sigma_b is not None:
    spec.sigma_b = sigma_b
  return spec
