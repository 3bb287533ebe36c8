"""metrics.jsonl, TensorBoard events and summary.json (written by process 0 only)."""

from __future__ import annotations

import json
import math
import os
from typing import Any

import numpy as np

# Metric names whose best value is the smallest; everything else is maximized.
_MINIMIZED = ("loss", "mse", "error", "penalty", "nll", "kl", "emd", "distance")


def higher_is_better(name: str) -> bool:
  return not any(tag in name for tag in _MINIMIZED)


def _plain(value: Any) -> Any:
  if isinstance(value, (np.floating, np.integer)):
    value = value.item()
  if isinstance(value, np.ndarray) and value.ndim == 0:
    value = value.item()
  if isinstance(value, float) and not math.isfinite(value):
    return str(value)
  return value


def write_json_atomic(path: str, obj: Any) -> None:
  tmp = path + ".tmp"
  with open(tmp, "w") as f:
    json.dump(obj, f, indent=2, sort_keys=True)
    f.flush()
    os.fsync(f.fileno())
  os.replace(tmp, path)


class MetricsWriter:
  """Appends `{"step", "split", ...}` lines; mirrors scalars to TensorBoard."""

  def __init__(self, workdir: str, enabled: bool, tensorboard: bool = True):
    self.enabled = enabled
    self.path = os.path.join(workdir, "metrics.jsonl")
    self._tb = None
    self._tb_enabled = tensorboard and enabled
    self._workdir = workdir

  def truncate_after(self, step: int) -> list[dict]:
    """Drops lines logged after `step` (a resumed run logs them again); returns the rest."""
    if not os.path.exists(self.path):
      return []
    with open(self.path) as f:
      records = [json.loads(line) for line in f if line.strip()]
    kept = [r for r in records if r["step"] <= step]
    if self.enabled and len(kept) != len(records):
      tmp = self.path + ".tmp"
      with open(tmp, "w") as f:
        f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in kept)
      os.replace(tmp, self.path)
    return kept

  def write(self, step: int, split: str, values: dict[str, Any]) -> dict:
    record = {"step": int(step), "split": split}
    record.update({k: _plain(v) for k, v in values.items()})
    if not self.enabled:
      return record
    with open(self.path, "a") as f:
      f.write(json.dumps(record, sort_keys=True) + "\n")
    if self._tb_enabled:
      self._write_tb(step, split, values)
    return record

  def _write_tb(self, step, split, values):
    if self._tb is None:
      from tensorboardX import SummaryWriter  # event files without importing TensorFlow
      self._tb = SummaryWriter(os.path.join(self._workdir, "tensorboard"))
    for k, v in values.items():
      v = _plain(v)
      if isinstance(v, (int, float)) and not isinstance(v, bool):
        self._tb.add_scalar(f"{split}/{k}", v, int(step))

  def close(self):
    if self._tb is not None:
      self._tb.close()
      self._tb = None


def summarize(eval_records: list[dict]) -> dict:
  """summary.json from the evaluation records (splits and `stats`), no timings.

  `final` holds every metric of the last evaluation (`<split>_<metric>`, and
  model stats unprefixed); `best` the best value of each split metric over all
  evaluations (minimum for losses/errors/MSE, maximum otherwise).
  """
  final, best = {}, {}
  last_step = eval_records[-1]["step"] if eval_records else 0
  for record in eval_records:
    split = record["split"]
    for k, v in record.items():
      if k in ("step", "split") or isinstance(v, (bool, str)) or not isinstance(v, (int, float)):
        continue
      name = k if split == "stats" else f"{split}_{k}"
      if record["step"] == last_step:
        final[name] = v
      if split == "stats":
        continue
      if name not in best:
        best[name] = v
      else:
        best[name] = max(best[name], v) if higher_is_better(name) else min(best[name], v)
  return {"step": last_step, "final": final, "best": best}
