"""metrics.jsonl, TensorBoard events and summary.json (written by process 0 only)."""

from __future__ import annotations

import json
import math
from typing import Any

import numpy as np

from experiments import paths

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
  paths.write_text_atomic(path, json.dumps(obj, indent=2, sort_keys=True))


class _PathLayerEventFile:
  """A TensorBoard event file on an object store: buffered, the whole object written at each flush."""

  def __init__(self, path: str):
    self.path, self.buffer = path, bytearray()

  def write(self, data: bytes) -> None:
    self.buffer += data

  def flush(self) -> None:
    paths.write_bytes(self.path, bytes(self.buffer))

  def close(self) -> None:
    self.flush()


class _PathLayerEventFiles:
  def open(self, path):
    return _PathLayerEventFile(path)

  def directory_check(self, path):
    del path  # object stores have no directories to create


def _register_path_layer_event_writer(scheme: str) -> None:
  """tensorboardX writes `scheme://` event files through experiments.paths."""
  from tensorboardX import record_writer
  record_writer.register_writer_factory(scheme, _PathLayerEventFiles())


class MetricsWriter:
  """Appends `{"step", "split", ...}` lines; mirrors scalars to TensorBoard."""

  def __init__(self, workdir: str, enabled: bool, tensorboard: bool = True):
    self.enabled = enabled
    self.path = paths.join(workdir, "metrics.jsonl")
    self._tb = None
    self._tb_enabled = tensorboard and enabled
    self._workdir = workdir

  def truncate_after(self, step: int) -> list[dict]:
    """Drops lines logged after `step` (a resumed run logs them again); returns the rest."""
    if not paths.exists(self.path):
      return []
    records = [json.loads(line) for line in paths.read_text(self.path).splitlines() if line.strip()]
    kept = [r for r in records if r["step"] <= step]
    if self.enabled and len(kept) != len(records):
      paths.write_text_atomic(self.path, "".join(json.dumps(r, sort_keys=True) + "\n" for r in kept))
    return kept

  def write(self, step: int, split: str, values: dict[str, Any]) -> dict:
    record = {"step": int(step), "split": split}
    record.update({k: _plain(v) for k, v in values.items()})
    if not self.enabled:
      return record
    paths.append_text(self.path, json.dumps(record, sort_keys=True) + "\n")
    if self._tb_enabled:
      self._write_tb(step, split, values)
    return record

  def _write_tb(self, step, split, values):
    if self._tb is None:
      from tensorboardX import SummaryWriter  # event files without importing TensorFlow
      if not paths.is_local(self._workdir):
        _register_path_layer_event_writer(self._workdir.split(":", 1)[0])
      self._tb = SummaryWriter(paths.join(self._workdir, "tensorboard"))
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
