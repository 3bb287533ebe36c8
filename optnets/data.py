"""Data of the table-2 simulation (section 5.3)."""

from __future__ import annotations

import numpy as np


def gaussian_pairs(rng: np.random.Generator, num_examples: int, split: str = "train",
                   dim: int = 100, draw: int = 0) -> dict:
  """`num_examples` random pairs (x0, f), both from N(0, I) in dimension `dim`.

  The network maps x0 to a prediction of f; the paper uses 10,000 pairs of
  dimension 100 and reports the training MSE. Signature of API.md's
  `generated` datasets (the framework passes its own rng per split).
  draw != 0 gives an independent instance of the task (other pairs): the
  optimizer is selected on draw 1, the table is measured on draw 0.
  """
  if num_examples < 1 or dim < 1:
    raise ValueError(f"num_examples and dim must be positive, got {num_examples}, {dim}.")
  del split
  if draw:
    rng = np.random.default_rng([int(draw), *rng.integers(0, 2**31, 2)])
  x0 = rng.standard_normal((num_examples, dim)).astype(np.float32)
  f = rng.standard_normal((num_examples, dim)).astype(np.float32)
  return {"inputs": x0, "labels": f}
