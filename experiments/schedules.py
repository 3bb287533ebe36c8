"""Learning-rate schedules by name, all in steps (epochs were converted by config_lib)."""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections
import optax


def sgdr_cycle_lengths(train_steps: int, first: int, mult: float, num_cycles: int) -> list[int]:
  """Cycle lengths of cosine annealing with warm restarts (Loshchilov & Hutter).

  With `first > 0` cycles grow by `mult` until training ends; with `first == 0`
  the first cycle is chosen so that `num_cycles` cycles fill the training.
  """
  if first <= 0:
    total = sum(mult**i for i in range(num_cycles))
    first = max(int(round(train_steps / total)), 1)
  lengths, covered, length = [], 0, float(first)
  while covered < train_steps:
    n = max(int(round(length)), 1)
    lengths.append(min(n, train_steps - covered))
    covered += lengths[-1]
    length *= mult
  return lengths


def build_schedule(opt_config: ml_collections.ConfigDict, train_steps: int) -> optax.Schedule:
  s = opt_config.schedule
  lr = opt_config.learning_rate
  warmup = int(s.warmup_steps)
  main_steps = max(train_steps - warmup, 1)
  if s.name == "constant":
    main = optax.constant_schedule(lr)
  elif s.name == "cosine":
    main = optax.cosine_decay_schedule(lr, main_steps, alpha=s.end_value / lr if lr else 0.0)
  elif s.name == "step":
    boundaries = {}
    for frac in s.boundaries:
      if not 0 < frac < 1:
        raise ValueError(f"schedule.boundaries are fractions of training in (0, 1); got {frac}")
      b = int(round(frac * train_steps)) - warmup
      if b > 0:
        boundaries[b] = boundaries.get(b, 1.0) * s.decay_factor
    main = optax.piecewise_constant_schedule(lr, boundaries)
  elif s.name == "sgdr":
    lengths = sgdr_cycle_lengths(main_steps, int(s.cycle_steps), float(s.cycle_mult), int(s.num_cycles))
    alpha = s.end_value / lr if lr else 0.0
    cycles = [optax.cosine_decay_schedule(lr, n, alpha=alpha) for n in lengths]
    bounds = list(jnp.cumsum(jnp.array(lengths))[:-1].tolist())
    main = optax.join_schedules(cycles, [int(b) for b in bounds]) if len(cycles) > 1 else cycles[0]
  else:
    raise ValueError(f"Unknown schedule {s.name!r}; expected constant, cosine, step or sgdr.")
  if warmup > 0:
    return optax.join_schedules([optax.linear_schedule(0.0, lr, warmup), main], [warmup])
  return main
