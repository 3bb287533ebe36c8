"""Shared fields of the softtransfer configs (loaded with runpy.run_path by each config file)."""

from experiments import config_lib
from softtransfer import gates
from softtransfer import transfer

ACTIVATIONS = transfer.VARIANTS  # sin resin tanh relu copy line bern resin_to_sin tanh_to_sin relu_to_sin


def add_transfer_fields(c, activation: str, gamma: float):
  """`--config.activation` selects the variant; gate hyperparameters live under c.model.

  train_steps is linked into the model so copy/line/bern follow epoch
  conversion and `--config.train_steps` overrides.
  """
  c.activation = activation
  c.model.activation = c.get_ref("activation")
  c.model.train_steps = c.get_ref("train_steps")
  c.model.granularity = "neuron"  # neuron | layer | shared (section 3.4)
  c.model.gamma = gamma  # structural-risk weight per gate (eq. 13)
  c.model.beta = gates.BETA
  c.model.xi = gates.XI
  c.model.zeta = gates.ZETA
  c.model.log_alpha_init_mean = gates.LOG_ALPHA_INIT_MEAN  # log alpha ~ N(8, 1), see gates.py
  c.model.log_alpha_init_std = gates.LOG_ALPHA_INIT_STD
  c.model.gate_init_space = "log_alpha"  # "alpha": alpha ~ N(8, 1), log alpha ~ 2.08
  c.model.gate_noise = "example"  # example (L0 code's local_rep=True) | batch (its default)
  c.model.gate_lr_multiplier = 1.0  # the gates' learning rate is this x optimizer.learning_rate
  c.model.gate_weight_decay = 0.0  # PyTorch-style weight decay on log alpha (pulls it to 0)
  c.model.init_scheme = "paper"  # paper | phase (hidden biases U(-pi, pi)) | torch (nn.Linear default)
  return c


def paper_sgd(c, learning_rate: float = 0.1):
  """Section 4.2: SGD, Nesterov momentum 0.9, weight decay 1e-4, cosine annealing with warm restarts."""
  c.optimizer.name = "sgd"
  c.optimizer.learning_rate = learning_rate
  c.optimizer.momentum = 0.9
  c.optimizer.nesterov = True
  c.l2 = 1e-4  # loss += l2/2 |w|^2, i.e. PyTorch weight_decay=1e-4 on weights (not biases/gates)
  c.optimizer.schedule.name = "sgdr"
  return c


def parse_args(arg: str, allowed) -> set:
  args = {a for a in arg.split(",") if a}
  bad = args - set(allowed)
  if bad:
    raise ValueError(f"unknown config variant(s) {sorted(bad)}; accepted: {sorted(allowed)}")
  return args


def regression_base(generator: str, num_train: int, num_eval: int, batch_size: int, train_steps: int,
                    eval_every: int, log_every: int):
  """A `generated` regression task trained with the MSE (figures 1 and 2)."""
  c = config_lib.base_config()
  c.train_steps = train_steps
  c.log_every = log_every
  c.eval_every = eval_every
  c.checkpoint_every = train_steps
  c.batch_size = batch_size
  c.eval_batch_size = num_eval
  c.dataset.name = "generated"
  c.dataset.generator = generator
  c.dataset.num_train = num_train
  c.dataset.num_eval = num_eval
  c.loss.name = "mse"
  return c


def classification_base(dataset: str, augment: str, epochs: float, model: str):
  """Image classification (table 1): batch 128, evaluation every epoch."""
  c = config_lib.base_config()
  c.dataset.name = dataset
  c.dataset.augment = augment
  c.dataset.normalization = "per_channel"
  c.batch_size = 128
  c.eval_batch_size = 1000
  c.train_steps = -1
  c.train_epochs = epochs
  c.eval_every = -1
  c.eval_every_epochs = 1.0
  c.checkpoint_every = -1
  c.checkpoint_every_epochs = 5.0
  c.log_every = 50
  c.loss.name = "softmax_xent"
  c.model.name = model
  c.model.num_classes = 10
  return c


def sgdr_cycles(c, first_cycle_epochs: float, mult: float = 2.0):
  c.optimizer.schedule.cycle_epochs = first_cycle_epochs
  c.optimizer.schedule.cycle_steps = -1
  c.optimizer.schedule.cycle_mult = mult
  return c
