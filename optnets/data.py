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


def reference_mse(inputs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
  """Training-set MSE (mean over examples and coordinates) of four reference predictors.

  The table-2 targets are independent of the inputs, so a network can only lower
  the MSE below the target's own spread by memorising pairs. These numbers put a
  trained structure's MSE on that scale:
    zero:          predict 0 (the mean square of the targets);
    constant:      predict each coordinate's training mean (the best constant);
    nonneg_constant: the best constant with outputs >= 0, max(mean, 0) per
                   coordinate (the best a sigmoid-output network that ignores
                   its input can do);
    linear:        least squares affine map of the inputs (in-sample; memorises
                   about dim / num_examples of the variance).
  """
  x = np.asarray(inputs, np.float64).reshape(len(inputs), -1)
  f = np.asarray(labels, np.float64).reshape(len(labels), -1)
  mean = f.mean(axis=0)
  design = np.concatenate([x, np.ones((len(x), 1))], axis=1)
  coef = np.linalg.lstsq(design, f, rcond=None)[0]
  return {"zero": float(np.mean(f ** 2)),
          "constant": float(np.mean((f - mean) ** 2)),
          "nonneg_constant": float(np.mean((f - np.maximum(mean, 0.0)) ** 2)),
          "linear": float(np.mean((f - design @ coef) ** 2))}
