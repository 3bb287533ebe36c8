"""Optimization-algorithm-inspired structures (Li, Yang, Chen & Lin): tables 2, 4 and 5.

  python -m experiments.reproduce optnets_table2 [--quick] --out runs/optnets
  python -m experiments.reproduce optnets_table4 [--quick] --out runs/optnets
  python -m experiments.reproduce optnets_table5 [--quick] --out runs/optnets

Table 2 is the simulation (configs/optnets/simulation.py). The paper trains 1,000
epochs of 10,000 pairs; the full mode here does the same (accelerator), --quick
trains SIM_QUICK_EPOCHS epochs per run on the CPU (a depth-40 run compiles for
minutes on the shared 2-core machine), which is far from convergence: compare
orderings, not values. Tables 4/5 train the CIFAR / ImageNet configs; without the
TFDS data prepared they cannot run here, and --quick trains one epoch (CIFAR) /
0.01 epoch (ImageNet) only.
"""

from __future__ import annotations

from experiments import reproduce

SIM = "configs/optnets/simulation.py"
STRUCTURES = ("admm", "gd", "hb", "agd", "agd2")
DEPTHS = (10, 20, 30, 40)
SIM_QUICK_EPOCHS = 10.0
RUN_ORDER = (40, 10, 20, 30)  # depth 40 first: the paper's comparison point

PAPER_TABLE2 = {  # MSE after 1,000 epochs
    10: {"admm": 1.07576, "gd": 1.00644, "hb": 1.00443, "agd": 1.00270, "agd2": 1.00745},
    20: {"admm": 1.07495, "gd": 1.00679, "hb": 1.00449, "agd": 1.00215, "agd2": 1.00227},
    30: {"admm": 1.07665, "gd": 1.00652, "hb": 1.00455, "agd": 1.00204, "agd2": 1.00086},
    40: {"admm": 1.07749, "gd": 1.00653, "hb": 1.00457, "agd": 1.00213, "agd2": 0.99964},
}

# Table 4: error (%) on C10, C100, C10+, C100+.
PAPER_TABLE4 = {
    "resnet56": (10.05, 39.65, 5.32, 26.03), "hb_net56": (10.17, 38.52, 5.46, 26.00),
    "resnet110": (9.17, 38.13, 5.06, 24.71), "hb_net110": (8.66, 36.40, 5.04, 23.93),
    "densenet40": (7.00, 27.55, 5.24, 24.42), "agd_net40": (6.44, 26.33, 5.20, 24.87),
    "densenet52": (6.05, 26.30, 5.09, 24.33), "agd_net52": (5.75, 24.92, 4.94, 23.84),
}
TABLE4_COLUMNS = (("c10", False), ("c100", False), ("c10", True), ("c100", True))

# Table 5: top-1, top-5 error (%) on ImageNet.
PAPER_TABLE5 = {"resnet34": (26.73, 8.74), "hb_net34": (26.33, 8.56),
                "densenet121": (25.02, 7.71), "agd_net121": (24.62, 7.39)}


def run_table2(ctx: reproduce.Context) -> str:
  spec = SIM + (":quick" if ctx.quick else "")
  overrides = {"train_epochs": SIM_QUICK_EPOCHS} if ctx.quick else {}
  measured = {}
  for depth in RUN_ORDER:
    for s in STRUCTURES:
      summ = ctx.train(spec, overrides={**overrides, "structure": s, "depth": depth},
                       name=f"{s}_d{depth}", seed=0)
      measured[depth, s] = summ["final"]["train_mse"]
  rows = [[str(d)] + [f"{PAPER_TABLE2[d][s]:.5f} / {measured[d, s]:.5f}" for s in STRUCTURES]
          for d in DEPTHS]
  budget = f"{SIM_QUICK_EPOCHS:g} epochs (CPU)" if ctx.quick else "1,000 epochs"
  return (f"Training MSE, paper (1,000 epochs) / measured ({budget}, Adam 1e-3, batch 100, "
          "seed 0).\n\n" + reproduce.markdown_table(["depth", *STRUCTURES], rows))


def run_table4(ctx: reproduce.Context) -> str:
  rows = []
  for model, paper in PAPER_TABLE4.items():
    row = [model]
    for (data, aug), p in zip(TABLE4_COLUMNS, paper):
      variant = ",".join([model, data] + (["aug"] if aug else []) + (["quick"] if ctx.quick else []))
      summ = ctx.train("configs/optnets/cifar.py:" + variant, name=variant.replace(",", "_"),
                       seed=0)
      row.append(f"{p:.2f} / {reproduce.fmt(1 - summ['final']['test_accuracy'], percent=True)}")
    rows.append(row)
  return ("Error (%), paper / measured.\n\n"
          + reproduce.markdown_table(["model", "C10", "C100", "C10+", "C100+"], rows))


def run_table5(ctx: reproduce.Context) -> str:
  rows = []
  for model, (top1, top5) in PAPER_TABLE5.items():
    variant = model + (",quick" if ctx.quick else "")
    summ = ctx.train("configs/optnets/imagenet.py:" + variant, name=model, seed=0)
    rows.append([model, f"{top1:.2f}", reproduce.fmt(1 - summ["final"]["test_accuracy"], True),
                 f"{top5:.2f}"])
  return ("Top-1 error (%), paper / measured; top-5 as reported by the paper (the framework "
          "logs top-1 accuracy).\n\n"
          + reproduce.markdown_table(["model", "paper top-1", "measured top-1", "paper top-5"],
                                     rows))


reproduce.register("optnets_table2", title="Table 2: simulation MSE of GD/HB/AGD/AGD2/ADMM structures",
                   paper="optnets", fn=run_table2)
reproduce.register("optnets_table4", title="Table 4: HB-Net / AGD-Net vs ResNet / DenseNet on CIFAR",
                   paper="optnets", fn=run_table4)
reproduce.register("optnets_table5", title="Table 5: HB-Net-34 / AGD-Net-121 on ImageNet",
                   paper="optnets", fn=run_table5)
