"""Solver benchmark against dks.base, in one process.

  python -m tat.bench [--depth=101] [--shortcut_weight=0.0] [--repeats=3] [--json=out.json]

For each smooth activation (TAT, tau 0.3) and for leaky ReLU (TAT, eta 0.9) on
ResNet v2 of the given depth: our solve time (first call, which includes jit
compilation of the activation's derivatives, and the median of the later
calls, compilation excluded), dks.base's time for the same solve (its
subnetwork maximizing function written from the paper's appendix F.1 code),
the speed-up (median ours vs dks), and the largest difference between the two
transformed activations on a grid of 2001 points in [-5, 5]. Prints a markdown
table and optionally writes the rows as JSON.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time

import jax.numpy as jnp
import numpy as np

from tat import arch as tat_arch
from tat import kernels
from tat import solver

SMOOTH = ("softplus", "tanh", "swish", "gelu", "elu", "selu", "sigmoid", "erf")


def _dks_subnet_max_func(depth, w):
  """dks-style M_{f,r} for resnet_v2, transcribed from the paper's appendix F.1."""
  cfg = tat_arch.RESNET_CONFIGS[depth]
  per_block = 3 if cfg["bottleneck"] else 2

  def fn(x, r):
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
  return fn


def _dks_solve(name, method_kw, smf):
  from dks.base import activation_transform as at
  start = time.perf_counter()
  params = at._get_activations_params([name], subnet_max_func=smf, **method_kw)[name]
  return {k: float(v) for k, v in params.items()}, time.perf_counter() - start


def _grid_diff(name, ours, ref):
  xs = np.linspace(-5.0, 5.0, 2001)
  with kernels.x64():
    a = np.asarray(solver.ActivationSpec(name, "tat", ours, base=_base(name)).fn()(jnp.asarray(xs)))
    b = np.asarray(solver.ActivationSpec(name, "dks", ref, base=_base(name)).fn()(jnp.asarray(xs)))
  return float(np.max(np.abs(a - b)))


def _base(name):
  return None if name == "leaky_relu" else kernels.get_activation(name)


def run(depth=101, shortcut_weight=0.0, repeats=3, activations=SMOOTH, with_dks=True):
  arch = tat_arch.get_architecture("resnet_v2", depth=depth, num_classes=1,
                                   shortcut_weight=shortcut_weight)
  smf = _dks_subnet_max_func(depth, shortcut_weight)
  rows = []
  for name in ("leaky_relu",) + tuple(activations):
    if name == "leaky_relu":
      solve = lambda: solver.solve_tat_leaky_relu(arch, 0.9)
      dks_kw = {"method": "TAT", "tat_params": {"c_val_0_target": 0.9}}
    else:
      solve = lambda name=name: solver.solve_tat_smooth(arch, name, 0.3)
      dks_kw = {"method": "TAT", "tat_params": {"c_curve_target": 0.3}}
    t0 = time.perf_counter()
    spec = solve()
    first = time.perf_counter() - t0
    times = []
    for _ in range(repeats):
      t0 = time.perf_counter()
      spec = solve()
      times.append(time.perf_counter() - t0)
    row = {"activation": name, "ours_first_s": first, "ours_median_s": statistics.median(times)}
    if with_dks:
      try:
        ref, dks_s = _dks_solve(name, dks_kw, smf)
        row.update(dks_s=dks_s, speedup=dks_s / row["ours_median_s"],
                   max_abs_diff=_grid_diff(name, spec.params, ref))
      except Exception as e:  # dks may fail to find a solution where we do
        row.update(dks_error=str(e)[:80])
    rows.append(row)
  return rows


def to_markdown(rows) -> str:
  head = "| activation | ours first call (s) | ours median (s) | dks.base (s) | speed-up | max abs diff |"
  lines = [head, "|" + "---|" * 6]
  for r in rows:
    lines.append("| {} | {:.3f} | {:.4f} | {} | {} | {} |".format(
        r["activation"], r["ours_first_s"], r["ours_median_s"],
        f"{r['dks_s']:.3f}" if "dks_s" in r else r.get("dks_error", "-"),
        f"{r['speedup']:.0f}x" if "speedup" in r else "-",
        f"{r['max_abs_diff']:.1e}" if "max_abs_diff" in r else "-"))
  return "\n".join(lines)


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m tat.bench", description=__doc__.split("\n")[0])
  p.add_argument("--depth", type=int, default=101)
  p.add_argument("--shortcut_weight", type=float, default=0.0)
  p.add_argument("--repeats", type=int, default=3)
  p.add_argument("--activations", default=",".join(SMOOTH))
  p.add_argument("--no_dks", action="store_true")
  p.add_argument("--json", default="")
  args = p.parse_args(argv)
  try:
    import dks.base  # noqa: F401
    with_dks = not args.no_dks
  except ImportError:
    with_dks = False
  rows = run(args.depth, args.shortcut_weight, args.repeats,
             tuple(a for a in args.activations.split(",") if a), with_dks)
  print(f"TAT solves on resnet_v2 depth {args.depth}, shortcut weight {args.shortcut_weight} "
        "(smooth: tau 0.3; leaky_relu: eta 0.9). 'first call' includes jit compilation; "
        "speed-up uses the median of later calls (compilation excluded).")
  print(to_markdown(rows))
  if args.json:
    with open(args.json, "w") as f:
      json.dump(rows, f, indent=1)
  return 0


if __name__ == "__main__":
  sys.exit(main())
