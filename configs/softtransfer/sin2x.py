"""Figure 1: one neuron y = sigma(w x), w initialised at 6, fitting sin(2x) on [-2 pi, 2 pi].

Run:
  python -m experiments.main --config=configs/softtransfer/sin2x.py \
      --config.activation=resin_to_sin --workdir=/tmp/sin2x_rs
with activation in {resin, sin, resin_to_sin} (any variant works). summary.json
reports the final scalar weight as `weight` and `test_mse`; metrics.jsonl holds
the weight trace (split "train"). The figure (fits + loss landscape over w with
the optimisation traces) is made by `python -m experiments.reproduce softtransfer_fig1`.

Expected (paper): resin -> sin ends near w = 2 (mse ~ 0), sin stays in a poor
local minimum near w = 6. Measured (python -m experiments.reproduce
softtransfer_fig1): sin stops at w = 6.16 (mse 0.977); resin drifts down its
nearly flat landscape to its shallow local minimum at w = 2 (mse 1.47, not the
paper's w = 0); resin -> sin with its gate started at log alpha = 8 reaches
w = 2.00, mse 1.5e-6. With log alpha drawn from N(8, 1) the single draw decides:
seed 3 reaches sin(2x) (mse 7e-8); seeds 1 and 2 reach w = 2 but their gate is
still ~1 at step 6000 (still resin, mse 1.47); seed 0's gate switched to sin
while w was near 6 (w = 5.16, mse 0.97).

Full batch (256 grid points), SGD with Nesterov momentum 0.9 at lr 0.05
(the paper gives no optimiser for this toy; larger rates are unstable in the
sharp sin basin at w = 2, smaller ones do not move w along resin's flat
landscape), gamma = 0.01, no weight decay, 6000 steps (~1 minute on CPU).
"""

import os
import runpy

_common = lambda: runpy.run_path(os.path.join(os.path.dirname(__file__), "_common.py"))


def get_config(arg: str = ""):
  common = _common()
  args = common["parse_args"](arg, {"quick"})
  steps = 1500 if "quick" in args else 6000
  c = common["regression_base"]("softtransfer.data.sin2x", num_train=256, num_eval=256,
                                batch_size=256, train_steps=steps, eval_every=500, log_every=25)
  c.model.name = "softtransfer.one_neuron"
  c.model.weight_init = 6.0
  common["add_transfer_fields"](c, "resin_to_sin", gamma=0.01)
  c.optimizer.name = "sgd"
  c.optimizer.learning_rate = 0.05
  c.optimizer.momentum = 0.9
  c.optimizer.nesterov = True
  c.optimizer.schedule.name = "constant"
  c.l2 = 0.0
  return c
