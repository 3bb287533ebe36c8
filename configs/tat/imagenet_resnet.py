"""ImageNet ResNet v2 experiments of the TAT paper (tables 2-11), one config.

Run (needs the prepared TFDS `imagenet2012` and an accelerator; nothing here
can be run to completion on the CPU):
  python -m experiments.main --config=configs/tat/imagenet_resnet.py:vanilla,kfac \
      --config.depth=50 --config.method=tat --workdir=/tmp/tat_r50_vanilla
Variants (comma-separated): network standard | rescaled | vanilla (default vanilla);
optimizer kfac | sgd | lars (default kfac); epochs e90 | e180 | e360 (default e90);
cosine (one-cycle cosine schedule, figure 3).
Other settings by override: --config.depth (18..200), --config.method
(tat|dks|eoc|untransformed|prelu), --config.activation (leaky_relu|softplus|tanh|...),
--config.shortcut_weight (rescaled; 0.8 default), --config.eta / tau / zeta,
--config.model.norm (batch|layer, table 3), --config.model.width_multiplier (table 9),
--config.model.init (orthogonal|gaussian, table 11), --config.batch_size (table 8),
--config.model.dropout_rate, --config.l2, --config.optimizer.learning_rate.

Which table uses what (paper, appendix D): table 2 rescaled,{kfac,sgd} depth 50,
shortcut_weight in {0, 0.5, 0.8, 0.9}, method eoc (ReLU) or tat (TReLU), standard
for the first column; table 3 vanilla, method eoc, model.norm batch/layer;
table 4 standard/vanilla/rescaled w=0.8 with tat, e90 and e180; table 5 vanilla,
eoc vs tat, activation leaky_relu or tanh; table 6 vanilla method prelu with
negative_slope 0 or 0.25; table 7 tat vs dks (leaky_relu, softplus, tanh; tau
grid {0.2, 0.3, 0.5}, zeta grid {1.5, 10, 100}), dropout 0.2 / 0; table 8
vanilla tat, batch size 128..4096; table 9 width_multiplier 2 with sgd, e360,
batch 512; table 10 rescaled w=0.8 prelu; table 11 init gaussian (sigma_w^2 = 2
for ReLU: --config.model.sigma_w=1.4142).
Settings: batch 1024, label smoothing 0.1, L2 2e-5 on weights (grid {5e-5,
2e-5, 0}), dropout 0.2 before the classifier in normalization-free nets (grid
{0.2, 0}), linear warm-up 5 epochs then /10 at 4/9 and 7/9, momentum 0.9,
K-FAC damping 0.001 / norm constraint 0.001 / inverse every 50 steps, LARS trust
0.001; learning rates from the grids in _common.LR_GRID (defaults: K-FAC 0.001,
SGD 0.1, LARS 1.0). Per-location input normalization (DKS/TAT preprocessing).
Paper numbers: experiments/tables/tat.py (python -m experiments.reproduce tat_table4 ...).
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


NETWORKS = ("standard", "rescaled", "vanilla")
EPOCHS = {"e90": 90.0, "e180": 180.0, "e360": 360.0}


def get_config(arg: str = ""):
  common = _common()
  args = common.parse_args(arg, set(NETWORKS) | set(common.OPTIMIZERS) | set(EPOCHS) | {"cosine"})
  network = ([a for a in NETWORKS if a in args] or ["vanilla"])[0]
  opt = ([a for a in common.OPTIMIZERS if a in args] or ["kfac"])[0]
  epochs = EPOCHS[([a for a in EPOCHS if a in args] or ["e90"])[0]]
  c = config_lib.base_config()
  c.dataset.name = "imagenet2012"
  c.dataset.augment = "imagenet"
  c.dataset.image_size = 224
  c.dataset.normalization = "per_location"
  c.eval_splits = ("test",)  # the framework serves ImageNet validation as "test"
  c.batch_size = 1024
  c.eval_batch_size = 1000
  c.train_steps = -1
  c.train_epochs = epochs
  c.eval_every = -1
  c.eval_every_epochs = 5.0
  c.checkpoint_every = -1
  c.checkpoint_every_epochs = 5.0
  c.log_every = 100
  c.loss.name = "softmax_xent"
  c.loss.label_smoothing = 0.1
  c.l2 = 2e-5
  c.model.name = "tat.resnet_v2"
  c.model.num_classes = 1000
  c.model.variant = network
  c.shortcut_weight = 0.8
  c.model.shortcut_weight = c.get_ref("shortcut_weight")
  c.model.init = "orthogonal"
  c.model.width_multiplier = 1.0
  c.model.dropout_rate = 0.0 if network == "standard" else 0.2
  c.model.norm = ""  # '' = the variant's default (batch for standard), or batch / layer
  method = "untransformed" if network == "standard" else "tat"
  common.link_method_fields(c, method, "relu" if network == "standard" else "leaky_relu", 50)
  common.set_optimizer(c, opt)
  common.paper_schedule(c, warmup_epochs=5.0)
  if "cosine" in args:
    c.optimizer.schedule.name = "cosine"
  return c
