"""Figure 1: one neuron y = sigma(w x), w initialised at 6, fitting sin(2x) on [-2 pi, 2 pi].

Run:
  python -m experiments.main --config=configs/softtransfer/sin2x.py \
      --config.activation=resin_to_sin --workdir=/tmp/sin2x_rs
with activation in {resin, sin, resin_to_sin} (any variant works). summary.json
reports the final scalar weight as `weight` and `test_mse`; metrics.jsonl holds
the weight trace (split "train"; with copies > 1 the mean weight). The figure
(final w against the initial log alpha of every draw, fits, loss landscapes) is
made by `python -m experiments.reproduce softtransfer_fig1`.

Expected (paper): resin -> sin ends at w = 2 (mse ~ 0), sin stays in a poor
local minimum near w = 6.

`python -m experiments.reproduce softtransfer_fig1` selects the learning rate
(0.05 or 0.08, every network) and gamma (0.01, 1 or 10, resin -> sin) on 20
validation draws of log alpha, then reports the success rate (w = 2 with the
sin gate) over 100 draws (`--config.model.copies=100`: 100 independent neurons
in one run) for both gate-noise modes (`--config.model.gate_noise=example` or
`batch`) at 6000 and 20000 steps, with 95% Wilson intervals
(softtransfer/README.md). Measured there: sin stops at w = 6.16 (mse 0.977);
resin -> sin (lr 0.08, gamma 0.01) reaches w = 2 with the sin gate in 56/100
draws [0.46, 0.65] at 6000 steps and 61/100 at 20000 (noise per example),
45/100 and 52/100 with noise per batch: every start with log alpha in
[8, 9.5) succeeds, none below 7.5.

Defaults here: full batch (256 grid points), SGD with Nesterov momentum 0.9 at
lr 0.08, gamma = 0.01, no weight decay, 6000 steps (~20 s on CPU); the paper
gives no optimiser for this toy.
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
  c.model.copies = 1  # > 1: that many independent neurons (gate draws) in one run
  c.dataset.kwargs.copies = c.model.get_ref("copies")
  c.loss.sum_over_features = True  # each copy gets its own mse gradient (= the mse for 1 copy)
  common["add_transfer_fields"](c, "resin_to_sin", gamma=0.01)
  c.optimizer.name = "sgd"
  c.optimizer.learning_rate = 0.08  # selected on validation draws (softtransfer_fig1)
  c.optimizer.momentum = 0.9
  c.optimizer.nesterov = True
  c.optimizer.schedule.name = "constant"
  c.l2 = 0.0
  return c
