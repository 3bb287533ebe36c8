"""Synthetic regression tasks of figures 1 and 2, as `generated` datasets.

Signature (experiments/API.md): fn(rng, num_examples, split, **kwargs) ->
{"inputs": float32 [N, 1], "labels": float32 [N, 1]}.
"""

from __future__ import annotations

import numpy as np
import scipy.special

SPLITS = ("train", "test")


def _check_split(split: str) -> None:
  if split not in SPLITS:
    raise ValueError(f"split {split!r} not in {SPLITS}")


def sin2x(rng: np.random.Generator, num_examples: int, split: str, *, low: float = -2 * np.pi,
          high: float = 2 * np.pi, sampling: str = "grid", copies: int = 1) -> dict:
  """sin(2x) on [low, high] (figure 1; default [-2 pi, 2 pi]).

  sampling="grid": `num_examples` evenly spaced points (deterministic);
  "uniform": points drawn uniformly with `rng`. Noise-free labels, repeated
  `copies` times along the last axis ([N, copies]) for that many independent
  toy neurons trained side by side (`nets.one_neuron(copies=...)`).
  """
  _check_split(split)
  if num_examples <= 0:
    raise ValueError(f"sin2x needs num_examples > 0, got {num_examples}")
  if int(copies) < 1:
    raise ValueError(f"sin2x copies must be an integer >= 1, got {copies}")
  if sampling == "grid":
    x = np.linspace(low, high, num_examples)
  elif sampling == "uniform":
    x = rng.uniform(low, high, num_examples)
  else:
    raise ValueError(f"sampling {sampling!r} not in ('grid', 'uniform')")
  x = x.astype(np.float32)[:, None]
  return {"inputs": x, "labels": np.repeat(np.sin(2 * x).astype(np.float32), int(copies), axis=1)}


def bessel_split(num_points: int = 400, low: float = -80.0, high: float = 80.0,
                 split_seed: int = 0) -> dict:
  """The fixed Bessel data set: x uniformly spaced on [low, high], randomly halved.

  Returns {"train": x_train, "test": x_test} (sorted), the same for a given
  `split_seed`, so that the train and test splits never overlap.
  """
  if num_points < 2 or num_points % 2:
    raise ValueError(f"num_points must be an even number >= 2, got {num_points}")
  x = np.linspace(low, high, num_points)
  perm = np.random.default_rng(split_seed).permutation(num_points)
  half = num_points // 2
  return {"train": np.sort(x[perm[:half]]), "test": np.sort(x[perm[half:]])}


def bessel(rng: np.random.Generator, num_examples: int, split: str, *, num_points: int = 400,
           low: float = -80.0, high: float = 80.0, noise_std: float = 0.08, split_seed: int = 0,
           input_scale: float = 1.0, validation: int = 0) -> dict:
  """First-kind order-0 Bessel J0(x) on [-80, 80] (figure 2, section 4.3).

  400 evenly spaced samples split at random (fixed by `split_seed`) into 200
  training and 200 test points; white noise N(0, noise_std^2) (0.08) is added
  to the training labels only (drawn with `rng`). With num_examples smaller
  than the split, a random subset (drawn with `rng`) is returned. Inputs are
  multiplied by `input_scale` (1: raw x as in the paper).

  `validation` > 0 is the model-selection mode: that many points of the
  training half, evenly spaced in rank over the sorted training x (so the
  rest keeps its coverage of [low, high]), are held out; "train" returns the
  rest and "test" returns the held-out points with noisy labels, like the
  training data; the test half is not used at all.
  """
  _check_split(split)
  if not 0 < input_scale < np.inf:
    raise ValueError(f"bessel input_scale must be a finite number > 0, got {input_scale}")
  x = bessel_split(num_points, low, high, split_seed)["train" if validation else split]
  if validation:
    if not 0 < validation < len(x):
      raise ValueError(f"bessel validation must be in [1, {len(x) - 1}], got {validation}")
    held = np.zeros(len(x), bool)
    held[np.round(np.linspace(0, len(x) - 1, validation)).astype(int)] = True
    x = x[held] if split == "test" else x[~held]
  if not 0 < num_examples <= len(x):
    raise ValueError(f"bessel {split} split has {len(x)} points; num_examples must be in "
                     f"[1, {len(x)}], got {num_examples}")
  if num_examples < len(x):
    x = np.sort(rng.choice(x, num_examples, replace=False))
  y = scipy.special.j0(x)
  if (split == "train" or validation) and noise_std > 0:
    y = y + rng.normal(0.0, noise_std, y.shape)
  return {"inputs": (x * input_scale).astype(np.float32)[:, None],
          "labels": y.astype(np.float32)[:, None]}
