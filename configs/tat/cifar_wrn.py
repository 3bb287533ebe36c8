"""Figure 5 (appendix E.2): CIFAR-10, vanilla Wide-ResNet-derived nets, EOC vs TAT.

Run (needs the prepared TFDS `cifar10`):
  python -m experiments.main --config=configs/tat/cifar_wrn.py \
      --config.depth=100 --config.method=tat --workdir=/tmp/tat_wrn100
Variants: quick (2 epochs). Depths 100 to 304 (6n + 4), widening factor 2,
no batch norm, no shortcuts; method tat (TReLU, eta 0.9) or eoc (ReLU,
sigma_w sqrt 2). K-FAC for 200 epochs, damping 0.01, norm constraint 1e-4,
learning rate /10 at epochs 75 and 150, random crop + flip. The paper's
figure: TAT stays roughly flat (about 92-93%) from depth 100 to 304 while EOC
drops sharply. Batch size, learning rate and inverse period are not given in
the paper: batch 128 (WRN default), K-FAC lr 0.001, inverse every 50 steps.
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


DEPTHS = (100, 148, 196, 244, 304)  # 6n + 4


def get_config(arg: str = ""):
  common = _common()
  args = common.parse_args(arg, {"quick"})
  c = config_lib.base_config()
  c.dataset.name = "cifar10"
  c.dataset.augment = "cifar"
  c.dataset.normalization = "per_channel"
  c.batch_size = 128
  c.eval_batch_size = 1000
  c.train_steps = -1
  c.train_epochs = 2.0 if "quick" in args else 200.0
  c.eval_every = -1
  c.eval_every_epochs = 1.0 if "quick" in args else 10.0
  c.checkpoint_every = -1
  c.checkpoint_every_epochs = c.train_epochs if "quick" in args else 10.0
  c.loss.name = "softmax_xent"
  c.model.name = "tat.wide_resnet"
  c.model.num_classes = 10
  c.model.widening_factor = 2
  c.model.shortcut_weight = 0.0
  c.model.init = "orthogonal"
  common.link_method_fields(c, "tat", "leaky_relu", 100)
  common.set_optimizer(c, "kfac", 0.001)
  c.optimizer.kfac.damping = 0.01
  c.optimizer.kfac.norm_constraint = 1e-4
  c.optimizer.schedule.name = "step"
  c.optimizer.schedule.boundaries = (75 / 200, 150 / 200)
  c.optimizer.schedule.decay_factor = 0.1
  return c
