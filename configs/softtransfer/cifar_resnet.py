"""Table 1, CIFAR-10 columns: ResNet-20 (default) or ResNet-110 with gated units.

Run (needs the prepared TFDS `cifar10`):
  python -m experiments.main --config=configs/softtransfer/cifar_resnet.py \
      --config.activation=relu_to_sin --workdir=/tmp/c10_r20
  --config=configs/softtransfer/cifar_resnet.py:resnet110   (also resnet32, resnet56; quick)
activation in {sin, resin, tanh, relu, copy, line, bern, resin_to_sin,
tanh_to_sin, relu_to_sin}. summary.json: final ("conv") and best
test_accuracy; top-1 error = 1 - accuracy.

Optimiser (section 4.2): SGD, Nesterov 0.9, lr 0.1, weight decay 1e-4, batch
128, cosine annealing with warm restarts (cycles of 10, 20, 40, 80 epochs:
150 epochs; not given in the paper), standard CIFAR augmentation (random crop
with 4-pixel padding, horizontal flip) and per-channel normalisation. gamma =
1 per gate (not given in the paper). A ResNet-20 step takes ~0.6 s on this CPU
(~10 h for 150 epochs): run on an accelerator.

Paper (top-1 error, conv / best): ResNet-20 relu 8.63/8.47, resin->sin
8.53/8.50, relu->sin 7.94/7.55; ResNet-110 relu 7.55/7.49, relu->sin 5.99/5.84.
"""

import os
import runpy

_common = lambda: runpy.run_path(os.path.join(os.path.dirname(__file__), "_common.py"))


DEPTHS = {"resnet20": 20, "resnet32": 32, "resnet56": 56, "resnet110": 110}


def get_config(arg: str = ""):
  common = _common()
  args = common["parse_args"](arg, {"quick", *DEPTHS})
  depths = [DEPTHS[a] for a in args if a in DEPTHS]
  if len(depths) > 1:
    raise ValueError(f"choose one depth variant of {sorted(DEPTHS)}, got {sorted(args)}")
  c = common["classification_base"]("cifar10", "cifar", 3.0 if "quick" in args else 150.0,
                                    "softtransfer.resnet")
  c.model.depth = depths[0] if depths else 20
  c.model.width = 16
  common["add_transfer_fields"](c, "relu_to_sin", gamma=1.0)
  common["paper_sgd"](c)
  common["sgdr_cycles"](c, 1.0 if "quick" in args else 10.0)
  return c
