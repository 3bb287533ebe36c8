"""Command line TAT/DKS/EOC solver: prints one JSON object with the activation parameters.

  python -m tat.solve --activation=softplus --method=tat --architecture=resnet_v2 \
      --depth=101 --shortcut_weight=0.8 --tau=0.3

prints one JSON object: the parameters (``negative_slope``, ``output_scale``
for leaky ReLU; ``input_scale``, ``input_shift``, ``output_shift``,
``output_scale`` for smooth activations, with
phi_hat(x) = output_scale * (phi(input_scale * x + input_shift) + output_shift)),
``sigma_w``/``sigma_b``, the resolved targets and ``solve_seconds`` (time spent
solving, imports excluded; nothing is jit-compiled for the named activations,
a callable's derivatives would be).

``--architecture=mlp --depth=L``: L nonlinear layers. ``resnet_v2``: the
appendix F.1 topology (depth in 18/34/50/101/152/200; ``--shortcut_weight``
0 = vanilla, default 0). ``wide_resnet`` and ``convnet`` are accepted too.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

from tat import arch as tat_arch
from tat import solver


def build_arch(architecture: str, depth: int, shortcut_weight: float):
  """The architecture function for the CLI's names (widths irrelevant to kernels)."""
  if architecture == "mlp":
    return tat_arch.get_architecture("mlp", depth=depth, width=1, num_classes=1)
  if architecture == "convnet":
    return tat_arch.get_architecture("convnet", depth=depth, width=1, num_classes=1)
  if architecture == "resnet_v2":
    return tat_arch.get_architecture("resnet_v2", depth=depth, num_classes=1,
                                     shortcut_weight=shortcut_weight)
  if architecture == "wide_resnet":
    return tat_arch.get_architecture("wide_resnet", depth=depth, num_classes=1,
                                     shortcut_weight=shortcut_weight)
  raise ValueError(f"Unknown architecture {architecture!r}; accepted: "
                   f"{', '.join(tat_arch.ARCHITECTURES)}")


def main(argv=None) -> int:
  p = argparse.ArgumentParser(prog="python -m tat.solve", description=__doc__.split("\n")[0])
  p.add_argument("--activation", required=True,
                 help="activation name, e.g. softplus, tanh, elu, selu, leaky_relu, relu")
  p.add_argument("--method", required=True, choices=solver.METHODS,
                 help="tat (transformed activations), dks, eoc (edge of chaos), untransformed, prelu")
  p.add_argument("--architecture", default="mlp",
                 help="mlp, convnet, resnet_v2 or wide_resnet (default mlp)")
  p.add_argument("--depth", type=int, required=True,
                 help="number of nonlinear layers (mlp/convnet) or the ResNet depth (e.g. 50, 101)")
  p.add_argument("--shortcut_weight", type=float, default=0.0,
                 help="weight of the residual shortcut branch in [0, 1); 0 = vanilla (default)")
  p.add_argument("--eta", type=float, default=0.9,
                 help="TAT target for leaky ReLU: the network's C map value C_f(0) (default 0.9)")
  p.add_argument("--tau", type=float, default=0.3,
                 help="TAT target for smooth activations: the network's C map curvature C''_f(1) (default 0.3)")
  p.add_argument("--zeta", type=float, default=1.5,
                 help="DKS target: the network's C map slope C'_f(1) (default 1.5)")
  p.add_argument("--negative_slope", type=float, default=None,
                 help="fixed leaky-ReLU negative slope instead of solving for it (default: solve)")
  args = p.parse_args(argv)
  try:
    arch = build_arch(args.architecture, args.depth, args.shortcut_weight)
    start = time.perf_counter()
    spec = solver.get_spec(arch, args.activation, args.method, eta=args.eta, tau=args.tau,
                           zeta=args.zeta, negative_slope=args.negative_slope)
    seconds = time.perf_counter() - start
  except ValueError as e:
    print(json.dumps({"error": str(e)}))
    return 2
  out = spec.to_json()
  out.update(architecture=args.architecture, depth=args.depth,
             shortcut_weight=args.shortcut_weight,
             num_nonlinear_layers=tat_arch.count_nonlinear_layers(arch),
             solve_seconds=seconds)
  if args.method == "tat":
    out["eta" if "negative_slope" in spec.params else "tau"] = (
        args.eta if "negative_slope" in spec.params else args.tau)
  if args.method == "dks":
    out["zeta"] = args.zeta
  print(json.dumps(out))
  return 0


if __name__ == "__main__":
  sys.exit(main())
