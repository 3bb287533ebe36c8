"""The main job: TAT's central claim (deep vanilla nets train with TAT, not at EOC) offline."""

from experiments import reproduce

CONFIG = "configs/quickstart.py"
METHODS = (("eoc", "ReLU at the edge of chaos (He init)"), ("tat", "TReLU (TAT, eta = 0.9)"))
# TReLU needs depth >= 16 to reach eta = 0.9 (a ReLU MLP of depth 12 only has C_f(0) = 0.897).
DEPTHS = (16, 50)
LEARNING_RATES = (0.003, 0.01)
# The learning rate is selected on seed 0's validation accuracy; the selected rate is then
# trained with every seed, and the table reports test accuracy over the seeds.
SEEDS = (0, 1, 2)


def run_quickstart(ctx: reproduce.Context) -> str:
  spec = CONFIG + (":quick" if ctx.quick else "")
  rows, tests = [], {}
  for method, label in METHODS:
    cells = []
    for depth in DEPTHS:
      overrides = {"model.method": method, "model.depth": depth}
      name = f"{method}_depth{depth}"
      best, point, _ = ctx.grid(spec, {"optimizer.learning_rate": list(LEARNING_RATES)},
                                select="final.validation_accuracy", overrides=overrides,
                                name=name, seed=SEEDS[0])
      lr = point["optimizer.learning_rate"]
      summaries = [best] + [
          ctx.train(spec, {**overrides, "optimizer.learning_rate": lr},
                    f"{name}_learning_rate={lr}_seed={seed}", seed)
          for seed in SEEDS[1:]]
      tests[method, depth] = [s["final"]["test_accuracy"] for s in summaries]
      m, sd = reproduce.mean_std(tests[method, depth])
      cells.append(f"{100 * m:.1f} +- {100 * sd:.1f} (lr {lr}; "
                   + " / ".join(f"{100 * t:.1f}" for t in tests[method, depth]) + ")")
    rows.append([label] + cells)
  deep, shallow = DEPTHS[-1], DEPTHS[0]
  mean = lambda values: reproduce.mean_std(values)[0]
  drop = {m: mean(tests[m, shallow]) - mean(tests[m, deep]) for m, _ in METHODS}
  # Robust to the seed (and to the per-machine rounding that changes a seed's result):
  # every TReLU seed at the deep end beats every EOC-ReLU seed there.
  separated = min(tests["tat", deep]) > max(tests["eoc", deep])
  verdict = ("reproduced" if separated and drop["tat"] < drop["eoc"]
             else "NOT reproduced in this run")
  table = reproduce.markdown_table(
      ["deep vanilla MLP on mnist_5k_val (width 256, SGD)"]
      + [f"test accuracy %, depth {d} (mean +- sd; seeds {'/'.join(map(str, SEEDS))})"
         for d in DEPTHS], rows)
  return (
      "Claim (TAT paper, sections 1 and 5): without shortcuts or normalization, a deep ReLU "
      "network at the edge of chaos degrades with depth, while the same network with a "
      "tailored activation (TReLU) stays trainable.\n\n" + table +
      f"\nMean accuracy lost from depth {shallow} to {deep}: EOC-ReLU "
      f"{100 * drop['eoc']:.1f} points, TReLU {100 * drop['tat']:.1f} points; at depth {deep} "
      f"the worst TReLU seed ({100 * min(tests['tat', deep]):.1f}) is "
      f"{'above' if separated else 'NOT above'} the best EOC-ReLU seed "
      f"({100 * max(tests['eoc', deep]):.1f}): claim {verdict}. "
      f"Each cell's learning rate is the better of {', '.join(map(str, LEARNING_RATES))} on seed "
      f"{SEEDS[0]}'s validation accuracy (1,000 held-out training digits; test never selects); "
      f"the cell is then the test accuracy over seeds {', '.join(map(str, SEEDS))} at that rate "
      f"(momentum 0.9, cosine decay, batch 128, {'300' if ctx.quick else '600'} steps, 3,000 "
      "training / 1,000 validation / 1,000 test digits).\n")


reproduce.register("quickstart", "Quickstart: deep vanilla MLPs, EOC-ReLU vs TReLU (TAT)", "tat",
                   run_quickstart)
