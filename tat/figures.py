"""Figures 2 and 4 of the TAT paper, offline (no training framework needed).

  python -m tat.figures --out=/tmp/tat_figs [--quick] [--trace]

* Figure 2: global C maps of deep ReLU networks under EOC and of TReLU networks
  with C_f(0) = 0.5, at several depths (analytic, eq. 9 and 24).
* Figure 4 (appendix E.1): empirical c values per layer of actual initialized
  Haiku MLPs (widths 30/100/1000, Gaussian fan-in and orthogonal init), averaged
  over input pairs and networks, against the kernel prediction: TReLU (eta 0.9,
  c^0 = 0) and DKS softplus (zeta 10, c^0 = 0.8).
* ``--trace``: the same comparison for networks written in plain Haiku (no
  ``tat.arch``), with the prediction from their trace (:mod:`tat.trace`):
  output c of width-1024 networks at 1-16 blocks (``tat_trace_fig.png``).
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import math
import os

import haiku as hk
import jax
import jax.numpy as jnp
import numpy as np

from tat import arch as tat_arch
from tat import init as tat_init
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


# ---------------------------------------------------------------------------
# Traced kernel maps of plain-Haiku networks (no tat.arch) vs wide random networks.

def _dense(width):
  return hk.Linear(width, w_init=hk.initializers.VarianceScaling(1.0, "fan_in", "normal"))


def plain_mlp(x, act, *, depth: int, width: int):
  """``depth`` x (dense -> act), dense readout."""
  for _ in range(depth):
    x = act(_dense(width)(x))
  return _dense(width)(x)


def plain_residual(x, act, *, depth: int, width: int, a: float = 1.0, b: float = 1.0):
  """dense stem, ``depth`` blocks h = a h + b f(h) with f = dense(act(dense(act(h)))), readout.

  a = b = 1 is the unnormalized ``x + f(x)`` sum (q grows with depth); other a, b
  any weighted sum.
  """
  h = _dense(width)(x)
  for _ in range(depth):
    f = _dense(width)(act(_dense(width)(act(h))))
    h = h + f if (a, b) == (1.0, 1.0) else a * h + b * f
  return _dense(width)(act(h))


def plain_concat_pool(x, act, *, depth: int, width: int):
  """Conv blocks concatenating a one-conv and a two-conv branch, then 2x2 average pooling.

  Orthogonal Delta 3x3 convs of ``width / 2`` channels per branch; global mean
  pool and a dense readout at the end.
  """
  conv = lambda h: hk.Conv2D(width // 2, 3, w_init=tat_init.OrthogonalDelta())(h)
  h = hk.Conv2D(width, 1, w_init=tat_init.OrthogonalDelta())(x)
  for _ in range(depth):
    u = conv(act(h))
    v = conv(act(conv(act(h))))
    h = hk.avg_pool(jnp.concatenate([u, v], axis=-1), (1, 2, 2, 1), (1, 1, 1, 1), "SAME")
  return _dense(width)(jnp.mean(act(h), axis=(1, 2)))


PLAIN_NETS = {
    "mlp": (plain_mlp, {}),
    "residual x + f(x)": (plain_residual, {}),
    "residual 0.9 x + 0.5 f(x)": (plain_residual, {"a": 0.9, "b": 0.5}),
    "concat + avg pool": (plain_concat_pool, {}),
}
TRACE_DEPTHS = (1, 2, 4, 8, 16)


def _input_pairs(rng, pairs: int, dim: int, c0: float, spatial=None):
  """2 * pairs inputs (first halves, then second halves) of mean square 1, cosine exactly c0."""
  u, v = rng.normal(size=(2, pairs, dim))
  u /= np.linalg.norm(u, axis=1, keepdims=True)
  v -= np.sum(u * v, axis=1, keepdims=True) * u
  v /= np.linalg.norm(v, axis=1, keepdims=True)
  x = np.concatenate([u, c0 * u + np.sqrt(1 - c0 ** 2) * v]) * np.sqrt(dim)
  if spatial:  # the same vector at every location: a per-location kernel equals the global one
    x = np.broadcast_to(x[:, None, None, :], (2 * pairs,) + tuple(spatial) + (dim,))
  return np.asarray(x, np.float32)


def traced_vs_empirical(name: str, negative_slope: float, depths=TRACE_DEPTHS, width: int = 1024,
                        c0: float = 0.0, pairs: int = 8, nets: int = 3, seed: int = 0):
  """Traced C map vs empirical cosine similarity of TReLU networks, per depth.

  Returns rows (depth, traced qc prediction, empirical mean, std over
  networks). The prediction is :meth:`tat.trace.TracedNetwork.qc_map` of the
  traced Haiku code (TReLU: Q(q) = q, eq. 9 C map) with the initializers'
  own weight variances; the empirical value is the mean over ``pairs`` input
  pairs and ``nets`` initializations of the output cosine similarity.
  """
  from tat import trace
  fn, kw = PLAIN_NETS[name]
  spatial = (2, 2) if fn is plain_concat_pool else None
  scale = math.sqrt(2.0 / (1.0 + negative_slope ** 2))
  act = lambda h: scale * jax.nn.leaky_relu(h, negative_slope)
  rng = np.random.default_rng(seed)
  x = _input_pairs(rng, pairs, 16 if spatial else width, c0, spatial)
  rows = []
  for depth in depths:
    net = functools.partial(fn, depth=depth, width=width, **kw)
    model = hk.without_apply_rng(hk.transform(lambda inp: net(inp, act)))
    init_fn, apply_fn = jax.jit(model.init), jax.jit(model.apply)
    emp = []
    for k in range(nets):
      params = init_fn(jax.random.PRNGKey(1000 * seed + k), x)
      if k == 0:  # weight variances of an initialization (fan_in * mean W^2)
        traced = trace.from_haiku(net, x[:2], params=params)
        _, pred = traced.qc_map(lambda q: q,
                                lambda c, q: kernels.leaky_relu_c_map(c, negative_slope), 1.0, c0)
      out = np.asarray(apply_fn(params, x), np.float64)
      a, b = out[:pairs], out[pairs:]
      emp.append(np.mean(np.sum(a * b, 1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)))
    rows.append((depth, float(pred), float(np.mean(emp)), float(np.std(emp))))
  return rows


def trace_figure(out_dir: str, nets: int = 8, pairs: int = 8) -> tuple[str, dict]:
  """Figure-4-style plot: traced C map vs wide random plain-Haiku networks (4 families)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  a = solver.solve_tat_leaky_relu(
      tat_arch.get_architecture("mlp", depth=16, width=1, num_classes=1), 0.9
  ).params["negative_slope"]
  fig, axes = plt.subplots(1, len(PLAIN_NETS), figsize=(4 * len(PLAIN_NETS), 3.6), sharey=True)
  data = {}
  for ax, name in zip(axes, PLAIN_NETS):
    for c0, color in ((0.0, "C0"), (0.6, "C1")):
      rows = traced_vs_empirical(name, a, c0=c0, pairs=pairs, nets=nets)
      data[(name, c0)] = rows
      d, pred, emp, std = map(np.array, zip(*rows))
      ax.plot(d, pred, "--", color=color, label=f"traced C map, c0={c0}")
      ax.errorbar(d, emp, yerr=std, fmt="o", color=color, capsize=2,
                  label=f"width 1024, c0={c0}")
    ax.set_xscale("log", base=2)
    ax.set_title(name)
    ax.set_xlabel("blocks")
  axes[0].set_ylabel("output c")
  axes[0].legend(fontsize=7)
  fig.suptitle(f"TReLU (negative slope {a:.3f}): traced kernel map vs random networks")
  fig.tight_layout()
  path = os.path.join(out_dir, "tat_trace_fig.png")
  fig.savefig(path, dpi=100)
  plt.close(fig)
  return path, data


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m tat.figures")
  p.add_argument("--out", required=True, help="directory for the figure PNGs and their data")
  p.add_argument("--quick", action="store_true",
                 help="fewer networks and input pairs for figure 4 (seconds instead of minutes)")
  p.add_argument("--trace", action="store_true",
                 help="also the traced-kernel figure: plain-Haiku nets vs width-1024 networks "
                      "(8 initializations x 8 input pairs; not shortened by --quick)")
  args = p.parse_args(argv)
  os.makedirs(args.out, exist_ok=True)
  print(fig2(args.out)[0])
  path, rows = fig4(args.out, args.quick)
  print(path)
  for r in rows:
    print(r)
  if args.trace:
    path, data = trace_figure(args.out)
    print(path)
    for (name, c0), rows in data.items():
      worst = max(abs(p - e) for _, p, e, _ in rows)
      print(f"{name}, c0={c0}: (blocks, traced, empirical mean, std) {rows}; max |diff| {worst:.4f}")
  return 0


if __name__ == "__main__":
  raise SystemExit(main())
