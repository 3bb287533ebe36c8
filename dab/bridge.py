"""Differentiable approximation bridges (DAB) and gradient baselines, pure JAX.

A bridge evaluates a non-differentiable function `hard(x)` in the forward pass
and, in the backward pass, returns the vector-Jacobian product of a smooth
approximator network `approx(params, x)` at the same x (paper section 4 and the
appendix 7.1 reference code: `grad(soft_y, x, grad_out)`).

The approximator learns only from the DAB regularizer of eq. 5 in its L2 form
(eq. 10): `gamma * loss(approx(sg(x)), sg(hard(x)))`, with stop-gradients so
that it reaches neither the encoder nor the hard function. Its parameters are
explicit arguments of the `jax.custom_vjp` (closing over traced parameters
fails under jit/grad) and the bridge returns a zero cotangent for them: the
task loss gives them no gradient.

Baselines: `straight_through` (identity gradient, refuses shape changes),
`no_gradient` (stop), and the smooth model (no hard function) which is a model
choice, see `dab.nets`.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp

HardFn = Callable[..., jnp.ndarray]        # hard(x, *hard_args) -> y
ApproxFn = Callable[[Any, jnp.ndarray], jnp.ndarray]  # approx(params, x) -> y_soft

LOSSES = ("l2", "huber", "l1", "cosine")


def approximator_loss(pred: jnp.ndarray, target: jnp.ndarray, kind: str = "l2",
                      huber_delta: float = 1.0) -> jnp.ndarray:
  """Per-example loss of the approximator against the hard output, shape [B].

  `l2` (default, eq. 10): sum over features of squared differences; `l1`: sum
  of absolute differences; `huber`: sum of Huber losses (delta `huber_delta`);
  `cosine`: 1 - cosine similarity of the flattened vectors (section 4.1 lists
  these alternatives).
  """
  if pred.shape != target.shape:
    raise ValueError(f"approximator output {pred.shape} must match the hard output {target.shape}")
  d = (pred - target).reshape(pred.shape[0], -1)
  if kind == "l2":
    return jnp.sum(jnp.square(d), axis=1)
  if kind == "l1":
    return jnp.sum(jnp.abs(d), axis=1)
  if kind == "huber":
    a = jnp.abs(d)
    quad = jnp.minimum(a, huber_delta)
    return jnp.sum(0.5 * quad ** 2 + huber_delta * (a - quad), axis=1)
  if kind == "cosine":
    p = pred.reshape(pred.shape[0], -1)
    t = target.reshape(target.shape[0], -1)
    cos = jnp.sum(p * t, 1) / (jnp.linalg.norm(p, axis=1) * jnp.linalg.norm(t, axis=1) + 1e-8)
    return 1.0 - cos
  raise ValueError(f"unknown approximator loss {kind!r}; expected one of {LOSSES}")


def dab_penalty(approx_fn: ApproxFn, approx_params: Any, x: jnp.ndarray, hard_out: jnp.ndarray,
                gamma: float, kind: str = "l2") -> jnp.ndarray:
  """gamma * batch mean of loss(approx(sg(x)), sg(hard(x))) (eq. 5 / eq. 10).

  The stop-gradients mean this term trains the approximator parameters only:
  the encoder that produced x receives no gradient from it.
  """
  pred = approx_fn(approx_params, jax.lax.stop_gradient(x))
  target = jax.lax.stop_gradient(hard_out).astype(pred.dtype)
  return gamma * jnp.mean(approximator_loss(pred, target, kind))


def _check_shapes(hard_fn, approx_fn, x, approx_params, hard_args):
  hard_shape = jax.eval_shape(lambda x_, *a: hard_fn(x_, *a), x, *hard_args)
  soft_shape = jax.eval_shape(approx_fn, approx_params, x)
  if hard_shape.shape != soft_shape.shape:
    raise ValueError(f"DAB approximator output {soft_shape.shape} must have the hard function's "
                     f"output shape {hard_shape.shape}")


def make_bridge(hard_fn: HardFn, approx_fn: ApproxFn) -> Callable[..., jnp.ndarray]:
  """Returns `bridge(x, approx_params, *hard_args) -> hard_fn(x, *hard_args)`.

  Backward: dL/dx = VJP of `approx_fn(approx_params, .)` at x applied to the
  output cotangent; zero cotangents for `approx_params` and `hard_args` (e.g.
  the Bernoulli noise). Works under jit, vmap, pmap and lax.scan, and for hard
  functions that change the per-example shape, provided the approximator
  produces the hard function's output shape.
  """

  @jax.custom_vjp
  def bridge(x, approx_params, *hard_args):
    return hard_fn(x, *hard_args)

  def fwd(x, approx_params, *hard_args):
    return hard_fn(x, *hard_args), (x, approx_params, hard_args)

  def bwd(res, g):
    x, approx_params, hard_args = res
    soft, vjp = jax.vjp(lambda x_: approx_fn(approx_params, x_), x)
    (gx,) = vjp(g.astype(soft.dtype))
    zeros = lambda t: jax.tree.map(jnp.zeros_like, t)
    return (gx, zeros(approx_params), *zeros(tuple(hard_args)))

  bridge.defvjp(fwd, bwd)

  def checked(x, approx_params, *hard_args):
    _check_shapes(hard_fn, approx_fn, x, approx_params, hard_args)
    return bridge(x, approx_params, *hard_args)
  return checked


def dab(hard_fn: HardFn, approx_fn: ApproxFn, x: jnp.ndarray, approx_params: Any,
        *hard_args, gamma: float = 10.0, loss: str = "l2") -> tuple[jnp.ndarray, jnp.ndarray]:
  """Hard forward with DAB gradient, plus the DAB regularizer: returns (y, penalty).

  Add `penalty` to the training loss; it trains only `approx_params`.
  """
  if loss not in LOSSES:
    raise ValueError(f"unknown approximator loss {loss!r}; expected one of {LOSSES}")
  y = make_bridge(hard_fn, approx_fn)(x, approx_params, *hard_args)
  return y, dab_penalty(approx_fn, approx_params, x, y, gamma, loss)


def straight_through(hard_fn: HardFn, x: jnp.ndarray, *hard_args) -> jnp.ndarray:
  """Straight-through estimator [3]: forward hard(x), backward identity.

  Raises ValueError when hard(x) has a different shape than x: the STE has no
  way to copy gradients between different dimensions (paper, section 2).
  """
  out = jax.eval_shape(lambda x_, *a: hard_fn(x_, *a), x, *hard_args)
  if out.shape != x.shape:
    raise ValueError(f"the straight-through estimator needs a shape-preserving hard function; "
                     f"this one maps {x.shape} to {out.shape}. Use gradient='dab' instead.")

  @jax.custom_vjp
  def ste(x_, *a):
    return hard_fn(x_, *a).astype(x_.dtype)

  def fwd(x_, *a):
    return ste(x_, *a), a

  def bwd(a, g):
    return (g, *jax.tree.map(jnp.zeros_like, tuple(a)))

  ste.defvjp(fwd, bwd)
  return ste(x, *hard_args)


def no_gradient(hard_fn: HardFn, x: jnp.ndarray, *hard_args) -> jnp.ndarray:
  """Baseline: forward hard(x), no gradient flows to x (layers before it do not learn)."""
  return jax.lax.stop_gradient(hard_fn(x, *hard_args))


GRADIENTS = ("dab", "ste", "none", "smooth")
