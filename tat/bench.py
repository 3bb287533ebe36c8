"""Solver benchmark against dks.base over architectures x depths x activations, in one process.

  python -m tat.bench [--architectures=mlp-10,resnet_v2-50-w0.8,...] [--activations=...]
      [--repeats=5] [--json=out.json]

For every architecture (default grid: MLPs of depth 10/20/50/100, vanilla
ResNets v2 (shortcut weight 0) and rescaled ones (w = 0.8) of depth
50/101/152/200) and every activation (default: the smooth ones with TAT at
tau = 0.3, and leaky ReLU with TAT at eta = 0.9) it measures, interleaved in
one process:

* ours: the CLI's solve path (``tat.solve.build_arch`` + ``solver.get_spec``,
  which the model builders use too), first call and the median of
  ``--repeats`` later calls;
* dks: dks.base's ``get_transformed_activations`` for the same network (its
  body: ``_get_activations_params`` then ``_transform_activation``, called
  directly so that the parameters can be recorded), with the subnetwork
  maximizing function written independently from the TAT paper's appendix F.1
  code (not from ``tat.arch``), so the comparison also checks our M_{f,r};
* speed-up = dks time / our median time;
* the largest |ours - dks| of the two transformed activations on 2001 points
  in [-5, 5] (float64);
* how far each solution is from its own conditions (Q(1) = 1, Q'(1) = 1,
  C'(1) = 1, C''(1) = local target; leaky ReLU: max_f C_f(0) = eta), evaluated
  with our kink-split quadrature: this tells which side is inaccurate where the
  two disagree.

Prints one markdown row per solve as it finishes, then a per-cell table and a
compact speed-up table; ``--json`` writes the rows.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time

import jax.numpy as jnp
import numpy as np

from tat import arch as tat_arch
from tat import kernels
from tat import solve as tat_solve
from tat import solver

SMOOTH = ("softplus", "tanh", "swish", "gelu", "sigmoid", "erf", "elu", "selu")
ACTIVATIONS = SMOOTH + ("leaky_relu",)
ARCHITECTURES = tuple(
    [f"mlp-{d}" for d in (10, 20, 50, 100)]
    + [f"resnet_v2-{d}-w{w}" for d in (50, 101, 152, 200) for w in ("0", "0.8")])
TAU, ETA = 0.3, 0.9


def parse_architecture(spec: str):
  """'mlp-50' -> ('mlp', 50, 0.0); 'resnet_v2-101-w0.8' -> ('resnet_v2', 101, 0.8)."""
  parts = spec.split("-")
  try:
    name, depth = parts[0], int(parts[1])
    w = float(parts[2][1:]) if len(parts) > 2 else 0.0
    if len(parts) > 3 or (len(parts) > 2 and not parts[2].startswith("w")):
      raise ValueError
  except (ValueError, IndexError):
    raise ValueError(f"bad architecture {spec!r}; expected NAME-DEPTH[-wSHORTCUT_WEIGHT], "
                     "e.g. mlp-50 or resnet_v2-101-w0.8") from None
  if name not in ("mlp", "resnet_v2"):
    raise ValueError(f"bench architecture must be mlp or resnet_v2, got {name!r} in {spec!r}")
  return name, depth, w


# ---------------------------------------------------------------------------
# dks side: M_{f,r} written from the paper's appendix F.1 (independent of tat.arch).

def dks_subnet_max_func(name: str, depth: int, w: float):
  """``subnet_max_func(x, r)`` in dks.base's convention for an MLP or ResNet v2."""
  if name == "mlp":
    def mlp_fn(x, r):
      for _ in range(depth):
        x = r(x)
      return x
    return mlp_fn
  cfg = tat_arch.RESNET_CONFIGS[depth]
  per_block = 3 if cfg["bottleneck"] else 2

  def resnet_fn(x, r):
    branch = x
    for _ in range(per_block):
      branch = r(branch)
    c = x
    for g, nblocks in enumerate(cfg["blocks"]):
      for j in range(nblocks):
        main = c
        for _ in range(per_block):
          main = r(main)
        short = r(c) if (j == 0 and cfg["projection"][g]) else c
        c = main if w == 0 else w ** 2 * short + (1 - w ** 2) * main
    out = r(c)
    return out if w == 0 else max(out, branch)
  return resnet_fn


def dks_solve(activation: str, smf):
  """dks.base's get_transformed_activations for one activation: (params, fn, seconds)."""
  from dks.base import activation_transform as at
  from dks.base import activation_getter
  tat_params = {"c_val_0_target": ETA} if activation == "leaky_relu" else {"c_curve_target": TAU}
  start = time.perf_counter()
  params = at._get_activations_params([activation], method="TAT", tat_params=tat_params,
                                      subnet_max_func=smf)[activation]
  fn = at._transform_activation(activation_getter.get_activation_function(activation), params)
  seconds = time.perf_counter() - start
  return {k: float(v) for k, v in params.items()}, fn, seconds


# ---------------------------------------------------------------------------
# Checks.

def _our_fn(activation, params):
  base = None if activation == "leaky_relu" else kernels.get_activation(activation)
  return solver.ActivationSpec(activation, "tat", params, base=base).fn()


def grid_diff(activation, ours_params, dks_fn) -> float:
  """max |phi_hat_ours(x) - phi_hat_dks(x)| on 2001 points in [-5, 5]."""
  xs = np.linspace(-5.0, 5.0, 2001)
  with kernels.x64():
    a = np.asarray(_our_fn(activation, ours_params)(jnp.asarray(xs)), np.float64)
  b = np.asarray(dks_fn(xs), np.float64)
  return float(np.max(np.abs(a - b)))


def condition_error(arch, activation, params) -> float:
  """Largest violation of the TAT conditions by ``params`` (our split quadrature).

  Smooth: Q(1) = 1, Q'(1) = 1, C'(1) = 1, C''(1) = local target k (the k whose
  maximal curvature function is tau). Leaky ReLU: |max_f C_f(0) - eta| (eq. 9).
  """
  if activation == "leaky_relu":
    return abs(float(solver.max_c0_leaky_relu(arch, params["negative_slope"])) - ETA)
  k = solver.local_curvature_target(arch, TAU)
  with kernels.x64():
    phi = _our_fn(activation, params)
    kink = float(kernels.transformed_kink(kernels.KINKS.get(activation), params["input_scale"],
                                          params["input_shift"]))
    errs = [float(kernels.q_map(phi, 1.0, kink)) - 1.0, float(kernels.q_slope_1(phi, kink)) - 1.0,
            float(kernels.c_slope_1(phi, 1.0, kink)) - 1.0,
            float(kernels.c_curv_1(phi, 1.0, kink)) - k]
  return float(np.max(np.abs(errs)))


# ---------------------------------------------------------------------------

def bench_one(architecture: str, activation: str, repeats: int = 5, with_dks: bool = True):
  """One grid cell: our solve (first + median of repeats), dks's, and the checks."""
  name, depth, w = parse_architecture(architecture)

  def ours():
    start = time.perf_counter()
    arch = tat_solve.build_arch(name, depth, w)
    spec = solver.get_spec(arch, activation, "tat", eta=ETA, tau=TAU)
    return arch, spec, time.perf_counter() - start

  row = {"architecture": architecture, "activation": activation}
  try:
    arch, spec, first = ours()
  except ValueError as e:  # e.g. eta unreachable for a shallow net: dks fails there too
    row["ours_error"] = str(e)
    return row
  row.update(ours_first_s=first, ours_params=spec.params)
  if with_dks:
    try:
      ref, fn, row["dks_s"] = dks_solve(activation, dks_subnet_max_func(name, depth, w))
      row["dks_params"] = ref
    except Exception as e:  # dks may find no solution where we do
      row["dks_error"] = f"{type(e).__name__}: {str(e)[:80]}"
  times = [ours()[2] for _ in range(repeats)]
  row["ours_median_s"] = statistics.median(times)
  row["ours_condition_error"] = condition_error(arch, activation, spec.params)
  if "dks_params" in row:
    row["speedup"] = row["dks_s"] / row["ours_median_s"]
    row["speedup_first_call"] = row["dks_s"] / first
    row["max_abs_diff"] = grid_diff(activation, spec.params, fn)
    row["dks_condition_error"] = condition_error(arch, activation, row["dks_params"])
  return row


def run(architectures=ARCHITECTURES, activations=ACTIVATIONS, repeats=5, with_dks=True,
        on_row=None):
  rows = []
  for architecture in architectures:
    parse_architecture(architecture)
    for activation in activations:
      row = bench_one(architecture, activation, repeats, with_dks)
      rows.append(row)
      if on_row is not None:
        on_row(row)
  return rows


HEAD = ("| architecture | activation | ours first (ms) | ours median (ms) | dks (s) | speed-up "
        "| max abs diff on [-5,5] | condition error ours / dks |")


def format_row(r) -> str:
  if "ours_error" in r:
    return f"| {r['architecture']} | {r['activation']} | {r['ours_error'][:70]} | | | | | |"
  dks = f"{r['dks_s']:.3g}" if "dks_s" in r else r.get("dks_error", "-")
  return "| {} | {} | {:.1f} | {:.1f} | {} | {} | {} | {} |".format(
      r["architecture"], r["activation"], 1e3 * r["ours_first_s"], 1e3 * r["ours_median_s"], dks,
      f"{r['speedup']:.0f}x" if "speedup" in r else "-",
      f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else "-",
      f"{r['ours_condition_error']:.0e} / {r['dks_condition_error']:.0e}"
      if "dks_condition_error" in r else f"{r['ours_condition_error']:.0e} / -")


def to_markdown(rows) -> str:
  return "\n".join([HEAD, "|" + "---|" * 8] + [format_row(r) for r in rows])


def summary_markdown(rows) -> str:
  """Architectures x activations: speed-up (max abs diff)."""
  archs = list(dict.fromkeys(r["architecture"] for r in rows))
  acts = list(dict.fromkeys(r["activation"] for r in rows))
  cell = {(r["architecture"], r["activation"]): r for r in rows}
  lines = ["| architecture | " + " | ".join(acts) + " |", "|" + "---|" * (len(acts) + 1)]
  for a in archs:
    out = []
    for act in acts:
      r = cell.get((a, act))
      if r is None or "speedup" not in r:
        out.append("-" if r is None else "unreachable" if "ours_error" in r
                   else "dks failed" if "dks_error" in r
                   else f"ours {1e3 * r['ours_median_s']:.1f} ms, dks not run")
      else:
        out.append(f"{r['speedup']:.0f}x ({r['max_abs_diff']:.0e})")
    lines.append(f"| {a} | " + " | ".join(out) + " |")
  return "\n".join(lines)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m tat.bench", description=__doc__.split("\n")[0])
  p.add_argument("--architectures", default=",".join(ARCHITECTURES),
                 help="comma-separated NAME-DEPTH[-wW], e.g. mlp-50,resnet_v2-101-w0.8")
  p.add_argument("--activations", default=",".join(ACTIVATIONS),
                 help="comma-separated activation names (default: all benchmarked ones)")
  p.add_argument("--repeats", type=int, default=5,
                 help="timed calls per cell; the median is reported (default 5)")
  p.add_argument("--no_dks", action="store_true",
                 help="skip the published dks package (time only this project's solver)")
  p.add_argument("--json", default="",
                 help="also write the rows to this JSON file (rewritten after every row)")
  args = p.parse_args(argv)
  archs = tuple(a for a in args.architectures.split(",") if a)
  acts = tuple(a for a in args.activations.split(",") if a)
  try:
    for a in archs:
      parse_architecture(a)
    for a in acts:
      if a != "leaky_relu":
        kernels.get_activation(a)
  except ValueError as e:
    p.error(str(e))
  with_dks = not args.no_dks
  if with_dks:
    try:
      import dks.base  # noqa: F401
    except ImportError:
      print("dks is not installed: timing ours only (pip install dks==0.1.2 to compare)")
      with_dks = False
  print(f"TAT solves (smooth: tau {TAU}; leaky_relu: eta {ETA}); ours = tat.solve's path, "
        f"median of {args.repeats} calls; dks = dks.base, one call; interleaved in one process.")
  print(HEAD + "\n|" + "---|" * 8, flush=True)
  done = []

  def on_row(row):
    print(format_row(row), flush=True)
    done.append(row)
    if args.json:  # rewritten after every row, so an interrupted run keeps what it measured
      with open(args.json, "w") as f:
        json.dump(done, f, indent=1)

  rows = run(archs, acts, args.repeats, with_dks, on_row=on_row)
  print()
  print(summary_markdown(rows))
  timed = [r for r in rows if "speedup" in r]
  if timed:
    smooth = [r for r in timed if r["activation"] != "leaky_relu"]
    if smooth:
      worst = min(smooth, key=lambda r: r["speedup"])
      print(f"\nsmallest smooth-activation speed-up: {worst['speedup']:.0f}x "
            f"({worst['architecture']}, {worst['activation']}); first calls: "
            f"{min(r['speedup_first_call'] for r in smooth):.0f}x")
  return 0


if __name__ == "__main__":
  sys.exit(main())
