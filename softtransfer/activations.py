"""Activations and the non-monotonicity gated unit (section 3.1).

Pure elementwise JAX functions.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

Activation = Callable[[jnp.ndarray], jnp.ndarray]


def sin(x: jnp.ndarray) -> jnp.ndarray:
  """The non-monotonic sinusoidal activation sigma_tilde(x) = sin(x)."""
  return jnp.sin(x)


def resin(x: jnp.ndarray) -> jnp.ndarray:
  """Monotonically rectified sine (eq. 2).

  -1 for x <= -pi/2, sin(x) on (-pi/2, pi/2), 1 for x >= pi/2; equals
  sin(clip(x, -pi/2, pi/2)), with zero gradient in the flat parts.
  """
  return jnp.sin(jnp.clip(x, -jnp.pi / 2, jnp.pi / 2))


def tanh(x: jnp.ndarray) -> jnp.ndarray:
  """tanh, the smooth approximation of resin (section 4.1)."""
  return jnp.tanh(x)


def relu(x: jnp.ndarray) -> jnp.ndarray:
  """ReLU (section 4.1)."""
  return jax.nn.relu(x)


ACTIVATIONS: dict[str, Activation] = {"sin": sin, "resin": resin, "tanh": tanh, "relu": relu}


def get_activation(name: str) -> Activation:
  """Looks up an activation by name; ValueError lists the accepted names."""
  if name not in ACTIVATIONS:
    raise ValueError(f"unknown activation {name!r}; accepted: {sorted(ACTIVATIONS)}")
  return ACTIVATIONS[name]


def gated_unit(x: jnp.ndarray, z: jnp.ndarray, monotonic: Activation = resin,
               non_monotonic: Activation = sin) -> jnp.ndarray:
  """Non-monotonicity gated unit sigma_z(x) = z * monotonic(x) + (1 - z) * non_monotonic(x) (eq. 1).

  `z` broadcasts against `x`: z = 1 is the monotonic unit, z = 0 the
  non-monotonic one; any pair of elementwise callables works.
  """
  return z * monotonic(x) + (1.0 - z) * non_monotonic(x)
