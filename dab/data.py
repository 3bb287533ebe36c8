"""Synthetic data of the DAB paper (section 5.1): sequence sorting.

Used through the framework's `generated` dataset
(`config.dataset.generator = "dab.data.sort_sequences"`).
"""

from __future__ import annotations

import numpy as np


def sort_sequences(rng: np.random.Generator, num_examples: int, split: str = "train",
                   seq_len: int = 5) -> dict[str, np.ndarray]:
  """inputs x ~ U(0, 1)^T (float32 [N, T]); labels argsort(x) (int32 [N, T]).

  labels[n, t] is the index of the t-th smallest entry of x[n], so the model's
  logits [N, T, T] classify, for every output position, which input index
  belongs there (section 5.1 of the DAB paper).
  """
  if seq_len < 2:
    raise ValueError(f"seq_len must be >= 2, got {seq_len}")
  x = rng.uniform(0.0, 1.0, size=(num_examples, seq_len)).astype(np.float32)
  return {"inputs": x, "labels": np.argsort(x, axis=1).astype(np.int32)}
