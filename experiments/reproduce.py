r"""Reproduce a paper table or figure: python -m experiments.reproduce <id> [--quick] --out DIR.

Each registered entry trains the configs behind one table or figure (every run
in its own workdir under DIR/<id>/, resumed or reused when re-run) and writes
DIR/<id>.md with the paper's numbers beside the measured ones, plus PNG
figures where the paper has a figure. `--list` prints the registered ids.

Method packages register entries in experiments/tables/<paper>.py:

    reproduce.register("tat_fig2", title="...", paper="tat", fn=run_fig2)

where `fn(ctx) -> str` returns the markdown body (see experiments/API.md).
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import math
import os
import pkgutil
import sys
import time
from typing import Any, Callable, Iterable, Sequence

from absl import app
from absl import flags


@dataclasses.dataclass(frozen=True)
class Entry:
  id: str
  title: str
  paper: str
  fn: Callable[["Context"], str]
  description: str = ""


_REGISTRY: dict[str, Entry] = {}


def register(id: str, title: str, paper: str, fn: Callable[["Context"], str], description: str = "") -> None:
  if id in _REGISTRY and _REGISTRY[id].fn is not fn:
    raise ValueError(f"reproduction id {id!r} is registered twice")
  _REGISTRY[id] = Entry(id, title, paper, fn, description)


def load_all() -> dict[str, Entry]:
  """Imports every module of experiments.tables (each registers its entries)."""
  from experiments import tables
  for module in pkgutil.iter_modules(tables.__path__):
    importlib.import_module(f"experiments.tables.{module.name}")
  return dict(sorted(_REGISTRY.items()))


@dataclasses.dataclass
class Context:
  """What a table function gets: the mode, the output directory, and `train`."""
  id: str
  out: str
  quick: bool
  runs: list[dict] = dataclasses.field(default_factory=list)

  @property
  def run_dir(self) -> str:
    return os.path.join(self.out, self.id)

  def train(self, config: str, overrides: dict[str, Any] | None = None, name: str | None = None,
            seed: int | None = None) -> dict:
    """Trains (resumes, or reuses a finished) run; returns its summary.json dict.

    A finished run whose config is unchanged is read from its summary.json; a
    workdir trained with a different config raises ConfigChanged naming the
    keys (delete the workdir to retrain it).
    """
    from experiments import config_lib
    from experiments import train
    overrides = dict(overrides or {})
    if seed is not None:
      overrides["seed"] = seed
    if name is None:
      name = "_".join(f"{k.split('.')[-1]}={v}" for k, v in sorted(overrides.items())) or "default"
    workdir = os.path.join(self.run_dir, name)
    cfg = config_lib.load_config(config, overrides)
    start = time.time()
    print(f"[{self.id}] {name}: {config} {overrides}", file=sys.stderr, flush=True)
    try:
      summary = train.run(cfg, workdir)
    except config_lib.ConfigChanged as e:
      raise config_lib.ConfigChanged(
          f"[{self.id}] run {name!r}: its config changed since it was trained; delete {workdir} "
          f"to retrain it, or use another --out. {e}") from None
    self.runs.append({"name": name, "config": config, "overrides": overrides, "workdir": workdir,
                      "seconds": time.time() - start, "summary": summary})
    return summary

  def grid(self, config: str, grid: dict[str, Sequence[Any]], select: str,
           overrides: dict[str, Any] | None = None, name: str = "grid",
           seed: int | None = None) -> tuple[dict, dict[str, Any], list[tuple[dict, dict]]]:
    """Runs every point of a hyperparameter grid in its own workdir.

    `select` is a summary key such as "best.test_accuracy" (higher is better
    unless the metric is a loss/error/MSE). Returns (best summary, its point,
    all (point, summary) pairs). A point whose loss became NaN has summary
    None and is not selected; if every point diverged, the last
    TrainingDiverged is raised.
    """
    from experiments import metrics
    from experiments import train
    keys = sorted(grid)
    results = []
    diverged = None
    for values in itertools.product(*(grid[k] for k in keys)):
      point = dict(zip(keys, values))
      point_name = name + "_" + "_".join(f"{k.split('.')[-1]}={v}" for k, v in point.items())
      try:
        summary = self.train(config, {**(overrides or {}), **point}, point_name, seed)
      except train.TrainingDiverged as e:
        print(f"[{self.id}] {point_name}: diverged ({e})", file=sys.stderr, flush=True)
        summary, diverged = None, e
      results.append((point, summary))
    finished = [r for r in results if r[1] is not None]
    if not finished:
      raise diverged
    section, metric = select.split(".", 1)
    sign = 1 if metrics.higher_is_better(metric) else -1
    best_point, best = max(finished, key=lambda r: sign * r[1][section][metric])
    return best, best_point, results


def mean_std(values: Iterable[float | None]) -> tuple[float | None, float | None]:
  """Mean and sample standard deviation of the values that are not None (sd 0 for one
  value; (None, None) for none), e.g. a metric over seeds where some runs diverged."""
  v = [x for x in values if x is not None]
  if not v:
    return None, None
  m = sum(v) / len(v)
  sd = math.sqrt(sum((x - m) ** 2 for x in v) / (len(v) - 1)) if len(v) > 1 else 0.0
  return m, sd


def fmt(value: Any, percent: bool = False, digits: int = 2) -> str:
  """A table cell: '-' for missing, percentages with `digits` decimals, else 4 significant digits."""
  if value is None:
    return "-"
  if isinstance(value, str):
    return value
  return f"{100 * value:.{digits}f}" if percent else f"{value:.4g}"


def markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
  lines = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
  for row in rows:
    lines.append("| " + " | ".join(str(c) for c in row) + " |")
  return "\n".join(lines) + "\n"


def run_entry(entry: Entry, out: str, quick: bool) -> str:
  os.makedirs(out, exist_ok=True)
  ctx = Context(entry.id, out, quick)
  start = time.time()
  body = entry.fn(ctx)
  minutes = (time.time() - start) / 60
  mode = "quick (CI-sized budget; not the paper's)" if quick else "full"
  text = (f"# {entry.title}\n\nPaper: {entry.paper}. Reproduction id `{entry.id}`, mode: {mode}, "
          f"{len(ctx.runs)} run(s), {minutes:.1f} min.\n\n{body}")
  if ctx.runs:
    text += "\nRuns (workdirs hold config.json, metrics.jsonl, summary.json, checkpoints):\n\n"
    text += markdown_table(["run", "config", "overrides", "minutes"],
                           [[r["name"], r["config"], r["overrides"] or "", f"{r['seconds'] / 60:.1f}"]
                            for r in ctx.runs])
  path = os.path.join(out, f"{entry.id}.md")
  with open(path, "w") as f:
    f.write(text)
  return text


def main(argv, quick: bool, out: str, list_only: bool):
  from experiments import log
  log.setup()
  entries = load_all()
  if list_only or len(argv) < 2:
    for entry in entries.values():
      print(f"{entry.id:28s} {entry.paper:13s} {entry.title}")
    if not list_only:
      print("\nusage: python -m experiments.reproduce <id> [<id> ...] [--quick] --out DIR", file=sys.stderr)
    return
  unknown = [a for a in argv[1:] if a not in entries]
  if unknown:
    import difflib
    hints = {u: difflib.get_close_matches(u, entries, n=3) for u in unknown}
    raise app.UsageError(f"unknown reproduction id(s) {hints}; see --list")
  from experiments import config_lib
  from experiments import validate
  for table_id in argv[1:]:
    try:
      text = run_entry(entries[table_id], out, quick)
    except (config_lib.ConfigChanged, validate.ConfigError) as e:
      print(f"error: {e}", file=sys.stderr, flush=True)
      sys.exit(2)
    print(text)
    print(f"wrote {os.path.join(out, table_id + '.md')}", file=sys.stderr)


def cli():
  """Entry point. Flags live here so that `python -m` and imports share one registry."""
  quick = flags.DEFINE_bool("quick", False, "Small budgets (minutes on a CPU) instead of the paper's.")
  out = flags.DEFINE_string("out", "runs/reproduce", "Output directory for <id>.md, figures and workdirs.")
  list_only = flags.DEFINE_bool("list", False, "List the registered reproduction ids and exit.")
  app.run(lambda argv: main(argv, quick.value, out.value, list_only.value))


if __name__ == "__main__":
  # Run the CLI from the importable module, so that the tables registered by
  # experiments/tables/*.py (which import experiments.reproduce) are the ones listed.
  from experiments import reproduce as _canonical
  _canonical.cli()
