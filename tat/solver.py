"""Activation transformations: TAT (leaky ReLU and smooth), DKS, EOC, PReLU.

All solvers take the network as an architecture function ``arch(ops, x)``
(see :mod:`tat.arch`), the same one that builds the Haiku network, and use its
subnetwork maximizing function M_{f,r} for the global conditions:

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

Everything numeric runs in float64 under :func:`tat.kernels.x64`; the smooth
solvers are Newton iterations from DKS's starting points, run for all starting
points at once (vmap) inside one jit; compiled solvers are cached per
activation, so repeated solves cost a few milliseconds.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from typing import Any, Callable, Optional, Union

import jax
import jax.numpy as jnp
import numpy as np

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
    out.update({k: float(v) for k, v in self.params.items()})
    out.update(sigma_w=float(self.sigma_w), sigma_b=float(self.sigma_b))
    return out


# ---------------------------------------------------------------------------
# Searches on increasing scalar functions (numpy float64, vectorized).

def search_increasing(fn, target: float, lo: float, hi: float, points: int = 64,
                      passes: int = 8) -> float:
  """x in [lo, hi] with fn(x) = target for an increasing, elementwise ``fn``.

  Each pass evaluates ``fn`` on a grid of ``points`` values at once (the kernel
  interpretation is elementwise, so a whole grid costs one network pass) and
  keeps the bracketing cell: 8 passes of 64 points shrink [lo, hi] by 63^8.
  """
  for _ in range(passes):
    xs = np.linspace(lo, hi, points)
    vals = np.asarray(fn(xs), np.float64)
    i = int(np.clip(np.searchsorted(vals, target), 1, points - 1))
    lo, hi = xs[i - 1], xs[i]
    if hi - lo < 1e-15 * max(1.0, abs(lo)):
      break
  v_lo, v_hi = float(np.asarray(fn(np.array([lo])))[0]), float(np.asarray(fn(np.array([hi])))[0])
  if v_hi == v_lo:
    return float(0.5 * (lo + hi))
  return float(lo + (target - v_lo) * (hi - lo) / (v_hi - v_lo))  # final linear step


def _check_arch(arch):
  if not callable(arch):
    raise ValueError("arch must be an architecture function arch(ops, x) (see tat.arch)")


def _subnet_max_np(arch, x0, r_fn):
  return tat_arch.subnet_max(arch, x0, r_fn, maximum=np.maximum)


# ---------------------------------------------------------------------------
# TAT for leaky ReLU.

def max_c0_leaky_relu(arch, negative_slope):
  """max over subnetworks of C_f(0) for TReLU with the given negative slope(s) (eq. 9)."""
  a = np.asarray(negative_slope, np.float64)
  return _subnet_max_np(arch, np.zeros_like(a), lambda c: kernels.leaky_relu_c_map(c, a))


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
  """Local C''(1) = k such that the maximal curvature function equals tau."""
  unit = float(max_curvature(arch, 1.0))
  if unit <= 0:
    raise ValueError("architecture has no nonlinear layer; TAT needs at least one")
  return search_increasing(lambda k: max_curvature(arch, k), tau, 0.0, 2.0 * tau / unit)


def local_slope_target(arch: Callable, zeta: float) -> float:
  """Local C'(1) = s such that the maximal slope function equals zeta (DKS)."""
  return search_increasing(lambda s: max_slope(arch, s), zeta, 1.0, max(2.0, zeta))


# ---------------------------------------------------------------------------
# Smooth activations: Newton from DKS's starting points, vmapped.

_TRY_SCALE = (1.0, 0.1)
_TRY_SHIFT = (0.0, 1.0, -1.0)
_TRY_OSHIFT = (0.0, 1.0, -1.0)
_TRY_SLOPE = (0.0, 0.5)


def _smooth_residuals(phi, kink, method):
  """Residual function of the parameter vector for 'tat' or 'dks'/'dks_lrelu'."""
  d1 = kernels.derivative(phi)
  d2 = kernels.derivative(phi, 2)

  def make(p, target):
    if method == "dks_lrelu":
      a, b = 1.0, p[1]
      base = lambda x: jax.nn.leaky_relu(x, p[0])
      base_d1 = lambda x: jnp.where(x >= 0, 1.0, p[0])
      k = -b
    else:
      a, b = p[0], p[1]
      base, base_d1 = phi, d1
      k = kernels.transformed_kink(kink, a, b)
    if method == "tat":
      d = p[2]
    else:  # DKS: output shift gives C(0) = 0: d = -E[phi(a z + b)]
      d = -kernels.gaussian_mean(lambda z: base(a * z + b), k)
    q = kernels.gaussian_mean(lambda z: (base(a * z + b) + d) ** 2, k)
    g = 1.0 / jnp.sqrt(q)
    qslope = kernels.gaussian_mean(
        lambda z: g * (base(a * z + b) + d) * g * a * base_d1(a * z + b) * z, k)
    cslope = kernels.gaussian_mean(lambda z: (g * a * base_d1(a * z + b)) ** 2, k)
    if method == "tat":
      ccurv = kernels.gaussian_mean(lambda z: (g * a * a * d2(a * z + b)) ** 2, k)
      res = jnp.stack([qslope - 1.0, cslope - 1.0, ccurv - target])
    else:
      res = jnp.stack([qslope - 1.0, cslope - target])
    return res, d, g
  return make


@functools.lru_cache(maxsize=128)
def _smooth_solver(phi, kink, method, iters=60):
  make = _smooth_residuals(phi, kink, method)
  res_fn = lambda p, t: make(p, t)[0]
  jac_fn = jax.jacfwd(res_fn)

  def newton(p0, target):
    def body(_, p):
      r = res_fn(p, target)
      jm = jac_fn(p, target)
      step = jnp.linalg.solve(jm, r)
      norm = jnp.sqrt(jnp.sum(step ** 2))
      step = step * jnp.minimum(1.0, 1.0 / jnp.maximum(norm, 1e-30))  # trust radius 1
      new = p - step
      return jnp.where(jnp.all(jnp.isfinite(new)), new, p * jnp.nan)
    p = jax.lax.fori_loop(0, iters, body, p0)
    r, d, g = make(p, target)
    return p, jnp.max(jnp.abs(r)), d, g

  return jax.jit(jax.vmap(newton, in_axes=(0, None)))


def _starting_points(method):
  if method == "tat":
    return np.array(list(itertools.product(_TRY_SCALE, _TRY_SHIFT, _TRY_OSHIFT)))
  if method == "dks_lrelu":
    return np.array(list(itertools.product(_TRY_SLOPE, _TRY_SHIFT)))
  return np.array(list(itertools.product(_TRY_SCALE, _TRY_SHIFT)))


def _solve_smooth(phi, kink, method, target, name, reject=None, tol=1e-10):
  with kernels.x64():
    starts = jnp.asarray(_starting_points(method), jnp.float64)
    p, err, d, g = _smooth_solver(phi, kink, method)(starts, jnp.float64(target))
    p, err, d, g = map(np.asarray, (p, err, d, g))
  for i in range(len(starts)):
    if not np.isfinite(err[i]) or err[i] > tol:
      continue
    if method == "dks_lrelu":
      params = {"negative_slope": float(p[i, 0]), "input_shift": float(p[i, 1]),
                "output_shift": float(d[i]), "output_scale": float(g[i])}
    else:
      params = {"input_scale": float(p[i, 0]), "input_shift": float(p[i, 1]),
                "output_shift": float(d[i]), "output_scale": float(g[i])}
    if reject is not None and reject(params):
      continue
    return params
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
