"""Figures 2 and 4 of the TAT paper, offline (no training framework needed).

  python -m tat.figures --out=/tmp/tat_figs [--quick]

* Figure 2: global C maps of deep ReLU networks under EOC and of TReLU networks
  with C_f(0) = 0.5, at several depths (analytic, eq. 9 and 24).
* Figure 4 (appendix E.1): empirical c values per layer of actual initialized
  Haiku MLPs (widths 30/100/1000, Gaussian fan-in and orthogonal init), averaged
  over input pairs and networks, against the kernel prediction: TReLU (eta 0.9,
  c^0 = 0) and DKS softplus (zeta 10, c^0 = 0.8).
"""

from __future__ import annotations

import argparse
import dataclasses
import os

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from tat import arch as tat_arch
from tat import kernels
from tat import solver

FIG2_DEPTHS = (3, 10, 30, 100)


def fig2_data(depths=FIG2_DEPTHS, eta=0.5, points=201):
  cs = np.linspace(-1, 1, points)
  eoc, trelu, slopes = {}, {}, {}
  for depth in depths:
    arch = tat_arch.get_architecture("mlp", depth=depth, width=1, num_classes=1)
    eoc[depth] = tat_arch.global_map(arch, cs, kernels.relu_c_map)
    spec = solver.solve_tat_leaky_relu(arch, eta)
    a = spec.params["negative_slope"]
    slopes[depth] = a
    trelu[depth] = tat_arch.global_map(arch, cs, lambda c: kernels.leaky_relu_c_map(c, a))
  return cs, eoc, trelu, slopes


def fig2(out_dir: str) -> tuple[str, dict]:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  cs, eoc, trelu, slopes = fig2_data()
  fig, axes = plt.subplots(1, 2, figsize=(9, 4))
  for depth in eoc:
    axes[0].plot(cs, eoc[depth], label=f"depth {depth}")
    axes[1].plot(cs, trelu[depth], label=f"depth {depth} (a={slopes[depth]:.3f})")
  for ax, title in zip(axes, ("ReLU, EOC", "TReLU, C_f(0) = 0.5")):
    ax.plot(cs, cs, "k:", lw=0.8)
    ax.set_title(title)
    ax.set_xlabel("c (input)")
    ax.set_ylabel("C_f(c)")
    ax.legend(fontsize=8)
  fig.tight_layout()
  path = os.path.join(out_dir, "tat_fig2.png")
  fig.savefig(path, dpi=100)
  plt.close(fig)
  c0 = {d: (float(eoc[d][len(cs) // 2]), float(trelu[d][len(cs) // 2])) for d in eoc}
  return path, c0


@dataclasses.dataclass
class _RecordingOps(tat_arch.HaikuOps):
  """HaikuOps that also returns every nonlinear layer's output."""
  record: list = dataclasses.field(default_factory=list)

  def act(self, x):
    y = super().act(x)
    self.record.append(y)
    return y


def empirical_c(spec, init: str, width: int, depth: int, c0: float, pairs: int, nets: int,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
  """Mean and std (over networks) of per-layer cosine similarities of input pairs."""
  arch = tat_arch.get_architecture("mlp", depth=depth, width=width, num_classes=1)
  act = spec.fn()

  def fwd(x):
    ops = _RecordingOps(act, init=init, sigma_w=spec.sigma_w, sigma_b=spec.sigma_b,
                        is_training=False)
    arch(ops, x)
    return jnp.stack(ops.record)  # [depth, 2 * pairs, width]

  net = hk.transform(fwd)
  rng = np.random.default_rng(seed)
  u = rng.normal(size=(pairs, width))
  v = rng.normal(size=(pairs, width))
  u /= np.linalg.norm(u, axis=1, keepdims=True)
  v -= np.sum(u * v, axis=1, keepdims=True) * u
  v /= np.linalg.norm(v, axis=1, keepdims=True)
  x = np.concatenate([u, c0 * u + np.sqrt(1 - c0 ** 2) * v]) * np.sqrt(width)
  x = jnp.asarray(x, jnp.float32)
  init_fn, apply_fn = jax.jit(net.init), jax.jit(net.apply)
  per_net = []
  for k in range(nets):
    params = init_fn(jax.random.PRNGKey(seed * 1000 + k), x)
    h = np.asarray(apply_fn(params, None, x), np.float64)
    a, b = h[:, :pairs], h[:, pairs:]
    cos = np.sum(a * b, -1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    per_net.append(np.concatenate([[c0], cos.mean(axis=1)]))
  per_net = np.array(per_net)
  return per_net.mean(0), per_net.std(0)


def predicted_c(spec, depth: int, c0: float) -> np.ndarray:
  """c values per layer from the local C map (closed form for TReLU, quadrature otherwise)."""
  out = [c0]
  if "negative_slope" in spec.params and "input_shift" not in spec.params:
    a = spec.params["negative_slope"]
    for _ in range(depth):
      out.append(float(kernels.leaky_relu_c_map(out[-1], a)))
    return np.array(out)
  phi = spec.fn()
  with kernels.x64():
    step = jax.jit(lambda c: kernels.c_map(phi, c))
    for _ in range(depth):
      out.append(float(step(out[-1])))
  return np.array(out)


def fig4(out_dir: str, quick: bool = True, depth: int = 30) -> tuple[str, list]:
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  widths = (30, 100) if quick else (30, 100, 1000)
  pairs, nets = (10, 4) if quick else (100, 50)
  arch = tat_arch.get_architecture("mlp", depth=depth, width=1, num_classes=1)
  cases = [("TReLU (eta 0.9)", solver.solve_tat_leaky_relu(arch, 0.9), 0.0),
           ("DKS softplus (zeta 10)", solver.solve_dks(arch, "softplus", 10.0), 0.8)]
  fig, axes = plt.subplots(2, 2, figsize=(10, 7), sharex=True)
  rows = []
  for col, (label, spec, c0) in enumerate(cases):
    pred = predicted_c(spec, depth, c0)
    for r, init in enumerate(("gaussian", "orthogonal")):
      ax = axes[r, col]
      for width in widths:
        mean, std = empirical_c(spec, init, width, depth, c0, pairs, nets)
        ax.errorbar(np.arange(depth + 1), mean, yerr=std, label=f"width {width}", capsize=2)
        rows.append([label, init, width, float(mean[-1]), float(std[-1]), float(pred[-1]),
                     float(np.max(np.abs(mean - pred)))])
      ax.plot(np.arange(depth + 1), pred, "k--", label="C map prediction")
      ax.set_title(f"{label}, {init} init")
      ax.set_xlabel("layer")
      ax.set_ylabel("c value")
      ax.legend(fontsize=7)
  fig.tight_layout()
  path = os.path.join(out_dir, "tat_fig4.png")
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path, rows


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m tat.figures")
  p.add_argument("--out", required=True, help="directory for the figure PNGs and their data")
  p.add_argument("--quick", action="store_true",
                 help="fewer networks and input pairs for figure 4 (seconds instead of minutes)")
  args = p.parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  print(fig2(args.out)[0])
  path, rows = fig4(args.out, args.quick)
  print(path)
  for r in rows:
    print(r)
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
